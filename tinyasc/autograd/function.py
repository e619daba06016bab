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
import time
from collections import defaultdict

import numpy as np

from tinyasc.autograd.grad_mode import is_grad_enabled

_profile = None  # when set: {(op name, "forward"|"backward"): [calls, seconds]}
_calls = None  # when set (profile(record=True)): a list of per-call records, see profile


class profile:
    """Context manager that times every op's forward and backward, by op class (named without
    its `Function` suffix).

        with profile() as prof:
            loss = model(x).sum(); loss.backward()
        print(prof.table())

    With record=True it also keeps `calls`, one record per op call in execution order:
    (op name, pass, seconds, Function class, params, input shapes, output shapes, needs_grad),
    where params is the op's `params` attribute if it has one (a conv's stride, padding, ...),
    the input shapes of a backward are the incoming gradient's and then the forward inputs',
    and a shape is None for a non-array; the benchmarks turn them into FLOPs and bytes moved.
    """

    def __init__(self, record=False):
        self.record = record
        self.calls = []

    def __enter__(self):
        global _profile, _calls
        self.times = defaultdict(lambda: [0, 0.0])
        self._previous, _profile = (_profile, _calls), self.times
        _calls = self.calls if self.record else None
        return self

    def __exit__(self, *exc):
        global _profile, _calls
        _profile, _calls = self._previous
        return False

    def table(self, top=30):
        total = sum(v[1] for v in self.times.values()) or 1.0
        rows = sorted(self.times.items(), key=lambda kv: -kv[1][1])[:top]
        lines = [f"{'op':<28}{'pass':<10}{'calls':>7}{'ms':>10}{'share':>8}"]
        for (name, kind), (calls, seconds) in rows:
            lines.append(f"{name:<28}{kind:<10}{calls:>7}{1000 * seconds:>10.1f}{100 * seconds / total:>7.1f}%")
        lines.append(f"{'total':<45}{1000 * total:>10.1f}")
        return "\n".join(lines)


def _shapes(arrays):
    return tuple(getattr(a, "shape", None) for a in arrays)


def _timed(fn, kind, call, *args, inputs=()):
    if _profile is None:
        return call(*args)
    start = time.perf_counter()
    out = call(*args)
    seconds = time.perf_counter() - start
    # "BatchNorm", not "BatchNormFunction": the table lists ops, every one of them is a Function.
    name = getattr(fn, "profile_name", None) or type(fn).__name__.removesuffix("Function")
    entry = _profile[(name, kind)]
    entry[0] += 1
    entry[1] += seconds
    if _calls is not None:
        outs = out if isinstance(out, tuple) else (out,)
        ins = inputs if kind == "forward" else args + tuple(fn.inputs)
        _calls.append((name, kind, seconds, type(fn), getattr(fn, "params", None), _shapes(ins),
                       _shapes(outs), tuple(fn.needs_grad)))
    return out


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
        if _profile is None:
            out = fn.forward(*arrays, **params)
        else:
            out = _timed(fn, "forward", lambda: fn.forward(*arrays, **params), inputs=arrays)
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
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    # A gradient that is not a broadcast of `shape` comes from a wrong backward: an
    # error, never a silent reshape (a transposed (4, 3) gradient for a (3, 4) input).
    if extra < 0 or any(n != 1 and n != g for n, g in zip(shape, grad.shape[extra:])):
        raise ValueError(f"a gradient of shape {grad.shape} does not fit an input of shape {shape}")
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def as_pair(value, name="value"):
    """Normalise an int or a 2-sequence to a tuple of two ints (torch's _pair)."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value}")
    return value
