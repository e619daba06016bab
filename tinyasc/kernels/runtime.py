"""Process-wide settings the kernels' speed depends on, applied by the command line at startup.

Training BC-ResNet-Mod (paper section 3) on a small machine is dominated by thin, memory-bound
layers, and three settings of the process matter more for them than any loop does. Importing
tinyasc applies none of them (a library should not change its host process);
`configure_runtime()` applies all three, and `tinyasc` (cli.py), the test suite
(tests/conftest.py) and the benchmarks call it once, before the first kernel runs:

* Passive thread waits. Between two parallel kernels the main thread runs NumPy (elementwise
  ops, the autograd). With OpenMP's default "active" wait, Numba's idle workers spin on the
  cores meanwhile: a loop alternating an im2col kernel with a two-thread BLAS matmul ran 15x
  slower. OMP_WAIT_POLICY=PASSIVE is read when Numba starts its thread pool, at the first
  parallel kernel, so it is set in the environment here, before that (not before import).
* One BLAS thread. tinyasc parallelises over the batch itself (Numba prange, the loader
  thread), and its BLAS calls are small matrices called from inside those parallel loops (the
  head conv is 20 x 25 @ 25 x 21,376 per clip): measured on a 2-core machine, 64 of them take
  18 ms on one OpenBLAS thread, 48 ms on two, and over 1 s on two while another process holds
  a core (docs/decisions.md). threadpoolctl limits every loaded BLAS to one thread at run time;
  the limit stays for the life of the process. An OPENBLAS_NUM_THREADS the user set is left
  alone, as is the BLAS of a process that never calls configure_runtime.
* Freed memory kept. glibc serves every block above 32 MB (a c=10 stage-1 activation is 54 MB)
  with a new mmap and unmaps it on free, so each such array is page-faulted in again, at a cost
  comparable to the kernel that fills it. Raising the mmap and trim thresholds keeps freed
  blocks in the heap for the next step's arrays of the same size. The price: the process keeps
  its peak memory. TINYASC_MALLOC_TUNE=0 opts out.
"""
import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_blas_limit = None  # the threadpoolctl limit, kept alive for the process


def keep_freed_memory():
    """Ask glibc to reuse freed large blocks instead of returning them to the OS.
    Returns True when the settings took (Linux with glibc), False otherwise."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def single_blas_thread():
    """Limit every loaded BLAS library to one thread, for the rest of the process."""
    global _blas_limit
    if _blas_limit is not None or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    # np.dot inside a Numba kernel calls SciPy's BLAS (scipy.linalg.cython_blas), which may be a
    # library of its own: load it now, so that the limit below reaches it too
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    _blas_limit = threadpool_limits(1, user_api="blas")


def configure_runtime():
    """Apply the three settings (idempotent): passive OpenMP waits, one BLAS thread, and glibc
    keeping freed blocks. Call it at startup, before the first kernel runs."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    single_blas_thread()
    if os.environ.get("TINYASC_MALLOC_TUNE", "1") != "0":
        keep_freed_memory()
