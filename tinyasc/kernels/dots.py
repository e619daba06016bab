"""Register-blocked dot products shared by the weight-gradient kernels (conv.py, pointwise.py).

A weight gradient is many dot products of output-gradient rows with input rows. One at a time,
each multiply-add needs two loads; sharing rows between several sums cuts that: `_dot4` feeds four
sums from five loads, `_dot4x2` eight sums from six. Numba compiles each loop into vector code
(fastmath reassociation lets it split every sum into vector lanes).
"""
from numba import njit

_FASTMATH = {"contract", "reassoc", "nsz"}


@njit(cache=True, fastmath=_FASTMATH)
def _dot4(g0, g1, g2, g3, xs):
    """Four dot products sharing one row: each load of xs feeds four multiply-adds."""
    v = xs[0]
    s0, s1, s2, s3 = g0[0] * v, g1[0] * v, g2[0] * v, g3[0] * v
    for i in range(1, xs.shape[0]):
        v = xs[i]
        s0 += g0[i] * v
        s1 += g1[i] * v
        s2 += g2[i] * v
        s3 += g3[i] * v
    return s0, s1, s2, s3


@njit(cache=True, fastmath=_FASTMATH)
def _dot(g, xs):
    s = g[0] * xs[0]
    for i in range(1, xs.shape[0]):
        s += g[i] * xs[i]
    return s


@njit(cache=True, fastmath=_FASTMATH)
def _dot4x2(g0, g1, g2, g3, c0, c1):
    """Eight dot products of four rows with two: 6 loads feed 8 multiply-adds."""
    u, v = c0[0], c1[0]
    s00, s01, s10, s11 = g0[0] * u, g0[0] * v, g1[0] * u, g1[0] * v
    s20, s21, s30, s31 = g2[0] * u, g2[0] * v, g3[0] * u, g3[0] * v
    for i in range(1, c0.shape[0]):
        u, v = c0[i], c1[i]
        a, b, c, d = g0[i], g1[i], g2[i], g3[i]
        s00 += a * u
        s01 += a * v
        s10 += b * u
        s11 += b * v
        s20 += c * u
        s21 += c * v
        s30 += d * u
        s31 += d * v
    return s00, s01, s10, s11, s20, s21, s30, s31


@njit(cache=True, fastmath=_FASTMATH)
def accumulate_dots(acc, g, g0, gt, x, x0, xt, L):
    """acc[i, k] += dot(g[g0 + i, gt:gt + L], x[x0 + k, xt:xt + L]) for every i, k of acc::

        for i in blocks of 4 rows of acc, k in blocks of 2 columns:   # _dot4x2
            acc[i:i+4, k:k+2] += the 8 dot products
        remainders: four rows by one column (_dot4), then one by one (_dot)
    """
    rows, cols = acc.shape
    for i in range(0, rows, 4):
        if i + 4 <= rows:
            r0, r1 = g[g0 + i, gt:gt + L], g[g0 + i + 1, gt:gt + L]
            r2, r3 = g[g0 + i + 2, gt:gt + L], g[g0 + i + 3, gt:gt + L]
            k = 0
            while k + 2 <= cols:
                s = _dot4x2(r0, r1, r2, r3, x[x0 + k, xt:xt + L], x[x0 + k + 1, xt:xt + L])
                acc[i, k] += s[0]
                acc[i, k + 1] += s[1]
                acc[i + 1, k] += s[2]
                acc[i + 1, k + 1] += s[3]
                acc[i + 2, k] += s[4]
                acc[i + 2, k + 1] += s[5]
                acc[i + 3, k] += s[6]
                acc[i + 3, k + 1] += s[7]
                k += 2
            if k < cols:
                s0, s1, s2, s3 = _dot4(r0, r1, r2, r3, x[x0 + k, xt:xt + L])
                acc[i, k] += s0
                acc[i + 1, k] += s1
                acc[i + 2, k] += s2
                acc[i + 3, k] += s3
        else:
            for r in range(i, rows):
                for k in range(cols):
                    acc[r, k] += _dot(g[g0 + r, gt:gt + L], x[x0 + k, xt:xt + L])
