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
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from tinyasc.errors import TinyAscError

_task = None   # the task of this worker process, set when it starts
_state = None  # shared with the parent: _state[i] is 1 while task(i) runs, 2 once it has returned


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


PR_SET_PDEATHSIG = 1  # Linux prctl: the signal this process gets when its parent dies


def end_with_parent(signum, parent):
    """Ask the kernel for `signum` when this process's parent dies (Linux), and exit at once
    (code 130) if the parent, pid `parent`, is gone already: a worker must not live on alone."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):  # not Linux: the parent's own stop is all there is
        pass
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(130)


def _start_worker(task, state, parent):
    global _task, _state
    _task, _state = task, state
    # Ctrl-C (or `kill` of the group) reaches every process: the parent handles it (cancels
    # what has not started, waits for what has), so a worker neither prints a traceback nor dies
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    # A parent killed outright (SIGKILL, the OOM killer) cannot stop its workers: they end with
    # it, or they would wait for work for ever, holding the locks they inherited by fork.
    end_with_parent(signal.SIGKILL, parent)


def _worker_chunk(start, stop):
    values = []
    for i in range(start, stop):
        _state[i] = 1  # should this process die now, the parent can name the task it was on
        values.append(_task(i))
        _state[i] = 2
    return values


def _chunks(count, workers):
    # up to 4 files a chunk: handing a chunk over costs far less than its work, and Ctrl-C
    # waits only for the chunks already handed over (two per worker)
    size = max(1, min(4, count // (8 * workers)))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


@contextlib.contextmanager
def _ctrl_c_held_back():
    """Ctrl-C (or SIGTERM, SIGHUP where a handler turns them into KeyboardInterrupt) inside the
    block is raised when the block ends. The pool forks its workers inside submit: a
    KeyboardInterrupt there would leave workers it never tells to stop (and this process waiting
    for them at exit). A handler that only notes the signal works whichever thread the kernel
    hands it to (a signal mask would hold it back in this thread only)."""
    if threading.current_thread() is not threading.main_thread():  # only there do handlers run
        yield
        return
    caught, previous = [], {}
    for signum in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
        if signum is not None and callable(signal.getsignal(signum)):  # a Python handler to stand in for
            previous[signum] = signal.signal(signum, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise KeyboardInterrupt


def run_tasks(task, count, workers=None, processes=True, done=None, name=None):
    """Run task(0) ... task(count - 1) on `workers` processes (default: one per core), in no
    particular order; done(value) is called here with each task's return value as it finishes.

    processes=False, or a platform without a safe fork, uses threads instead (for tasks whose
    effects would not reach the parent from another process); workers=1 runs them here, in
    order. An exception in a task, or Ctrl-C, is raised here once the tasks already running have
    finished; the others never start. A worker process that dies (the kernel kills it when memory
    runs out) is a one-line TinyAscError naming what the workers were on: name(i), e.g. the file
    task i reads, or else "item i + 1 of count".
    """
    done = done or (lambda value: None)
    workers = max(1, min(workers or default_workers(), count))
    if workers == 1:
        for i in range(count):
            done(task(i))
        return
    if processes and can_fork():
        fork = multiprocessing.get_context("fork")
        state = fork.RawArray("b", count)  # shared memory the forked workers inherit
        pool = ProcessPoolExecutor(workers, mp_context=fork, initializer=_start_worker,
                                   initargs=(task, state, os.getpid()))
        submit = lambda start, stop: pool.submit(_worker_chunk, start, stop)  # noqa: E731
    else:
        state = None
        pool = ThreadPoolExecutor(workers)
        submit = lambda start, stop: pool.submit(lambda: [task(i) for i in range(start, stop)])  # noqa: E731
    try:
        with _ctrl_c_held_back():
            futures = [submit(start, stop) for start, stop in _chunks(count, workers)]
        for fut in as_completed(futures):
            for value in fut.result():
                done(value)
    except BrokenProcessPool:
        raise TinyAscError(_worker_died(state, count, name)) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_died(state, count, name):
    """The message for a worker process that died: what the workers were on, and what to do."""
    name = name or (lambda i: f"item {i + 1} of {count}")
    running = [str(name(i)) for i in range(count) if state[i] == 1]  # the dead one's, and the others'
    where = f" while working on {', '.join(running)}" if running else ""
    inputs = {0: "the inputs", 1: "that input"}.get(len(running), "those inputs")
    return (f"a worker process died{where} (killed, most likely for lack of memory); check {inputs}, "
            "free memory, or run on fewer cores (e.g. taskset -c 0 tinyasc ...), which starts fewer workers")
