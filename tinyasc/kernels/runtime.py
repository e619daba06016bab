"""Process-wide settings the kernels' speed depends on, applied once when tinyasc.kernels loads.

Two things dominate thin, memory-bound layers on a small machine more than any loop does:

* Thread hand-offs. Between two parallel kernels the main thread runs NumPy (elementwise ops,
  the autograd, BLAS when it is multithreaded). With OpenMP's default "active" wait, Numba's
  idle workers spin on the cores meanwhile: a loop alternating an im2col kernel with a
  two-thread BLAS matmul ran 15x slower. OMP_WAIT_POLICY=PASSIVE must be in the environment
  before Numba starts its OpenMP pool. (tinyasc/__init__.py also makes BLAS single-threaded;
  the kernels call it from their own parallel loops.)
* Fresh pages. glibc serves every block above 32 MB (a c=10 stage-1 activation is 54 MB) with
  a new mmap and unmaps it on free, so each such array is page-faulted in again, at a cost
  comparable to the kernel that fills it. Raising the mmap and trim thresholds keeps freed
  blocks in the heap for the next step's arrays of the same size. The price: the process keeps
  its peak memory. TINYASC_MALLOC_TUNE=0 opts out.
"""
import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


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


def configure():
    """Apply both settings (idempotent); called by tinyasc/kernels/__init__.py."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if os.environ.get("TINYASC_MALLOC_TUNE", "1") != "0":
        keep_freed_memory()
