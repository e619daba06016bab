"""The tensor operations behind Tensor's operators and methods.

One class per operation, forward and backward side by side. A backward never writes
into the gradient it receives (it may be shared), and binary operations return the
broadcast-shaped gradient: `Tensor.backward` sums it back to each input's shape.
"""
import numpy as np

from tinyasc.autograd.function import Function, sum_to_shape


class Cast(Function):
    def forward(self, x, dtype):
        self.dtype_in = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.dtype_in)


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, (-grad if self.needs_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        ga = grad * self.b if self.needs_grad[0] else None
        gb = grad * self.a if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        ga = grad / self.b if self.needs_grad[0] else None
        gb = -grad * self.a / (self.b * self.b) if self.needs_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Pow(Function):
    def forward(self, x, exponent):
        self.x, self.exponent = x, exponent
        return x ** np.asarray(exponent, dtype=x.dtype)

    def backward(self, grad):
        p = np.asarray(self.exponent, dtype=self.x.dtype)
        if p == 0:  # d(x**0)/dx = 0 everywhere, x = 0 included (as torch), not 0 * inf
            return np.zeros_like(grad)
        return grad * p * self.x ** (p - 1)


class Exp(Function):
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, grad):
        return grad * self.out


class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, grad):
        return grad / self.x


class Sqrt(Function):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, grad):
        return grad * np.sign(self.x)


class Clip(Function):
    """clamp(x, min, max); the gradient passes where min <= x <= max, as in PyTorch."""

    def forward(self, x, low, high):
        self.pass_mask = np.ones(x.shape, dtype=bool)
        if low is not None:
            self.pass_mask &= x >= low
        if high is not None:
            self.pass_mask &= x <= high
        return np.clip(x, low, high)

    def backward(self, grad):
        return grad * self.pass_mask


class Where(Function):
    def forward(self, x, y, condition):
        self.condition = condition
        return np.where(condition, x, y)

    def backward(self, grad):
        zero = np.zeros((), dtype=grad.dtype)
        gx = np.where(self.condition, grad, zero) if self.needs_grad[0] else None
        gy = np.where(self.condition, zero, grad) if self.needs_grad[1] else None
        return gx, gy


class MatMul(Function):
    """a @ b with NumPy's rules (1-D operands promoted, batch dimensions broadcast)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        g = grad
        if self.b.ndim == 1:  # first, so that vector @ vector (a 0-d grad) works too
            g = np.expand_dims(g, -1)
        if self.a.ndim == 1:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.needs_grad[0]:
            ga = sum_to_shape(g @ np.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_grad[1]:
            gb = sum_to_shape(np.swapaxes(a, -1, -2) @ g, b.shape).reshape(self.b.shape)
        return ga, gb


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted(d % ndim for d in dims))


def _expand_reduced(grad, axes, keepdim, shape):
    """Undo a reduction's shape change so `grad` broadcasts against the input."""
    if not keepdim:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    def forward(self, x, dim, keepdim):
        self.shape, self.keepdim = x.shape, keepdim
        self.axes = _axes(dim, x.ndim)
        return np.sum(x, axis=self.axes, keepdims=keepdim)

    def backward(self, grad):
        return _expand_reduced(grad, self.axes, self.keepdim, self.shape)


class Mean(Function):
    def forward(self, x, dim, keepdim):
        self.shape, self.keepdim = x.shape, keepdim
        self.axes = _axes(dim, x.ndim)
        self.count = int(np.prod([x.shape[a] for a in self.axes]))
        if self.axes == (2,) and x.ndim == 4 and x.dtype in (np.float32, np.float64) and x.size:
            # the frequency mean of every BC-ResBlock's f1 branch: one streaming kernel, same bits
            from tinyasc.kernels import freq_mean

            out = freq_mean(x)
            return out if keepdim else out.reshape(x.shape[:2] + x.shape[3:])
        return np.mean(x, axis=self.axes, keepdims=keepdim)

    def backward(self, grad):
        return _expand_reduced(grad / self.count, self.axes, self.keepdim, self.shape)


class AMax(Function):
    """Maximum over dims; ties share the gradient equally (torch.amax)."""

    def forward(self, x, dim, keepdim):
        self.x, self.keepdim = x, keepdim
        self.axes = _axes(dim, x.ndim)
        self.out = np.max(x, axis=self.axes, keepdims=True)
        return self.out if keepdim else np.squeeze(self.out, axis=self.axes)

    def backward(self, grad):
        mask = self.x == self.out
        count = mask.sum(axis=self.axes, keepdims=True)
        g = grad if self.keepdim else np.expand_dims(grad, self.axes)
        return mask * (g / count).astype(grad.dtype)


class TakeAlong(Function):
    """Values at given indices along one dim (the values of torch.max(x, dim))."""

    def forward(self, x, indices, dim, keepdim):
        self.shape, self.dim, self.keepdim = x.shape, dim, keepdim
        self.indices = indices if keepdim else np.expand_dims(indices, dim)
        out = np.take_along_axis(x, self.indices, axis=dim)
        return out if keepdim else np.squeeze(out, axis=dim)

    def backward(self, grad):
        g = grad if self.keepdim else np.expand_dims(grad, self.dim)
        gx = np.zeros(self.shape, dtype=grad.dtype)
        np.put_along_axis(gx, self.indices, g, axis=self.dim)
        return gx


class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.shape)


class Permute(Function):
    def forward(self, x, dims):
        self.dims = tuple(d % x.ndim for d in dims)
        return np.transpose(x, self.dims)

    def backward(self, grad):
        return np.transpose(grad, np.argsort(self.dims))


class BroadcastTo(Function):
    def forward(self, x, shape):
        return np.broadcast_to(x, shape)

    def backward(self, grad):
        return grad  # summed back to the input's shape by Tensor.backward


def _is_basic_index(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


class Index(Function):
    """x[key]: basic slicing scatters back by assignment, advanced indexing by add.at."""

    def forward(self, x, key):
        self.shape, self.key = x.shape, key
        return x[key]

    def backward(self, grad):
        gx = np.zeros(self.shape, dtype=grad.dtype)
        if _is_basic_index(self.key):
            gx[self.key] = grad
        else:
            np.add.at(gx, self.key, grad)
        return gx


class Concat(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        self.bounds = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=dim)

    def backward(self, grad):
        return tuple(np.split(grad, self.bounds, axis=self.dim))


class Pad(Function):
    """torch.nn.functional.pad: `pad` lists (before, after) pairs from the last dim backwards.

    Constant mode allows negative amounts (cropping). The other modes gather through an
    index map per padded dim, and their backward scatters back with add.at.
    """

    def forward(self, x, pad, mode="constant", value=0.0):
        if len(pad) % 2 or len(pad) // 2 > x.ndim:
            raise ValueError(f"pad must hold (before, after) pairs for at most {x.ndim} dims, got {pad}")
        self.shape, self.mode = x.shape, mode
        widths = [(0, 0)] * x.ndim
        for i in range(len(pad) // 2):
            widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
        self.widths = widths
        if mode == "constant":
            grown = [(max(b, 0), max(a, 0)) for b, a in widths]
            out = np.pad(x, grown, mode="constant", constant_values=value)
            self.crop = tuple(slice(max(-b, 0), out.shape[d] - max(-a, 0)) for d, (b, a) in enumerate(widths))
            return out[self.crop]
        maps = []
        for d, (before, after) in enumerate(widths):
            n = x.shape[d]
            pos = np.arange(-before, n + after)
            if mode == "reflect":
                if before >= n or after >= n:
                    raise ValueError(f"reflect padding must be smaller than the dim size {n}")
                pos = np.abs(pos)
                pos = np.where(pos > n - 1, 2 * (n - 1) - pos, pos)
            elif mode == "replicate":
                pos = np.clip(pos, 0, n - 1)
            elif mode == "circular":
                pos = pos % n
            else:
                raise ValueError(f"unknown pad mode {mode!r}")
            maps.append(pos)
        self.index = np.ix_(*maps)
        return x[self.index]

    def backward(self, grad):
        gx = np.zeros(self.shape, dtype=grad.dtype)
        if self.mode == "constant":
            grown = tuple(slice(max(b, 0), max(b, 0) + n) for (b, a), n in zip(self.widths, self.shape))
            full = np.zeros(tuple(n + max(b, 0) + max(a, 0) for (b, a), n in zip(self.widths, self.shape)), grad.dtype)
            full[self.crop] = grad
            return full[grown].copy()
        np.add.at(gx, self.index, grad)
        return gx
