"""What a translator reads back from files is checked before use: its checkpoint's step and
normalizer, the devices of the data it is evaluated on, and its cache of translations."""
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cli_checks import one_line_error  # tests/cli_checks.py
from test_translator import tiny  # noqa: F401  (the fixture: the tiny dataset, its home and features)
from tinyasc.cli import main
from tinyasc.data import cache
from tinyasc.data.tau import load_dataset
from tinyasc.errors import DataError, TinyAscError
from tinyasc.run.checkpoint import META_KEY, load_checkpoint
from tinyasc.translator.augment import translated_features
from tinyasc.translator.config import TranslatorConfig
from tinyasc.translator.data import PairData
from tinyasc.translator.evaluate import save_translation_figure
from tinyasc.translator.train import TranslatorTrainer

QUIET = lambda *_: None  # noqa: E731


def _config(root, **kw):
    base = dict(data=str(root), width=2, depth=1, res_blocks=1, disc_width=4, disc_layers=2, epochs=1, batch_size=4,
                seed=1)
    base.update(kw)
    return TranslatorConfig(**base)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """A translator folder trained for one epoch on the tiny dataset (copy it before damaging it)."""
    _, root, dataset, features = tiny
    out = tmp_path_factory.mktemp("trained") / "tr"
    TranslatorTrainer(_config(root), out, data=PairData(dataset, features), log=QUIET, progress=False).fit()
    return out


def _rewrite(src, dst, arrays=None, meta=None):
    """A copy of translator folder `src` at `dst` with some arrays and metadata fields replaced."""
    shutil.copytree(src, dst)
    saved_arrays, saved_meta = load_checkpoint(dst / "translator.npz")
    blob = np.frombuffer(json.dumps({**saved_meta, **(meta or {})}).encode(), np.uint8)
    # np.savez, not save_checkpoint, which refuses to write NaN: the damage happens outside tinyasc
    np.savez(dst / "translator.npz", **{**saved_arrays, **(arrays or {}), META_KEY: blob})
    return dst


# ------------------------------------------------------- 1. the data's devices
def test_evaluation_refuses_data_whose_devices_changed_since_training(tiny, tmp_path, monkeypatch):
    home, root, _, _ = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    data = tmp_path / "ds"
    shutil.copytree(root, data, copy_function=os.link)  # audio hard-linked: only the lists change
    dataset = load_dataset(data)
    features = cache.load_features(dataset, progress=False)
    out = tmp_path / "tr"
    TranslatorTrainer(_config(data), out, data=PairData(dataset, features), log=QUIET, progress=False).fit()
    (out / "evaluation.csv").write_text("before\n")
    split = data / "evaluation_setup" / "fold1_train.csv"
    split.unlink()  # a hard link: write a new file, not through to the original
    lines = (root / "evaluation_setup" / "fold1_train.csv").read_text().splitlines(keepends=True)
    split.write_text("".join(line for line in lines if "-b.wav" not in line))

    result = CliRunner().invoke(main, ["translator", "evaluate", str(out)])
    one_line_error(result, out, "b, c, s1, s2, s3", "with c, s1, s2, s3")
    assert (out / "evaluation.csv").read_text() == "before\n"
    with pytest.raises(DataError, match="trained for target devices b, c, s1, s2, s3"):
        save_translation_figure(out, tmp_path / "figure.png")  # tinyasc figures --translator
    assert not (tmp_path / "figure.png").exists()


# --------------------------------------------------------- 2. checkpoint values
@pytest.mark.parametrize("step, running_steps, needle", [(-3, 0, "step -3 is outside"), (99, 99, "step 99 is outside"),
                                                         (2, 5, "count 5 steps")])
def test_resume_refuses_a_step_outside_the_epoch(tiny, tmp_path, monkeypatch, step, running_steps, needle):
    home, root, dataset, features = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    part = tmp_path / "part"
    calls = []
    TranslatorTrainer(_config(root, epochs=2), part, data=PairData(dataset, features), log=QUIET,
                      progress=False).fit(stop=lambda: calls.append(1) or len(calls) == 3)  # epoch 1, step 1
    running = load_checkpoint(part / "translator.npz")[1]["running"]
    bad = _rewrite(part, tmp_path / "bad", meta={"step_in_epoch": step,
                                                 "running": running[:3] + [running_steps] + running[4:]})
    before = (bad / "translator.npz").read_bytes()
    result = CliRunner().invoke(main, ["translator", "train", "--resume", "--out", str(bad), "--quiet"])
    one_line_error(result, bad / "translator.npz", needle)
    assert (bad / "translator.npz").read_bytes() == before and not (bad / "evaluation.csv").exists()


@pytest.mark.parametrize("name, value, needle", [("norm/std", 0.0, "standard deviation of 0"),
                                                 ("norm/std", -1.0, "standard deviation of -1"),
                                                 ("norm/std", np.nan, "NaN or infinity"),
                                                 ("norm/mean", np.inf, "NaN or infinity")])
def test_evaluation_refuses_normalizer_statistics_that_are_not_finite_or_positive(tiny, trained, tmp_path,
                                                                                  monkeypatch, name, value, needle):
    home = tiny[0]
    monkeypatch.setenv("TINYASC_HOME", str(home))
    std = load_checkpoint(trained / "translator.npz")[0][name]
    bad = _rewrite(trained, tmp_path / "bad", arrays={name: np.full_like(std, value)})
    result = CliRunner().invoke(main, ["translator", "evaluate", str(bad)])
    one_line_error(result, bad / "translator.npz", needle, "retrain")
    assert not (bad / "evaluation.csv").exists()


# ------------------------------------------------------ 3. the translations cache
def _damage_truncate(npy, index):
    npy.write_bytes(npy.read_bytes()[:-5000])


def _damage_float64_nan(npy, index):
    np.save(npy, np.full(np.load(npy, mmap_mode="r").shape, np.nan))


def _damage_nan_in_place(npy, index):
    x = np.load(npy, mmap_mode="r+")
    x[len(x) // 2, 3, 4] = np.nan
    x.flush()


def _damage_zeros(npy, index):
    x = np.load(npy, mmap_mode="r+")
    x[...] = 0
    x.flush()


def _damage_index(npy, index):
    index.write_text("{bad")


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_float64_nan, _damage_nan_in_place, _damage_zeros,
                                    _damage_index])
def test_a_damaged_translations_cache_is_recomputed(tiny, trained, tmp_path, damage):
    _, _, dataset, features = tiny
    folder = tmp_path / "tr"
    shutil.copytree(trained, folder)
    rows = np.array([30, 2, 17, 5, 11])
    names = [features.filenames[r] for r in rows]
    first = np.array(translated_features(folder, features.x, rows, names, log=QUIET, progress=False)[0])
    (npy,), (index,) = folder.glob("translations-*.npy"), folder.glob("translations-*.json")
    damage(npy, index)
    logs = []
    x, _ = translated_features(folder, features.x, rows, names, log=logs.append, progress=False)
    assert "recomputing it" in logs[0], logs
    np.testing.assert_array_equal(x, first)
    assert x.dtype == np.float32 and sorted(p.name for p in folder.glob("*translations-*")) == [index.name, npy.name]
    again = []
    translated_features(folder, features.x, rows, names, log=again.append, progress=False)
    assert "from cache" in again[-1]


def test_train_with_a_truncated_translations_cache_recomputes_it(tiny, trained, tmp_path, monkeypatch):
    home, root, _, _ = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    folder = tmp_path / "tr"
    shutil.copytree(trained, folder)
    args = ["train", "--data", str(root), "--model-width", "2", "--epochs", "1", "--batch-size", "8",
            "--translator", str(folder), "--quiet"]
    assert CliRunner().invoke(main, args + ["--out", str(tmp_path / "run1")]).exit_code == 0
    (npy,) = folder.glob("translations-*.npy")
    npy.write_bytes(npy.read_bytes()[:-5000])
    result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "run2")])
    assert result.exit_code == 0, result.output
    assert "does not match its index" in result.output and "recomputing it" in result.output


def test_translations_that_are_not_finite_are_refused_and_not_cached(tiny, trained, tmp_path):
    _, _, dataset, features = tiny
    eq = load_checkpoint(trained / "translator.npz")[0]["generator/eq"]
    bad = _rewrite(trained, tmp_path / "bad", arrays={"generator/eq": np.full_like(eq, 3e38)})  # finite, overflows
    rows = np.arange(4)
    with np.errstate(over="ignore"), pytest.raises(TinyAscError, match="bad/translator.npz: the translator turns"):
        translated_features(bad, features.x, rows, [features.filenames[r] for r in rows], log=QUIET, progress=False)
    assert not [p.name for p in bad.iterdir() if "translations-" in p.name]
