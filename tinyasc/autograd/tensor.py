"""Tensor: a NumPy array that remembers the operation that made it.

Every tensor produced by a differentiable operation points at that operation (a
`Function`), and the operation points at its input tensors. `backward` walks this
graph from the output to the leaves in reverse topological order, calling each
operation's backward once with the sum of the gradients that reached it. The walk is
iterative, so graphs of any depth work.
"""
import numpy as np

from tinyasc import kernels
from tinyasc.autograd import ops
from tinyasc.autograd import function as function_module
from tinyasc.autograd.function import sum_to_shape


def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    array = np.asarray(data)
    # float64 and integer/bool arrays keep their type; everything else (python floats
    # included, as in torch) becomes float32.
    given_float64 = array.dtype == np.float64 and isinstance(data, (np.ndarray, np.generic))
    if given_float64 or array.dtype.kind in "biu":
        return array
    return array.astype(np.float32, copy=False)


class Tensor:
    """A NumPy array with an optional gradient (PyTorch's names and semantics)."""

    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None

    @classmethod
    def _from_op(cls, array, fn):
        out = cls.__new__(cls)
        out.data = np.asarray(array)
        out.requires_grad = fn is not None
        out.grad = None
        out.grad_fn = fn
        return out

    # ------------------------------------------------------------------ basics
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        return Tensor._from_op(self.data, None)

    def requires_grad_(self, flag=True):
        self.requires_grad = bool(flag)
        return self

    def zero_(self):
        self.data[...] = 0
        return self

    def astype(self, dtype):
        return ops.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    # --------------------------------------------------------------- backward
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) . grad into the .grad of every leaf that requires it."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"grad can be omitted only for a scalar output, got shape {self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {grad.shape}, expected {self.shape}")

        pending = {id(self): _GradSum(grad)}
        for node in _reverse_topological_order(self):
            total = pending.pop(id(node), None)
            if total is None:
                continue
            fn = node.grad_fn
            if fn is None:
                g = np.array(total.value(), dtype=node.dtype, order="C")  # a copy the leaf owns
                node.grad = g if node.grad is None else node.grad + g
                continue
            parts = total.fused() if getattr(fn, "accepts_freq_broadcast_grad", False) else None
            if parts is not None:
                g, call = parts[0], lambda g: fn.backward(g, parts[1])
            else:
                g, call = total.value(), fn.backward
            if function_module._profile is None:
                input_grads = call(g)
            else:
                input_grads = function_module._timed(fn, "backward", call, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, needs, g_in in zip(fn.inputs, fn.needs_grad, input_grads):
                if not needs or g_in is None:
                    continue
                g_in = sum_to_shape(np.asarray(g_in), parent.shape)
                pending.setdefault(id(parent), _GradSum()).add(g_in)

    # ------------------------------------------------------------- arithmetic
    def _other(self, other):
        if isinstance(other, Tensor):
            return other
        if self.dtype.kind != "f":  # an int tensor times 0.5 must not truncate the 0.5
            return Tensor._from_op(_as_array(other), None)
        return Tensor._from_op(np.asarray(other, dtype=self.dtype), None)

    def __add__(self, other):
        return ops.Add.apply(self, self._other(other))

    def __radd__(self, other):
        return ops.Add.apply(self._other(other), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, self._other(other))

    def __rsub__(self, other):
        return ops.Sub.apply(self._other(other), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, self._other(other))

    def __rmul__(self, other):
        return ops.Mul.apply(self._other(other), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, self._other(other))

    def __rtruediv__(self, other):
        return ops.Div.apply(self._other(other), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor exponents are not supported; use exp(log(x) * y)")
        return ops.Pow.apply(self, exponent=float(exponent))

    def __matmul__(self, other):
        return ops.MatMul.apply(self, self._other(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(self._other(other), self)

    def __getitem__(self, key):
        if isinstance(key, Tensor):
            key = key.data
        elif isinstance(key, tuple):
            key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
        return ops.Index.apply(self, key=key)

    # Comparisons give boolean tensors outside the graph, as in PyTorch.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._from_op(op(self.data, other), None)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.data.item())

    def __int__(self):
        return int(self.data.item())

    # ------------------------------------------------------------ elementwise
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clamp(self, min=None, max=None):
        return ops.Clip.apply(self, low=min, high=max)

    clip = clamp

    # ------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False):
        return ops.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return ops.Mean.apply(self, dim=dim, keepdim=keepdim)

    def amax(self, dim=None, keepdim=False):
        return ops.AMax.apply(self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """Like torch: the overall max without `dim`, else (values, indices)."""
        if dim is None:
            return ops.AMax.apply(self, dim=None, keepdim=False)
        indices = np.argmax(self.data, axis=dim)
        if keepdim:
            indices = np.expand_dims(indices, dim)
        values = ops.TakeAlong.apply(self, indices=indices, dim=dim, keepdim=keepdim)
        return values, Tensor._from_op(indices, None)

    def var(self, dim=None, keepdim=False, unbiased=True):
        mu = self.mean(dim=dim, keepdim=True)
        sq = ((self - mu) ** 2).sum(dim=dim, keepdim=keepdim)
        n = self.data.size // max(sq.data.size, 1)
        return sq / (n - 1 if unbiased else n)

    # ---------------------------------------------------------------- shapes
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        end = end_dim % self.ndim
        shape = self.shape[:start_dim] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return ops.Permute.apply(self, dims=dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim):
        dim = dim if dim >= 0 else dim + self.ndim + 1
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(s if n == -1 else n for n, s in zip(shape, (1,) * (len(shape) - self.ndim) + self.shape))
        return ops.BroadcastTo.apply(self, shape=shape)


class _GradSum:
    """The gradients that reached one tensor so far, summed in the order they arrive.

    One sum is put off: a full-size gradient and a broadcast over axis 2 of an N x C x F x T
    tensor (the gradient of a frequency mean, as every BC-ResBlock takes of its x2), kept at its
    N x C x 1 x T size in `freq`. `value()` makes the sum in one parallel pass; an op whose
    backward reads the two as it goes (`accepts_freq_broadcast_grad`, SubSpectralNorm) gets them
    apart, and the full-size sum is never made. A third gradient makes the sum first, so every
    sum has the bits of adding the gradients one by one.
    """

    def __init__(self, grad=None):
        self.full = self.freq = None
        if grad is not None:
            self.add(grad)

    def add(self, grad):
        if self.full is not None and self.freq is not None:  # a third gradient: the put-off sum first
            self.full, self.freq = self.value() + grad, None
        elif grad.ndim == 4 and grad.shape[2] > 1 and grad.strides[2] == 0:  # kept (and summed) small
            part, self.freq_shape = grad[:, :, :1, :], grad.shape
            self.freq = part if self.freq is None else self.freq + part
        else:  # full-size: after broadcasts alone the sum is put off, as after a full one
            self.full = grad if self.full is None else self.full + grad

    def fused(self):
        """(full, freq) when the sum is a full-size gradient plus a broadcast of the same dtype."""
        if self.full is None or self.freq is None or self.full.dtype != self.freq.dtype:
            return None
        return self.full, self.freq

    def value(self):
        if self.freq is None:
            return self.full
        if self.full is None:
            return np.broadcast_to(self.freq, self.freq_shape)
        return kernels.add_freq_broadcast(self.full, self.freq)


def _reverse_topological_order(root):
    """Nodes that lead to `root` (requiring grad), `root` first, each after all its consumers.

    Iterative depth-first post-order: a node's marker is pushed before its inputs, so it
    is emitted only after every input below it has been emitted.
    """
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node.grad_fn is not None:
            for parent, needs in zip(node.grad_fn.inputs, node.grad_fn.needs_grad):
                if needs and id(parent) not in seen:
                    stack.append((parent, False))
    return reversed(order)


def tensor(data, requires_grad=False, dtype=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def cat(tensors, dim=0):
    return ops.Concat.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def where(condition, x, y):
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    like = x if isinstance(x, Tensor) else y
    x = x if isinstance(x, Tensor) else like._other(x)
    y = y if isinstance(y, Tensor) else like._other(y)
    return ops.Where.apply(x, y, condition=condition.astype(bool))


def zeros(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)
