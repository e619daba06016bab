"""Reliability: what a demanding user does to the commands, and what each must answer.

Every bad input or failed write ends in one line naming the file or value and the fix,
exit code 1, no traceback, and nothing half-written or lost. A full disk is simulated by
making a write raise OSError(ENOSPC); nothing here fills a real disk.
"""
import errno
import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import click
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from cli_checks import one_line_error  # tests/cli_checks.py
from tinyasc.cli import main
from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset
from tinyasc.errors import DataError, TinyAscError
from tinyasc.train import classifier
from tinyasc.run.checkpoint import CheckpointError, load_checkpoint
from tinyasc.train.classifier import build_model
from tinyasc.train.classifier import Trainer, TrainingDiverged
from tinyasc.train.config import TrainConfig
from tinyasc.data.training import TrainingData

QUIET = lambda *_: None  # noqa: E731


def dead_pid():
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A TINYASC_HOME of this module with the tiny dataset D and a finished run R on it."""
    home = tmp_path_factory.mktemp("home")
    root = home / "D"
    synth.write_dataset(root, preset="tiny", seed=0, progress=False)
    old = os.environ.get("TINYASC_HOME")
    os.environ["TINYASC_HOME"] = str(home)
    try:
        result = CliRunner().invoke(main, ["train", "--data", str(root), "--model-width", "4", "--epochs", "1",
                                           "--batch-size", "8", "--out", str(home / "R"), "--quiet"])
    finally:
        if old is None:
            del os.environ["TINYASC_HOME"]
        else:
            os.environ["TINYASC_HOME"] = old
    assert result.exit_code == 0, result.output
    return home, root, home / "R"


@pytest.fixture
def env(home, monkeypatch):
    monkeypatch.setenv("TINYASC_HOME", str(home[0]))
    return home


@pytest.fixture(scope="module")
def tiny_data(home):
    dataset = load_dataset(home[1])
    return TrainingData.from_features(dataset, cache.load_features(dataset, cache_dir=home[0] / "features",
                                                                   progress=False))


def copy_run(run, dest):
    shutil.copytree(run, dest)
    return dest


def rewrite_checkpoint(path, change):
    """Rewrite an .npz checkpoint with change(arrays, meta) applied, bypassing save_checkpoint's checks."""
    arrays, meta = load_checkpoint(path)
    change(arrays, meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# ------------------------------------------------------------- 1. divergence is a failure

def _poison_last_step(monkeypatch, trainer, at_step):
    """train_step that makes a weight NaN after step `at_step` (1-based, counted over the run)
    while its loss stays finite: what a huge learning rate does on an epoch's last step."""
    real_step, calls = classifier.train_step, {"n": 0}

    def step(model, optimizer, x, y, loss_fn=None, masks=None):
        loss, logits = real_step(model, optimizer, x, y, loss_fn, masks)
        calls["n"] += 1
        if calls["n"] == at_step:
            model.head.conv.weight.data[...] = np.nan
        return loss, logits

    monkeypatch.setattr(classifier, "train_step", step)


def test_weights_that_turn_nan_on_the_last_step_fail_the_run(tiny_data, tmp_path, monkeypatch):
    config = TrainConfig(width=4, epochs=2, batch_size=8, seed=3)
    trainer = Trainer(config, tmp_path / "run", data=tiny_data, log=QUIET, progress=False)
    _poison_last_step(monkeypatch, trainer, 2 * trainer.steps_per_epoch)  # the run's very last step
    with pytest.raises(TrainingDiverged, match=r"end of epoch 1\) is kept") as caught:
        trainer.fit()
    assert "head.conv.weight holds NaN" in str(caught.value) and "\n" not in str(caught.value)
    arrays, meta = load_checkpoint(tmp_path / "run" / classifier.CHECKPOINT)
    assert meta["epoch"] == 1  # the good checkpoint, not overwritten
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")


def test_the_kept_checkpoint_after_a_nan_loss_is_finite(tiny_data, tmp_path, monkeypatch):
    """NaN weights at the end of epoch 2, NaN loss at epoch 3: what is kept is epoch 1's."""
    config = TrainConfig(width=4, epochs=3, batch_size=8, seed=3)
    trainer = Trainer(config, tmp_path / "run", data=tiny_data, log=QUIET, progress=False)
    _poison_last_step(monkeypatch, trainer, 2 * trainer.steps_per_epoch)
    with pytest.raises(TrainingDiverged, match=r"end of epoch 1\) is kept"):
        trainer.fit()
    arrays, meta = load_checkpoint(tmp_path / "run" / classifier.CHECKPOINT)
    assert meta["epoch"] == 1
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")


def test_test_outputs_that_are_not_finite_fail_the_run_before_it_saves(tiny_data, tmp_path, monkeypatch):
    """A loss that stays finite in training while the model's eval-mode outputs overflow (a
    width-1 CP-ResNet did) used to give a table of NaN log losses and exit code 0."""
    real = classifier.evaluate.predict_proba

    def overflowing(model, features, rows):
        probs = real(model, features, rows)
        probs[0, 0] = np.nan
        return probs

    config = TrainConfig(width=4, epochs=2, batch_size=8, seed=3, eval_every=2)
    trainer = Trainer(config, tmp_path / "run", data=tiny_data, log=QUIET, progress=False)
    monkeypatch.setattr(classifier.evaluate, "predict_proba", overflowing)
    with pytest.raises(TrainingDiverged, match=r"test split are not finite numbers after epoch 2; the last good "
                                               r"checkpoint \(end of epoch 1\) is kept"):
        trainer.fit()
    _, meta = load_checkpoint(tmp_path / "run" / classifier.CHECKPOINT)
    assert meta["epoch"] == 1


def test_a_diverging_run_says_so_once_without_numpy_warnings(tiny_data, tmp_path):
    """A huge learning rate overflows on its way to a NaN loss: the one-line TrainingDiverged says
    so; NumPy's overflow warnings, printed before it, would only repeat it."""
    config = TrainConfig(width=4, epochs=2, batch_size=8, seed=3, lr=1e30)
    trainer = Trainer(config, tmp_path / "run", data=tiny_data, log=QUIET, progress=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(TrainingDiverged, match="Try a lower --lr"):
            trainer.fit()
    assert [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)] == []


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "resume", "teacher"])
def test_every_command_refuses_nan_weights(env, tmp_path, command):
    home, root, run = env
    bad = copy_run(run, tmp_path / "bad")

    def poison(arrays, meta):
        arrays["model/head.conv.weight"][0, 0, 0, 0] = np.nan

    rewrite_checkpoint(bad / classifier.CHECKPOINT, poison)
    args = {"evaluate": ["evaluate", str(bad), "--quiet"],
            "predict": ["predict", str(bad), str(root / "audio"), "--out", str(tmp_path / "s.tsv")],
            "export": ["export", str(bad), "--onnx", str(tmp_path / "m.onnx"), "--no-check"],
            "resume": ["train", "--resume", str(bad), "--quiet"],
            "teacher": ["train", "--data", str(root), "--model-width", "2", "--epochs", "1", "--batch-size", "8",
                        "--teacher", str(bad), "--out", str(tmp_path / "student"), "--quiet"]}[command]
    one_line_error(CliRunner().invoke(main, args), "checkpoint.npz", "head.conv.weight holds NaN", "--lr")
    assert not (tmp_path / "s.tsv").exists() and not (tmp_path / "m.onnx").exists()


def test_nan_weights_are_never_saved(tmp_path):
    from tinyasc.run.checkpoint import NonFiniteWeights, save_checkpoint

    path = tmp_path / "c.npz"
    save_checkpoint(path, {"w": np.ones(3)}, {"epoch": 1})
    with pytest.raises(NonFiniteWeights, match="w holds infinity"):
        save_checkpoint(path, {"w": np.array([1.0, np.inf, 0.0])}, {"epoch": 2})
    assert load_checkpoint(path)[1] == {"epoch": 1}


# ------------------------------------------------------------ 2. one run, one folder

def test_runs_started_in_the_same_second_get_their_own_folders(env, tmp_path, monkeypatch):
    home, root, _ = env
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tinyasc.cli._default_run_dir", lambda: "runs/20240101-120000")
    other = tmp_path / "runs" / "20240101-120000"
    other.mkdir(parents=True)
    (other / "config.json").write_text('{"the": "other run"}')  # the other run claimed it first
    result = CliRunner().invoke(main, ["train", "--data", str(root), "--model-width", "2", "--epochs", "1",
                                       "--batch-size", "8", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "run folder: runs/20240101-120000-2" in result.output
    assert (other / "config.json").read_text() == '{"the": "other run"}'
    assert sorted(os.listdir(other)) == ["config.json"]
    assert (tmp_path / "runs" / "20240101-120000-2" / classifier.CHECKPOINT).is_file()


def test_a_folder_in_use_by_another_run_is_refused(env, tmp_path):
    home, root, _ = env
    run = tmp_path / "busy"
    run.mkdir()
    fd = os.open(run, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what the other tinyasc train holds while it runs
    try:
        result = CliRunner().invoke(main, ["train", "--data", str(root), "--model-width", "2", "--epochs", "1",
                                           "--batch-size", "8", "--out", str(run), "--quiet"])
        one_line_error(result, str(run), "in use by another tinyasc run")
        assert os.listdir(run) == []  # not even its config.json
        result = CliRunner().invoke(main, ["translator", "train", "--data", str(root), "--out", str(run), "--quiet"])
        one_line_error(result, str(run), "in use")
    finally:
        os.close(fd)


def test_first_use_generation_waits_for_the_other_process(tmp_path, monkeypatch):
    """While a run waits for the lock, another process generates the dataset: the waiting run
    must reuse it, not generate it a second time (which would orphan the first one's features)."""
    import contextlib

    monkeypatch.setenv("TINYASC_HOME", str(tmp_path))
    path = synth.default_dataset_path("tiny", 0)
    real_write, calls = synth.write_dataset, []

    @contextlib.contextmanager
    def lock_taken_while_the_other_generates(folder, busy=None):
        folder.mkdir(parents=True, exist_ok=True)
        real_write(path, "tiny", 0, progress=False)  # the other process, finishing while we wait
        yield folder

    monkeypatch.setattr(synth.write, "exclusive_folder", lock_taken_while_the_other_generates)
    monkeypatch.setattr(synth.write, "write_dataset", lambda *a, **k: calls.append(a) or real_write(*a, **k))
    assert synth.ensure_default_dataset("tiny", 0, progress=False) == path
    assert calls == [] and synth.is_complete(path, "tiny", 0)


def test_the_folder_lock_excludes_a_second_holder(tmp_path):
    from tinyasc.fileio import exclusive_folder, new_folder

    with exclusive_folder(tmp_path / "run", "busy"):
        with pytest.raises(TinyAscError, match="busy"):
            with exclusive_folder(tmp_path / "run", "busy"):
                pass
    with exclusive_folder(tmp_path / "run", "busy"):  # released when the holder ends
        pass
    assert [new_folder(tmp_path / "x").name for _ in range(3)] == ["x", "x-2", "x-3"]


# ------------------------------------------------- 3. CSV names stay inside the dataset

@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_csv_names_cannot_leave_the_dataset_folder(env, tmp_path, kind):
    home, root, _ = env
    data = tmp_path / "data"
    shutil.copytree(root, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(next((data / "audio").glob("*-a.wav")), elsewhere / "airport-lyon-9-9-a.wav")
    name = ("audio/../../elsewhere/airport-lyon-9-9-a.wav" if kind == "dotdot"
            else str(elsewhere / "airport-lyon-9-9-a.wav"))
    with open(data / "meta.csv", "a") as f:
        f.write(f"{name}\tairport\tlyon-9\ta\n")
    with open(data / "evaluation_setup" / "fold1_train.csv", "a") as f:
        f.write(f"{name}\tairport\n")
    with pytest.raises(DataError, match="meta.csv: line") as caught:
        load_dataset(data)
    assert "inside the dataset folder" in str(caught.value)
    one_line_error(CliRunner().invoke(main, ["data-info", "--data", str(data)]), "meta.csv", name)


# ------------------------------------------------------- 4. numbers from outside, checked

@pytest.mark.parametrize("args, needle", [
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--model-width", "100000"], "--model-width"),
    (["train", "--kd-temperature", "inf"], "--kd-temperature"),
    (["synth", "--preset", "tiny", "--seed", "-1"], "--seed"),
    (["translator", "train", "--seed", "-5"], "--seed"),
    (["translator", "train", "--width", "100000"], "--width"),
    (["experiment", "--rows", "resnorm", "--seeds", "-1"], "--seeds"),
    (["gradcheck", "--seed", "-1"], "--seed"),
    (["bench", "--batch", "-1"], "--batch"),
])
def test_command_line_numbers_are_checked_before_use(env, tmp_path, args, needle):
    home, root, _ = env
    extra = [] if args[0] in ("gradcheck", "bench") else ["--out", str(tmp_path / "out")]
    if args[0] in ("train", "translator", "experiment"):
        extra += ["--data", str(root)]
    result = CliRunner().invoke(main, args + extra)
    one_line_error(result, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value", [("subbands", 0), ("subbands", 7), ("width", 10 ** 6), ("seed", -1),
                                          ("freq_width", -3), ("lr", "nan"), ("preset", "huge")])
def test_config_json_values_are_checked(env, tmp_path, field, value):
    home, root, run = env
    bad = copy_run(run, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    config[field] = float(value) if value == "nan" else value
    (bad / "config.json").write_text(json.dumps(config))
    one_line_error(CliRunner().invoke(main, ["evaluate", str(bad), "--quiet"]), field.split("_")[0],
                   bad / "config.json")


def _npz_with_member(path, name, header_shape, data):
    """An .npz whose member `name` declares `header_shape` (float32) but holds only `data`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
    meta = io.BytesIO()
    np.lib.format.write_array(meta, np.frombuffer(b"{}", dtype=np.uint8))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name + ".npy", header.getvalue() + data)
        zf.writestr("__meta__.npy", meta.getvalue())


@pytest.mark.parametrize("epoch, step", [(-3, 0), (10 ** 9, 0), (0, 10 ** 9)])
def test_checkpoint_positions_are_checked(env, tmp_path, epoch, step):
    home, root, run = env
    bad = copy_run(run, tmp_path / "bad")

    def move(arrays, meta):
        meta["epoch"], meta["step_in_epoch"] = epoch, step

    rewrite_checkpoint(bad / classifier.CHECKPOINT, move)
    one_line_error(CliRunner().invoke(main, ["train", "--resume", str(bad), "--quiet"]), "checkpoint.npz",
                   "outside this run")


def test_an_npz_header_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    path = tmp_path / "checkpoint.npz"
    _npz_with_member(path, "model/w", (10 ** 15,), b"\x00" * 16)
    with pytest.raises(CheckpointError, match=r"declares shape \(1000000000000000,\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("change", ["huge width", "models not a list", "bits", "wrong tensor list", "num_bins"])
def test_compressed_model_metadata_is_checked(tmp_path, change):
    from tinyasc.compress import load_compressed, save_compressed
    from tinyasc.models import BCResNetMod

    path = tmp_path / "model.npz"
    save_compressed(path, BCResNetMod(c=2), bits=8)

    def edit(arrays, meta):
        arch = meta["models"][0]["architecture"]
        if change == "huge width":
            arch["c"] = 10 ** 6
        elif change == "models not a list":
            meta["models"] = "x"
        elif change == "bits":
            meta["bits"] = 99
        elif change == "wrong tensor list":
            meta["models"][0]["convs"][0][1] = [10 ** 5, 10 ** 5, 5, 5]
        else:
            arch["num_bins"] = 10 ** 9

    rewrite_checkpoint(path, edit)
    with pytest.raises(CheckpointError, match=str(path)):
        load_compressed(path)


def test_min_frames_are_those_of_the_networks():
    import tinyasc as ta
    from tinyasc.checks import MIN_FRAMES

    for arch, width in (("bcresnet-mod", 2), ("bcresnet", 1), ("cpresnet", 2)):
        norm = "resnorm" if arch == "bcresnet-mod" else "none"
        model = build_model(TrainConfig(arch=arch, width=width, norm=norm)).eval()
        with ta.no_grad():
            model(ta.Tensor(np.zeros((1, 1, 256, MIN_FRAMES[arch]), np.float32)))
            if MIN_FRAMES[arch] > 1:
                with pytest.raises(ValueError):
                    model(ta.Tensor(np.zeros((1, 1, 256, MIN_FRAMES[arch] - 1), np.float32)))


def test_clips_too_short_for_the_network_are_one_line(env, tmp_path):
    home, root, run = env
    short = tmp_path / "short"
    shutil.copytree(root, short)
    for wav in (short / "audio").glob("*.wav"):
        sf.write(wav, np.zeros(1600, np.float32), 16000)  # 0.1 s: 4 frames, BC-ResNet-Mod needs 7
    one_line_error(CliRunner().invoke(main, ["evaluate", str(run), "--data", str(short), "--quiet"]),
                   "too short", "needs at least 7 frames")
    one_line_error(CliRunner().invoke(main, ["train", "--data", str(short), "--model-width", "2", "--epochs", "1",
                                             "--batch-size", "8", "--out", str(tmp_path / "r"), "--quiet"]),
                   "too short")
    one_line_error(CliRunner().invoke(main, ["export", str(run), "--onnx", str(tmp_path / "m.onnx"),
                                             "--frames", str(10 ** 8)]), "--frames")


# ----------------------------------------------------- 5. a checkpoint must fit its run

def test_a_checkpoint_of_another_normalization_is_refused(env, tmp_path):
    home, root, run = env
    other = copy_run(run, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["norm"] = "none"  # the same arrays as ResNorm: only the recorded settings tell them apart
    (other / "config.json").write_text(json.dumps(config))
    one_line_error(CliRunner().invoke(main, ["evaluate", str(other), "--quiet"]),
                   "checkpoint.npz", "norm 'resnorm' there, 'none'")
    one_line_error(CliRunner().invoke(main, ["train", "--resume", str(other), "--quiet"]), "norm 'resnorm' there")


def test_a_min_var_run_without_its_selection_is_refused(env, tmp_path):
    home, root, run = env
    minvar = copy_run(run, tmp_path / "minvar")
    config = json.loads((minvar / "config.json").read_text())
    config.update(select="minvar", val_fraction=0.1)
    (minvar / "config.json").write_text(json.dumps(config))
    one_line_error(CliRunner().invoke(main, ["evaluate", str(minvar), "--quiet"]), "selected.npz", "Min Var")


def test_a_checkpoint_that_does_not_fit_is_a_short_message(tiny_data, tmp_path, home):
    other = Trainer(TrainConfig(width=6, epochs=1, batch_size=8), tmp_path / "o", data=tiny_data, log=QUIET,
                    progress=False)
    with pytest.raises(CheckpointError) as caught:
        other.restore(home[2] / classifier.CHECKPOINT)
    message = str(caught.value)
    assert "shape mismatch: head.conv.weight" in message and "more" in message
    assert len(message) < 500 and "\n" not in message


# ------------------------------------------------------------------------ 6. full disk

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_stops_the_feature_cache_before_it_writes(env, tmp_path, monkeypatch):
    home, root, _ = env
    dataset = load_dataset(root)
    monkeypatch.setattr(os, "posix_fallocate", _enospc, raising=False)
    with pytest.raises(DataError, match="no space left for the feature cache") as caught:
        cache.load_features(dataset, cache_dir=tmp_path / "features", progress=False)
    assert str(tmp_path / "features") in str(caught.value)
    assert re.search(r"\(\d[\d,]*\.\d MB\)", str(caught.value)) and "(0.0 MB)" not in str(caught.value)
    assert [p.name for p in (tmp_path / "features").iterdir() if not p.name.endswith(".lock")] == []


def test_a_full_disk_during_synth_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def full(path, *args, **kwargs):
        raise sf.LibsndfileError(0, f"Error opening {path!r}: ")

    monkeypatch.setattr(sf, "write", full)
    out = tmp_path / "data"
    one_line_error(CliRunner().invoke(main, ["synth", "--preset", "tiny", "--out", str(out), "--quiet"]),
                   ".wav", "cannot write")
    assert os.listdir(tmp_path) == []


def test_evaluate_writes_both_files_or_neither(env, tmp_path, monkeypatch):
    home, root, run = env
    mine = copy_run(run, tmp_path / "run")
    for name in ("eval_device_table.csv", "eval_classes.csv"):
        (mine / name).unlink(missing_ok=True)
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync_fails_the_second_file(fd):
        if os.path.isfile(f"/proc/self/fd/{fd}") and ".eval_" in os.readlink(f"/proc/self/fd/{fd}"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_fails_the_second_file)
    line = one_line_error(CliRunner().invoke(main, ["evaluate", str(mine), "--quiet"]), "eval_", "no space left")
    assert "a file" not in line
    assert not (mine / "eval_device_table.csv").exists() and not (mine / "eval_classes.csv").exists()
    assert [p for p in os.listdir(mine) if ".tmp" in p] == []


def test_evaluate_out_writes_elsewhere_and_checks_first(env, tmp_path, monkeypatch):
    """evaluate --out DIR: the two CSVs go to DIR (made with its parents), not into the run; a DIR
    that cannot be written is refused before any work, and one whose files fail to write is
    removed again; an empty --out is refused."""
    run = copy_run(env[2], tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    result = CliRunner().invoke(main, ["evaluate", str(run), "--out", str(tmp_path / "a" / "b"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["eval_classes.csv", "eval_device_table.csv"]
    assert sorted(p.name for p in run.iterdir()) == before and "per-class accuracy" in result.output

    (tmp_path / "file").write_text("")
    one_line_error(CliRunner().invoke(main, ["evaluate", str(run), "--out", str(tmp_path / "file" / "x")]),
                   "cannot write")
    empty = CliRunner().invoke(main, ["evaluate", str(run), "--out", " "])
    assert empty.exit_code == 2 and "'--out': an empty path" in empty.output

    monkeypatch.setattr(os, "fsync", _enospc)
    one_line_error(CliRunner().invoke(main, ["evaluate", str(run), "--out", str(tmp_path / "c" / "d"), "--quiet"]),
                   "eval_", "no space left")
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------ 7. leftovers

def test_stale_synth_temporaries_are_removed_on_the_next_start(tmp_path):
    dead = tmp_path / f".data.tmp-{dead_pid()}-1"
    (dead / "audio").mkdir(parents=True)
    (dead / "audio" / "x.wav").write_bytes(b"\x00" * 1000)
    alive = tmp_path / ".data.tmp-1-1"  # process 1 always runs: its folder may be in use
    alive.mkdir()
    result = CliRunner().invoke(main, ["synth", "--preset", "tiny", "--out", str(tmp_path / "data"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert not dead.exists() and alive.exists()


def test_stale_checkpoint_temporaries_are_removed(tmp_path):
    from tinyasc.run.checkpoint import save_checkpoint

    stale = tmp_path / f".checkpoint.npz.tmp-{dead_pid()}-7"
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "checkpoint.npz", {"w": np.ones(2)}, {})
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]


def test_an_export_that_fails_its_check_leaves_no_file(env, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from tinyasc.compress import onnx_export

    home, root, run = env
    monkeypatch.setattr(onnx_export, "onnx_predict", lambda path, x: np.full((len(x), 10), 99.0, np.float32))
    one_line_error(CliRunner().invoke(main, ["export", str(run), "--onnx", str(tmp_path / "m.onnx")]),
                   "onnxruntime disagrees", "m.onnx was not written")
    assert os.listdir(tmp_path) == []


def test_an_export_that_cannot_write_leaves_no_temporary(env, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    home, root, run = env
    monkeypatch.setattr(os, "replace", _enospc)
    one_line_error(CliRunner().invoke(main, ["export", str(run), "--onnx", str(tmp_path / "m.onnx"), "--no-check"]),
                   "m.onnx", "no space left")
    assert os.listdir(tmp_path) == []


def test_predict_out_naming_a_folder_names_that_folder(env, tmp_path):
    home, root, run = env
    folder = tmp_path / "subs"
    folder.mkdir()
    line = one_line_error(CliRunner().invoke(main, ["predict", str(run), str(root / "audio"), "--out", str(folder)]),
                          str(folder), "is a folder")
    assert ".tmp" not in line and os.listdir(folder) == []


# --------------------------------------------------------- 8. output that others parse

@pytest.mark.parametrize("bad", ["\t", "\n"])
def test_predict_refuses_names_that_would_break_the_submission_file(env, tmp_path, bad):
    home, root, run = env
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(next((root / "audio").glob("*.wav")), clips / f"one{bad}two.wav")
    result = CliRunner().invoke(main, ["predict", str(run), str(clips), "--out", str(tmp_path / "s.tsv")])
    one_line_error(result, "rename the file")
    assert not (tmp_path / "s.tsv").exists()
    from tinyasc.train import evaluate
    with pytest.raises(ValueError, match="tab-separated"):
        evaluate.submission_tsv([f"a{bad}b.wav"], np.full((1, 10), 0.1))


# ----------------------------------------------------------------------- 9. small ones

class _Terminal(io.StringIO):
    """stderr as a terminal: where tinyasc draws its progress bars."""

    def isatty(self):
        return True


def test_quiet_means_no_progress_bars(tmp_path, monkeypatch):
    """Every bar of train (dataset, features, epochs), evaluate and predict is drawn on a terminal,
    and --quiet silences each of them."""
    import types

    from tinyasc import fileio

    def run(args):
        terminal = _Terminal()
        monkeypatch.setattr(fileio, "sys", types.SimpleNamespace(stderr=terminal))  # the bars' stderr
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        return terminal.getvalue()

    monkeypatch.setenv("TINYASC_PROGRESS", "1")
    for quiet in ([], ["--quiet"]):
        home = tmp_path / f"home{len(quiet)}"
        monkeypatch.setenv("TINYASC_HOME", str(home))  # first use: synth and features both run
        audio = synth.default_dataset_path("tiny", 0) / "audio"
        run_dir = tmp_path / f"run{len(quiet)}"
        drawn = [run(["train", "--preset", "tiny", "--model-width", "2", "--epochs", "1", "--batch-size", "8",
                      "--out", str(run_dir)] + quiet)]
        shutil.rmtree(home / "features")  # evaluate computes them again
        drawn.append(run(["evaluate", str(run_dir)] + quiet))
        drawn.append(run(["predict", str(run_dir), str(audio), "--out", str(tmp_path / f"s{len(quiet)}.tsv")] + quiet))
        if quiet:
            assert drawn == ["", "", ""]
        else:
            assert all(labels in text for labels, text in zip((("synth", "features", "epoch 1"), ("features",),
                                                                ("predict",)), drawn) for labels in labels)


def test_a_large_val_fraction_asks_to_lower_it(home, tmp_path):
    dataset = load_dataset(home[1])
    features = cache.load_features(dataset, cache_dir=home[0] / "features", progress=False)
    data = TrainingData.from_features(dataset, features, val_fraction=0.95, seed=0)
    config = TrainConfig(width=2, epochs=1, batch_size=8, select="minvar", val_fraction=0.95)
    with pytest.raises(TinyAscError, match="lower --val-fraction"):
        Trainer(config, tmp_path / "run", data=data, log=QUIET, progress=False)


# ------------------------------------------------------- 10. CI runs the reference tests

def test_the_test_extra_installs_the_references():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    test = project["optional-dependencies"]["test"]
    assert "torch==2.13.0" in test  # pinned: an unpinned torch pulls a multi-GB CUDA build
    assert any(r.startswith("onnx>=") for r in test) and any(r.startswith("onnxruntime") for r in test)


# --------------------------------------------- 11. damaged files: every array and value is checked

def _compressed(tmp_path, config=None):
    from tinyasc.compress import save_compressed
    from tinyasc.models import BCResNetMod

    path = tmp_path / "model.npz"
    save_compressed(path, BCResNetMod(c=2), bits=8, config=config)
    return path


@pytest.mark.parametrize("key, bad", [("positions", lambda a: a.astype(np.float32)),
                                      ("half", lambda a: a.reshape(1, -1)),
                                      ("scales", lambda a: a.astype(str)),
                                      ("scales", lambda a: np.full_like(a, np.inf)),
                                      ("values", lambda a: a.astype(np.float16))])
def test_compressed_arrays_of_the_wrong_type_are_refused(tmp_path, key, bad):
    from tinyasc.compress import load_compressed

    path = _compressed(tmp_path)
    rewrite_checkpoint(path, lambda arrays, meta: arrays.update({f"model0/{key}": bad(arrays[f"model0/{key}"])}))
    with pytest.raises(CheckpointError, match=rf"{path}: model 0's array '{key}'"):
        load_compressed(path)


@pytest.mark.parametrize("change", ["arch", "width", "missing"])
def test_a_compressed_models_settings_must_describe_it(tmp_path, change):
    config = json.loads(TrainConfig(width=2).to_json())
    if change == "arch":
        config.update(arch="bcresnet", norm="none")  # valid settings, but not the model stored
    elif change == "width":
        config["width"] = 3
    else:
        del config["width"]
    path = _compressed(tmp_path, config)
    with pytest.raises(TinyAscError, match=str(path)) as caught:
        classifier.load_run(path)
    assert ("missing settings ['width']" if change == "missing" else "do not describe") in str(caught.value)
    config["arch"], config["norm"], config["width"] = "bcresnet-mod", "resnorm", 2
    classifier.load_run(_compressed(tmp_path, config))  # the settings that do describe it load


@pytest.mark.parametrize("bad", [lambda a: a.astype(str), lambda a: a > 0, lambda a: a.astype(np.complex64),
                                 lambda a: a.astype("V4")])
def test_checkpoint_weights_of_the_wrong_type_are_refused(env, tmp_path, bad):
    home, root, run = env
    damaged = copy_run(run, tmp_path / "bad")
    key = "model/head.conv.weight"
    rewrite_checkpoint(damaged / classifier.CHECKPOINT, lambda arrays, meta: arrays.update({key: bad(arrays[key])}))
    one_line_error(CliRunner().invoke(main, ["evaluate", str(damaged), "--quiet"]), "checkpoint.npz",
                   "head.conv.weight", "wrong type")


def _momentum_key(arrays):
    return next(k for k in arrays if k.startswith("optim/") and k.endswith("momentum_buffer"))


@pytest.mark.parametrize("change, needle", [
    ("strings", "momentum_buffer is <U"),
    ("0-d", "momentum_buffer is float32 of shape ()"),
    ("unknown state", "SGD keeps no 'step'"),
    ("no such parameter", "names no parameter"),
    ("history", "history holds 1 rows for 0 finished epochs"),
    ("history row", "history row 1"),
    ("running", "running totals"),
])
def test_a_damaged_optimizer_state_or_history_stops_the_resume_before_training(env, tmp_path, change, needle):
    home, root, run = env
    damaged = copy_run(run, tmp_path / "bad")
    config = json.loads((damaged / "config.json").read_text())
    config["epochs"] = 2  # one more epoch to train: a resume that starts would write the checkpoint
    (damaged / "config.json").write_text(json.dumps(config))

    def edit(arrays, meta):
        key = _momentum_key(arrays)
        if change == "strings":
            arrays[key] = arrays[key].astype(str)
        elif change == "0-d":
            arrays[key] = np.float32(1.0).reshape(())
        elif change == "unknown state":
            arrays["optim/1.step"] = np.array(10 ** 18)
        elif change == "no such parameter":
            arrays["optim/9999.momentum_buffer"] = arrays[key]
        elif change == "history":
            meta["epoch"], meta["history"] = 0, [5]
        elif change == "history row":
            meta["history"][0]["epoch"] = 7
        else:
            meta["running"] = ["a", 0, 0, 0.0]

    path = damaged / classifier.CHECKPOINT
    rewrite_checkpoint(path, edit)
    before = path.read_bytes()
    one_line_error(CliRunner().invoke(main, ["train", "--resume", str(damaged), "--quiet"]), "checkpoint.npz",
                   needle)
    assert path.read_bytes() == before


@pytest.mark.parametrize("epoch", [None, "1", True, -1])
def test_a_checkpoint_without_a_valid_epoch_is_not_taken_for_finished(env, tmp_path, epoch):
    from tinyasc.train.runs import finished

    home, root, run = env
    damaged = copy_run(run, tmp_path / "bad")

    def edit(arrays, meta):
        if epoch is None:
            del meta["epoch"]
        else:
            meta["epoch"] = epoch

    rewrite_checkpoint(damaged / classifier.CHECKPOINT, edit)
    with pytest.raises(CheckpointError, match="no valid epoch count"):
        finished(damaged, 1)
    assert finished(run, 1) and not finished(run, 2)


@pytest.mark.parametrize("table, needle", [
    ("device,accuracy\nA,50\noverall,notanumber\n", "'notanumber'"),
    ("name,acc\nA,50\noverall,50\n", "need device and accuracy"),
    ("device,accuracy\nA,50\n", "no 'overall' row"),
    ("device,accuracy\nA,150\noverall,50\n", "'150'"),
    ("device,accuracy\nA,50\nA,60\noverall,55\n", "row 'A'"),
    ("device,accuracy\nA,5\xff0\noverall,55\n", "codec can't decode"),
    ('device,accuracy\nA,"' + "x" * 200_000 + "\n", "field larger than field limit"),
])
def test_a_damaged_device_table_is_one_line(tmp_path, table, needle):
    from tinyasc.train.runs import read_device_table

    (tmp_path / "device_table.csv").write_bytes(table.encode("latin-1"))
    with pytest.raises(TinyAscError, match=str(tmp_path / "device_table.csv")) as caught:
        read_device_table(tmp_path)
    assert needle in str(caught.value)


@pytest.mark.parametrize("change, needles", [
    ("missing", ("config.json", "missing settings ['width']")),
    ("wrong type", ("config.json", "width='10' should be a int")),
])
def test_config_json_errors_name_the_file(env, tmp_path, change, needles):
    home, root, run = env
    damaged = copy_run(run, tmp_path / "bad")
    config = json.loads((damaged / "config.json").read_text())
    if change == "missing":
        del config["width"]
    else:
        config["width"] = "10"
    (damaged / "config.json").write_text(json.dumps(config))
    for args in (["evaluate", str(damaged), "--quiet"], ["train", "--resume", str(damaged), "--quiet"]):
        one_line_error(CliRunner().invoke(main, args), *needles)


def test_compress_refuses_a_zero_learning_rate(env, tmp_path):
    home, root, run = env
    one_line_error(CliRunner().invoke(main, ["compress", str(run), "--lr", "0", "--epochs", "1", "--out",
                                             str(tmp_path / "out"), "--quiet"]), "--lr must be positive")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["train-teacher", "train-translator", "train-data", "compress-teacher",
                                     "experiment-data"])
def test_a_missing_input_folder_is_refused_before_any_folder_is_made(env, tmp_path, command):
    home, root, run = env
    out, missing = tmp_path / "out", str(tmp_path / "nonexistent")
    tiny = ["--model-width", "2", "--epochs", "1", "--batch-size", "8", "--quiet"]
    args = {"train-teacher": ["train", "--data", str(root), "--teacher", missing, "--out", str(out)] + tiny,
            "train-translator": ["train", "--data", str(root), "--translator", missing, "--out", str(out)] + tiny,
            "train-data": ["train", "--data", missing, "--out", str(out)] + tiny,
            "compress-teacher": ["compress", str(run), "--teacher", missing, "--epochs", "1", "--out", str(out),
                                 "--quiet"],
            "experiment-data": ["experiment", "--data", missing, "--rows", "resnorm", "--seeds", "0", "--out",
                                str(out)] + tiny}[command]
    one_line_error(CliRunner().invoke(main, args), missing, "no such file or folder")
    assert not out.exists()


def test_a_run_that_fails_after_holding_its_new_folder_leaves_none(tmp_path):
    from tinyasc.fileio import exclusive_folder

    busy = "in use by another run"
    with pytest.raises(RuntimeError):
        with exclusive_folder(tmp_path / "new" / "run", busy):
            raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "new" / "run").exists()
    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        with exclusive_folder(kept, busy):
            (kept / "config.json").write_text("{}")
            raise RuntimeError("failed after writing")
    assert (kept / "config.json").is_file()
    with exclusive_folder(tmp_path / "held", busy):  # turned away by the holder: its folder stays
        with pytest.raises(TinyAscError, match=busy):
            with exclusive_folder(tmp_path / "held", busy):
                pass
        assert (tmp_path / "held").is_dir()
    with pytest.raises(RuntimeError):  # a holder others may be waiting for never removes the folder
        with exclusive_folder(tmp_path / "queued"):
            raise RuntimeError("failed")
    assert (tmp_path / "queued").is_dir()


def test_an_ensemble_of_runs_with_other_settings_loads(tmp_path):
    from tinyasc.compress import save_compressed
    from tinyasc.models import BCResNetMod

    config = json.loads(TrainConfig(width=3, norm="none").to_json())  # the last member's run, as compress stores
    path = tmp_path / "model.npz"
    save_compressed(path, [BCResNetMod(c=2), BCResNetMod(c=3, norm="none")], bits=8, config=config)
    loaded_config, model = classifier.load_run(path)
    assert loaded_config.width == 3 and [m.c for m in model.members] == [2, 3]


def test_a_data_path_with_a_tilde_is_expanded_as_the_reader_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "TAU").mkdir()
    TrainConfig(data="~/TAU").check_inputs()
    with pytest.raises(TinyAscError, match="--data ~/missing: no such file or folder"):
        TrainConfig(data="~/missing").check_inputs()


@pytest.mark.parametrize("metrics, needle", [("epoch,loss,test_overall\nnan,2.3,10\n", "'nan' is not a finite number"),
                                             ("epoch,loss,test_overall\ninf,2.3,10\n", "'inf' is not a finite number"),
                                             ("epoch,loss,test_overall\n1,nan,10\n", "'nan' is not a finite number"),
                                             ("epoch,loss,test_overall\n1,1e999,10\n", "'1e999' is not a finite"),
                                             ("epoch,loss,test_overall\n\u0663,2.3,10\n", "'\u0663' is not a finite"),
                                             ("epoch,loss,test_overall\n1.5,2.3,10\n", "'1.5' is not an epoch"),
                                             (b"epoch,loss,test_overall\n1,2.3,\xff\n", "not a CSV file")])
def test_damaged_metrics_files_are_one_line_for_the_figures(tmp_path, metrics, needle):
    from tinyasc.figures import read_metrics

    path = tmp_path / "metrics.csv"
    path.write_bytes(metrics if isinstance(metrics, bytes) else metrics.encode())
    with pytest.raises(TinyAscError, match=str(path)) as caught:
        read_metrics(tmp_path)
    assert needle in str(caught.value)


@pytest.mark.parametrize("name, needle", [("rows.txt", "name a .csv or .json file"),
                                          ("a-file/rows.csv", "a-file")])
def test_bench_checks_its_out_before_benchmarking(tmp_path, monkeypatch, name, needle):
    import benchmarks.kernels

    monkeypatch.setattr(benchmarks.kernels, "run_kernel_benchmarks",
                        lambda **kwargs: pytest.fail("benchmarked before checking --out"))
    (tmp_path / "a-file").write_text("")
    one_line_error(CliRunner().invoke(main, ["bench", "--what", "kernels", "--no-torch", "--out",
                                             str(tmp_path / name)]), needle)


def test_bench_rows_are_written_whole(tmp_path):
    from benchmarks.kernels import write_rows

    rows = [{"width": 10, "ms": 1.5}, {"width": 80, "ms": 2.5}]
    write_rows(rows, tmp_path / "rows.csv")
    write_rows(rows, tmp_path / "rows.json")
    assert (tmp_path / "rows.csv").read_text().splitlines() == ["width,ms", "10,1.5", "80,2.5"]
    assert json.loads((tmp_path / "rows.json").read_text()) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "rows.json"]  # no temporaries left


# --------------------------------- 9. evaluate, export, bench and figures (a review's findings)

def test_export_never_overwrites_the_model(env, tmp_path):
    """`export M --onnx M` replaced the model with the ONNX file and exited 0."""
    _, _, run = env
    before = (run / "checkpoint.npz").read_bytes()
    one_line_error(CliRunner().invoke(main, ["export", str(run), "--onnx", str(run / "checkpoint.npz")]),
                   "checkpoint.npz", "name a file ending in .onnx")
    assert (run / "checkpoint.npz").read_bytes() == before
    model = tmp_path / "model.onnx"
    model.write_bytes(b"an earlier export")
    one_line_error(CliRunner().invoke(main, ["export", str(model), "--onnx", str(model)]),
                   "is the model being exported")
    assert model.read_bytes() == b"an earlier export"


def test_a_failed_onnxruntime_import_is_not_a_skipped_check(env, tmp_path, monkeypatch):
    """Ctrl-C during onnxruntime's import surfaces as an ImportError ("import numpy failed"); the
    export said "onnxruntime is not installed: skipped the check", kept the unchecked file and
    exited 0. Installed is now decided without importing, and a failed import stops the command."""
    import builtins

    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("import numpy failed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    out = tmp_path / "m.onnx"
    one_line_error(CliRunner().invoke(main, ["export", str(env[2]), "--onnx", str(out)]),
                   "onnxruntime is installed but failed to import (import numpy failed)")
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_cannot_be_written_names_the_file_asked_for(env, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    import tinyasc.compress.onnx_export as onnx_export

    real_write_through = onnx_export.write_through

    def no_space(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk(path, write):  # the file is created, then the disk is full: pending removes it
        assert ".m.onnx.tmp-" in str(path)
        real_write_through(path, no_space)

    monkeypatch.setattr(onnx_export, "write_through", full_disk)
    line = one_line_error(CliRunner().invoke(main, ["export", str(env[2]), "--onnx", str(tmp_path / "m.onnx")]),
                          f"{tmp_path / 'm.onnx'}: cannot write: no space left")
    assert ".tmp-" not in line and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["evaluate", "RUN", "--data", ""], ["train", "--data", "", "--epochs", "1"],
                                     ["translator", "train", "--data", " ", "--out", "OUT"]])
def test_an_empty_data_option_is_refused(env, tmp_path, command):
    """`--data ""` evaluated the run on the default synthetic dataset (generated for it) and wrote
    that table over the run's own evaluation."""
    command = [{"RUN": str(env[2]), "OUT": str(tmp_path / "t")}.get(part, part) for part in command]
    before = sorted(p.name for p in env[0].iterdir())
    one_line_error(CliRunner().invoke(main, command), "--data is empty")
    assert sorted(p.name for p in env[0].iterdir()) == before  # no dataset generated


def test_evaluate_shows_its_table_when_the_run_folder_cannot_be_written(env, monkeypatch):
    from tinyasc.fileio import WriteError
    from tinyasc.train import inference

    def read_only(files):
        raise WriteError(f"{next(iter(files))}: cannot write: the file system is read-only; write elsewhere")

    monkeypatch.setattr(inference, "atomic_write_texts", read_only)
    result = CliRunner().invoke(main, ["evaluate", str(env[2]), "--quiet"])
    one_line_error(result, "eval_device_table.csv: cannot write: the file system is read-only")
    assert "per-class accuracy" in result.output and "confusion matrix" in result.output


@pytest.mark.parametrize("text, needle", [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                          ('{"width": ' + "9" * 5000 + "}", "not valid JSON")])
def test_json_that_python_cannot_hold_is_one_line(env, tmp_path, text, needle):
    """Nesting deeper than the parser's recursion, and integers longer than int() takes, were
    tracebacks (RecursionError, ValueError) in config.json and in a checkpoint's metadata."""
    run = copy_run(env[2], tmp_path / "run")
    (run / "config.json").write_text(text)
    one_line_error(CliRunner().invoke(main, ["evaluate", str(run)]), "config.json: not valid JSON", needle)
    run = copy_run(env[2], tmp_path / "run2")
    arrays, _ = load_checkpoint(run / "checkpoint.npz")
    arrays["__meta__"] = np.frombuffer(text.encode(), dtype=np.uint8)
    with open(run / "checkpoint.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match="checkpoint metadata is not valid JSON"):
        load_checkpoint(run / "checkpoint.npz")
    from tinyasc.fileio import read_index
    (tmp_path / "index.json").write_text(text)
    assert read_index(tmp_path / "index.json")[0] is None  # a cache index: rebuilt, never an error


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`tinyasc ... | head -1` printed "error: a file: Broken pipe; check the path ..."."""
    process = subprocess.Popen([sys.executable, "-m", "tinyasc", "gradcheck", "--select", "neg", "--no-full"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line
    err = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 141 and err == "", err


def _experiment_folder(folder, std="1.5", loss="2.3"):
    folder.mkdir(parents=True)
    devices = "A,B,C,S1,S2,S3,S4,S5,S6"
    (folder / "table.csv").write_text(f"method,row,{devices},overall_mean,overall_std\n"
                                      f"plain,none,{','.join(['50'] * 9)},50,{std}\n")
    run = folder / "none-seed0"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.csv").write_text(f"epoch,loss,test_overall\n1,{loss},40\n2,2.0,50\n")
    return folder


@pytest.mark.parametrize("std, loss, needle", [("-5", "2.3", "'-5' is outside 0..100"),
                                               ("1.5", "nan", "'nan' is not a finite number"),
                                               ("\u0661", "2.3", "is not a finite number")])
def test_figures_check_every_input_before_drawing(tmp_path, std, loss, needle):
    """A negative std was a matplotlib traceback; a bad metrics.csv came to light after
    table2_devices.png was written, into a folder made for it."""
    pytest.importorskip("matplotlib")
    experiment = _experiment_folder(tmp_path / "exp", std=std, loss=loss)
    one_line_error(CliRunner().invoke(main, ["figures", "--experiment", str(experiment),
                                             "--out", str(tmp_path / "figs")]), needle)
    assert not (tmp_path / "figs").exists()


def test_figures_that_fail_leave_the_old_figures_as_they_were(tmp_path):
    pytest.importorskip("matplotlib")
    experiment = _experiment_folder(tmp_path / "exp")
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "table2_devices.png").write_bytes(b"the old figure")
    one_line_error(CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--translator",
                                             str(tmp_path / "nowhere"), "--out", str(figs)]), "no such translator")
    assert [p.name for p in figs.iterdir()] == ["table2_devices.png"]
    assert (figs / "table2_devices.png").read_bytes() == b"the old figure"
    result = CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--out", str(figs)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in figs.iterdir()) == ["table2_curves.png", "table2_devices.png"]
    assert (figs / "table2_devices.png").read_bytes()[:4] == b"\x89PNG"


def test_figures_say_a_classifier_run_is_not_a_translator(env, tmp_path):
    pytest.importorskip("matplotlib")
    one_line_error(CliRunner().invoke(main, ["figures", "--translator", str(env[2]), "--out", str(tmp_path / "f")]),
                   "a classifier run (tinyasc train), not a translator folder")
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("args, needle", [(["--what", "train-step", "--out", "rows.csv"], "--what train-step does not"),
                                          (["--what", "kernels", "--out", "ro/rows.csv"], "read-only or not writable")])
def test_bench_refuses_an_out_it_could_not_write_before_benchmarking(tmp_path, monkeypatch, args, needle):
    """A read-only --out folder failed after the whole benchmark (150-170 s here); with --what
    train-step, --out was accepted and nothing written."""
    import benchmarks.kernels
    import benchmarks.train_step

    monkeypatch.setattr(benchmarks.kernels, "run_kernel_benchmarks",
                        lambda **kwargs: pytest.fail("benchmarked before checking --out"))
    monkeypatch.setattr(benchmarks.train_step, "run", lambda **kwargs: pytest.fail("benchmarked first"))
    (tmp_path / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path).name == "ro" else real_access(path, mode))
    monkeypatch.chdir(tmp_path)
    one_line_error(CliRunner().invoke(main, ["bench", "--no-torch", *args]), needle)
    assert [p.name for p in tmp_path.iterdir()] == ["ro"]


@pytest.mark.parametrize("args, option", [(["train", "--data", "nowhere", "--epochs", "\u0663"], "--epochs"),
                                          (["train", "--data", "nowhere", "--lr", "\u0660.\u0661"], "--lr"),
                                          (["gradcheck", "--select", "no-such-check", "--seed", "\u0663"], "--seed"),
                                          (["export", "x.onnx", "--onnx", "y.onnx", "--frames", "\u0663\u0664"],
                                           "--frames")])
def test_numbers_in_other_scripts_digits_are_refused(tmp_path, monkeypatch, args, option):
    """click's INT and FLOAT (and int(), float()) read '\u0663\u0664' as 34; tinyasc never writes
    such digits, so an option holding them is a mistake to name, not a number to guess. (The
    other options make the command fail at once should the number be taken.)"""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.onnx").write_text("")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and f"Invalid value for '{option}': '" in result.output
    assert "is not an integer written with the ASCII digits 0-9" in result.output or option == "--lr"
    assert "is not a number written with the ASCII digits 0-9" in result.output or option != "--lr"


def test_parse_number_reads_ascii_only():
    from tinyasc.checks import parse_number

    assert parse_number(" 34 ", int, "--x") == 34 and parse_number("-1.5e-3", float, "--x") == -1.5e-3
    for text in ["\u0663\u0664", "3\u0664"]:
        with pytest.raises(TinyAscError, match="--x: '.*' is not an integer written with the ASCII digits 0-9"):
            parse_number(text, int, "--x")
    for text in ["x", "", "1.5"]:
        with pytest.raises(TinyAscError, match="--x: '.*' is not an integer$"):
            parse_number(text, int, "--x")
    from tinyasc.train.experiment import parse_rows
    with pytest.raises(TinyAscError, match="width: '\u0668' is not an integer written"):
        parse_rows("bcresnet@\u0668:none")


def test_a_file_in_the_way_of_a_folder_is_named_as_such(tmp_path):
    from tinyasc.fileio import WriteError, make_parent

    (tmp_path / "meta.csv").write_text("")
    with pytest.raises(WriteError, match="a part of the path is a file, not a folder"):
        make_parent(tmp_path / "meta.csv" / "x.onnx")  # mkdir says "File exists" here, ENOTDIR one deeper


def test_figures_out_problems_are_found_before_any_work(tmp_path):
    pytest.importorskip("matplotlib")
    experiment = _experiment_folder(tmp_path / "exp")
    (tmp_path / "file").write_text("")
    one_line_error(CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--out",
                                             str(tmp_path / "file")]), "is a file, not a folder")
    (tmp_path / "figs" / "table2_curves.png").mkdir(parents=True)
    one_line_error(CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--out",
                                             str(tmp_path / "figs")]), "table2_curves.png there is a folder")
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["table2_curves.png"]


def test_evaluate_names_a_relative_dataset_path_from_config_json(env, tmp_path, monkeypatch):
    """A run trained with `--data D` from its home folder, evaluated from elsewhere: the error says
    the path came from config.json and is relative, and what to do; from the right folder, or with
    --data, it evaluates."""
    home = env[0]
    run = copy_run(env[2], tmp_path / "R")
    config = json.loads((run / "config.json").read_text())
    config["data"] = "D"  # as `tinyasc train --data D` run in the home folder saves it
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    one_line_error(CliRunner().invoke(main, ["evaluate", str(run), "--quiet"]),
                   "config.json names the dataset 'D', a path relative to the folder the run was trained in",
                   "pass --data")
    monkeypatch.chdir(home)
    assert CliRunner().invoke(main, ["evaluate", str(run), "--quiet"]).exit_code == 0


@pytest.mark.parametrize("args, needle", [(["--data", "somewhere"], "--data: only used with --spectra"),
                                          (["--lam", "0.5", "--preset", "tiny"], "--preset, --lam: only used with"),
                                          (["--lam", "0.1"], "--lam: only used with --spectra")])
def test_figures_options_of_the_spectra_are_refused_without_spectra(tmp_path, args, needle):
    """--data, --preset and --lam shape only the spectra figure: without --spectra they were silently
    unused; now they are refused (even at their default value, when typed) before any work."""
    experiment = _experiment_folder(tmp_path / "exp")
    one_line_error(CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--out",
                                             str(tmp_path / "figs"), *args]), needle)
    assert not (tmp_path / "figs").exists()


def test_figures_failing_to_write_name_the_figure_and_leave_no_folders(tmp_path, monkeypatch):
    """A full disk while drawing: the error names the PNG asked for (not the hidden folder it is
    drawn in), and the folders made for --out are removed again."""
    pytest.importorskip("matplotlib")
    from tinyasc.fileio import write_error
    from tinyasc.run import plots

    def full_disk(runs, path):
        raise write_error(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(plots, "experiment_curves", full_disk)
    experiment = _experiment_folder(tmp_path / "exp")
    out = tmp_path / "new" / "figs"
    line = one_line_error(CliRunner().invoke(main, ["figures", "--experiment", str(experiment), "--out", str(out)]),
                          f"{out / 'table2_curves.png'}: cannot write: no space left")
    assert ".figures" not in line and not (tmp_path / "new").exists()


def test_resume_compares_settings_as_the_run_uses_them(tiny_home_for_resume):
    """`~/D` saved (bash leaves `--data=~/D` unexpanded) is the folder `--data /home/.../D` names,
    and minvar's val_fraction 0 is saved as the 0.1 it means."""
    run, root, resume = tiny_home_for_resume
    (run / "config.json").write_text(TrainConfig(width=4, epochs=2, batch_size=8, data=f"~/{root.name}",
                                                 select="minvar").validate().to_json())
    result = resume("--data", str(root), "--select", "minvar", "--val-fraction", "0")
    assert result.exit_code == 1 and "would change" not in result.output and "checkpoint" in result.output, \
        result.output
    result = resume("--data", str(root.parent))
    assert "--data" in result.output and "would change" in result.output


@pytest.fixture
def tiny_home_for_resume(env, tmp_path, monkeypatch):
    home, root, _ = env
    monkeypatch.setenv("HOME", str(root.parent))
    run = tmp_path / "run"
    run.mkdir()
    return run, root, lambda *options: CliRunner().invoke(main, ["train", "--resume", str(run), *options, "--quiet"])


def test_a_saved_empty_data_means_the_default_dataset():
    """Runs saved before an empty --data was refused have "data": "", which meant the default."""
    values = json.loads(TrainConfig().to_json())
    values["data"] = ""
    assert TrainConfig.from_saved(values, "config.json", "fix").data is None


def test_a_file_that_is_not_a_model_is_named_as_such(env, tmp_path):
    """`evaluate meta.csv` said "truncated or corrupt checkpoint ...; delete it": wrong advice for a
    file that is simply not a model."""
    csv_file = tmp_path / "meta.csv"
    csv_file.write_text("filename\tscene_label\n")
    for command in (["evaluate", str(csv_file)], ["export", str(csv_file), "--onnx", str(tmp_path / "m.onnx")]):
        line = one_line_error(CliRunner().invoke(main, command), f"{csv_file}: not a model file")
        assert "delete it" not in line
    assert csv_file.read_text() == "filename\tscene_label\n"


def test_a_config_json_whose_bits_differ_from_the_checkpoint_is_refused(env, tmp_path):
    """config.json says 8 bits, the checkpoint's own settings 32: evaluate used to fake-quantize
    float weights without a word."""
    run = copy_run(env[2], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["bits"] = 8
    (run / "config.json").write_text(json.dumps(config))
    one_line_error(CliRunner().invoke(main, ["evaluate", str(run)]), "bits 32 there, 8 in the run's config.json")


# ------------------------------------------------ a command never writes over another's files


def test_predict_never_writes_its_submission_over_the_model(env, tmp_path):
    home, root, run = env
    run = copy_run(run, tmp_path / "run")
    clip = next((root / "audio").iterdir())
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for name in ("checkpoint.npz", "config.json", "metrics.csv"):
        one_line_error(CliRunner().invoke(main, ["predict", str(run), str(clip), "--out", str(run / name)]),
                       "a file of the run that makes the predictions")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    result = CliRunner().invoke(main, ["predict", str(run), str(clip), "--out", str(run / "submission.tsv")])
    assert result.exit_code == 0, result.output  # a new submission file beside the run's is fine


@pytest.mark.parametrize("command", ["train", "translator", "compress", "dataset"])
def test_a_new_run_refuses_another_commands_folder(env, tmp_path, command):
    """train into a translator's folder, a translator into a classifier run, compress into a run,
    a run into a dataset: each would replace the other's config.json and metrics."""
    home, root, run = env
    run = copy_run(run, tmp_path / "run")
    translator = tmp_path / "translator"
    translator.mkdir()
    (translator / "config.json").write_text('{"targets": ""}\n')  # a translator folder as git keeps it
    args, needle = {
        "train": (["train", "--data", str(root), "--epochs", "1", "--out", str(translator)], "a translator folder"),
        "translator": (["translator", "train", "--data", str(root), "--epochs", "1", "--out", str(run)],
                       "a run folder of tinyasc train"),
        "compress": (["compress", str(run), "--epochs", "1", "--out", str(run)], "a run folder of tinyasc train"),
        "dataset": (["train", "--data", str(root), "--epochs", "1", "--out", str(root)], "a dataset"),
    }[command]
    before = {p: p.read_bytes() for folder in (run, translator) for p in folder.rglob("*") if p.is_file()}
    one_line_error(CliRunner().invoke(main, args + ["--quiet"]), needle, "pass another --out")
    assert {p: p.read_bytes() for folder in (run, translator) for p in folder.rglob("*") if p.is_file()} == before


def test_a_classifier_run_given_as_a_translator_is_named_as_such(env):
    home, root, run = env
    result = CliRunner().invoke(main, ["translator", "evaluate", str(run)])
    one_line_error(result, "is a run folder of tinyasc train, not a translator")


@pytest.mark.parametrize("args", [["train", "--out", ""], ["train", "--resume", ""],
                                  ["translator", "train", "--out", " "], ["compress", "R", "--out", ""],
                                  ["experiment", "--out", ""], ["figures", "--experiment", "x", "--out", ""],
                                  ["predict", "R", "clip.wav", "--out", ""], ["evaluate", ""]])
def test_an_empty_path_is_refused_not_taken_as_this_folder(tmp_path, monkeypatch, args):
    """`--out ''` used to write a run into the current folder; `--resume ''` started a new run."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "an empty path; name a file or folder" in result.output, result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_a_second_ctrl_c_inside_a_kernel_is_one_line_and_says_how_to_resume(tmp_path):
    """A KeyboardInterrupt raised while a Numba kernel runs comes back as a SystemError."""
    from tinyasc.cli import friendly_errors, resume_hint_if_interrupted

    (tmp_path / "checkpoint.npz").write_bytes(b"")

    @friendly_errors
    def interrupted_in_a_kernel():
        with resume_hint_if_interrupted(tmp_path / "checkpoint.npz", "tinyasc train --resume R"):
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise SystemError("CPUDispatcher(...) returned a result with an exception set")

    result = CliRunner().invoke(click.command()(interrupted_in_a_kernel))
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert result.output.splitlines() == [f"stopped at once; the last checkpoint, {tmp_path / 'checkpoint.npz'}, is "
                                          "kept. Resume with: tinyasc train --resume R", "interrupted"]


def test_an_interrupted_compress_says_to_rerun_the_command(env, tmp_path, monkeypatch):
    import tinyasc.train.finetune

    home, root, run = env
    monkeypatch.setattr(tinyasc.train.finetune, "compress_runs", lambda *args, **kwargs: None)  # stopped by Ctrl-C
    result = CliRunner().invoke(main, ["compress", str(run), "--out", str(tmp_path / "small"), "--quiet"])
    assert result.exit_code == 130 and "run this tinyasc compress command again" in result.output
