"""The unit of differentiation: one operation with its forward and backward together.

A subclass computes `forward(*arrays, **params)` on NumPy arrays and keeps on `self`
whatever its backward needs; `backward(grad)` gets the gradient of the loss with
respect to the output and returns one gradient per positional input (None where an
input is not a tensor or needs no gradient). Keyword parameters (stride, dim, ...)
are never differentiated.

Broadcasting is handled once, in `Tensor.backward`: a gradient whose shape is the
broadcast shape is summed back to the input's shape there, so a binary op may simply
return the broadcast gradient.
"""
import numpy as np

from tinyasc.autograd.grad_mode import is_grad_enabled


class Function:
    """Base class of differentiable operations (see the module docstring)."""

    def __init__(self):
        self.inputs = ()
        # needs_grad[i]: whether positional input i wants a gradient; a backward may
        # skip work for the inputs that do not.
        self.needs_grad = ()

    @classmethod
    def apply(cls, *inputs, **params):
        from tinyasc.autograd.tensor import Tensor

        fn = cls()
        arrays = tuple(t.data if isinstance(t, Tensor) else t for t in inputs)
        fn.needs_grad = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        record = is_grad_enabled() and any(fn.needs_grad)
        out = fn.forward(*arrays, **params)
        if isinstance(out, tuple):
            raise TypeError(f"{cls.__name__}.forward must return one array")
        if not record:
            return Tensor._from_op(out, None)
        fn.inputs = inputs
        return Tensor._from_op(out, fn)

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}>"


def sum_to_shape(grad, shape):
    """Sum a broadcast gradient back down to `shape` (the adjoint of broadcasting)."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def as_pair(value, name="value"):
    """Normalise an int or a 2-sequence to a tuple of two ints (torch's _pair)."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value}")
    return value
