"""`tinyasc experiment --jobs N`: N runs of the experiment at a time, one core each.

A BC-ResNet-Mod step is memory-bound: on two cores, one run with two threads trains about
530 clips/s at c=10, two runs with one thread each about 2 x 430 (docs/results.md). So an
experiment of many runs finishes sooner as N single-threaded processes than as one
two-threaded one. Each worker is the `tinyasc experiment` command itself for one (row, seed),
started with NUMBA_NUM_THREADS=1, so a worker resumes, reads back and writes its run folder
exactly as a sequential experiment does; its output goes to OUT/logs/<row>-seed<s>.txt.
Weight gradients sum a fixed number of partials whatever the thread count, so a run trained
this way has the same bits as one trained in the sequential experiment on the same machine.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tinyasc.data.training import TrainingData
from tinyasc.errors import TinyAscError
from tinyasc.run.folder import StopFlag
from tinyasc.train.experiment import ensure_translator, plan_experiment, read_device_table, run_folder, write_tables

POLL_SECONDS = 0.5


def row_spec(row):
    """The --rows text of one Row: 'arch@width:norm[+translator]'."""
    return f"{row.arch}@{row.width}:{row.norm}" + ("+translator" if row.translator else "")


def worker_command(base_config, row, seed, out_dir, translator_dir):
    command = [sys.executable, "-m", "tinyasc", "experiment", "--rows", row_spec(row), "--seeds", str(seed),
               "--epochs", str(base_config.epochs), "--batch-size", str(base_config.batch_size),
               "--preset", base_config.preset, "--out", str(out_dir), "--quiet"]
    if base_config.data:
        command += ["--data", str(base_config.data)]
    if row.translator:
        command += ["--translator", str(translator_dir)]
    return command


def run_experiment_parallel(base_config, rows, seeds, out_dir, jobs, log=print, progress=True, translator=None):
    """tinyasc experiment with `jobs` runs at a time; returns (table rows, table text), or
    (None, None) if interrupted. The tables are written once the runs have finished (each
    worker writes its own run's meanwhile)."""
    plan = plan_experiment(base_config, rows, seeds, out_dir, translator, log)
    if plan.todo():  # the dataset and its features are made here once, not by two workers at a time
        TrainingData.load(base_config, log=log, progress=progress)
    done = train_in_parallel(base_config, plan.todo(), plan.out_dir, jobs, plan.translator_dir,
                             plan.translator_ready, log, progress)
    if done is None:
        return None, None
    for row, seed in done:
        plan.results[(row.key, seed)] = read_device_table(run_folder(plan.out_dir, row, seed))
    return write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)


def train_in_parallel(base_config, todo, out_dir, jobs, translator_dir, translator_given, log=print, progress=True):
    """Train the (row, seed) pairs of `todo` in up to `jobs` worker processes; returns the pairs
    that finished, or None if interrupted (each worker saved its checkpoint: the same command
    resumes)."""
    out_dir = Path(out_dir)
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    waiting, running, done = list(todo), {}, []
    translator_ready = translator_given
    with StopFlag() as stop:
        try:
            while (waiting or running) and not stop():
                while waiting and len(running) < jobs and not stop():
                    row, seed = waiting[0]
                    if row.translator and not translator_ready:
                        if running:  # the translator trains with every core, after the runs before it
                            break
                        if ensure_translator(base_config, out_dir, None, log, progress) is None:
                            return None
                        translator_ready = True
                    waiting.pop(0)
                    log_path = logs / f"{row.key}-seed{seed}.txt"
                    with open(log_path, "w") as log_file:
                        # a session of its own: Ctrl-C reaches this process, which asks each worker once
                        process = subprocess.Popen(worker_command(base_config, row, seed, out_dir, translator_dir),
                                                   stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                                   start_new_session=True)
                    running[process] = (row, seed, log_path, time.monotonic())
                    log(f"--- {row.name}, seed {seed}: {run_folder(out_dir, row, seed)} (log: {log_path})")
                for process in [p for p in running if p.poll() is not None]:
                    row, seed, log_path, started = running.pop(process)
                    if process.returncode != 0:
                        if process.returncode in (130, -signal.SIGINT):
                            return None
                        raise TinyAscError(f"the run {row.key}-seed{seed} failed (exit code {process.returncode}); "
                                           f"its last lines are in {log_path}: {_last_line(log_path)}")
                    done.append((row, seed))
                    log(f"finished {row.name}, seed {seed} in {(time.monotonic() - started) / 60:.1f} min")
                time.sleep(POLL_SECONDS)
        finally:
            _stop_workers(running, log)
    return None if stop() else done


def _stop_workers(running, log):
    """Ask the workers still running to stop as Ctrl-C does (each saves its checkpoint), and wait."""
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    try:
        for process, (row, seed, log_path, _) in running.items():
            process.wait(timeout=600)
            log(f"stopped {row.key}-seed{seed}; its checkpoint is saved (log: {log_path})")
    except (KeyboardInterrupt, subprocess.TimeoutExpired):  # asked again, or a worker hangs: end them now
        for process in running:
            process.kill()
        raise


def _last_line(path):
    lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty)"
