"""`tinyasc experiment --jobs N` and `tinyasc table3 --jobs N`: N runs at a time, one core each.

A BC-ResNet-Mod step is memory-bound: on two cores, one run with two threads trains about
530 clips/s at c=10, two runs with one thread each about 2 x 430 (docs/decisions.md). So an
experiment of many runs finishes sooner as N single-threaded processes than as one
two-threaded one. The experiment plans its runs (tinyasc/train/experiment.py: the same checks,
the same configs) and rewrites its tables after every finished run; Table 3 trains its students
this way (tinyasc/train/table3.py). train_in_parallel starts each run in a worker
(tinyasc/train/worker.py) with NUMBA_NUM_THREADS=1 and the run's TrainConfig as JSON. Workers
import tinyasc from where this process did, write their output to <logs>/<run>.txt (the
experiment's OUT/logs/<row>-seed<s>.txt, Table 3's OUT/logs/student-seed<s>.txt),
and run in a session of their own: Ctrl-C, SIGTERM or SIGHUP reach this process, which asks
each worker once (SIGINT) to save its checkpoint. Weight gradients sum a fixed number of
partials whatever the thread count, so a run trained here has the same bits as one trained
one after the other on the same machine.
"""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tinyasc.data.training import TrainingData
from tinyasc.errors import TinyAscError
from tinyasc.run.folder import STOP_SIGNALS, StopFlag
from tinyasc.train import classifier
from tinyasc.train.experiment import (check_rows_fit, config_of, ensure_translator, plan_experiment,
                                      read_device_table, run_folder, write_tables)

POLL_SECONDS = 0.5
STOP_SECONDS = 600      # how long stopped workers get, together, to save their checkpoints
# The worker imports tinyasc from the folder this process imported it from (not from the
# working directory, which may hold another checkout). A SIGINT while it still imports (about a
# second: NumPy, Numba, SciPy) stops it as one before its first step would: exit 130, no traceback.
WORKER = ("import sys\n"
          "sys.path.insert(0, sys.argv.pop(1))\n"
          "try:\n"
          "    from tinyasc.train.worker import main\n"
          "except KeyboardInterrupt:\n"
          "    sys.exit(130)\n"
          "main()\n")


@dataclass(frozen=True)
class Job:
    """One run to train in a worker."""
    key: str            # short name: its log is <logs>/<key>.txt, and messages name it
    name: str           # long name, for the progress messages
    run_dir: Path
    config: object      # its TrainConfig


@dataclass
class Worker:
    job: Job
    process: subprocess.Popen
    log_path: Path
    started: float


def run_experiment_parallel(base_config, rows, seeds, out_dir, jobs, log=print, progress=True, translator=None):
    """tinyasc experiment with `jobs` runs at a time; returns (table rows, table text), or
    (None, None) if interrupted (the same command resumes)."""
    plan = plan_experiment(base_config, rows, seeds, out_dir, translator, log)
    if plan.todo():  # the dataset and its features are made here once, not by two workers at a time
        check_rows_fit(plan, base_config, TrainingData.load(base_config, log=log, progress=progress))
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    runs = {f"{row.key}-seed{seed}": (row, seed) for row, seed in plan.todo()}
    todo = [Job(key, f"{row.name}, seed {seed}", run_folder(plan.out_dir, row, seed),
                config_of(base_config, row, seed, plan.translator_dir)) for key, (row, seed) in runs.items()]

    def prepare(job, busy):
        row, _ = runs[job.key]
        if not row.translator or plan.translator_ready:
            return True
        if busy:  # the translator trains with every core, after the runs before it
            return False
        if ensure_translator(base_config, plan.out_dir, None, log, progress) is None:
            return None
        plan.translator_ready = True
        return True

    def finished(job):
        row, seed = runs[job.key]
        plan.results[(row.key, seed)] = read_device_table(job.run_dir)
        write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)

    if not train_in_parallel(todo, jobs, plan.out_dir / "logs", finished, log, prepare):
        return None, None
    return write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)


def train_in_parallel(todo, jobs, logs, on_finished=None, log=print, prepare=None):
    """Train the Jobs `todo`, in this order, in up to `jobs` workers; True when all finished,
    False if stopped. on_finished(job) runs after each. prepare(job, busy), if given, runs
    before a job starts (busy: whether workers are running) and says True: start it, False:
    wait until the running workers have finished, None: stop."""
    logs = Path(logs)
    logs.mkdir(parents=True, exist_ok=True)
    waiting, running = list(todo), []
    with StopFlag(STOP_SIGNALS) as stop:
        try:
            while (waiting or running) and not stop():
                while waiting and len(running) < jobs and not stop():
                    ready = True if prepare is None else prepare(waiting[0], bool(running))
                    if ready is None:
                        return False
                    if not ready:
                        break
                    _start(waiting.pop(0), logs, running, log)
                for worker in [w for w in running if w.process.poll() is not None]:
                    running.remove(worker)
                    _reap(worker, on_finished, log)
                time.sleep(POLL_SECONDS)
        finally:
            _stop(running, log)
    return not stop()


def _start(job, logs, running, log):
    log_path = logs / f"{job.key}.txt"
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding this tinyasc/
    with open(log_path, "a") as log_file:  # a rerun adds to the log of the attempt before
        log_file.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {job.name}\n")
        log_file.flush()
        process = subprocess.Popen([sys.executable, "-u", "-c", WORKER, package_root, str(job.run_dir),
                                    job.config.to_json(), str(os.getpid())],
                                   stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    running.append(Worker(job, process, log_path, time.monotonic()))
    log(f"--- {job.name}: {job.run_dir} (log: {log_path})")


def _reap(worker, on_finished, log):
    code, job = worker.process.returncode, worker.job
    if code == 0:
        if on_finished is not None:
            on_finished(job)
        log(f"finished {job.name} in {(time.monotonic() - worker.started) / 60:.1f} min")
    elif code in (130, -signal.SIGINT):
        raise TinyAscError(f"the run {job.key} was stopped from outside (SIGINT); its checkpoint is saved: run the "
                           "same command again to continue")
    else:
        how = f"exit code {code}" if code > 0 else f"killed by signal {-code} (out of memory?)"
        raise TinyAscError(f"the run {job.key} failed ({how}); the end of its log {worker.log_path}: "
                           f"{_last_line(worker.log_path)}")


def _stop(running, log):
    """Ask each worker still running once to stop as Ctrl-C does (it saves its checkpoint), give
    them STOP_SECONDS together, then end those left."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nothing interrupts the stopping
    try:
        for worker in running:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_SECONDS
        late = []
        for worker in running:
            key = worker.job.key
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
                late.append(key)
                continue
            code = worker.process.returncode
            saved = (worker.job.run_dir / classifier.CHECKPOINT).is_file()
            state = ("finished (its result is read back next time)" if code == 0 else
                     f"failed (see {worker.log_path})" if code not in (130, -signal.SIGINT) else
                     "stopped, checkpoint saved" if saved else "stopped before its first checkpoint")
            log(f"{key}: {state}")
    finally:
        signal.signal(signal.SIGINT, previous)
    if late:
        raise TinyAscError(f"{', '.join(late)} did not stop within {STOP_SECONDS} s and were ended; they resume "
                           "from their last saved checkpoint")


def _last_line(path):
    lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty)"
