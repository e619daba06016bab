"""2-D convolution (cross-correlation, torch semantics, no bias): forward and both gradients.

The general path of BC-ResNet-Mod's convs (paper Table 1): the 5x5 stride-2 head, and any conv
that is neither 1x1 (pointwise.py) nor a depthwise 3x1 / 1x3 (depthwise.py); dispatch.py decides,
api.py calls. im2col + BLAS, all inside Numba kernels that run the batch in parallel chunks. Per
sample (or row block of a large one), im2col gathers the input patches into cols (K = Cin*KH*KW
rows, one column per output pixel), and np.dot calls BLAS on the chunk's own thread (the command
line keeps BLAS single-threaded: runtime.py): forward y = w @ cols written straight into y, input
gradient dcols = w^T @ gy then col2im (the adjoint of im2col), weight gradient gw += gy @ cols^T in
float64 partials per chunk. Weight gradients with few taps per group (the head: K = 25) use long
dot products instead: gy rows against the rows of an L2-sized im2col tile, four output channels by
two taps per pass, since BLAS is slow on a (Cout x 25) result with a 21,376-long reduction.
Below the kernels, the plain NumPy references (`conv2d_forward_ref`, ...) are the definition.

Shapes: x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW), y (N, Cout, Ho, Wo) with
Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1, likewise Wo. stride, padding, dilation are (h, w).
"""
import numpy as np
from numba import njit, prange

from tinyasc.kernels.dots import accumulate_dots
from tinyasc.kernels.geometry import conv2d_output_size

_FASTMATH = {"contract", "reassoc", "nsz"}


@njit(cache=True)
def _valid_columns(c0, sw, W, Wo):
    """Output columns [ow0, ow1) whose input column c0 + ow*sw lies inside 0..W-1."""
    ow0 = min(Wo, max(0, -(c0 // sw)))  # ceil(-c0 / sw)
    ow1 = max(ow0, min(Wo, -((c0 - W) // sw)))  # ceil((W - c0) / sw)
    return ow0, ow1


@njit(cache=True)
def im2col(xn, oh0, oh1, KH, KW, sh, sw, ph, pw, dh, dw, Wo, cols):
    """Gather one sample's input patches for output rows oh0..oh1-1 into cols (K, T).

    K = Cin*KH*KW (row k = (ci*KH + kh)*KW + kw), T = (oh1 - oh0)*Wo::

        for ci, kh, oh in oh0..oh1-1:
            ih = oh*sh - ph + kh*dh
            rowq[r, j] = zero-padded xn[ci, ih, j*sw + r - pw]     # the row split by column phase
            for kw, ow:
                cols[k, (oh - oh0)*Wo + ow] = rowq[(kw*dw) % sw, (kw*dw) // sw + ow]

    Splitting the row by phase once makes every tap a contiguous copy, even for stride 2.
    """
    Cin, H, W = xn.shape
    Wq = (W + 2 * pw + sw - 1) // sw
    rowq = np.zeros((sw, Wq), xn.dtype)  # its padding columns stay 0
    for ci in range(Cin):
        for kh in range(KH):
            for oh in range(oh0, oh1):
                t0 = (oh - oh0) * Wo
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:  # a padding row
                    for kw in range(KW):
                        dst = cols[(ci * KH + kh) * KW + kw, t0:t0 + Wo]
                        for ow in range(Wo):
                            dst[ow] = 0
                    continue
                src = xn[ci, ih]
                for r in range(sw):
                    j0, j1 = _valid_columns(r - pw, sw, W, Wq)
                    if j1 > j0:
                        q = rowq[r, j0:j1]
                        s = src[j0 * sw + r - pw::sw]  # a view: indices below are provably >= 0
                        for j in range(j1 - j0):
                            q[j] = s[j]
                for kw in range(KW):
                    off = (kw * dw) // sw
                    q = rowq[(kw * dw) % sw, off:off + Wo]
                    dst = cols[(ci * KH + kh) * KW + kw, t0:t0 + Wo]
                    for ow in range(Wo):
                        dst[ow] = q[ow]


@njit(cache=True)
def col2im(cols, oh0, oh1, KH, KW, sh, sw, ph, pw, dh, dw, Wo, gxn):
    """The adjoint of im2col: add cols (K, T) back onto one sample's gxn (Cin, H, W)::

        for ci, kh, kw, oh in oh0..oh1-1, ow inside the input:
            gxn[ci, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] += cols[k, (oh - oh0)*Wo + ow]
    """
    Cin, H, W = gxn.shape
    for ci in range(Cin):
        for kh in range(KH):
            for kw in range(KW):
                k = (ci * KH + kh) * KW + kw
                c0 = kw * dw - pw
                ow0, ow1 = _valid_columns(c0, sw, W, Wo)
                if ow1 == ow0:
                    continue
                for oh in range(oh0, oh1):
                    ih = oh * sh - ph + kh * dh
                    if ih < 0 or ih >= H:
                        continue
                    dst = gxn[ci, ih, c0 + ow0 * sw:c0 + (ow1 - 1) * sw + 1:sw]
                    src = cols[k, (oh - oh0) * Wo + ow0:(oh - oh0) * Wo + ow1]
                    for j in range(ow1 - ow0):
                        dst[j] += src[j]


@njit(parallel=True, cache=True)
def conv2d_forward_kernel(x, w3, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo, rows, nchunks):
    """im2col + BLAS. x (N, Cin, H, W), w3 (G, Cout/G, K/G), both contiguous::

        for chunk of samples in parallel:            # each chunk owns its cols buffer
            for n in chunk, block of `rows` output rows:
                cols = im2col(x[n], block)           # (K, rows*Wo)
                for group g:
                    y[n, g, :, block] = w3[g] @ cols[rows of g]     # np.dot: single-threaded BLAS
    """
    N, Cin = x.shape[0], x.shape[1]
    G, cout_g, Kg = w3.shape
    y = np.empty((N, G * cout_g, Ho * Wo), x.dtype)
    for chunk in prange(nchunks):
        buf = np.empty(Kg * G * rows * Wo, x.dtype)
        out = np.empty(cout_g * rows * Wo, x.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            for oh0 in range(0, Ho, rows):
                oh1 = min(Ho, oh0 + rows)
                T = (oh1 - oh0) * Wo
                cols = buf[:Kg * G * T].reshape(Kg * G, T)
                im2col(x[n], oh0, oh1, KH, KW, sh, sw, ph, pw, dh, dw, Wo, cols)
                for g in range(G):
                    if T == Ho * Wo:  # the whole sample: straight into y
                        np.dot(w3[g], cols[g * Kg:(g + 1) * Kg], y[n, g * cout_g:(g + 1) * cout_g])
                    else:
                        o = out[:cout_g * T].reshape(cout_g, T)
                        np.dot(w3[g], cols[g * Kg:(g + 1) * Kg], o)
                        y[n, g * cout_g:(g + 1) * cout_g, oh0 * Wo:oh1 * Wo] = o
    return y


@njit(parallel=True, cache=True)
def conv2d_backward_input_kernel(gy, w3t, H, W, KH, KW, sh, sw, ph, pw, dh, dw, rows, nchunks):
    """dcols = w^T @ gy, then col2im. gy (N, Cout, Ho, Wo), w3t (G, K/G, Cout/G), contiguous::

        for chunk of samples in parallel:
            for n in chunk, block of `rows` output rows:
                for group g:
                    cols[rows of g] = w3t[g] @ gy[n, g, :, block]      # np.dot
                gx[n] += col2im(cols, block)       # gx[n] belongs to this chunk only
    """
    N, Cout, Ho, Wo = gy.shape
    G, Kg, cout_g = w3t.shape
    Cin = G * Kg // (KH * KW)
    gx = np.zeros((N, Cin, H, W), gy.dtype)
    for chunk in prange(nchunks):
        buf = np.empty(Kg * G * rows * Wo, gy.dtype)
        gbuf = np.empty(cout_g * rows * Wo, gy.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            g2 = gy[n].reshape(Cout, Ho * Wo)
            for oh0 in range(0, Ho, rows):
                oh1 = min(Ho, oh0 + rows)
                T = (oh1 - oh0) * Wo
                cols = buf[:Kg * G * T].reshape(Kg * G, T)
                for g in range(G):
                    if T == Ho * Wo:
                        np.dot(w3t[g], g2[g * cout_g:(g + 1) * cout_g], cols[g * Kg:(g + 1) * Kg])
                    else:  # BLAS wants a contiguous block of gy
                        gt = gbuf[:cout_g * T].reshape(cout_g, T)
                        gt[:] = g2[g * cout_g:(g + 1) * cout_g, oh0 * Wo:oh1 * Wo]
                        np.dot(w3t[g], gt, cols[g * Kg:(g + 1) * Kg])
                col2im(cols, oh0, oh1, KH, KW, sh, sw, ph, pw, dh, dw, Wo, gx[n])
    return gx


@njit(parallel=True, cache=True)
def conv2d_backward_weight_kernel(x, gy, G, KH, KW, sh, sw, ph, pw, dh, dw, rows, nchunks):
    """gw += gy @ cols^T, with float64 partials per chunk. x (N, Cin, H, W), gy (N, Cout, Ho, Wo)::

        for chunk of samples in parallel:          # part[chunk]: this chunk's own sum
            for n in chunk, block of `rows` output rows:
                cols = im2col(x[n], block)
                for group g:
                    part[chunk, g] += gy[n, g, :, block] @ cols[rows of g]^T     # np.dot
        gw = part summed over chunks
    """
    N, Cin = x.shape[0], x.shape[1]
    _, Cout, Ho, Wo = gy.shape
    cout_g, Kg = Cout // G, Cin * KH * KW // G
    part = np.zeros((nchunks, G, cout_g, Kg), np.float64)
    for chunk in prange(nchunks):
        buf = np.empty(Kg * G * rows * Wo, x.dtype)
        gbuf = np.empty(cout_g * rows * Wo, x.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            g2 = gy[n].reshape(Cout, Ho * Wo)
            for oh0 in range(0, Ho, rows):
                oh1 = min(Ho, oh0 + rows)
                T = (oh1 - oh0) * Wo
                cols = buf[:Kg * G * T].reshape(Kg * G, T)
                im2col(x[n], oh0, oh1, KH, KW, sh, sw, ph, pw, dh, dw, Wo, cols)
                for g in range(G):
                    if T == Ho * Wo:
                        gt = g2[g * cout_g:(g + 1) * cout_g]
                    else:
                        gt = gbuf[:cout_g * T].reshape(cout_g, T)
                        gt[:] = g2[g * cout_g:(g + 1) * cout_g, oh0 * Wo:oh1 * Wo]
                    part[chunk, g] += np.dot(gt, cols[g * Kg:(g + 1) * Kg].T)
    return part.sum(axis=0)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def conv2d_backward_weight_dots_kernel(x, gy, G, KH, KW, sh, sw, ph, pw, dh, dw, rows, nchunks):
    """gw = sum over samples of gy @ cols^T, as long dot products over each im2col tile::

        for chunk of samples in parallel:           # part[chunk]: this chunk's own sum
            for n in chunk:
                acc = 0
                for block of `rows` output rows:
                    cols = im2col(x[n], block)      # (K, T), small enough to stay in L2
                    for group g, co of g four at a time, k of g two at a time:
                        acc[co, k] += dot(gy[n, co, block], cols[k])    # 8 sums share 6 rows
                part[chunk] += acc                  # each sample in x's dtype, then float64

    For layers with few filter taps and output channels (the 5x5 head: K = 25): a (Cout x 25)
    result is too small for BLAS to pay off, and whole-tile rows make every dot product long.
    """
    N, Cin = x.shape[0], x.shape[1]
    _, Cout, Ho, Wo = gy.shape
    cout_g, Kg = Cout // G, Cin * KH * KW // G
    part = np.zeros((nchunks, G, cout_g, Kg), np.float64)
    for chunk in prange(nchunks):
        buf = np.empty(Kg * G * rows * Wo, x.dtype)
        acc = np.empty((G, cout_g, Kg), x.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            g2 = gy[n].reshape(Cout, Ho * Wo)
            acc[:] = 0
            for oh0 in range(0, Ho, rows):
                oh1 = min(Ho, oh0 + rows)
                t0, t1 = oh0 * Wo, oh1 * Wo
                cols = buf[:Kg * G * (t1 - t0)].reshape(Kg * G, t1 - t0)
                im2col(x[n], oh0, oh1, KH, KW, sh, sw, ph, pw, dh, dw, Wo, cols)
                for g in range(G):  # acc[g, co, k] += dot(gy[n, g*cout_g + co, block], cols[g*Kg + k])
                    accumulate_dots(acc[g], g2, g * cout_g, t0, cols, g * Kg, 0, t1 - t0)
            for g in range(G):
                for co in range(cout_g):
                    for k in range(Kg):
                        part[chunk, g, co, k] += acc[g, co, k]
    return part.sum(axis=0)


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
            rows = slice(kh * dh, kh * dh + sh * (Ho - 1) + 1, sh)
            cols[:, :, kh, kw] = xp[:, :, rows, kw * dw:kw * dw + sw * (Wo - 1) + 1:sw]
    return cols


def conv2d_forward_ref(x, w, stride, padding, dilation, groups):
    """Plain NumPy: im2col, then one einsum per group."""
    Cout, cin_g, KH, KW = w.shape
    cols = _im2col_ref(x, KH, KW, stride, padding, dilation)
    cout_g = Cout // groups
    ys = [np.einsum("nckluv,ockl->nouv", cols[:, g * cin_g:(g + 1) * cin_g], w[g * cout_g:(g + 1) * cout_g],
                    optimize=True)
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
                                      w[g * cout_g:(g + 1) * cout_g], optimize=True) for g in range(groups)], axis=1)
    gxp = np.zeros((N, Cin, H + 2 * ph, W + 2 * pw), gy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows = slice(kh * dh, kh * dh + sh * (Ho - 1) + 1, sh)
            gxp[:, :, rows, kw * dw:kw * dw + sw * (Wo - 1) + 1:sw] += dcols[:, :, kh, kw]
    return gxp[:, :, ph:ph + H, pw:pw + W]


def conv2d_backward_weight_ref(x, gy, w_shape, stride, padding, dilation, groups):
    """Plain NumPy: im2col, then gw = sum over n, oh, ow of gy * patch, per group."""
    Cout, cin_g, KH, KW = w_shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    cols = _im2col_ref(x, KH, KW, stride, padding, dilation)[..., :Ho, :Wo]
    cout_g = Cout // groups
    gws = [np.einsum("nckluv,nouv->ockl", cols[:, g * cin_g:(g + 1) * cin_g], gy[:, g * cout_g:(g + 1) * cout_g],
                     optimize=True) for g in range(groups)]
    return np.concatenate(gws, axis=0)
