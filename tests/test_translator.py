"""The device translator (paper 2.3): networks, pairs, training, resume, evaluation, use in training."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinyasc.autograd import Tensor
from tinyasc.cli import main
from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset, segment_of
from tinyasc.errors import TinyAscError
from tinyasc.run.checkpoint import CheckpointError
from tinyasc.train.config import TrainConfig
from tinyasc.data.training import SplitRows, StackedRows, TrainingData
from tinyasc.train.experiment import parse_rows
from tinyasc.translator.data import find_pairs
from tinyasc.translator.config import TranslatorConfig
from tinyasc.translator.augment import add_translations
from tinyasc.translator.data import PairData, eq_offsets
from tinyasc.translator.evaluate import DB_PER_NEPER, evaluation_table, lsd_db
from tinyasc.translator.load import load_translator
from tinyasc.translator.model import PatchDiscriminator, UNetGenerator
from tinyasc.translator.train import TranslatorTrainer, lr_at


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    root = home / "tiny"
    synth.write_dataset(root, preset="tiny", seed=0, progress=False)
    dataset = load_dataset(root)
    features = cache.load_features(dataset, cache_dir=home / "features", progress=False)
    return home, root, dataset, features


def _config(**kw):
    base = dict(width=2, depth=1, res_blocks=1, disc_width=4, disc_layers=2, epochs=2, batch_size=4, seed=1)
    base.update(kw)
    return TranslatorConfig(**base)


def _quiet(*_):
    pass


# ------------------------------------------------------------------------- networks
@pytest.mark.parametrize("frames", [1, 7, 8, 13, 34])
def test_generator_keeps_any_time_length(frames):
    g = UNetGenerator(3, width=2, depth=3, res_blocks=1)
    y = g(Tensor(np.random.default_rng(0).standard_normal((2, 1, 256, frames)).astype(np.float32)), [0, 2])
    assert y.shape == (2, 1, 256, frames)


def test_generator_refuses_bins_that_do_not_split_into_sub_bands():
    with pytest.raises(ValueError, match="not a multiple of 16 sub-bands"):
        UNetGenerator(2, depth=5)  # 256 / 32 = 8 bins at the bottom


def test_generator_starts_from_its_eq_and_the_condition_selects_it():
    rng = np.random.default_rng(0)
    g = UNetGenerator(2, width=2, depth=1, res_blocks=0)
    g.out.weight.data[...] = 0  # switch the U-Net's contribution off: y = x + eq[d] + bias
    g.out.bias.data[...] = 0
    g.eq.data[...] = rng.standard_normal(g.eq.shape)
    x = rng.standard_normal((2, 1, 256, 5)).astype(np.float32)
    y = g(Tensor(x), [1, 0]).data
    np.testing.assert_allclose(y[0, 0] - x[0, 0], np.repeat(g.eq.data[1][:, None], 5, 1), atol=1e-6)
    np.testing.assert_allclose(y[1, 0] - x[1, 0], np.repeat(g.eq.data[0][:, None], 5, 1), atol=1e-6)


def test_discriminator_scores_patches():
    d = PatchDiscriminator(5, width=4, layers=3)
    x = Tensor(np.zeros((2, 1, 256, 101), np.float32))
    scores = d(x, x, [0, 4])
    assert scores.shape[:2] == (2, 1) and scores.shape[2] > 20 and scores.shape[3] > 5


def test_lsd_is_the_rms_db_difference():
    real = np.random.default_rng(0).standard_normal((3, 8, 5))
    np.testing.assert_allclose(lsd_db(real + 0.5, real), 0.5 * DB_PER_NEPER)
    assert lsd_db(real, real).max() == 0
    pred = real.copy()
    pred[:, :2] += 1.0  # 2 of 8 bins off by 1 neper: sqrt(2/8) * 4.34 dB
    np.testing.assert_allclose(lsd_db(pred, real), np.sqrt(2 / 8) * DB_PER_NEPER)


# ---------------------------------------------------------------------------- pairs
def test_pairs_join_the_same_segment_across_devices(tiny):
    _, _, dataset, features = tiny
    train = find_pairs(dataset.train, features)
    assert train.targets == ("b", "c", "s1", "s2", "s3")
    names = features.filenames
    for s, t, k in zip(train.source, train.target, train.device):
        assert names[s].endswith("-a.wav") and names[t].endswith(f"-{train.targets[k]}.wav")
        assert segment_of(names[s]) == segment_of(names[t])
    test = find_pairs(dataset.test, features, train.targets)
    assert len(test) == 5 * 10  # tiny: 10 test segments, each on every device
    with pytest.raises(TinyAscError, match="no recordings of device s5 paired"):
        find_pairs(dataset.train, features, ("b", "s5"))


# ------------------------------------------------------------------------- training
def test_training_lowers_the_reconstruction_loss(tiny):
    _, _, dataset, features = tiny
    data = PairData(dataset, features)
    trainer = TranslatorTrainer(_config(lr=2e-3), "unused", data=data, log=_quiet, progress=False)
    rng = np.random.default_rng(0)
    index = np.arange(len(data.train))
    src, tgt = data.batch(data.train, index, 128, rng)

    def l2():
        trainer.generator.eval()
        out = trainer.generator(Tensor(src), data.train.device[index]).data
        trainer.generator.train()
        return float(((out - tgt) ** 2).mean())

    losses = [l2()]
    for step in range(40):
        trainer.train_step(src[:8], tgt[:8], data.train.device[:8])
        if step % 10 == 9:
            losses.append(l2())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.92 * losses[0], losses


def test_resume_ends_where_an_uninterrupted_run_does(tiny, tmp_path):
    _, _, dataset, features = tiny
    data = PairData(dataset, features)
    whole = TranslatorTrainer(_config(), tmp_path / "whole", data=data, log=_quiet, progress=False)
    assert whole.fit()
    calls = []
    part = TranslatorTrainer(_config(), tmp_path / "part", data=data, log=_quiet, progress=False)
    assert not part.fit(stop=lambda: calls.append(1) or len(calls) == 3)  # stop after the 3rd step
    resumed = TranslatorTrainer(_config(), tmp_path / "part", data=data, log=_quiet, progress=False)
    resumed.restore(tmp_path / "part" / "translator.npz")
    assert (resumed.epoch, resumed.step_in_epoch) == (1, 1)
    assert resumed.fit()
    a, b = whole.generator.state_dict(), resumed.generator.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [r["l2"] for r in whole.history] == [r["l2"] for r in resumed.history]


def test_learning_rate_is_constant_then_decays_linearly():
    config = TranslatorConfig(epochs=10, lr=1.0)
    rates = [lr_at(config, e) for e in range(10)]
    np.testing.assert_allclose(rates, [1.0] * 5 + [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_lsgan_targets_real_as_one_and_fake_as_zero():
    from tinyasc.translator.model import lsgan_loss
    ones, zeros = Tensor(np.ones((2, 1, 3, 3))), Tensor(np.zeros((2, 1, 3, 3)))
    assert float(lsgan_loss(ones, True).data) == 0 and float(lsgan_loss(zeros, False).data) == 0
    assert float(lsgan_loss(zeros, True).data) == 1 and float(lsgan_loss(ones, False).data) == 1


@pytest.mark.parametrize("field, value, message", [("subbands", 0, "--subbands"), ("depth", 5, "sub-bands"),
                                                   ("disc_layers", 6, "too few"), ("targets", "b,b", "twice"),
                                                   ("batch_size", 1, "--batch-size")])
def test_config_errors_name_the_option(field, value, message):
    with pytest.raises(TinyAscError, match=message):
        TranslatorConfig(**{field: value}).validate()


def test_a_fresh_run_refuses_a_folder_with_a_translator(tiny, tmp_path):
    from tinyasc.translator.train import train_translator
    _, _, dataset, features = tiny
    data = PairData(dataset, features)
    assert train_translator(_config(epochs=1), tmp_path, data=data, log=_quiet, progress=False)
    with pytest.raises(TinyAscError, match="pass --resume"):
        train_translator(_config(epochs=1), tmp_path, data=data, log=_quiet, progress=False)


def test_cli_trains_evaluates_and_the_table_has_every_target(tiny, tmp_path, monkeypatch):
    home, root, _, _ = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    out = tmp_path / "tr"
    args = ["translator", "train", "--data", str(root), "--out", str(out), "--width", "2", "--depth", "1",
            "--res-blocks", "1", "--disc-width", "4", "--epochs", "1", "--batch-size", "4", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = (out / "evaluation.csv").read_text().splitlines()
    assert rows[0].startswith("device,pairs,identity_lsd_db,eq_lsd_db,translator_lsd_db")
    assert [r.split(",")[0] for r in rows[1:]] == ["b", "c", "s1", "s2", "s3", "all"]
    assert all(np.isfinite(float(v)) for r in rows[1:] for v in r.split(",")[2:])
    assert json.loads((out / "config.json").read_text())["width"] == 2
    again = CliRunner().invoke(main, ["translator", "evaluate", str(out)])
    assert again.exit_code == 0 and "| s3 | 10 |" in again.output
    figure = CliRunner().invoke(main, ["figures", "--translator", str(out), "--out", str(tmp_path / "figs")])
    assert figure.exit_code == 0, figure.output
    assert "features: " in figure.output  # the dataset's lines (a cache computed first would say so)
    assert (tmp_path / "figs" / "translator.png").stat().st_size > 0


def test_cli_errors_name_the_problem(tiny, tmp_path, monkeypatch):
    home, root, _, _ = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    runner = CliRunner()
    result = runner.invoke(main, ["translator", "train", "--data", str(root), "--out", str(tmp_path / "x"),
                                  "--targets", "b,s6", "--quiet"])
    assert result.exit_code == 1 and "device s6" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["translator", "train", "--out", str(tmp_path / "y"), "--depth", "5"])
    assert result.exit_code == 1 and "sub-bands" in result.output
    result = runner.invoke(main, ["translator", "evaluate", str(tmp_path)])
    assert result.exit_code == 1 and "translator.npz" in result.output
    (tmp_path / "file").write_text("x")
    result = runner.invoke(main, ["translator", "train", "--data", str(root), "--out", str(tmp_path / "file")])
    assert result.exit_code == 1 and "file, not a folder" in result.output and result.exception.__class__ is SystemExit
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{bad")
    result = runner.invoke(main, ["translator", "train", "--resume", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "config.json: not valid JSON" in result.output
    assert result.exception.__class__ is SystemExit


def test_a_classifier_checkpoint_is_not_a_translator(tiny, tmp_path):
    from tinyasc.run.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "translator.npz", {"w": np.zeros(2)}, {"kind": "tinyasc-classifier"})
    with pytest.raises(CheckpointError, match="not a translator checkpoint"):
        load_translator(tmp_path)


@pytest.mark.parametrize("damage", ["no normalizer", "no targets", "bad config value", "short normalizer"])
def test_a_damaged_translator_checkpoint_is_one_line_naming_the_file(tiny, tmp_path, damage):
    from tinyasc.run.checkpoint import load_checkpoint, save_checkpoint
    _, _, dataset, features = tiny
    TranslatorTrainer(_config(epochs=1), tmp_path / "tr", data=PairData(dataset, features), log=_quiet,
                      progress=False).fit()
    arrays, meta = load_checkpoint(tmp_path / "tr" / "translator.npz")
    if damage == "no normalizer":
        del arrays["norm/mean"]
    elif damage == "no targets":
        del meta["targets"]
    elif damage == "bad config value":
        meta["config"]["width"] = "x"
    else:
        arrays["norm/std"] = arrays["norm/std"][:10]
    save_checkpoint(tmp_path / "bad" / "translator.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="bad/translator.npz: .*retrain it"):
        load_translator(tmp_path / "bad")
    result = CliRunner().invoke(main, ["translator", "evaluate", str(tmp_path / "bad")])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
    assert len(result.output.strip().splitlines()) == 1 and "bad/translator.npz" in result.output


def test_a_file_that_is_no_npz_is_called_corrupt_not_a_pickle(tmp_path):
    (tmp_path / "translator.npz").write_text("garbage\n")
    with pytest.raises(CheckpointError, match="truncated or corrupt checkpoint \\(not an .npz archive\\)"):
        load_translator(tmp_path)


def test_evaluation_baselines(tiny, tmp_path):
    _, _, dataset, features = tiny
    data = PairData(dataset, features)
    trainer = TranslatorTrainer(_config(epochs=1), tmp_path, data=data, log=_quiet, progress=False)
    offsets = eq_offsets(data.features, data.train)
    k = data.train.of_device(2)
    expected = (np.asarray(features.x[data.train.target[k]], np.float64)
                - np.asarray(features.x[data.train.source[k]], np.float64)).mean(axis=(0, 2))
    np.testing.assert_allclose(offsets[2], expected, rtol=1e-5, atol=1e-5)
    rows = evaluation_table(trainer.generator, data.normalizer, data)
    assert [r["device"] for r in rows] == ["b", "c", "s1", "s2", "s3", "all"]
    assert rows[-1]["pairs"] == 50 and all(r["identity"] > 0 for r in rows)


# -------------------------------------------------------------- use in training
def test_training_set_gains_every_translation_and_the_cache_is_reused(tiny, tmp_path):
    _, _, dataset, features = tiny
    TranslatorTrainer(_config(epochs=1), tmp_path / "tr", data=PairData(dataset, features), log=_quiet,
                      progress=False).fit()
    base = TrainingData.from_features(dataset, features)
    logs = []
    grown = add_translations(base, tmp_path / "tr", log=logs.append, progress=False)
    n_a = int((base.devices("train") == "a").sum())
    assert len(grown.rows("train")) == len(base.rows("train")) + 5 * n_a
    assert list(grown.labels("test")) == list(base.labels("test"))
    assert sorted(set(grown.devices("train"))) == ["a", "b", "c", "s1", "s2", "s3"]
    extra = grown.rows("train")[len(base.rows("train")):]
    batch = grown.features[extra[:3]]
    assert batch.shape == (3,) + features.x.shape[1:] and np.isfinite(batch).all()
    again = []
    add_translations(base, tmp_path / "tr", log=again.append, progress=False)
    assert "from cache" in again[-1] and "from cache" not in logs[-1]


def test_translations_follow_the_rows_given_and_a_cache_without_index_is_redone(tiny, tmp_path):
    from tinyasc.translator.augment import translated_features
    from tinyasc.translator.load import translate
    _, _, dataset, features = tiny
    TranslatorTrainer(_config(epochs=1), tmp_path, data=PairData(dataset, features), log=_quiet, progress=False).fit()
    _, generator, normalizer, targets, _ = load_translator(tmp_path)
    rows = np.array([30, 2, 17, 5, 11])  # unsorted on purpose
    names = [features.filenames[r] for r in rows]
    x, got_targets = translated_features(tmp_path, features.x, rows, names, log=_quiet, progress=False)
    assert got_targets == targets and x.shape == (5 * len(targets),) + features.x.shape[1:]
    for k in (0, len(targets) - 1):
        np.testing.assert_allclose(x[k * 5:(k + 1) * 5], translate(generator, normalizer, features.x[rows], k), atol=1e-5)
    (index,) = tmp_path.glob("translations-*.json")
    index.unlink()
    logs = []
    translated_features(tmp_path, features.x, rows, names, log=logs.append, progress=False)
    assert "from cache" not in logs[-1] and index.is_file()


def test_a_translator_trained_on_test_segments_is_refused(tiny, tmp_path):
    _, _, dataset, features = tiny
    leaky = PairData(dataset, features)
    leaky.train = leaky.test  # as if trained on another copy of the data whose training split held these
    TranslatorTrainer(_config(epochs=1), tmp_path / "tr", data=leaky, log=_quiet, progress=False).fit()
    base = TrainingData.from_features(dataset, features)
    with pytest.raises(TinyAscError, match="trained on 10 segments of this dataset's test split"):
        add_translations(base, tmp_path / "tr", log=_quiet, progress=False)
    assert not list((tmp_path / "tr").glob("translations-*"))
    # one trained on the training pairs passes the check and records what it learned from
    TranslatorTrainer(_config(epochs=1), tmp_path / "ok", data=PairData(dataset, features), log=_quiet,
                      progress=False).fit()
    meta = load_translator(tmp_path / "ok")[4]
    assert set(meta["train_segments"]) == {segment_of(n) for n, d in zip(dataset.train.filenames,
                                                                          dataset.train.devices) if d != "a"}
    add_translations(base, tmp_path / "ok", log=_quiet, progress=False)


def test_translated_device_names_are_whole_when_the_training_split_has_only_one_letter_devices(tiny, tmp_path):
    _, _, dataset, features = tiny
    TranslatorTrainer(_config(epochs=1), tmp_path / "tr", data=PairData(dataset, features), log=_quiet,
                      progress=False).fit()
    base = TrainingData.from_features(dataset, features)
    rows, labels, devices, names = base.splits["train"]
    keep = np.isin(devices, ["a", "b", "c"])
    base.splits["train"] = SplitRows(rows[keep], labels[keep], devices[keep].astype("<U1"),
                                     tuple(np.asarray(names)[keep]))
    grown = add_translations(base, tmp_path / "tr", log=_quiet, progress=False)
    assert sorted(set(grown.devices("train"))) == ["a", "b", "c", "s1", "s2", "s3"]


def test_resuming_a_classifier_run_after_its_translator_was_retrained_is_refused(tiny, tmp_path):
    import shutil
    from tinyasc.train.classifier import CHECKPOINT, Trainer
    home, root, dataset, features = tiny
    data = PairData(dataset, features)
    TranslatorTrainer(_config(epochs=1), tmp_path / "tr", data=data, log=_quiet, progress=False).fit()
    config = TrainConfig(data=str(root), width=2, epochs=1, batch_size=8, translator=str(tmp_path / "tr"))
    base = TrainingData.from_features(dataset, features)
    first = Trainer(config, tmp_path / "run", data=base, log=_quiet, progress=False)
    assert first.fit()
    # the same translator: the run's checkpoint restores
    Trainer(config, tmp_path / "run", data=base, log=_quiet, progress=False).restore(tmp_path / "run" / CHECKPOINT)
    shutil.rmtree(tmp_path / "tr")  # retrained in place with another seed
    TranslatorTrainer(_config(epochs=1, seed=2), tmp_path / "tr", data=data, log=_quiet, progress=False).fit()
    again = Trainer(config, tmp_path / "run", data=base, log=_quiet, progress=False)
    with pytest.raises(CheckpointError, match="is not the one this run started with"):
        again.restore(tmp_path / "run" / CHECKPOINT)


def test_stacked_rows_read_both_arrays_in_the_asked_order():
    a, b = np.arange(12.0).reshape(3, 2, 2), 100 + np.arange(8.0).reshape(2, 2, 2)
    s = StackedRows(a, b)
    assert len(s) == 5 and s.shape == (5, 2, 2)
    np.testing.assert_array_equal(s[np.array([4, 0, 3])], np.stack([b[1], a[0], b[0]]))
    np.testing.assert_array_equal(s[1], a[1])
    with pytest.raises(IndexError):
        s[np.array([0, 5])]


def test_train_with_a_translator_runs_from_the_cli(tiny, tmp_path, monkeypatch):
    home, root, dataset, features = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    TranslatorTrainer(_config(epochs=1, data=str(root)), tmp_path / "tr", data=PairData(dataset, features),
                      log=_quiet, progress=False).fit()
    result = CliRunner().invoke(main, ["train", "--data", str(root), "--model-width", "2", "--epochs", "1",
                                       "--batch-size", "8", "--translator", str(tmp_path / "tr"),
                                       "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "translations:" in result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["translator"] == str(tmp_path / "tr")


# ------------------------------------------------------------------ experiment rows
def test_rows_of_table_2():
    rows = parse_rows("table2", width=10)
    assert [r.key for r in rows] == ["none", "global", "freqin", "preresnorm", "resnorm", "cpresnet10-none",
                                     "bcresnet1-none", "resnorm-translator"]
    assert rows[-1].translator and rows[-1].name == "BC-ResNet-Mod (c=10) + ResNorm, device translator"
    assert parse_rows("bcresnet:none")[0].width == 8 and parse_rows("resnorm", width=4)[0].width == 4
    for bad, message in [("cpresnet:resnorm", "takes the norms"), ("resnorm+eq", "only '.translator'"),
                         ("vgg:none", "unknown architecture"), ("resnorm,resnorm", "share the run folders"),
                         ("cpresnet@x:none", "not an integer")]:
        with pytest.raises(TinyAscError, match=message):
            parse_rows(bad)


def test_experiment_trains_its_own_translator_for_translator_rows(tiny, tmp_path, monkeypatch):
    from tinyasc.train import experiment
    home, root, dataset, features = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    monkeypatch.setattr(experiment, "default_translator_config",
                        lambda base: _config(epochs=1, data=base.data, preset=base.preset))
    config = TrainConfig(data=str(root), width=2, epochs=1, batch_size=8)
    rows = parse_rows("resnorm,resnorm+translator", width=2)
    assert not experiment.plan_experiment(config, rows, [0], tmp_path / "exp", log=_quiet).translator_ready
    table, text = experiment.run_experiment(config, rows, [0], tmp_path / "exp", log=_quiet, progress=False)
    assert [r["row"] for r in table] == ["resnorm", "resnorm-translator"]
    # finished now: planned as ready, so '+translator' runs of --jobs need not wait for an idle machine
    assert experiment.plan_experiment(config, rows, [0, 1], tmp_path / "exp", log=_quiet).translator_ready
    assert (tmp_path / "exp" / "translator" / "translator.npz").is_file()
    saved = json.loads((tmp_path / "exp" / "resnorm-translator-seed0" / "config.json").read_text())
    assert saved["translator"] == str(tmp_path / "exp" / "translator")
    assert "device translator" in text


def test_experiment_refuses_its_translator_folder_when_made_with_other_data(tiny, tmp_path, monkeypatch):
    from tinyasc.train import experiment
    home, root, dataset, features = tiny
    monkeypatch.setenv("TINYASC_HOME", str(home))
    monkeypatch.setattr(experiment, "default_translator_config",
                        lambda base: _config(epochs=2, data=base.data, preset=base.preset))
    # an earlier experiment on other data was interrupted while training its translator
    other = TranslatorTrainer(_config(epochs=2, data=str(tmp_path / "other-data")), tmp_path / "exp" / "translator",
                              data=PairData(dataset, features), log=_quiet, progress=False)
    assert not other.fit(stop=lambda: True)
    config = TrainConfig(data=str(root), width=2, epochs=1, batch_size=8)
    with pytest.raises(TinyAscError, match="translator holds a run with other settings .*data: .*other-data"):
        experiment.ensure_translator(config, tmp_path / "exp", None, _quiet, False)


def test_a_run_folder_is_matched_by_its_settings_and_the_translator_folder(tmp_path, monkeypatch):
    from tinyasc.train.runs import check_same_config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    config = TrainConfig(width=4, epochs=3, translator="exp/translator")
    saved = json.loads(config.to_json())
    del saved["per_channel"]  # a setting added later: the saved run had its default
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    check_same_config(tmp_path / "run", TrainConfig(width=4, epochs=3, translator=str(tmp_path / "exp/translator")))
    with pytest.raises(TinyAscError, match="translator: 'exp/translator' there"):
        check_same_config(tmp_path / "run", TrainConfig(width=4, epochs=3, translator="other"))
    with pytest.raises(TinyAscError, match="epochs: 3 there, 4 now"):
        check_same_config(tmp_path / "run", TrainConfig(width=4, epochs=4, translator="exp/translator"))


def test_a_translator_folder_without_its_weights_says_to_train_it_again(tmp_path):
    """A translator folder from git (its config and metrics, not its checkpoint) is named as such."""
    (tmp_path / "tr").mkdir()
    (tmp_path / "tr" / "config.json").write_text('{"targets": "b,c"}')  # a translator's settings
    result = CliRunner().invoke(main, ["translator", "evaluate", str(tmp_path / "tr")])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit, result.output
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'tr'}: a translator folder without its translator.npz (checkpoints are not kept in git); "
        f"train it again with tinyasc translator train --out {tmp_path / 'tr'}"]
