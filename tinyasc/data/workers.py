"""Per-file dataset work on every core: forked worker processes.

Not part of the paper's method. Making the synthetic dataset (synth/write.py) and the feature
cache (cache.py) is per-file NumPy/SciPy work that holds the GIL for much of its time, so
threads, which share it, could not keep the cores busy (docs/decisions.md); forked processes
share nothing. A task's result depends only on its own index (each file has
its own random generator), so the bytes written do not depend on how the tasks are spread.

    run_tasks(task, count, workers, done=bar.update)   # task(i) for i in range(count), any order;
                                                       # bar.update(what task(i) returned)

Fork, not spawn: a forked worker starts at once, with everything the parent imported,
and it receives `task` (a closure is fine) by inheritance, not by pickling; only the task
indices and the return values cross between processes. Where fork is not the safe default
(macOS, Windows), the tasks run in threads as before.
"""
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

_task = None  # the task of this worker process, set when it starts


def default_workers():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def can_fork():
    """Fork is safe here: Linux, and this process has not started Numba's thread pool yet.

    The command line makes its dataset and features before any kernel runs; a process that
    has run parallel kernels already (a notebook, the test suite) has idle pool threads, and
    forking a multi-threaded process is what POSIX leaves undefined, so it gets threads.
    """
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", False):
        return False
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _start_worker(task):
    global _task
    _task = task
    # Ctrl-C reaches the whole process group: the parent handles it (cancels what has not
    # started, waits for what has), so a worker does not also print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_chunk(start, stop):
    return [_task(i) for i in range(start, stop)]


def _chunks(count, workers):
    # up to 4 files a chunk: handing a chunk over costs far less than its work, and Ctrl-C
    # waits only for the chunks already handed over (two per worker)
    size = max(1, min(4, count // (8 * workers)))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def run_tasks(task, count, workers=None, processes=True, done=None):
    """Run task(0) ... task(count - 1) on `workers` processes (default: one per core), in no
    particular order; done(value) is called here with each task's return value as it finishes.

    processes=False, or a platform without a safe fork, uses threads instead (for tasks whose
    effects would not reach the parent from another process); workers=1 runs them here, in
    order. An exception in a task, or Ctrl-C, is raised here once the tasks already running have
    finished; the others never start.
    """
    done = done or (lambda value: None)
    workers = max(1, min(workers or default_workers(), count))
    if workers == 1:
        for i in range(count):
            done(task(i))
        return
    if processes and can_fork():
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker, initargs=(task,))
        submit = lambda start, stop: pool.submit(_worker_chunk, start, stop)  # noqa: E731
    else:
        pool = ThreadPoolExecutor(workers)
        submit = lambda start, stop: pool.submit(lambda: [task(i) for i in range(start, stop)])  # noqa: E731
    try:
        futures = [submit(start, stop) for start, stop in _chunks(count, workers)]
        for fut in as_completed(futures):
            for value in fut.result():
                done(value)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
