"""`tinyasc experiment --jobs N`: N runs of the experiment at a time, one core each.

A BC-ResNet-Mod step is memory-bound: on two cores, one run with two threads trains about
530 clips/s at c=10, two runs with one thread each about 2 x 430 (docs/decisions.md). So an
experiment of many runs finishes sooner as N single-threaded processes than as one
two-threaded one. This process plans the runs (tinyasc/train/experiment.py: the same checks,
the same configs), starts each in a worker (tinyasc/train/worker.py) with NUMBA_NUM_THREADS=1
and the run's TrainConfig as JSON, and rewrites the tables after every finished run. Workers
import tinyasc from where this process did, write their output to OUT/logs/<row>-seed<s>.txt,
and run in a session of their own: Ctrl-C, SIGTERM or SIGHUP reach this process, which asks
each worker once (SIGINT) to save its checkpoint. Weight gradients sum a fixed number of
partials whatever the thread count, so a run trained here has the same bits as one trained in
the sequential experiment on the same machine.
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
from tinyasc.run.folder import StopFlag
from tinyasc.train.experiment import (config_of, ensure_translator, plan_experiment, read_device_table, run_folder,
                                      write_tables)

POLL_SECONDS = 0.5
STOP_SECONDS = 600      # how long stopped workers get, together, to save their checkpoints
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The worker imports tinyasc from the folder this process imported it from (not from the
# working directory, which may hold another checkout).
WORKER = "import sys; sys.path.insert(0, sys.argv.pop(1)); from tinyasc.train.worker import main; main()"


@dataclass
class Worker:
    row: object
    seed: int
    process: subprocess.Popen
    log_path: Path
    started: float


def run_experiment_parallel(base_config, rows, seeds, out_dir, jobs, log=print, progress=True, translator=None):
    """tinyasc experiment with `jobs` runs at a time; returns (table rows, table text), or
    (None, None) if interrupted (the same command resumes)."""
    plan = plan_experiment(base_config, rows, seeds, out_dir, translator, log)
    if plan.todo():  # the dataset and its features are made here once, not by two workers at a time
        TrainingData.load(base_config, log=log, progress=progress)

    def finished(row, seed):
        plan.results[(row.key, seed)] = read_device_table(run_folder(plan.out_dir, row, seed))
        write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)

    if not train_in_parallel(base_config, plan, jobs, finished, log, progress):
        return None, None
    return write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)


def train_in_parallel(base_config, plan, jobs, on_finished, log=print, progress=True):
    """Train plan.todo() in up to `jobs` workers, calling on_finished(row, seed) after each run;
    True when all finished, False if stopped."""
    logs = plan.out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    waiting, running = plan.todo(), []
    with StopFlag(STOP_SIGNALS) as stop:
        try:
            while (waiting or running) and not stop():
                while waiting and len(running) < jobs and not stop():
                    row, seed = waiting[0]
                    if row.translator and not plan.translator_ready:
                        if running:  # the translator trains with every core, after the runs before it
                            break
                        if ensure_translator(base_config, plan.out_dir, None, log, progress) is None:
                            return False
                        plan.translator_ready = True
                    waiting.pop(0)
                    _start(base_config, plan, row, seed, logs, running, log)
                for worker in [w for w in running if w.process.poll() is not None]:
                    running.remove(worker)
                    _reap(worker, on_finished, log)
                time.sleep(POLL_SECONDS)
        finally:
            _stop(running, log)
    return not stop()


def _start(base_config, plan, row, seed, logs, running, log):
    run_dir = run_folder(plan.out_dir, row, seed)
    config = config_of(base_config, row, seed, plan.translator_dir)
    log_path = logs / f"{row.key}-seed{seed}.txt"
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding this tinyasc/
    with open(log_path, "a") as log_file:  # a rerun adds to the log of the attempt before
        log_file.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {row.name}, seed {seed}\n")
        log_file.flush()
        process = subprocess.Popen([sys.executable, "-u", "-c", WORKER, package_root, str(run_dir), config.to_json()],
                                   stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    running.append(Worker(row, seed, process, log_path, time.monotonic()))
    log(f"--- {row.name}, seed {seed}: {run_dir} (log: {log_path})")


def _reap(worker, on_finished, log):
    code, name = worker.process.returncode, f"{worker.row.key}-seed{worker.seed}"
    if code == 0:
        on_finished(worker.row, worker.seed)
        log(f"finished {worker.row.name}, seed {worker.seed} in {(time.monotonic() - worker.started) / 60:.1f} min")
    elif code in (130, -signal.SIGINT):
        raise TinyAscError(f"the run {name} was stopped from outside (SIGINT); its checkpoint is saved: run the "
                           "same command again to continue")
    else:
        how = f"exit code {code}" if code > 0 else f"killed by signal {-code} (out of memory?)"
        raise TinyAscError(f"the run {name} failed ({how}); the end of its log {worker.log_path}: "
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
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
                late.append(f"{worker.row.key}-seed{worker.seed}")
                continue
            name, code = f"{worker.row.key}-seed{worker.seed}", worker.process.returncode
            state = ("finished (its result is read back next time)" if code == 0 else
                     "stopped, checkpoint saved" if code in (130, -signal.SIGINT) else f"failed (see {worker.log_path})")
            log(f"{name}: {state}")
    finally:
        signal.signal(signal.SIGINT, previous)
    if late:
        raise TinyAscError(f"{', '.join(late)} did not stop within {STOP_SECONDS} s and were ended; they resume "
                           "from their last saved checkpoint")


def _last_line(path):
    lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty)"
