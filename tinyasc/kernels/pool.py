"""2-D max and average pooling (torch semantics), forward and backward.

BC-ResNet-Mod (paper Table 1, rows 3 and 5) halves frequency and time twice with a 2x2 max-pool;
that case has its own kernel (dispatch.py: `max_pool_path`). The general kernels follow torch's
CPU loops: the window of output (oh, ow) starts at input (oh*sh - ph, ow*sw - pw); max-pool pads
with -inf, keeps the first maximum in scan order (a NaN wins) and returns its flat index
ih*W + iw inside the (n, c) plane; avg-pool divides by divisor_override, or by the window size
clipped to the padded input (count_include_pad) or to the input itself.

Every kernel runs in parallel over the N*C planes; each plane's outputs are written by one
thread only.
"""
import numpy as np
from numba import njit, prange

from tinyasc.kernels.geometry import pool_output_size


@njit(parallel=True, cache=True)
def max_pool2d_forward_kernel(x, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo):
    """x (N, C, H, W) contiguous -> y (N, C, Ho, Wo) and idx (int64, flat index in the plane)::

        for plane (n, c) in parallel, oh, ow:
            best = -inf; at = first in-bounds position of the window
            for ih, iw in the window, inside the input, in scan order:
                if x[n, c, ih, iw] > best or x[n, c, ih, iw] is NaN:
                    best, at = x[n, c, ih, iw], ih*W + iw
            y[n, c, oh, ow], idx[n, c, oh, ow] = best, at
    """
    N, C, H, W = x.shape
    y = np.empty((N, C, Ho, Wo), x.dtype)
    idx = np.empty((N, C, Ho, Wo), np.int64)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        src = x[n, c]
        for oh in range(Ho):
            ih0 = oh * sh - ph
            ih1 = min(ih0 + (KH - 1) * dh + 1, H)
            while ih0 < 0:
                ih0 += dh
            for ow in range(Wo):
                iw0 = ow * sw - pw
                iw1 = min(iw0 + (KW - 1) * dw + 1, W)
                while iw0 < 0:
                    iw0 += dw
                at = ih0 * W + iw0
                best = -np.inf
                for ih in range(ih0, ih1, dh):
                    for iw in range(iw0, iw1, dw):
                        v = src[ih, iw]
                        if v > best or np.isnan(v):
                            best = v
                            at = ih * W + iw
                y[n, c, oh, ow] = best
                idx[n, c, oh, ow] = at
    return y, idx


@njit(parallel=True, cache=True)
def max_pool2x2_forward_kernel(x):
    """The model's 2x2 stride-2 max-pool (no padding, floor): a streaming version of the above::

        for plane (n, c) in parallel, oh, ow:
            y[n, c, oh, ow] = first max of x[n, c, 2oh:2oh+2, 2ow:2ow+2] in scan order, idx its position
    """
    N, C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    y = np.empty((N, C, Ho, Wo), x.dtype)
    idx = np.empty((N, C, Ho, Wo), np.int64)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for oh in range(Ho):
            top = x[n, c, 2 * oh]
            bottom = x[n, c, 2 * oh + 1]
            yrow = y[n, c, oh]
            irow = idx[n, c, oh]
            base = 2 * oh * W
            for ow in range(Wo):
                best = top[2 * ow]
                at = base + 2 * ow
                v = top[2 * ow + 1]
                if v > best or v != v:
                    best = v
                    at = base + 2 * ow + 1
                v = bottom[2 * ow]
                if v > best or v != v:
                    best = v
                    at = base + W + 2 * ow
                v = bottom[2 * ow + 1]
                if v > best or v != v:
                    best = v
                    at = base + W + 2 * ow + 1
                yrow[ow] = best
                irow[ow] = at
    return y, idx


@njit(parallel=True, cache=True)
def max_pool2d_backward_kernel(gy, idx, H, W):
    """Scatter-add gy to the argmax positions (windows may overlap, so add). A plane is small
    enough to stay in cache while it is zeroed and scattered into, so this single kernel is as
    fast as a special 2x2 version would be::

        for plane (n, c) in parallel:
            gx[n, c] = 0
            for oh, ow: gx[n, c].flat[idx[n, c, oh, ow]] += gy[n, c, oh, ow]
    """
    N, C, Ho, Wo = gy.shape
    gx = np.empty((N, C, H, W), gy.dtype)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        dst = gx[n, c].reshape(H * W)
        for i in range(H * W):
            dst[i] = 0
        g = gy[n, c].reshape(Ho * Wo)
        at = idx[n, c].reshape(Ho * Wo)
        for o in range(Ho * Wo):
            if 0 <= at[o] < H * W:  # a window wholly in the padding points past the plane
                dst[at[o]] += g[o]
    return gx


@njit(cache=True)
def _avg_window(oh, ow, KH, KW, sh, sw, ph, pw, H, W, count_include_pad, divisor):
    """torch's window bounds (clipped to the input) and divisor for output (oh, ow)."""
    ih0 = oh * sh - ph
    iw0 = ow * sw - pw
    ih1 = min(ih0 + KH, H + ph)
    iw1 = min(iw0 + KW, W + pw)
    pool_size = (ih1 - ih0) * (iw1 - iw0)
    ih0 = max(ih0, 0)
    iw0 = max(iw0, 0)
    ih1 = min(ih1, H)
    iw1 = min(iw1, W)
    if divisor > 0:
        d = divisor
    elif count_include_pad:
        d = pool_size
    else:
        d = (ih1 - ih0) * (iw1 - iw0)
    return ih0, ih1, iw0, iw1, d


@njit(parallel=True, cache=True)
def avg_pool2d_forward_kernel(x, KH, KW, sh, sw, ph, pw, Ho, Wo, count_include_pad, divisor):
    """divisor > 0 is divisor_override, 0 means none::

        for plane (n, c) in parallel, oh, ow:
            y[n, c, oh, ow] = sum of x[n, c] over the clipped window / divisor (0 for an empty window)
    """
    N, C, H, W = x.shape
    y = np.empty((N, C, Ho, Wo), x.dtype)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        src = x[n, c]
        for oh in range(Ho):
            for ow in range(Wo):
                ih0, ih1, iw0, iw1, d = _avg_window(oh, ow, KH, KW, sh, sw, ph, pw, H, W, count_include_pad, divisor)
                s = 0.0
                for ih in range(ih0, ih1):
                    for iw in range(iw0, iw1):
                        s += src[ih, iw]
                y[n, c, oh, ow] = s / d if ih1 > ih0 and iw1 > iw0 else 0.0
    return y


@njit(parallel=True, cache=True)
def avg_pool2d_backward_kernel(gy, H, W, KH, KW, sh, sw, ph, pw, count_include_pad, divisor):
    """The adjoint of the forward::

        for plane (n, c) in parallel, oh, ow:
            gx[n, c, window(oh, ow)] += gy[n, c, oh, ow] / divisor(oh, ow)
    """
    N, C, Ho, Wo = gy.shape
    gx = np.empty((N, C, H, W), gy.dtype)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        dst = gx[n, c]
        for ih in range(H):
            for iw in range(W):
                dst[ih, iw] = 0
        for oh in range(Ho):
            for ow in range(Wo):
                ih0, ih1, iw0, iw1, d = _avg_window(oh, ow, KH, KW, sh, sw, ph, pw, H, W, count_include_pad, divisor)
                if ih1 <= ih0 or iw1 <= iw0:
                    continue
                share = gy[n, c, oh, ow] / d
                for ih in range(ih0, ih1):
                    for iw in range(iw0, iw1):
                        dst[ih, iw] += share
    return gx


# ----------------------------------------------------------------------------- references


def max_pool2d_forward_ref(x, kernel, stride, padding, dilation, ceil_mode):
    """Plain NumPy: stack the (-inf padded) window taps, argmax over them (first max wins)."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    Ho = pool_output_size(H, KH, sh, ph, dh, ceil_mode)
    Wo = pool_output_size(W, KW, sw, pw, dw, ceil_mode)
    # pad generously on the far side: with ceil_mode the last window may overhang
    Hp = max(H + 2 * ph, (Ho - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(W + 2 * pw, (Wo - 1) * sw + (KW - 1) * dw + 1)
    xp = np.full((N, C, Hp, Wp), -np.inf, x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    flat = np.full((Hp, Wp), -1, np.int64)
    flat[ph:ph + H, pw:pw + W] = np.arange(H * W).reshape(H, W)
    taps, where = [], []
    for kh in range(KH):
        for kw in range(KW):
            rows = slice(kh * dh, kh * dh + (Ho - 1) * sh + 1, sh)
            cols = slice(kw * dw, kw * dw + (Wo - 1) * sw + 1, sw)
            taps.append(xp[:, :, rows, cols])
            where.append(np.broadcast_to(flat[rows, cols], (N, C, Ho, Wo)))
    taps, where = np.stack(taps), np.stack(where)
    # a tap in the padding never wins; among the rest the first maximum does
    masked = np.where(where >= 0, taps, -np.inf)
    k = np.argmax(masked, axis=0)
    y = np.take_along_axis(masked, k[None], 0)[0]
    idx = np.take_along_axis(where, k[None], 0)[0]
    # a dilated window can lie wholly in the padding: y = -inf and, like torch, idx = the first
    # position on the dilation grid at or after the window's start (it may point past the plane)
    ih0 = np.arange(Ho) * sh - ph
    iw0 = np.arange(Wo) * sw - pw
    ih0 = np.where(ih0 < 0, ih0 + dh * (-(ih0 // dh)), ih0)
    iw0 = np.where(iw0 < 0, iw0 + dw * (-(iw0 // dw)), iw0)
    empty = np.all(where < 0, axis=0)
    idx = np.where(empty, (ih0[:, None] * W + iw0[None, :])[None, None], idx)
    return y.astype(x.dtype), idx


def max_pool2d_backward_ref(gy, idx, x_shape):
    """Plain NumPy: np.add.at on the flattened planes."""
    N, C, H, W = x_shape
    gx = np.zeros((N * C, H * W), gy.dtype)
    rows = np.repeat(np.arange(N * C), gy.shape[2] * gy.shape[3])
    at, g = idx.reshape(-1), gy.reshape(-1)
    inside = (at >= 0) & (at < H * W)  # not a window wholly in the padding
    np.add.at(gx, (rows[inside], at[inside]), g[inside])
    return gx.reshape(x_shape)


def _avg_divisors_ref(H, W, kernel, stride, padding, Ho, Wo, count_include_pad, divisor_override):
    """(Ho, Wo) divisors and the (Ho, Wo, H, W) 0/1 window membership, by direct enumeration."""
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
    member = np.zeros((Ho, Wo, H, W))
    div = np.ones((Ho, Wo))
    for oh in range(Ho):
        for ow in range(Wo):
            h0, w0 = oh * sh - ph, ow * sw - pw
            h1, w1 = min(h0 + KH, H + ph), min(w0 + KW, W + pw)
            size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            member[oh, ow, h0:h1, w0:w1] = 1
            div[oh, ow] = divisor_override or (size if count_include_pad else max((h1 - h0) * (w1 - w0), 1))
    return div, member


def avg_pool2d_forward_ref(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Plain NumPy: y = einsum over an explicit window-membership matrix, / divisor."""
    N, C, H, W = x.shape
    Ho = pool_output_size(H, kernel[0], stride[0], padding[0], 1, ceil_mode)
    Wo = pool_output_size(W, kernel[1], stride[1], padding[1], 1, ceil_mode)
    div, member = _avg_divisors_ref(H, W, kernel, stride, padding, Ho, Wo, count_include_pad, divisor_override)
    return (np.einsum("uvhw,nchw->ncuv", member, x) / div).astype(x.dtype)


def avg_pool2d_backward_ref(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Plain NumPy: the transpose of the membership matrix applied to gy / divisor."""
    N, C, H, W = x_shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    div, member = _avg_divisors_ref(H, W, kernel, stride, padding, Ho, Wo, count_include_pad, divisor_override)
    return np.einsum("uvhw,ncuv->nchw", member, gy / div).astype(gy.dtype)
