"""2-D convolution (cross-correlation, torch semantics, no bias): forward and both gradients.

Every conv of BC-ResNet-Mod (paper Table 1) goes through here: the 5x5 stride-2 head, the 1x1
pointwise convs of each BC-ResBlock and the classifier, and the 3x1 / 1x3 depthwise convs.
The public functions pick a path by the layer's shape:

* 1x1, stride 1, no padding, groups 1 (pointwise): one BLAS matmul (Cout, Cin) @ (Cin, H*W)
  per sample, straight on the NCHW memory; no im2col.
* depthwise 3x1 / 1x3, stride 1, dilation 1: depthwise.py.
* anything else: the direct Numba kernels below, parallel over chunks of the batch.

The direct kernels first copy one sample into a zero-padded buffer split by phase along the
width: xq[ci, r, h, j] = x_padded[ci, h, j*sw + r]. Tap (kh, kw) of output column ow then reads
xq[ci, (kw*dw) % sw, oh*sh + kh*dh, ow + (kw*dw) // sw], which is contiguous in ow even for a
strided conv, so the innermost loops stream rows and vectorise. The buffer is per thread and
per sample, so it stays in cache. The backward-input kernel scatters into the same layout and
folds it back; the weight gradient accumulates one float64 partial per chunk, summed at the end.

Shapes: x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW), y (N, Cout, Ho, Wo) with
Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1, likewise Wo. stride, padding, dilation are (h, w).
"""
import numba
import numpy as np
from numba import njit, prange

from tinyasc.kernels.depthwise import (
    depthwise_conv2d_backward_input,
    depthwise_conv2d_backward_weight,
    depthwise_conv2d_forward,
)

_FASTMATH = {"contract", "reassoc", "nsz"}


@njit(cache=True)
def _load_phases(xn, ph, pw, sw, xq):
    """xq[ci, r, h, j] = zero-padded xn[ci, h - ph, j*sw + r - pw] (a copy of one sample)."""
    Cin, H, W = xn.shape
    Wq = xq.shape[3]
    xq[:] = 0
    for ci in range(Cin):
        for h in range(H):
            src = xn[ci, h]
            for r in range(sw):
                dst = xq[ci, r, h + ph]
                # padded columns j*sw + r holding input column w = j*sw + r - pw
                j0 = max(0, (pw - r + sw - 1) // sw)
                j1 = min(Wq, (W + pw - r + sw - 1) // sw)
                for j in range(j0, j1):
                    dst[j] = src[j * sw + r - pw]


@njit(cache=True)
def _store_phases(gxq, ph, pw, sw, gxn):
    """The adjoint of _load_phases: gxn[ci, h, w] = gxq[ci, (w+pw) % sw, h+ph, (w+pw) // sw]."""
    Cin, H, W = gxn.shape
    for ci in range(Cin):
        for h in range(H):
            dst = gxn[ci, h]
            for r in range(sw):
                src = gxq[ci, r, h + ph]
                j0 = max(0, (pw - r + sw - 1) // sw)
                j1 = min(gxq.shape[3], (W + pw - r + sw - 1) // sw)
                for j in range(j0, j1):
                    dst[j * sw + r - pw] = src[j]


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def conv2d_forward_kernel(x, w, sh, sw, ph, pw, dh, dw, groups, Ho, Wo, nchunks):
    """Direct convolution. x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW), both contiguous::

        for chunk of samples in parallel:           # each chunk owns its xq buffer
            for n in chunk:
                xq = padded, phase-split x[n]
                for co, oh:
                    y[n, co, oh, :] = 0
                    for ci in group(co), kh, kw:
                        for ow:
                            y[n, co, oh, ow] += w[co, ci, kh, kw] * xq[ci, r(kw), oh*sh + kh*dh, ow + off(kw)]
    """
    N, Cin, H, W = x.shape
    Cout, cin_g, KH, KW = w.shape
    cout_g = Cout // groups
    Hp = H + 2 * ph
    Wq = (W + 2 * pw + sw - 1) // sw
    y = np.empty((N, Cout, Ho, Wo), x.dtype)
    for chunk in prange(nchunks):
        xq = np.empty((Cin, sw, Hp, Wq), x.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            _load_phases(x[n], ph, pw, sw, xq)
            for co in range(Cout):
                ci0 = (co // cout_g) * cin_g
                for oh in range(Ho):
                    yrow = y[n, co, oh]
                    for ow in range(Wo):
                        yrow[ow] = 0
                    for cig in range(cin_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                wv = w[co, cig, kh, kw]
                                xrow = xq[ci0 + cig, (kw * dw) % sw, oh * sh + kh * dh]
                                off = (kw * dw) // sw
                                for ow in range(Wo):
                                    yrow[ow] += wv * xrow[ow + off]
    return y


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def conv2d_backward_input_kernel(gy, w, H, W, sh, sw, ph, pw, dh, dw, groups, nchunks):
    """Scatter each output gradient back through the taps (the adjoint of the forward)::

        for chunk of samples in parallel:
            for n in chunk:
                gxq = 0                                   # padded, phase-split layout
                for co, oh, ci in group(co), kh, kw:
                    for ow:
                        gxq[ci, r(kw), oh*sh + kh*dh, ow + off(kw)] += w[co, ci, kh, kw] * gy[n, co, oh, ow]
                gx[n] = gxq folded back and cropped
    """
    N, Cout, Ho, Wo = gy.shape
    _, cin_g, KH, KW = w.shape
    Cin = cin_g * groups
    cout_g = Cout // groups
    Hp = H + 2 * ph
    Wq = (W + 2 * pw + sw - 1) // sw
    gx = np.empty((N, Cin, H, W), gy.dtype)
    for chunk in prange(nchunks):
        gxq = np.empty((Cin, sw, Hp, Wq), gy.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            gxq[:] = 0
            for co in range(Cout):
                ci0 = (co // cout_g) * cin_g
                for oh in range(Ho):
                    grow = gy[n, co, oh]
                    for cig in range(cin_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                wv = w[co, cig, kh, kw]
                                dst = gxq[ci0 + cig, (kw * dw) % sw, oh * sh + kh * dh]
                                off = (kw * dw) // sw
                                for ow in range(Wo):
                                    dst[ow + off] += wv * grow[ow]
            _store_phases(gxq, ph, pw, sw, gx[n])
    return gx


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def conv2d_backward_weight_kernel(x, gy, KH, KW, sh, sw, ph, pw, dh, dw, groups, nchunks):
    """Weight gradient as dot products of output-gradient rows with shifted input rows::

        for chunk of samples in parallel:           # part[chunk] is this chunk's own sum
            for n in chunk:
                xq = padded, phase-split x[n]
                for co, oh, ci in group(co), kh, kw:
                    part[chunk, co, ci, kh, kw] += dot(gy[n, co, oh, :], xq[ci, r(kw), oh*sh + kh*dh, off(kw):])
        gw = part summed over chunks (float64)
    """
    N, Cin, H, W = x.shape
    _, Cout, Ho, Wo = gy.shape
    cin_g = Cin // groups
    cout_g = Cout // groups
    Hp = H + 2 * ph
    Wq = (W + 2 * pw + sw - 1) // sw
    part = np.zeros((nchunks, Cout, cin_g, KH, KW), np.float64)
    for chunk in prange(nchunks):
        xq = np.empty((Cin, sw, Hp, Wq), x.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            _load_phases(x[n], ph, pw, sw, xq)
            for co in range(Cout):
                ci0 = (co // cout_g) * cin_g
                for oh in range(Ho):
                    grow = gy[n, co, oh]
                    for cig in range(cin_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                xrow = xq[ci0 + cig, (kw * dw) % sw, oh * sh + kh * dh]
                                off = (kw * dw) // sw
                                s = grow[0] * xrow[off]
                                for ow in range(1, Wo):
                                    s += grow[ow] * xrow[ow + off]
                                part[chunk, co, cig, kh, kw] += s
    return part.sum(axis=0)


# ------------------------------------------------------------------------- public functions


def conv2d_output_size(size, kernel, stride, padding, dilation):
    """torch's floor((size + 2p - d*(k-1) - 1) / s) + 1 for one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _chunks(n):
    return max(1, min(n, numba.get_num_threads()))


def _check(x_shape, w_shape, stride, padding, dilation, groups):
    N, Cin, H, W = x_shape
    Cout, cin_g, KH, KW = w_shape
    if Cin != cin_g * groups or Cout % groups:
        raise ValueError(f"conv2d: input {x_shape} and weight {w_shape} do not match groups={groups}")
    Ho = conv2d_output_size(H, KH, stride[0], padding[0], dilation[0])
    Wo = conv2d_output_size(W, KW, stride[1], padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d: output size {Ho}x{Wo} is too small for input {x_shape}")
    return Ho, Wo


def _is_pointwise(w_shape, stride, padding, groups):
    return w_shape[2:] == (1, 1) and stride == (1, 1) and padding == (0, 0) and groups == 1


def _is_depthwise(x_shape, w_shape, stride, padding, dilation, groups):
    Cin, Cout = x_shape[1], w_shape[0]
    if not (groups == Cin == Cout and stride == (1, 1) and dilation == (1, 1)):
        return False
    # a 3-tap filter along one axis, no padding along the other
    return (w_shape[2:] == (3, 1) and padding[1] == 0) or (w_shape[2:] == (1, 3) and padding[0] == 0)


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) with torch semantics (cross-correlation, zero padding, no bias)."""
    Ho, Wo = _check(x.shape, w.shape, stride, padding, dilation, groups)
    if _is_pointwise(w.shape, stride, padding, groups):
        N, Cin, H, W = x.shape
        x3 = np.ascontiguousarray(x).reshape(N, Cin, H * W)
        return np.matmul(w.reshape(w.shape[0], Cin), x3).reshape(N, w.shape[0], H, W)
    if _is_depthwise(x.shape, w.shape, stride, padding, dilation, groups):
        return depthwise_conv2d_forward(x, w, padding)
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    return conv2d_forward_kernel(x, w, *stride, *padding, *dilation, groups, Ho, Wo, _chunks(x.shape[0]))


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """gx = d<conv2d(x, w), gy>/dx; gy may have fewer rows/columns than the conv's output
    (conv_transpose2d with output_padding relies on that)."""
    x_shape = tuple(x_shape)
    _check(x_shape, w.shape, stride, padding, dilation, groups)
    if _is_pointwise(w.shape, stride, padding, groups):
        N, Cout, H, W = gy.shape
        g3 = np.ascontiguousarray(gy).reshape(N, Cout, H * W)
        return np.matmul(w.reshape(Cout, x_shape[1]).T, g3).reshape(x_shape)
    if _is_depthwise(x_shape, w.shape, stride, padding, dilation, groups):
        return depthwise_conv2d_backward_input(gy, w, x_shape, padding)
    gy = np.ascontiguousarray(gy)
    w = np.ascontiguousarray(w, dtype=gy.dtype)
    H, W = x_shape[2], x_shape[3]
    return conv2d_backward_input_kernel(gy, w, H, W, *stride, *padding, *dilation, groups, _chunks(gy.shape[0]))


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """gw = d<conv2d(x, w), gy>/dw, same dtype as x; float64 accumulation across the batch."""
    w_shape = tuple(w_shape)
    _check(x.shape, w_shape, stride, padding, dilation, groups)
    if _is_pointwise(w_shape, stride, padding, groups):
        N, Cin, H, W = x.shape
        x3 = np.ascontiguousarray(x).reshape(N, Cin, H * W)
        g3 = np.ascontiguousarray(gy).reshape(N, w_shape[0], H * W)
        # one (Cout, Cin) product per sample, summed in float64
        return np.matmul(g3, x3.transpose(0, 2, 1)).sum(axis=0, dtype=np.float64).astype(x.dtype).reshape(w_shape)
    if _is_depthwise(x.shape, w_shape, stride, padding, dilation, groups):
        return depthwise_conv2d_backward_weight(x, gy, w_shape, padding)
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    gw = conv2d_backward_weight_kernel(x, gy, w_shape[2], w_shape[3], *stride, *padding, *dilation, groups,
                                       _chunks(x.shape[0]))
    return gw.astype(x.dtype)


# ----------------------------------------------------------------------------- references


def _im2col_ref(x, KH, KW, stride, padding, dilation):
    """cols (N, Cin, KH, KW, Ho, Wo): the input patch under every output position."""
    N, Cin, H, W = x.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Ho = conv2d_output_size(H, KH, sh, ph, dh)
    Wo = conv2d_output_size(W, KW, sw, pw, dw)
    xp = np.zeros((N, Cin, H + 2 * ph, W + 2 * pw), x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    cols = np.empty((N, Cin, KH, KW, Ho, Wo), x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, kh, kw] = xp[:, :, kh * dh:kh * dh + sh * (Ho - 1) + 1:sh, kw * dw:kw * dw + sw * (Wo - 1) + 1:sw]
    return cols


def conv2d_forward_ref(x, w, stride, padding, dilation, groups):
    """Plain NumPy: im2col, then one einsum per group."""
    Cout, cin_g, KH, KW = w.shape
    cols = _im2col_ref(x, KH, KW, stride, padding, dilation)
    cout_g = Cout // groups
    ys = [np.einsum("nckluv,ockl->nouv", cols[:, g * cin_g:(g + 1) * cin_g], w[g * cout_g:(g + 1) * cout_g])
          for g in range(groups)]
    return np.concatenate(ys, axis=1)


def conv2d_backward_input_ref(gy, w, x_shape, stride, padding, dilation, groups):
    """Plain NumPy: col2im, i.e. scatter-add each tap's patch gradient into the padded input."""
    N, Cin, H, W = x_shape
    Cout, cin_g, KH, KW = w.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Ho, Wo = gy.shape[2], gy.shape[3]
    cout_g = Cout // groups
    dcols = np.concatenate([np.einsum("nouv,ockl->nckluv", gy[:, g * cout_g:(g + 1) * cout_g],
                                      w[g * cout_g:(g + 1) * cout_g]) for g in range(groups)], axis=1)
    gxp = np.zeros((N, Cin, H + 2 * ph, W + 2 * pw), gy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            gxp[:, :, kh * dh:kh * dh + sh * (Ho - 1) + 1:sh, kw * dw:kw * dw + sw * (Wo - 1) + 1:sw] += dcols[:, :, kh, kw]
    return gxp[:, :, ph:ph + H, pw:pw + W]


def conv2d_backward_weight_ref(x, gy, w_shape, stride, padding, dilation, groups):
    """Plain NumPy: im2col, then gw = sum over n, oh, ow of gy * patch, per group."""
    Cout, cin_g, KH, KW = w_shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    cols = _im2col_ref(x, KH, KW, stride, padding, dilation)[..., :Ho, :Wo]
    cout_g = Cout // groups
    gws = [np.einsum("nckluv,nouv->ockl", cols[:, g * cin_g:(g + 1) * cin_g], gy[:, g * cout_g:(g + 1) * cout_g])
           for g in range(groups)]
    return np.concatenate(gws, axis=0)
