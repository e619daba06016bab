"""Pointwise (1x1) convolution: the channel mixing of every BC-ResBlock and the classifier.

Paper Table 1: each Transition block opens with a 1x1 conv (cin -> cout) and every f1 branch
ends with one (C -> C on the N x C x 1 x T map). A 1x1 conv is a matmul (Cout, Cin) @ (Cin, T)
per sample, T = H*W, straight on the NCHW memory.

At the model's widths this matmul is thin: with c = 10 it does ~3 flops per byte moved, far
below this class of machine's balance (~13 flops per byte), and BLAS handles a 10 x 20 left
factor poorly. So thin layers use the streaming Numba kernels below, which read each input
element once and write each output element once; wide layers (c = 80) are compute bound and go
to BLAS (np.dot inside a Numba kernel, one sample per call, the samples in parallel).
dispatch.py picks one by the arithmetic intensity (`pointwise_path`).

Layouts: x (N, Cin, T), w (Cout, Cin), y (N, Cout, T), all contiguous.
"""
import numpy as np
from numba import njit, prange

from tinyasc.kernels.dots import accumulate_dots

_FASTMATH = {"contract", "reassoc", "nsz"}
_BLOCK = 512  # columns per job: Cin rows of the block stay in L1/L2 while Cout rows are built


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def pointwise_forward_kernel(x, w):
    """y[n, co, t] = sum over ci of w[co, ci] * x[n, ci, t]::

        for (n, block of t) in parallel:
            for co:
                y[n, co, block] = w[co, 0] * x[n, 0, block]
                for ci in 1..Cin-1:
                    y[n, co, block] += w[co, ci] * x[n, ci, block]
    """
    N, Cin, T = x.shape
    Cout = w.shape[0]
    nblk = (T + _BLOCK - 1) // _BLOCK
    y = np.empty((N, Cout, T), x.dtype)
    for job in prange(N * nblk):
        n = job // nblk
        t0 = (job % nblk) * _BLOCK
        t1 = min(T, t0 + _BLOCK)
        for co in range(Cout):
            dst = y[n, co, t0:t1]
            wv = w[co, 0]
            src = x[n, 0, t0:t1]
            for t in range(t1 - t0):
                dst[t] = wv * src[t]
            for ci in range(1, Cin):
                wv = w[co, ci]
                src = x[n, ci, t0:t1]
                for t in range(t1 - t0):
                    dst[t] += wv * src[t]
    return y


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def pointwise_backward_weight_kernel(x, gy, nchunks):
    """Partial weight gradients, one per chunk of samples (float64, summed by the caller)::

        for chunk of samples in parallel:
            for n in chunk:
                acc = 0
                for block of t:                     # four gy rows by two x rows per sweep
                    acc[co, ci] += dot(gy[n, co, block], x[n, ci, block])
                part[chunk] += acc                  # each sample in x's dtype, then float64
    """
    N, Cin, T = x.shape
    Cout = gy.shape[1]
    part = np.zeros((nchunks, Cout, Cin), np.float64)
    for chunk in prange(nchunks):
        acc = np.empty((Cout, Cin), x.dtype)
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            acc[:] = 0
            for t0 in range(0, T, _BLOCK):
                accumulate_dots(acc, gy[n], 0, t0, x[n], 0, t0, min(T, t0 + _BLOCK) - t0)
            for co in range(Cout):
                for ci in range(Cin):
                    part[chunk, co, ci] += acc[co, ci]
    return part


@njit(parallel=True, cache=True)
def pointwise_blas_forward_kernel(x, w):
    """The wide-layer path: y[n] = w @ x[n] by BLAS (np.dot), the samples in parallel::

        for n in parallel:
            y[n] = w @ x[n]

    Each call runs on its caller's thread (tinyasc keeps BLAS single-threaded), so the batch,
    not the matrix, is split between the cores: no hand-off between two thread pools.
    """
    N, Cin, T = x.shape
    y = np.empty((N, w.shape[0], T), x.dtype)
    for n in prange(N):
        np.dot(w, x[n], y[n])
    return y


@njit(parallel=True, cache=True)
def pointwise_blas_backward_weight_kernel(x, gy, nchunks):
    """The wide-layer weight gradient: float64 partials per chunk of samples::

        for chunk of samples in parallel:
            for n in chunk:
                part[chunk] += gy[n] @ x[n]^T
    """
    N, Cin, T = x.shape
    Cout = gy.shape[1]
    part = np.zeros((nchunks, Cout, Cin), np.float64)
    for chunk in prange(nchunks):
        for n in range(chunk * N // nchunks, (chunk + 1) * N // nchunks):
            part[chunk] += np.dot(gy[n], x[n].T)
    return part


# ----------------------------------------------------------------------------- references


def pointwise_forward_ref(x, w):
    """Plain NumPy: y[n] = w @ x[n]."""
    return np.einsum("oc,nct->not", w, x)


def pointwise_backward_weight_ref(x, gy):
    """Plain NumPy: gw = sum over n of gy[n] @ x[n]^T."""
    return np.einsum("not,nct->oc", gy, x)
