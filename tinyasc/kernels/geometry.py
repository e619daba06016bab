"""The shape of one convolution or pooling call, as one named value.

Paper Table 1 describes each layer of BC-ResNet-Mod by its kernel size, stride, padding and
channels; a `ConvGeometry` is that row plus the batch and the map size, checked once and passed
around whole. dispatch.py decides a path from it, the entry points in api.py hand it on, and
only at the call of a Numba kernel is it unpacked into the scalars Numba compiles best
(`ConvGeometry.window`).

Output sizes follow torch: Ho = floor((H + 2*ph - dh*(KH - 1) - 1) / sh) + 1, likewise Wo.
"""
from typing import NamedTuple


class ConvGeometry(NamedTuple):
    """One conv2d: x (n, c_in, h, w) * weight (c_out, c_in/groups, kh, kw) -> (n, c_out, out_h, out_w).
    stride, padding, dilation are (h, w) pairs."""
    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kh: int
    kw: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    out_h: int
    out_w: int

    @property
    def taps(self):
        """K = c_in*kh*kw: the rows of the im2col matrix (all groups)."""
        return self.c_in * self.kh * self.kw

    @property
    def window(self):
        """(KH, KW, sh, sw, ph, pw, dh, dw): the scalars the Numba conv kernels take."""
        return (self.kh, self.kw, *self.stride, *self.padding, *self.dilation)

    @property
    def x_shape(self):
        return (self.n, self.c_in, self.h, self.w)

    @property
    def w_shape(self):
        return (self.c_out, self.c_in // self.groups, self.kh, self.kw)


class PoolGeometry(NamedTuple):
    """One 2-D pooling: x (n, c, h, w) -> (n, c, out_h, out_w), windows kh x kw."""
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    out_h: int
    out_w: int

    @property
    def window(self):
        """(KH, KW, sh, sw, ph, pw): the scalars the Numba pooling kernels take (dilation apart)."""
        return (self.kh, self.kw, *self.stride, *self.padding)


def conv2d_output_size(size, kernel, stride, padding, dilation):
    """torch's floor((size + 2p - d*(k-1) - 1) / s) + 1 for one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """The ConvGeometry of conv2d(x, w), with torch's errors for shapes that do not fit."""
    N, Cin, H, W = x_shape
    Cout, cin_g, KH, KW = w_shape
    if Cin != cin_g * groups or Cout % groups:
        raise ValueError(f"conv2d: input {tuple(x_shape)} and weight {tuple(w_shape)} do not match groups={groups}")
    Ho = conv2d_output_size(H, KH, stride[0], padding[0], dilation[0])
    Wo = conv2d_output_size(W, KW, stride[1], padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d: output size {Ho}x{Wo} is too small for input {tuple(x_shape)}")
    return ConvGeometry(N, Cin, Cout, H, W, KH, KW, tuple(stride), tuple(padding), tuple(dilation), groups, Ho, Wo)


def conv_transpose2d_output_size(size, kernel, stride, padding, output_padding, dilation):
    """torch's (size - 1)*s - 2p + d*(k - 1) + output_padding + 1 for one axis."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_transpose2d_shape(x_shape, w_shape, stride, padding, output_padding, dilation, groups):
    """y's shape (N, Cout, Ho, Wo) for conv_transpose2d(x, w), with torch's errors."""
    N, Cin, H, W = x_shape
    if w_shape[0] != Cin or Cin % groups:
        raise ValueError(f"conv_transpose2d: input {x_shape} and weight {w_shape} do not match groups={groups}")
    for axis in range(2):
        if not (output_padding[axis] < stride[axis] or output_padding[axis] < dilation[axis]):
            raise ValueError("conv_transpose2d: output_padding must be smaller than stride or dilation")
    Ho = conv_transpose2d_output_size(H, w_shape[2], stride[0], padding[0], output_padding[0], dilation[0])
    Wo = conv_transpose2d_output_size(W, w_shape[3], stride[1], padding[1], output_padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv_transpose2d: output size {Ho}x{Wo} is too small")
    return (N, w_shape[1] * groups, Ho, Wo)


def pool_output_size(size, kernel, stride, padding, dilation, ceil_mode):
    """torch's pooling_output_shape: floor or ceil division; with ceil_mode the last window
    must start inside the input or the left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode, name):
    """The PoolGeometry of a max/avg pool over x, with torch's errors."""
    N, C, H, W = x_shape
    for axis in range(2):
        if padding[axis] > kernel[axis] // 2:  # torch's rule, on the undilated kernel
            raise ValueError(f"{name}: padding should be at most half of the kernel size")
    Ho = pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    Wo = pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{name}: output size {Ho}x{Wo} is too small for input {tuple(x_shape)}")
    return PoolGeometry(N, C, H, W, kernel[0], kernel[1], tuple(stride), tuple(padding), tuple(dilation),
                        bool(ceil_mode), Ho, Wo)
