"""`tinyasc compress` and the run folders it reads and writes: a QAT fine-tune's folder is the
model it reported, every run and teacher is checked before any training, a resumed fine-tune
refuses teachers whose weights changed, and a report cut short leaves the run unfinished."""
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from cli_checks import one_line_error  # tests/cli_checks.py
from tinyasc.cli import main
from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset
from tinyasc.data.training import TrainingData
from tinyasc.errors import TinyAscError
from tinyasc.run import plots
from tinyasc.run.checkpoint import CheckpointError
from tinyasc.train import classifier, parallel
from tinyasc.train.config import TrainConfig, load_run_config
from tinyasc.train.finetune import compress_runs, finetune_config
from tinyasc.train.inference import evaluate_run
from tinyasc.train.runs import finished


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny dataset, its features, and two finished runs of c=4 (seeds 0 and 1)."""
    home = tmp_path_factory.mktemp("home")
    root = home / "tiny"
    synth.write_dataset(root, preset="tiny", seed=0, progress=False)
    data = TrainingData.from_features(load_dataset(root), cache.load_features(load_dataset(root),
                                                                              cache_dir=home / "features",
                                                                              progress=False))
    runs = []
    for seed in (0, 1):
        run = home / f"run{seed}"
        config = TrainConfig(data=str(root), width=4, epochs=1, batch_size=8, seed=seed)
        classifier.train(config, run, log=lambda *a: None, progress=False, data=data)
        runs.append(run)
    return home, root, data, runs


QUIET = dict(log=lambda *a: None, progress=False)


def test_a_qat_fine_tune_folder_evaluates_as_the_model_it_reported(tiny, tmp_path, monkeypatch):
    home, root, data, (run, _) = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    compress_runs([run], tmp_path / "b2", prune=0.5, bits=2, epochs=1, data=data, **QUIET)
    folder = tmp_path / "b2" / "finetune-0"
    evaluate_run(folder, log=lambda *a: None, progress=False)
    # 2 bits move the weights far: the float weights would give another table
    assert (folder / "eval_device_table.csv").read_text() == (folder / "device_table.csv").read_text()
    _, model = classifier.load_run(folder)
    levels = [np.unique(p.data).size for name, p in model.named_parameters() if p.data.ndim == 4 and p.data.size > 8]
    assert max(levels) <= 3  # codes -1, 0, 1: each conv's weights take at most three values


def test_compress_checks_every_run_and_teacher_before_training(tiny, tmp_path, monkeypatch):
    home, root, data, (run, other) = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    damaged = tmp_path / "damaged"
    shutil.copytree(other, damaged)
    blob = (damaged / classifier.CHECKPOINT).read_bytes()
    (damaged / classifier.CHECKPOINT).write_bytes(blob[:3000])
    unfinished = tmp_path / "unfinished"
    config = TrainConfig(data=str(root), width=4, epochs=2, batch_size=8)
    trainer = classifier.Trainer(config, unfinished, data=data, **QUIET)
    trainer.fit(stop=lambda: trainer.epoch == 1)  # stopped after its first epoch
    translator = tmp_path / "translator"
    translator.mkdir()
    (translator / "translator.npz").write_bytes(b"")
    cases = {"damaged": ([str(run), str(damaged)], [], [str(damaged / classifier.CHECKPOINT), "corrupt"]),
             "unfinished": ([str(unfinished)], [], [str(unfinished), "not a finished run", "--resume"]),
             "teacher": ([str(run)], ["--teacher", str(unfinished)], ["--teacher", "not a finished run"]),
             "translator": ([str(translator)], [], [str(translator), "translator", "not a classifier run"])}
    for name, (runs, extra, needles) in cases.items():
        out = tmp_path / f"out-{name}"
        result = CliRunner().invoke(main, ["compress", *runs, *extra, "--prune", "0.5", "--epochs", "1",
                                           "--out", str(out), "--quiet"])
        one_line_error(result, *needles)
        assert not out.exists(), name  # nothing trained, nothing left


def test_a_resumed_fine_tune_refuses_a_teacher_whose_weights_changed(tiny, tmp_path, monkeypatch):
    home, root, data, (run, other) = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    teacher = tmp_path / "teacher"
    shutil.copytree(run, teacher)
    config = finetune_config(load_run_config(run), run, prune=0.5, bits=8, teachers=[teacher], epochs=2)
    part = tmp_path / "part"
    trainer = classifier.Trainer(config, part, data=data, **QUIET)
    trainer.fit(stop=lambda: trainer.epoch == 1)
    classifier.Trainer(config, part, data=data, **QUIET).restore(part / classifier.CHECKPOINT)  # same teacher: fine
    shutil.rmtree(teacher)
    shutil.copytree(other, teacher)  # another run in the teacher's place, same settings but the seed
    with pytest.raises(CheckpointError, match="teacher or starting runs .* are not those this run started with"):
        classifier.Trainer(config, part, data=data, **QUIET).restore(part / classifier.CHECKPOINT)


def test_a_report_cut_short_while_drawing_leaves_the_run_unfinished(tiny, tmp_path, monkeypatch):
    """device_table.csv marks a run finished (compress, table3 and experiment read it back), so
    it is written last, after the figures a finished run must have."""
    home, root, data, _ = tiny
    if not plots.available():
        pytest.skip("needs matplotlib (the test extra)")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    config = TrainConfig(data=str(root), width=4, epochs=1, batch_size=8)
    monkeypatch.setattr(plots, "confusion", killed)
    with pytest.raises(KeyboardInterrupt):
        classifier.train(config, tmp_path / "run", data=data, **QUIET)
    assert not finished(tmp_path / "run", 1) and not (tmp_path / "run" / "device_table.csv").exists()
    monkeypatch.undo()
    text, _ = classifier.train(config, tmp_path / "run", resume=True, data=data, **QUIET)
    assert text and (tmp_path / "run" / "confusion.png").is_file() and finished(tmp_path / "run", 1)


def test_a_worker_stopped_before_its_first_checkpoint_is_not_said_to_have_saved_one(tmp_path):
    # SIGINT's default action restored: a shell's background job (a test run started with &) ignores it
    sleeper = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    time.sleep(0.2)
    job = parallel.Job("student-seed1", "student, seed 1", tmp_path / "student-seed1", None)
    lines = []
    parallel._stop([parallel.Worker(job, process, tmp_path / "log.txt", time.monotonic())], lines.append)
    assert process.returncode == -signal.SIGINT
    assert lines == ["student-seed1: stopped before its first checkpoint"]
