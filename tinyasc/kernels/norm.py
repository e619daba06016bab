"""Normalization kernels: batch norm (optionally fused with ReLU) and FreqIN / ResNorm.

These layers are thin and memory-bound: a NumPy version reads and writes the activation
once per elementary step (subtract, square, mean, divide, multiply, add, max ...).
Each kernel here makes one or two streaming passes instead. The plain NumPy references
below each kernel are the definition; tests check kernel == reference. api.py prepares the
arguments and calls them (batch norm: section 2.1's BC-ResBlocks; FreqIN / ResNorm: section 2.2).

Layout: batch norm sees its input as (N, C, L) with L = H*W; FreqIN as (N, C, F, T).
Statistics are accumulated in float64 whatever the input dtype.
"""
import numpy as np
from numba import njit, prange


# ------------------------------------------------------------------ batch norm

@njit(parallel=True, cache=True, fastmath=True)
def batch_norm_stats_kernel(x):
    """Per-channel mean and biased variance of x (N, C, L).

        for c: shift = x[0, c, 0]; s = sum (x - shift); ss = sum (x - shift)^2 over n, l
               mean = shift + s/M; var = ss/M - (s/M)^2       (M = N*L)
    Shifting by one sample keeps the one-pass variance accurate when |mean| >> std.
    """
    N, C, L = x.shape
    mean = np.empty(C, np.float64)
    var = np.empty(C, np.float64)
    for c in prange(C):
        shift = np.float64(x[0, c, 0])
        s = 0.0
        ss = 0.0
        for n in range(N):
            for l in range(L):
                d = np.float64(x[n, c, l]) - shift
                s += d
                ss += d * d
        m = s / (N * L)
        mean[c] = shift + m
        var[c] = max(ss / (N * L) - m * m, 0.0)
    return mean, var


@njit(cache=True, fastmath=True)
def _affine(v, a, b):
    """v * a + b: one helper for the forward and the backward, so that the backward's ReLU
    mask (v * a + b > 0) is computed exactly as the forward's output was."""
    return v * a + b


@njit(parallel=True, cache=True, fastmath=True)
def batch_norm_apply_kernel(x, scale, shift, relu, out):
    """out[n, c, l] = x[n, c, l] * scale[c] + shift[c], then max(., 0) if relu."""
    N, C, L = x.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        a, b = scale[c], shift[c]
        if relu:
            for l in range(L):
                v = _affine(x[n, c, l], a, b)
                out[n, c, l] = v if v > 0 else 0
        else:
            for l in range(L):
                out[n, c, l] = _affine(x[n, c, l], a, b)


# fastmath without "reassoc" where the second gradient is added: reassociating g + g_freq - mean
# (hoisting g_freq - mean out of the row loop) would change the bits against the materialized sum
_NO_REASSOC = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


@njit(parallel=True, cache=True, fastmath=True)
def batch_norm_grad_sums_kernel(x, g, g_freq, mean, invstd, scale, shift, relu):
    """Per channel: sum of g' and of g' * xhat, where g' = (g + g_freq) masked by the forward's
    ReLU (x * scale + shift > 0, recomputed from x: the output need not be read)::

        for c in parallel:
            for n, r:
                gadd = g_freq[n, c // S]                  # one row of T values
                for t: g' = g[n, c, r, t] + gadd[t] ...   # then masked, and summed in float64

    x and g are (N, C, R, T); g_freq (N, C / S, T) is a second gradient of the output, the same
    for every row r of a channel (SubSpectralNorm: the frequency mean's gradient, S sub-bands
    per channel), or zeros (N, 1, T) with S = C when there is none. The sums are the gradients
    of the bias and weight, and the two reductions the input gradient needs.
    """
    N, C, R, T = x.shape
    S = C // g_freq.shape[1]
    sum_g = np.empty(C, np.float64)
    sum_gx = np.empty(C, np.float64)
    for c in prange(C):
        m, s = mean[c], invstd[c]
        a32, b32 = scale[c], shift[c]
        a = 0.0
        b = 0.0
        for n in range(N):
            gadd = g_freq[n, c // S]
            for r in range(R):
                xrow, grow = x[n, c, r], g[n, c, r]
                for t in range(T):
                    gv = np.float64(_add(grow[t], gadd[t]))
                    if relu and not (_affine(xrow[t], a32, b32) > 0):
                        gv = 0.0
                    a += gv
                    b += gv * (np.float64(xrow[t]) - m) * s
        sum_g[c] = a
        sum_gx[c] = b
    return sum_g, sum_gx


@njit(cache=True, fastmath=_NO_REASSOC)
def _add(g, gadd):
    """g + gadd in g's dtype, rounded as the materialized sum is (no reassociation with what follows)."""
    return g + gadd


@njit(parallel=True, cache=True, fastmath=_NO_REASSOC)
def batch_norm_backward_input_kernel(x, g, g_freq, mean, invstd, weight, scale, shift, sum_g, sum_gx, training, relu,
                                     gx):
    """gx = w * invstd * (g' - [training] (sum_g + xhat * sum_gx) / M), layouts as the sums kernel's."""
    N, C, R, T = x.shape
    S = C // g_freq.shape[1]
    M = N * R * T
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        m, s = mean[c], invstd[c]
        a32, b32 = scale[c], shift[c]
        k = weight[c] * s
        mg = sum_g[c] / M if training else 0.0
        mgx = sum_gx[c] / M if training else 0.0
        gadd = g_freq[n, c // S]
        for r in range(R):
            xrow, grow, out = x[n, c, r], g[n, c, r], gx[n, c, r]
            for t in range(T):
                gv = _add(grow[t], gadd[t])
                if relu and not (_affine(xrow[t], a32, b32) > 0):
                    gv = 0
                xhat = (xrow[t] - m) * s
                out[t] = k * (gv - mg - xhat * mgx)


def batch_norm_stats_ref(x):
    """Plain NumPy: per-channel mean and biased variance of x (N, C, L), in float64."""
    x64 = np.asarray(x, np.float64)
    return x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))


def batch_norm_forward_ref(x, weight, bias, mean, var, eps, relu):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    invstd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    y = (x - np.reshape(mean, shape)) * np.reshape(invstd, shape)
    if weight is not None:
        y = y * np.reshape(weight, shape)
    if bias is not None:
        y = y + np.reshape(bias, shape)
    if relu:
        y = np.maximum(y, 0)
    return y.astype(x.dtype), invstd


def batch_norm_backward_ref(x, out, g, mean, invstd, weight, training, relu):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if relu:
        g = g * (out > 0)
    xhat = (x - np.reshape(mean, shape)) * np.reshape(invstd, shape)
    gb = g.sum(axis=axes)
    gw = (g * xhat).sum(axis=axes)
    w = np.ones(x.shape[1]) if weight is None else weight
    scale = np.reshape(np.asarray(w) * invstd, shape)
    if training:
        count = x.size // x.shape[1]
        gx = scale * (g - np.reshape(gb, shape) / count - xhat * np.reshape(gw, shape) / count)
    else:
        gx = scale * g
    return gx.astype(x.dtype), gw.astype(x.dtype), gb.astype(x.dtype)


def batch_norm_backward_from_input_ref(x, g, mean, invstd, weight, bias, training, relu):
    """batch_norm_backward_ref with the kernels' arguments: the ReLU mask from the forward's
    output, recomputed here from x."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = None
    if relu:  # as batch_norm_forward_ref computes it
        out = (x - np.reshape(mean, shape)) * np.reshape(invstd, shape)
        if weight is not None:
            out = out * np.reshape(weight, shape)
        if bias is not None:
            out = out + np.reshape(bias, shape)
    return batch_norm_backward_ref(x, out, g, mean, invstd, weight, training, relu)


# --------------------------------------------------------------- FreqIN / ResNorm

@njit(parallel=True, cache=True, fastmath=True)
def freq_norm_forward_kernel(x, lam, eps, out, mean, invstd):
    """out = lam * x + (x - mu_nf) * invstd_nf; mu, var over (c, t) for each (n, f).

        for n (parallel): accumulate s[f], ss[f] over c, t (shifted by x[n, 0, f, 0])
                          then write out[n, c, f, t]
    """
    N, C, F, T = x.shape
    M = C * T
    for n in prange(N):
        s = np.zeros(F, np.float64)
        ss = np.zeros(F, np.float64)
        for c in range(C):
            for f in range(F):
                shift = np.float64(x[n, 0, f, 0])
                a = 0.0
                b = 0.0
                for t in range(T):
                    d = np.float64(x[n, c, f, t]) - shift
                    a += d
                    b += d * d
                s[f] += a
                ss[f] += b
        for f in range(F):
            m = s[f] / M
            mean[n, f] = np.float64(x[n, 0, f, 0]) + m
            invstd[n, f] = 1.0 / np.sqrt(max(ss[f] / M - m * m, 0.0) + eps)
        for c in range(C):
            for f in range(F):
                mu = mean[n, f]
                k = invstd[n, f]
                for t in range(T):
                    v = x[n, c, f, t]
                    out[n, c, f, t] = lam * v + (v - mu) * k


@njit(parallel=True, cache=True, fastmath=True)
def freq_norm_backward_kernel(x, g, lam, mean, invstd, gx):
    """gx = lam * g + invstd * (g - mean_ct(g) - xhat * mean_ct(g * xhat))."""
    N, C, F, T = x.shape
    M = C * T
    for n in prange(N):
        sg = np.zeros(F, np.float64)
        sgx = np.zeros(F, np.float64)
        for c in range(C):
            for f in range(F):
                mu = mean[n, f]
                k = invstd[n, f]
                a = 0.0
                b = 0.0
                for t in range(T):
                    gv = np.float64(g[n, c, f, t])
                    a += gv
                    b += gv * (np.float64(x[n, c, f, t]) - mu) * k
                sg[f] += a
                sgx[f] += b
        for c in range(C):
            for f in range(F):
                mu = mean[n, f]
                k = invstd[n, f]
                mg = sg[f] / M
                mgx = sgx[f] / M
                for t in range(T):
                    gv = g[n, c, f, t]
                    xhat = (x[n, c, f, t] - mu) * k
                    gx[n, c, f, t] = lam * gv + k * (gv - mg - xhat * mgx)


def freq_norm_forward_ref(x, lam, eps):
    mean = x.mean(axis=(1, 3), keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=(1, 3), keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    out = lam * x + (x - mean) * invstd
    return out.astype(x.dtype), mean[:, 0, :, 0], invstd[:, 0, :, 0]


def freq_norm_backward_ref(x, g, lam, mean, invstd):
    mean, invstd = mean[:, None, :, None], invstd[:, None, :, None]
    xhat = (x - mean) * invstd
    mg = g.mean(axis=(1, 3), keepdims=True)
    mgx = (g * xhat).mean(axis=(1, 3), keepdims=True)
    return (lam * g + invstd * (g - mg - xhat * mgx)).astype(x.dtype)


# ------------------------------------------------------------- mean over frequency

@njit(parallel=True, cache=True)
def freq_mean_kernel(x, out):
    """out[n, c, 0, :] = mean over f of x[n, c, f, :], x (N, C, F, T) contiguous::

        for plane (n, c) in parallel:
            acc = x[n, c, 0, :]
            for f in 1..F-1: acc += x[n, c, f, :]       # row by row, in the input's dtype
            out[n, c, 0, :] = acc / F

    The f1 branch of every BC-ResBlock starts with this mean. Summing whole rows in order is
    the order NumPy's x.mean(axis=2) uses, so the result is the same to the bit; NumPy's strided
    reduction is several times slower than this one streaming pass.
    """
    N, C, F, T = x.shape
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        acc = out[n, c, 0]
        src = x[n, c, 0]
        for t in range(T):
            acc[t] = src[t]
        for f in range(1, F):
            src = x[n, c, f]
            for t in range(T):
                acc[t] += src[t]
        for t in range(T):
            acc[t] = acc[t] / F


def freq_mean_ref(x):
    return x.mean(axis=2, keepdims=True)


@njit(parallel=True, cache=True)
def add_freq_broadcast_kernel(full, small, out):
    """out[n, c, f, t] = full[n, c, f, t] + small[n, c, 0, t]: the adjoint of the frequency mean
    (its gradient, broadcast over f) added to a gradient of the mean's input. The same bits as
    NumPy's full + np.broadcast_to(small, full.shape), in one parallel pass."""
    N, C, F, T = full.shape
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for f in range(F):
            for t in range(T):
                out[n, c, f, t] = full[n, c, f, t] + small[n, c, 0, t]


def add_freq_broadcast_ref(full, small):
    return full + np.broadcast_to(small, full.shape)


# ------------------------------------------------------- broadcast residual + ReLU

@njit(parallel=True, cache=True, fastmath=True)
def broadcast_residual_relu_kernel(x2, f1, x, use_x, out):
    """out[n, c, f, t] = max(x2[n, c, f, t] + f1[n, c, 0, t] + [use_x] x[n, c, f, t], 0)."""
    N, C, F, T = x2.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for f in range(F):
            for t in range(T):
                v = x2[n, c, f, t] + f1[n, c, 0, t]
                if use_x:
                    v += x[n, c, f, t]
                out[n, c, f, t] = v if v > 0 else 0


@njit(parallel=True, cache=True, fastmath=True)
def broadcast_residual_relu_backward_kernel(out, g, gmasked, gf1):
    """gmasked = g where out > 0 (the gradient of x2 and x); gf1 = its sum over f."""
    N, C, F, T = out.shape
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        for t in range(T):
            gf1[n, c, 0, t] = 0
        for f in range(F):
            for t in range(T):
                gv = g[n, c, f, t] if out[n, c, f, t] > 0 else 0
                gmasked[n, c, f, t] = gv
                gf1[n, c, 0, t] += gv


def broadcast_residual_relu_ref(x2, f1, x=None):
    total = x2 + f1 if x is None else x2 + f1 + x
    return np.maximum(total, 0).astype(x2.dtype)


def broadcast_residual_relu_backward_ref(out, g):
    gmasked = g * (out > 0)
    return gmasked.astype(g.dtype), gmasked.sum(axis=2, keepdims=True).astype(g.dtype)
