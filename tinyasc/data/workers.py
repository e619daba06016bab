"""Per-file dataset work on every core: forked worker processes.

Not part of the paper's method. Making the synthetic dataset (synth/write.py) and the feature
cache (cache.py) is per-file NumPy/SciPy work that holds the GIL for most of its time: in
threads it ran at about one core whatever the number of threads (docs/decisions.md). Forked
processes run it on all cores. A task's result depends only on its own index (each file has
its own random generator), so the bytes written do not depend on how the tasks are spread.

    for done in run_tasks(task, count, workers):   # task(i) for i in range(count), any order
        bar.update(done)                           # done: what task(i) returned

Fork, not spawn: a forked worker starts in microseconds with everything the parent imported,
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
    # a few hundred tasks: enough to keep every worker busy to the end, few enough that
    # handing them over costs nothing next to the work
    size = max(1, min(16, count // (8 * workers)))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def run_tasks(task, count, workers=None, processes=True):
    """Run task(0) ... task(count - 1) on `workers` processes (default: one per core); yield
    their return values as they finish, in no particular order.

    processes=False, or a platform without a safe fork, uses threads instead (for tasks whose
    effects would not reach the parent from another process); workers=1 runs them here, in
    order. An exception in a task is raised here; the tasks not yet started are cancelled.
    """
    workers = max(1, min(workers or default_workers(), count))
    if workers == 1:
        for i in range(count):
            yield task(i)
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
            yield from fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
