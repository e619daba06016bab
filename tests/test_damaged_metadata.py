"""Damaged metadata of checkpoints, compressed models and metrics.csv: one line naming the file.

Each numeric value JSON reads from a checkpoint is checked before use: 1e400 reads as
infinity, which int() refuses with an OverflowError; "28" and 28.0 are no epoch counts; the
schedule's step count, the running tally and the random state must be those a run writes.
"""
import math

import numpy as np
import pytest
from click.testing import CliRunner

from cli_checks import one_line_error  # tests/cli_checks.py
from test_reliability import _compressed, copy_run, env, home, rewrite_checkpoint, tiny_data  # noqa: F401
from test_train import _StopAfter
from test_translator import _config as translator_config
from tinyasc.cli import main
from tinyasc.data import cache
from tinyasc.data.tau import load_dataset
from tinyasc.errors import TinyAscError
from tinyasc.run.checkpoint import CheckpointError, load_checkpoint
from tinyasc.train import classifier
from tinyasc.train.classifier import Trainer
from tinyasc.train.config import TrainConfig
from tinyasc.translator.data import PairData
from tinyasc.translator.load import load_translator
from tinyasc.translator.train import TranslatorTrainer

QUIET = lambda *_: None  # noqa: E731
INF = float("inf")  # json.dumps writes it as Infinity, which reads back as 1e400 does


def _config(root, **kw):
    return TrainConfig(**{"data": str(root), "width": 4, "epochs": 2, "batch_size": 8, "seed": 3, **kw})


@pytest.fixture(scope="module")
def interrupted(home, tiny_data):  # noqa: F811
    """A run of 2 epochs stopped after step 2 of epoch 1, as Ctrl-C leaves it."""
    run = home[0] / "P"
    trainer = Trainer(_config(home[1]), run, data=tiny_data, log=QUIET, progress=False)
    assert not trainer.fit(stop=_StopAfter(3)) and (trainer.epoch, trainer.step_in_epoch) == (0, 2)
    return run


def _set(*keys, value):
    """A change for rewrite_checkpoint: meta[keys[0]][keys[1]]... = value."""
    def change(arrays, meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


@pytest.mark.parametrize("keys, value, needle", [
    (("epoch",), INF, "epoch inf and step_in_epoch 2 must be whole numbers"),
    (("step_in_epoch",), INF, "step_in_epoch inf must be whole numbers"),
    (("schedule", "step_count"), INF, "schedule step_count inf"),
    (("schedule",), {"step_count": 100000}, "schedule step_count 100000 is not the 2 steps"),
    (("schedule", "step_count"), 3, "schedule step_count 3 is not the 2 steps"),
    (("random", "state", "state"), -1, "random state.state.state is -1"),
    (("random", "has_uint32"), 7, "random state.has_uint32 is 7"),
    (("running",), [0, -5, -16, 0], "running totals [0, -5, -16, 0]"),
    (("running",), [INF, 1, 2, 3], "running totals [inf, 1, 2, 3]"),
    (("running",), [1.0, 3, 16.0, 0.5], "running totals"),   # a count must be an int
    (("running",), [1.0, 3, 8, 0.5], "running totals"),      # 2 steps of 8 clips are 16
    (("running",), [1.0, 17, 16, 0.5], "running totals"),    # more right than seen
    (("epoch",), "0", "epoch '0' and step_in_epoch 2 must be whole numbers"),
    (("epoch",), 0.0, "epoch 0.0 and step_in_epoch 2 must be whole numbers"),
    (("step_in_epoch",), 2.0, "step_in_epoch 2.0 must be whole numbers"),
    (("step_in_epoch",), True, "step_in_epoch True must be whole numbers"),
    (("epoch",), 2, "epoch 2, step 2 is outside this run's 2 epochs"),  # the last epoch is over: no step 2
])
def test_damaged_checkpoint_metadata_stops_the_resume_in_one_line(env, interrupted, tmp_path, keys, value,  # noqa: F811
                                                                  needle):
    damaged = copy_run(interrupted, tmp_path / "P")
    path = damaged / classifier.CHECKPOINT
    rewrite_checkpoint(path, _set(*keys, value=value))
    before = path.read_bytes()
    error = one_line_error(CliRunner().invoke(main, ["train", "--resume", str(damaged), "--quiet"]),
                           str(path), "checkpoint metadata is incomplete or malformed")
    assert needle in error
    assert path.read_bytes() == before and not (damaged / "metrics.csv").exists()


@pytest.mark.parametrize("selected", [[1, INF], [1, float("nan")]])
def test_a_selected_epoch_must_have_a_finite_spread(env, tmp_path, selected):  # noqa: F811
    damaged = copy_run(env[2], tmp_path / "R")  # a finished run of 1 epoch: its resume only reports
    rewrite_checkpoint(damaged / classifier.CHECKPOINT, _set("selected", value=selected))
    one_line_error(CliRunner().invoke(main, ["train", "--resume", str(damaged), "--quiet"]),
                   "checkpoint metadata is incomplete or malformed", "device spread is", "not a finite number")


@pytest.mark.parametrize("stops", [
    (3, 2),                        # mid-epoch twice
    ("epoch end", 1, 4),           # after the last step of epoch 1 (before its evaluation), before an epoch
])
def test_every_checkpoint_a_run_writes_restores_when_resumed_several_times(home, tiny_data,  # noqa: F811
                                                                            tmp_path, stops):
    """The checks are exact for what tinyasc writes: warm-up, several resumes, stops at an epoch's end."""
    config = _config(home[1], warmup_epochs=1.0)
    straight = Trainer(config, tmp_path / "straight", data=tiny_data, log=QUIET, progress=False)
    assert straight.fit()
    run = tmp_path / "run"
    trainer = Trainer(config, run, data=tiny_data, log=QUIET, progress=False)
    for i, stop in enumerate(stops):
        if i:
            trainer = Trainer(config, run, data=tiny_data, log=QUIET, progress=False)
            trainer.restore(run / classifier.CHECKPOINT)
        stop = trainer.steps_per_epoch + 1 if stop == "epoch end" else stop
        assert not trainer.fit(stop=_StopAfter(stop))
    trainer = Trainer(config, run, data=tiny_data, log=QUIET, progress=False)
    trainer.restore(run / classifier.CHECKPOINT)
    assert trainer.fit()
    a, b = straight.model.state_dict(), trainer.model.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_compress_and_distillation_fine_tune_restores_after_an_interruption(home, tiny_data, tmp_path):  # noqa: F811
    from tinyasc.train.finetune import finetune_config
    from tinyasc.train.config import load_run_config

    run = home[2]  # a finished run of the module: the weights to fine-tune and the teacher
    config = finetune_config(load_run_config(run), run, prune=0.5, bits=8, teachers=[run], epochs=2)
    out = tmp_path / "finetune-0"
    trainer = Trainer(config, out, data=tiny_data, log=QUIET, progress=False)
    assert not trainer.fit(stop=_StopAfter(trainer.steps_per_epoch + 3))  # in epoch 2
    for _ in range(2):
        trainer = Trainer(config, out, data=tiny_data, log=QUIET, progress=False)
        trainer.restore(out / classifier.CHECKPOINT)
        assert (trainer.epoch, trainer.step_in_epoch) == (1, 1) and trainer.schedule.step_count > 0
    assert trainer.fit()


# ------------------------------------------------------------------------------ translator

@pytest.fixture(scope="module")
def translator(home):  # noqa: F811
    """A translator trained for its one epoch, and its pairs."""
    dataset = load_dataset(home[1])
    data = PairData(dataset, cache.load_features(dataset, cache_dir=home[0] / "features", progress=False))
    out = home[0] / "translator"
    assert TranslatorTrainer(translator_config(epochs=1), out, data=data, log=QUIET, progress=False).fit()
    return out, data


@pytest.mark.parametrize("key, value", [("epoch", INF), ("step_in_epoch", INF), ("epoch", "1"), ("epoch", 1.0),
                                        ("epoch", 2), ("step_in_epoch", -1)])
def test_a_translators_epoch_is_checked_where_it_is_loaded(env, translator, tmp_path, key, value):  # noqa: F811
    damaged = copy_run(translator[0], tmp_path / "bad")
    path = damaged / "translator.npz"
    rewrite_checkpoint(path, _set(key, value=value))
    with pytest.raises(CheckpointError, match="translator checkpoint is incomplete or damaged") as caught:
        load_translator(damaged)
    assert str(path) in str(caught.value) and "not whole numbers within its 1 epochs" in str(caught.value)
    one_line_error(CliRunner().invoke(main, ["translator", "evaluate", str(damaged)]), str(path))


@pytest.mark.parametrize("key, value, needle", [
    ("epoch", INF, "epoch inf and step_in_epoch 0 must be whole numbers"),
    ("epoch", "1", "epoch '1' and step_in_epoch 0 must be whole numbers"),
    ("running", [INF, 0.0, 0.0, 3, 1.0], "running totals [inf"),
    ("running", [1.0, 0.0, 0.0, 3.0, 1.0], "running totals"),
    ("running", [1.0, -1.0, 0.0, 3, 1.0], "running totals"),
])
def test_a_translators_resume_checks_its_metadata(translator, tmp_path, key, value, needle):
    damaged = copy_run(translator[0], tmp_path / "bad")
    path = damaged / "translator.npz"
    rewrite_checkpoint(path, _set(key, value=value))
    trainer = TranslatorTrainer(translator_config(epochs=1), damaged, data=translator[1], log=QUIET, progress=False)
    with pytest.raises(CheckpointError, match="checkpoint metadata is incomplete or malformed") as caught:
        trainer.restore(path)
    assert str(path) in str(caught.value) and needle in str(caught.value)


# ------------------------------------------------------------------ a finished run kept in git

@pytest.mark.parametrize("metrics, needle", [
    (b"epoch,loss\n1,2.\xff\n", "codec can't decode"),
    ("epoch,loss\n\u00b2,2.0\n".encode(), "its last epoch '\u00b2' is not an epoch number"),
    (b"epoch,loss\n1,2.0\n1.0,2.0\n", "its last epoch '1.0'"),
    (b"epoch,loss\n1,2.0\n,2.0\n", "its last epoch ''"),
])
def test_a_damaged_metrics_file_of_a_run_without_its_checkpoint_is_one_line(tmp_path, metrics, needle):
    from tinyasc.train.runs import finished

    (tmp_path / "device_table.csv").write_text("device,accuracy\noverall,50\n")
    (tmp_path / "metrics.csv").write_bytes(metrics)
    with pytest.raises(TinyAscError, match=str(tmp_path / "metrics.csv")) as caught:
        finished(tmp_path, 1)
    assert needle in str(caught.value) and "delete the run folder to train it again" in str(caught.value)
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,2.0\n2,1.5\n")  # what tinyasc writes still reads
    assert finished(tmp_path, 2) and not finished(tmp_path, 3)


def test_experiment_says_which_metrics_file_is_damaged(env, tmp_path):  # noqa: F811
    home_dir, root, run = env
    args = ["experiment", "--data", str(root), "--model-width", "4", "--norms", "none", "--seeds", "0",
            "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "exp"), "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    folder = tmp_path / "exp" / "none-seed0"
    (folder / classifier.CHECKPOINT).unlink()  # as after a git clone
    (folder / "metrics.csv").write_bytes("epoch,loss\n\u00b2,2.0\n".encode())
    one_line_error(CliRunner().invoke(main, args), str(folder / "metrics.csv"), "delete the run folder")


# ------------------------------------------------------------------------ compressed models

@pytest.mark.parametrize("positions", [lambda a: a[:0], lambda a: a[:-1], lambda a: np.append(a, np.uint8(0))])
def test_compressed_positions_of_the_wrong_length_are_refused(tmp_path, positions):
    from tinyasc.compress import load_compressed

    path = _compressed(tmp_path)
    arrays, meta = load_checkpoint(path)
    weights = sum(math.prod(shape) for _, shape in meta["models"][0]["convs"])
    assert arrays["model0/positions"].size == math.ceil(weights / 8)  # what save_compressed writes
    key = "model0/positions"
    rewrite_checkpoint(path, lambda arrays, _: arrays.update({key: positions(arrays[key])}))
    with pytest.raises(CheckpointError, match=rf"{path}: model 0's array 'positions' holds [0-9,]+ bytes, not the "
                                              rf"{math.ceil(weights / 8):,} of one bit per conv weight") as caught:
        load_compressed(path)
    assert "write it again with tinyasc compress" in str(caught.value)
