"""Training: exact resume, faults (NaN, bad checkpoints), run-folder outputs and the CLI."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from tinyasc.cli import main
from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset
from tinyasc.fileio import WriteError
from tinyasc.train import classifier
from tinyasc.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyasc.train.classifier import Trainer, TrainingDiverged
from tinyasc.train.config import TrainConfig
from tinyasc.data.training import TrainingData


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    root = home / "tiny"
    synth.write_dataset(root, preset="tiny", seed=0, progress=False)
    return home, root


@pytest.fixture(scope="module")
def tiny_data(tiny_home):
    home, root = tiny_home
    dataset = load_dataset(root)
    features = cache.load_features(dataset, cache_dir=home / "features", progress=False)
    return TrainingData.from_features(dataset, features)


def _config(**kw):
    base = dict(width=4, epochs=2, batch_size=8, seed=3)
    base.update(kw)
    return TrainConfig(**base)


class _StopAfter:
    """Stands in for Ctrl-C: true from the n-th time fit asks (it asks before each epoch and
    after each step)."""

    def __init__(self, n):
        self.n = n

    def __call__(self):
        self.n -= 1
        return self.n <= 0


def _weights(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


def test_resume_mid_epoch_ends_with_the_same_weights(tiny_data, tmp_path):
    straight = Trainer(_config(), tmp_path / "a", data=tiny_data, log=lambda *_: None, progress=False)
    assert straight.fit()
    interrupted = Trainer(_config(), tmp_path / "b", data=tiny_data, log=lambda *_: None, progress=False)
    assert not interrupted.fit(stop=_StopAfter(3))  # asked before epoch 1, after step 1, after step 2: stopped
    interrupted.save()
    resumed = Trainer(_config(), tmp_path / "b", data=tiny_data, log=lambda *_: None, progress=False)
    resumed.restore(tmp_path / "b" / classifier.CHECKPOINT)
    assert (resumed.epoch, resumed.step_in_epoch) == (0, 2)
    assert resumed.fit()
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # And resuming changed something: a fresh model differs.
    fresh = Trainer(_config(), tmp_path / "c", data=tiny_data, log=lambda *_: None, progress=False)
    assert not np.array_equal(_weights(fresh)["head.conv.weight"], a["head.conv.weight"])


def test_resume_from_end_of_epoch_via_train(tiny_data, tmp_path):
    cfg = _config(epochs=3)
    straight = Trainer(cfg, tmp_path / "a", data=tiny_data, log=lambda *_: None, progress=False)
    straight.fit()
    short = Trainer(_config(epochs=3), tmp_path / "b", data=tiny_data, log=lambda *_: None, progress=False)
    # asked before epoch 1, after each of its steps, then before epoch 2: stopped at the epoch boundary
    assert not short.fit(stop=_StopAfter(short.steps_per_epoch + 2))
    assert (short.epoch, short.step_in_epoch) == (1, 0)
    text, table = classifier.train(None, tmp_path / "b", resume=True, log=lambda *_: None, progress=False,
                                   data=tiny_data)
    arrays, meta = load_checkpoint(tmp_path / "b" / classifier.CHECKPOINT)
    assert meta["epoch"] == 3 and len(meta["history"]) == 3
    for key, value in _weights(straight).items():
        np.testing.assert_array_equal(arrays[f"model/{key}"], value, err_msg=key)
    assert "overall" in text and table["overall"]["count"] == len(tiny_data.rows("test"))


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tiny_data, tmp_path, monkeypatch):
    trainer = Trainer(_config(epochs=3), tmp_path / "run", data=tiny_data, log=lambda *_: None, progress=False)
    real_step = classifier.train_step
    calls = {"n": 0}
    steps = trainer.steps_per_epoch

    def failing_step(model, optimizer, x, y, loss_fn=None, masks=None):
        calls["n"] += 1
        if calls["n"] == steps + 2:  # epoch 2, step 2
            return float("nan"), np.zeros((len(x), 10))
        return real_step(model, optimizer, x, y, loss_fn)

    monkeypatch.setattr(classifier, "train_step", failing_step)
    with pytest.raises(TrainingDiverged, match="epoch 2, step 2"):
        trainer.fit()
    arrays, meta = load_checkpoint(tmp_path / "run" / classifier.CHECKPOINT)
    assert meta["epoch"] == 1 and meta["step_in_epoch"] == 0


def test_run_folder_outputs(tiny_data, tmp_path):
    trainer = Trainer(_config(epochs=1), tmp_path / "run", data=tiny_data, log=lambda *_: None, progress=False)
    trainer.fit()
    text, table = trainer.report()
    run = tmp_path / "run"
    for name in ("config.json", "metrics.csv", "checkpoint.npz", "report.txt", "device_table.csv", "classes.csv"):
        assert (run / name).is_file(), name
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "loss", "lr", "test_A", "test_S6", "test_overall"} <= set(header)
    assert json.loads((run / "config.json").read_text())["width"] == 4
    assert set(table) == {"A", "B", "C", "S1", "S2", "S3", "S4", "S5", "S6", "overall"}


def test_minvar_selects_smallest_validation_spread(tiny_data, tmp_path, tiny_home):
    home, root = tiny_home
    dataset = load_dataset(root)
    features = cache.load_features(dataset, cache_dir=home / "features", progress=False)
    data = TrainingData.from_features(dataset, features, val_fraction=0.3, seed=3)
    assert not set(data.filenames("val")) & set(data.filenames("train"))
    trainer = Trainer(_config(epochs=3, select="minvar", val_fraction=0.3), tmp_path / "run", data=data,
                      log=lambda *_: None, progress=False)
    trainer.fit()
    spreads = [row["val_spread"] for row in trainer.history]
    assert spreads[trainer.selected[0] - 1] == min(spreads)
    assert (tmp_path / "run" / classifier.SELECTED).is_file()


def test_shared_data_is_split_by_each_runs_own_seed(tiny_data, tiny_home):
    """Runs trained on data loaded once (experiment, table3 in-process) hold out the validation
    locations their own seed draws, as a run loading its data (a worker, `tinyasc train`) does."""
    home, root = tiny_home
    dataset = load_dataset(root)
    features = cache.load_features(dataset, cache_dir=home / "features", progress=False)
    for seed in (1, 2):
        config = _config(val_fraction=0.3, seed=seed)
        shared = classifier.training_data(config, data=tiny_data, log=lambda *_: None, progress=False)
        alone = TrainingData.from_features(dataset, features, val_fraction=0.3, seed=seed)
        assert shared.filenames("val") == alone.filenames("val")
        assert shared.filenames("train") == alone.filenames("train")
        assert np.array_equal(shared.rows("train"), alone.rows("train"))
    one, two = (TrainingData.from_features(dataset, features, val_fraction=0.3, seed=s) for s in (1, 2))
    assert one.filenames("val") != two.filenames("val")  # the seeds do draw different locations
    # and back: a run without validation trains on every training clip
    back = classifier.training_data(_config(seed=1), data=one, log=lambda *_: None, progress=False)
    assert not back.has_validation and back.filenames("train") == tiny_data.filenames("train")
    assert one.split_for(0.3, 1) is one
    # translated clips are added after the split: such data cannot be split again
    clips_a = int(np.sum(one.devices("train") == "a"))
    grown = one.with_translations(np.zeros((clips_a,) + one.features.shape[1:], np.float32), ["b"], "x")
    assert grown.validation == (0.3, 1) and grown.split_for(0.3, 1) is grown
    with pytest.raises(ValueError, match="no training split from before validation"):
        grown.split_for(0.3, 2)


# ------------------------------------------------------------------ bad checkpoints

def _trained(tiny_data, tmp_path):
    trainer = Trainer(_config(epochs=1), tmp_path / "run", data=tiny_data, log=lambda *_: None, progress=False)
    trainer.fit()
    return trainer, tmp_path / "run" / classifier.CHECKPOINT


def test_truncated_checkpoint_is_a_clear_error(tiny_data, tmp_path):
    _, path = _trained(tiny_data, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, weights=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="object arrays"):
        load_checkpoint(path)
    with pytest.raises(TypeError, match="only numbers"):
        save_checkpoint(tmp_path / "x.npz", {"w": np.array(["s"], dtype=object)}, {})


def test_wrong_model_checkpoint_names_the_keys(tiny_data, tmp_path):
    _, path = _trained(tiny_data, tmp_path)
    other = Trainer(_config(width=6), tmp_path / "other", data=tiny_data, log=lambda *_: None, progress=False)
    with pytest.raises(CheckpointError, match="shape mismatch: head.conv.weight"):
        other.restore(path)


def test_checkpoint_writes_are_atomic(tiny_data, tmp_path, monkeypatch):
    trainer, path = _trained(tiny_data, tmp_path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(WriteError, match="checkpoint.npz: cannot write"):
        trainer.save()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if ".tmp" in p.name] == []


# ----------------------------------------------------------------------------- CLI

def test_cli_train_evaluate_predict(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", "--data", str(root), "--model-width", "4", "--epochs", "1",
                                  "--batch-size", "8", "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "overall" in result.output and "S6" in result.output
    again = runner.invoke(main, ["train", "--data", str(root), "--out", str(run), "--quiet"])
    assert again.exit_code == 1 and "already holds a run" in again.output
    result = runner.invoke(main, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.output
    out = tmp_path / "submission.tsv"
    result = runner.invoke(main, ["predict", str(run), str(root / "audio"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["filename", "scene_label", "airport"]
    probs = np.array([[float(v) for v in line.split("\t")[2:]] for line in lines[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--resume", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "no config.json" in result.output
    result = runner.invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_cli_out_naming_a_file_is_one_line(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    result = CliRunner().invoke(main, ["train", "--data", str(root), "--model-width", "2", "--epochs", "1",
                                       "--batch-size", "8", "--out", str(taken), "--quiet"])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(taken) in last and "Traceback" not in result.output
    assert taken.read_text() == "not a folder"


def test_experiment_refuses_a_translator_no_row_uses(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    result = CliRunner().invoke(main, ["experiment", "--data", str(root), "--rows", "resnorm", "--model-width", "2",
                                       "--seeds", "0", "--epochs", "1", "--batch-size", "8",
                                       "--translator", str(tmp_path), "--out", str(tmp_path / "exp"), "--quiet"])
    assert result.exit_code == 1 and "only by '+translator' rows" in result.output
    assert not (tmp_path / "exp").exists()


def test_experiment_table_has_one_row_per_norm_and_reuses_runs(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    args = ["experiment", "--data", str(root), "--model-width", "4", "--norms", "none,resnorm", "--seeds", "0,1",
            "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "exp"), "--quiet"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    table = (tmp_path / "exp" / "table.csv").read_text().splitlines()
    assert len(table) == 3 and table[1].startswith("BC-ResNet-Mod (c=4),none") and "ResNorm" in table[2]
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "--- " not in again.output  # nothing retrained
    bad = runner.invoke(main, args[:5] + ["--norms", "batchnorm"])
    assert bad.exit_code == 1 and "batchnorm" in bad.output and "\n" not in bad.output.strip()


def test_plots_with_the_plot_extra(tiny_data, tmp_path):
    pytest.importorskip("matplotlib")
    trainer = Trainer(_config(epochs=2), tmp_path / "run", data=tiny_data, log=lambda *_: None, progress=False)
    trainer.fit()
    trainer.report()
    for name in ("curves.png", "confusion.png"):
        data = (tmp_path / "run" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_batch_larger_than_training_split_is_an_error(tiny_data, tmp_path):
    from tinyasc.errors import TinyAscError
    with pytest.raises(TinyAscError, match="fewer than --batch-size 64"):
        Trainer(_config(batch_size=64), tmp_path / "run", data=tiny_data, log=lambda *_: None, progress=False)


@pytest.mark.parametrize("field, value, message", [("dropout", 1.5, "--dropout"), ("lr", 0.0, "--lr"),
                                                   ("width", "10", "should be a int"),
                                                   ("warmup_epochs", 5.0, "--warmup-epochs")])
def test_config_validation_names_the_bad_value(field, value, message):
    from tinyasc.errors import TinyAscError
    with pytest.raises(TinyAscError, match=message):
        TrainConfig(epochs=2, **{field: value}).validate()


def test_experiment_refuses_a_folder_with_other_settings(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    args = ["experiment", "--data", str(root), "--model-width", "4", "--norms", "none", "--seeds", "0",
            "--batch-size", "8", "--out", str(tmp_path / "exp"), "--quiet"]
    assert runner.invoke(main, args + ["--epochs", "1"]).exit_code == 0
    result = runner.invoke(main, args + ["--epochs", "2"])
    assert result.exit_code == 1 and "epochs: 1 there, 2 now" in result.output


def test_predict_refuses_too_short_clips(tiny_data, tmp_path):
    import soundfile as sf
    _trained(tiny_data, tmp_path)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(2000, np.float32), 16000)
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), str(short), "--out", str(tmp_path / "s.tsv")])
    assert result.exit_code == 1 and "short.wav" in result.output and "too short" in result.output
    assert not (tmp_path / "s.tsv").exists()


@pytest.mark.parametrize("arch, width", [("bcresnet", "1"), ("cpresnet", "4")])
def test_cli_trains_the_table_2_baselines(tiny_home, tmp_path, monkeypatch, arch, width):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    run = tmp_path / arch
    result = CliRunner().invoke(main, ["train", "--data", str(root), "--arch", arch, "--model-width", width,
                                       "--epochs", "1", "--batch-size", "8", "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["arch"] == arch
    assert "overall" in CliRunner().invoke(main, ["evaluate", str(run)]).output


def test_cli_refuses_resnorm_stages_on_the_baselines(tiny_home, tmp_path):
    home, root = tiny_home
    result = CliRunner().invoke(main, ["train", "--data", str(root), "--arch", "cpresnet", "--norm", "resnorm",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "--arch cpresnet takes" in result.output


def test_cli_compress_then_evaluate_predict_and_distil(tiny_home, tmp_path, monkeypatch):
    """Table 3's pipeline on the tiny preset: train, prune + QAT fine-tune with KD, export, use."""
    from tinyasc.compress import load_compressed

    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    base = ["--data", str(root), "--model-width", "4", "--batch-size", "8", "--quiet"]
    assert runner.invoke(main, ["train", *base, "--epochs", "1", "--out", str(tmp_path / "teacher")]).exit_code == 0
    result = runner.invoke(main, ["compress", str(tmp_path / "teacher"), "--prune", "0.5", "--bits", "8",
                                  "--teacher", str(tmp_path / "teacher"), "--epochs", "1", "--out",
                                  str(tmp_path / "small"), "--quiet"])
    assert result.exit_code == 0, result.output
    model_file = tmp_path / "small" / "model.npz"
    model = load_compressed(model_file)
    convs = [p.data for name, p in model.named_parameters() if p.data.ndim == 4]
    zeros = sum(int((w == 0).sum()) for w in convs) / sum(w.size for w in convs)
    assert 0.5 <= zeros < 0.6
    assert "KB" in (tmp_path / "small" / "size.txt").read_text()
    result = runner.invoke(main, ["evaluate", str(model_file)])
    assert result.exit_code == 0 and "overall" in result.output, result.output
    out = tmp_path / "sub.tsv"
    assert runner.invoke(main, ["predict", str(model_file), str(root / "audio"), "--out", str(out)]).exit_code == 0
    result = runner.invoke(main, ["train", *base, "--epochs", "1", "--teacher", str(tmp_path / "teacher"),
                                  "--teacher", str(model_file), "--out", str(tmp_path / "student")])
    assert result.exit_code == 0, result.output


def test_the_test_split_is_evaluated_every_few_epochs_and_after_the_last(tiny_data, tmp_path):
    lines = []
    trainer = Trainer(_config(epochs=5, eval_every=2), tmp_path / "run", data=tiny_data, log=lines.append,
                      progress=False)
    trainer.fit()
    tested = [row["epoch"] for row in trainer.history if "test_overall" in row]
    assert tested == [2, 4, 5] and all("loss" in row for row in trainer.history)
    assert "test acc" not in lines[0] and "test acc" in lines[1] and f"({len(tiny_data.rows('test'))} clips)" in lines[1]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert header[1].split(",")[header[0].split(",").index("test_overall")] == ""   # epoch 1: not evaluated
    with pytest.raises(Exception, match="--eval-every"):
        _config(eval_every=0).validate()


def test_experiment_reads_back_runs_kept_without_their_checkpoints(tiny_home, tmp_path, monkeypatch):
    # what is kept in git of a finished run: config.json, metrics.csv, device_table.csv (no checkpoint)
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    args = ["experiment", "--data", str(root), "--model-width", "4", "--norms", "none", "--seeds", "0",
            "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "exp"), "--quiet"]
    assert runner.invoke(main, args).exit_code == 0
    run = tmp_path / "exp" / "none-seed0"
    (run / "checkpoint.npz").unlink()
    table = (tmp_path / "exp" / "table.csv").read_text()
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "--- " not in again.output and "1 of 1 runs already finished" in again.output
    assert (tmp_path / "exp" / "table.csv").read_text() == table
    (run / "device_table.csv").unlink()   # not finished after all: trained again
    third = runner.invoke(main, args)
    assert third.exit_code == 0 and "--- " in third.output


def test_experiment_jobs_train_the_same_runs_in_parallel(tiny_home, tmp_path, monkeypatch):
    """--jobs 2: two worker processes of one Numba thread each; the same table as one after the other."""
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    args = ["experiment", "--data", str(root), "--model-width", "4", "--norms", "none,resnorm", "--seeds", "0,1",
            "--epochs", "2", "--batch-size", "8", "--quiet"]
    one = runner.invoke(main, args + ["--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = runner.invoke(main, args + ["--out", str(tmp_path / "two"), "--jobs", "2"])
    assert two.exit_code == 0, two.output
    assert two.output.count("finished BC-ResNet-Mod") == 4
    assert (tmp_path / "two" / "table.csv").read_text() == (tmp_path / "one" / "table.csv").read_text()
    for run in ("none-seed0", "resnorm-seed1"):   # each run's weights, bit for bit
        a = np.load(tmp_path / "one" / run / "checkpoint.npz")
        b = np.load(tmp_path / "two" / run / "checkpoint.npz")
        assert all(np.array_equal(a[k], b[k]) for k in a.files if k.startswith("model/"))
        assert "epoch 2/2" in (tmp_path / "two" / "logs" / f"{run}.txt").read_text()
    again = runner.invoke(main, args + ["--out", str(tmp_path / "two"), "--jobs", "2"])
    assert again.exit_code == 0 and "4 of 4 runs already finished" in again.output and "--- BC" not in again.output


def test_experiment_jobs_ctrl_c_stops_every_worker_with_its_checkpoint(tiny_home, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    home, root = tiny_home
    out = tmp_path / "exp"
    command = [sys.executable, "-m", "tinyasc", "experiment", "--data", str(root), "--model-width", "4", "--norms",
               "none,resnorm", "--seeds", "0,1", "--epochs", "60", "--batch-size", "8", "--out", str(out),
               "--jobs", "2", "--quiet"]
    env = dict(os.environ, TINYASC_HOME=str(home))
    # a session of its own, signalled as a whole, as a terminal's Ctrl-C would be
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    logs = [out / "logs" / "none-seed0.txt", out / "logs" / "resnorm-seed0.txt"]
    try:
        deadline = time.monotonic() + 120
        while not all(p.is_file() and "epoch 2/60" in p.read_text() for p in logs):   # both workers training
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, output
    assert "experiment interrupted; run the same command again" in output and "Traceback" not in output
    for log in logs:
        assert "interrupted at epoch" in log.read_text()
        assert (out / log.stem / "checkpoint.npz").is_file() and not (out / log.stem / "device_table.csv").exists()
        assert f"{log.stem}: stopped, checkpoint saved" in output
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming" in (out / "logs" / "none-seed0.txt").read_text()
    assert all((out / f"{row}-seed{s}" / "device_table.csv").is_file() for row in ("none", "resnorm") for s in (0, 1))


def test_experiment_jobs_names_the_log_of_a_failed_run(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    run = tmp_path / "exp" / "resnorm-seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(_config(data=str(root), norm="resnorm", epochs=1, seed=0).to_json())
    (run / "checkpoint.npz").write_bytes(b"not a checkpoint")   # the worker resuming it stops
    result = CliRunner().invoke(main, ["experiment", "--data", str(root), "--model-width", "4", "--norms",
                                       "none,resnorm", "--seeds", "0", "--epochs", "1", "--batch-size", "8",
                                       "--out", str(tmp_path / "exp"), "--jobs", "2", "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    log = tmp_path / "exp" / "logs" / "resnorm-seed0.txt"
    assert f"the run resnorm-seed0 failed (exit code 1); the end of its log {log}: error: " in result.output
    assert "resnorm-seed0/checkpoint.npz: truncated or corrupt" in result.output.splitlines()[-1]


def test_kill_stops_training_as_ctrl_c_does(tiny_home, tmp_path):
    """SIGTERM (`kill`, a scheduler's stop) saves a checkpoint between steps and exits 130, so the
    same command with --resume goes on; before, it ended the process where it stood."""
    import signal
    import subprocess
    import sys
    import time

    home, root = tiny_home
    run = tmp_path / "run"
    env = dict(os.environ, TINYASC_HOME=str(home))
    process = subprocess.Popen([sys.executable, "-m", "tinyasc", "train", "--data", str(root), "--model-width", "4",
                                "--epochs", "500", "--batch-size", "8", "--out", str(run), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (run / "metrics.csv").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 130, output
    assert "Traceback" not in output
    _, meta = load_checkpoint(run / classifier.CHECKPOINT)
    assert 1 <= meta["epoch"] < 500



def test_resume_refuses_an_option_that_would_change_the_run(tiny_home, tmp_path, monkeypatch):
    """A resumed run keeps its saved settings, so an option that differs from them is refused by name
    (it used to be ignored silently); options repeating the saved values, however a folder is
    written, go on to the resume itself."""
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(_config(data=str(root)).to_json())
    runner = CliRunner()

    def resume(*options):
        return runner.invoke(main, ["train", "--resume", str(run), *options, "--quiet"])

    for options, named in [(["--epochs", "7"], "--epochs 7 would change"),
                           (["--model-width", "6"], "--model-width 6 would change"),
                           (["--no-mixup"], "--no-mixup would change"),
                           (["--data", str(tmp_path)], f"--data {tmp_path} would change"),
                           (["--arch", "cpresnet"], "--arch cpresnet would change")]:
        result = resume(*options)
        assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
        assert result.output.count("\n") == 1 and named in result.output and f"{run}'s saved" in result.output
    result = resume("--out", str(tmp_path / "elsewhere"))
    assert result.exit_code == 1 and "name different folders" in result.output
    assert not (tmp_path / "elsewhere").exists()
    # the saved values again (the dataset as root/.), and --out naming the same folder: on to the
    # resume, which finds no checkpoint in this hand-made folder
    result = resume("--epochs", "2", "--model-width", "4", "--seed", "3", "--data", str(root / "."), "--out", str(run))
    assert result.exit_code == 1 and "would change" not in result.output and "checkpoint" in result.output


def test_translator_resume_refuses_an_option_that_would_change_the_run(tmp_path):
    from tinyasc.translator.config import TranslatorConfig

    run = tmp_path / "translator"
    run.mkdir()
    (run / "config.json").write_text(TranslatorConfig(epochs=3, targets="s1, s2").to_json())
    # the same devices however written pass; the epochs do not
    result = CliRunner().invoke(main, ["translator", "train", "--resume", "--out", str(run), "--targets", "S1,S2",
                                       "--epochs", "9"])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit
    assert f"--epochs 9 would change {run}'s saved epochs = 3" in result.output and result.output.count("\n") == 1
    result = CliRunner().invoke(main, ["translator", "train", "--resume", "--out", str(run), "--targets", "s1,s3"])
    assert "--targets s1,s3 would change" in result.output
