"""Depthwise 3x1 and 1x3 convolutions: the thin layers of every BC-ResBlock.

Paper section 2.1 / Table 1: f2 of a BC-ResBlock filters each channel along frequency with a
3x1 kernel, f1 filters the frequency-averaged map along time with a 1x3 kernel (Kim et al.,
Broadcasted Residual Learning). groups == channels, stride 1, dilation 1, no bias.

These layers do 3 multiply-adds per element, so they are bound by memory traffic: each kernel
streams every (n, c) plane once, row by row, and runs in parallel over the N*C planes.

Layouts: x (N, C, H, W), w (C, 1, 3, 1) or (C, 1, 1, 3). The padding along the 3-tap axis is any
integer (the model uses 1, i.e. "same"); a negative padding crops, which is how the backward
pass reuses the forward kernel with a flipped filter (api.py: `depthwise_conv2d_backward_input`);
dispatch.py sends these layers here.
"""
import numpy as np
from numba import njit, prange

_FASTMATH = {"contract", "reassoc", "nsz"}


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise3x1_forward_kernel(x, w3, pad):
    """Filter each plane along axis 2 (frequency) with its own 3-tap filter.

    x (N, C, H, W) contiguous, w3 (C, 3), pad: rows of zeros added above and below (may be < 0).
    Returns y (N, C, H + 2*pad - 2, W)::

        for plane (n, c) in parallel:
            for oh:                                  # output row
                y[n, c, oh, :] = sum over kh in 0..2 with 0 <= oh - pad + kh < H of
                                 w3[c, kh] * x[n, c, oh - pad + kh, :]
    """
    N, C, H, W = x.shape
    Ho = H + 2 * pad - 2
    y = np.empty((N, C, Ho, W), x.dtype)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        w0 = w3[c, 0]
        w1 = w3[c, 1]
        w2 = w3[c, 2]
        for oh in range(Ho):
            ih = oh - pad  # input row under tap 0
            yrow = y[n, c, oh]
            if ih >= 0 and ih + 2 < H:
                a = x[n, c, ih]
                b = x[n, c, ih + 1]
                d = x[n, c, ih + 2]
                for t in range(W):
                    yrow[t] = w0 * a[t] + w1 * b[t] + w2 * d[t]
            else:  # a border row: some taps fall in the zero padding
                for t in range(W):
                    yrow[t] = 0
                for kh in range(3):
                    if 0 <= ih + kh < H:
                        wk = w3[c, kh]
                        src = x[n, c, ih + kh]
                        for t in range(W):
                            yrow[t] += wk * src[t]
    return y


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise3x1_backward_weight_kernel(x, gy, pad):
    """Weight gradient of the 3x1 depthwise conv, one partial sum per plane (float64).

    Returns part (N, C, 3); the caller sums over N (disjoint writes, no race)::

        for plane (n, c) in parallel:
            for kh in 0..2:
                part[n, c, kh] = sum over oh, t of gy[n, c, oh, t] * x[n, c, oh - pad + kh, t]
    """
    N, C, H, W = x.shape
    Ho = gy.shape[2]
    part = np.zeros((N, C, 3), np.float64)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for oh in range(Ho):
            g = gy[n, c, oh]
            for kh in range(3):
                ih = oh - pad + kh
                if 0 <= ih < H:
                    src = x[n, c, ih]
                    s = g[0] * src[0]
                    for t in range(1, W):
                        s += g[t] * src[t]
                    part[n, c, kh] += s
    return part


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise3x1_backward_kernel(x, gy, w3, pad):
    """Both gradients of the 3x1 depthwise conv in one pass over x and gy.

    x (N, C, H, W), gy (N, C, Ho, W) with Ho = H + 2*pad - 2, w3 (C, 3). Returns gx (N, C, H, W)
    and part (N, C, 3), float64 weight-gradient partials the caller sums over N::

        for plane (n, c) in parallel:
            for ih:                                   # input row: gy rows oh = ih + pad - kh
                gx[n, c, ih, :] = sum over kh with 0 <= oh < Ho of w3[c, kh] * gy[n, c, oh, :]
                part[n, c, kh] += sum over t of gy[n, c, oh, t] * x[n, c, ih, t]   (same kh, oh)

    Each x row is read once and each gy row three times from L1, where the two separate
    kernels read x once and gy twice from memory.
    """
    N, C, H, W = x.shape
    Ho = gy.shape[2]
    gx = np.empty((N, C, H, W), x.dtype)
    part = np.zeros((N, C, 3), np.float64)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        w0 = w3[c, 0]
        w1 = w3[c, 1]
        w2 = w3[c, 2]
        for ih in range(H):
            oh = ih + pad  # the gy row under tap 0
            xrow = x[n, c, ih]
            grow = gx[n, c, ih]
            if oh - 2 >= 0 and oh < Ho:
                a = gy[n, c, oh]
                b = gy[n, c, oh - 1]
                d = gy[n, c, oh - 2]
                s0 = a[0] * xrow[0]
                s1 = b[0] * xrow[0]
                s2 = d[0] * xrow[0]
                grow[0] = w2 * d[0] + w1 * b[0] + w0 * a[0]
                for t in range(1, W):
                    v = xrow[t]
                    s0 += a[t] * v
                    s1 += b[t] * v
                    s2 += d[t] * v
                    grow[t] = w2 * d[t] + w1 * b[t] + w0 * a[t]
                part[n, c, 0] += s0
                part[n, c, 1] += s1
                part[n, c, 2] += s2
            else:  # a border row: some taps fall outside gy
                for t in range(W):
                    grow[t] = 0
                for kh in range(2, -1, -1):
                    if 0 <= oh - kh < Ho:
                        wk = w3[c, kh]
                        src = gy[n, c, oh - kh]
                        s = src[0] * xrow[0]
                        for t in range(1, W):
                            s += src[t] * xrow[t]
                        part[n, c, kh] += s
                        for t in range(W):
                            grow[t] += wk * src[t]
    return gx, part


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise1x3_forward_kernel(x, w3, pad):
    """Filter each row along axis 3 (time) with the plane's own 3-tap filter.

    x (N, C, H, W) contiguous, w3 (C, 3), pad: zeros added left and right (may be < 0).
    Returns y (N, C, H, W + 2*pad - 2)::

        for plane (n, c) in parallel:
            for f, ot:
                y[n, c, f, ot] = sum over kw in 0..2 with 0 <= ot - pad + kw < W of
                                 w3[c, kw] * x[n, c, f, ot - pad + kw]
    """
    N, C, H, W = x.shape
    Wo = W + 2 * pad - 2
    y = np.empty((N, C, H, Wo), x.dtype)
    # output columns whose three taps are all inside the row
    lo = min(max(pad, 0), Wo)
    hi = max(min(W - 2 + pad, Wo), lo)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        w0 = w3[c, 0]
        w1 = w3[c, 1]
        w2 = w3[c, 2]
        for f in range(H):
            src = x[n, c, f]
            yrow = y[n, c, f]
            # shifted views, so that the loop index is provably >= 0 and the loop vectorises
            a = src[lo - pad:hi - pad]
            b = src[lo - pad + 1:hi - pad + 1]
            d = src[lo - pad + 2:hi - pad + 2]
            inner = yrow[lo:hi]
            for j in range(hi - lo):
                inner[j] = w0 * a[j] + w1 * b[j] + w2 * d[j]
            for border in range(lo + Wo - hi):  # the columns [0, lo) and [hi, Wo)
                ot = border if border < lo else hi + border - lo
                yrow[ot] = 0
                for kw in range(3):
                    it = ot - pad + kw
                    if 0 <= it < W:
                        yrow[ot] += w3[c, kw] * src[it]
    return y


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise1x3_backward_weight_kernel(x, gy, pad):
    """Weight gradient of the 1x3 depthwise conv, one float64 partial per plane.

    Returns part (N, C, 3); the caller sums over N::

        for plane (n, c) in parallel:
            for kw in 0..2:
                part[n, c, kw] = sum over f, ot of gy[n, c, f, ot] * x[n, c, f, ot - pad + kw]
    """
    N, C, H, W = x.shape
    Wo = gy.shape[3]
    part = np.zeros((N, C, 3), np.float64)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for f in range(H):
            g = gy[n, c, f]
            src = x[n, c, f]
            for kw in range(3):
                # output columns ot with 0 <= ot - pad + kw < W
                lo = max(0, pad - kw)
                hi = min(Wo, W + pad - kw)
                if hi > lo:
                    gs = g[lo:hi]
                    xs = src[lo - pad + kw:hi - pad + kw]
                    s = gs[0] * xs[0]
                    for j in range(1, hi - lo):
                        s += gs[j] * xs[j]
                    part[n, c, kw] += s
    return part


# ----------------------------------------------------------------------------- references


def depthwise_forward_ref(x, w, padding):
    """Plain NumPy: sum over the kernel taps of shifted slices of the zero-padded input."""
    N, C, H, W = x.shape
    KH, KW = w.shape[2], w.shape[3]
    ph, pw = padding
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    Ho, Wo = H + 2 * ph - KH + 1, W + 2 * pw - KW + 1
    y = np.zeros((N, C, Ho, Wo), x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            y += w[None, :, 0, kh, kw, None, None] * xp[:, :, kh:kh + Ho, kw:kw + Wo]
    return y


def depthwise_backward_input_ref(gy, w, x_shape, padding):
    """Plain NumPy: scatter each tap's share of gy back onto the padded input, then crop."""
    N, C, H, W = x_shape
    KH, KW = w.shape[2], w.shape[3]
    ph, pw = padding
    Ho, Wo = gy.shape[2], gy.shape[3]
    gxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), gy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            gxp[:, :, kh:kh + Ho, kw:kw + Wo] += w[None, :, 0, kh, kw, None, None] * gy
    return gxp[:, :, ph:ph + H, pw:pw + W]


def depthwise_backward_weight_ref(x, gy, w_shape, padding):
    """Plain NumPy: gw[c, 0, kh, kw] = sum over n, oh, ow of gy * the shifted padded input."""
    N, C, H, W = x.shape
    KH, KW = w_shape[2], w_shape[3]
    ph, pw = padding
    Ho, Wo = gy.shape[2], gy.shape[3]
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    gw = np.zeros(w_shape, x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            gw[:, 0, kh, kw] = np.einsum("nchw,nchw->c", gy, xp[:, :, kh:kh + Ho, kw:kw + Wo])
    return gw


# ------------------------------------------------ any depthwise filter (direct, no im2col)
# BC-ResNet (the comparison system, docs/baselines.md) also has depthwise convs the 3-tap
# kernels above do not serve: f2's 3x1 with a frequency stride of 2, f1's 1x3 with a temporal
# dilation, and the tail's 5x5. Through im2col + BLAS each channel became a (1 x K) @ (K x T)
# product, which cost about a third of a BC-ResNet step. These kernels filter each (n, c) plane
# directly, for any KH x KW, stride, padding and dilation; window = (KH, KW, sh, sw, ph, pw,
# dh, dw) as the conv kernels take it (ConvGeometry.window).


@njit(cache=True, inline="always")
def _columns(Wo, W, sw, pw, kw_offset):
    """[lo, hi): the output columns ow whose input column ow*sw - pw + kw_offset lies in [0, W)."""
    a = pw - kw_offset                # ow*sw >= a
    lo = 0 if a <= 0 else (a + sw - 1) // sw
    b = W - 1 + pw - kw_offset        # ow*sw <= b
    hi = 0 if b < 0 else min(Wo, b // sw + 1)
    return lo, max(lo, hi)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise_direct_forward_kernel(x, w, Ho, Wo, KH, KW, sh, sw, ph, pw, dh, dw):
    """y[n, c, oh, ow] = sum over kh, kw of w[c, kh, kw] * x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
    (zero outside x); x (N, C, H, W), w (C, KH, KW); in parallel over the N*C planes."""
    N, C, H, W = x.shape
    y = np.zeros((N, C, Ho, Wo), x.dtype)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for oh in range(Ho):
            yrow = y[n, c, oh]
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                xrow = x[n, c, ih]
                for kw in range(KW):
                    wk = w[c, kh, kw]
                    off = kw * dw - pw
                    lo, hi = _columns(Wo, W, sw, pw, kw * dw)
                    if sw == 1:  # unit stride over slices (indices >= 0): a loop LLVM vectorizes
                        ys = yrow[lo:hi]
                        xs = xrow[lo + off:hi + off]
                        for i in range(hi - lo):
                            ys[i] += wk * xs[i]
                    else:
                        for ow in range(lo, hi):
                            yrow[ow] += wk * xrow[ow * sw + off]
    return y


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise_direct_backward_input_kernel(gy, w, H, W, KH, KW, sh, sw, ph, pw, dh, dw):
    """gx: every gy element scattered back through the taps that read it (the forward's
    adjoint); planes are independent, so the scatter runs in parallel over them."""
    N, C, Ho, Wo = gy.shape
    gx = np.zeros((N, C, H, W), gy.dtype)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for oh in range(Ho):
            grow = gy[n, c, oh]
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                xrow = gx[n, c, ih]
                for kw in range(KW):
                    wk = w[c, kh, kw]
                    off = kw * dw - pw
                    lo, hi = _columns(Wo, W, sw, pw, kw * dw)
                    if sw == 1:
                        xs = xrow[lo + off:hi + off]
                        gs = grow[lo:hi]
                        for i in range(hi - lo):
                            xs[i] += wk * gs[i]
                    else:
                        for ow in range(lo, hi):
                            xrow[ow * sw + off] += wk * grow[ow]
    return gx


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def depthwise_direct_backward_weight_kernel(x, gy, KH, KW, sh, sw, ph, pw, dh, dw):
    """gw (C, KH, KW) in float64: one channel per task, its rows summed in a fixed order, so the
    bits do not depend on the thread count. Each gy row is read once, beside the KH x rows its
    taps touch."""
    N, C, H, W = x.shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    gw = np.zeros((C, KH, KW), np.float64)
    for c in prange(C):
        for n in range(N):
            for oh in range(Ho):
                grow = gy[n, c, oh]
                for kh in range(KH):
                    ih = oh * sh - ph + kh * dh
                    if ih < 0 or ih >= H:
                        continue
                    xrow = x[n, c, ih]
                    for kw in range(KW):
                        off = kw * dw - pw
                        lo, hi = _columns(Wo, W, sw, pw, kw * dw)
                        acc = 0.0
                        if sw == 1:
                            gs = grow[lo:hi]
                            xs = xrow[lo + off:hi + off]
                            for i in range(hi - lo):
                                acc += np.float64(gs[i]) * np.float64(xs[i])
                        else:
                            for ow in range(lo, hi):
                                acc += np.float64(grow[ow]) * np.float64(xrow[ow * sw + off])
                        gw[c, kh, kw] += acc
    return gw
