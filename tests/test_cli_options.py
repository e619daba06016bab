"""The command-line options come from the config dataclasses (tinyasc/train/config.py,
tinyasc/translator/config.py): every field is an option, with the dataclass's default, and the
options left alone build exactly the default config."""
import dataclasses

import click
import pytest
from click.testing import CliRunner

from tinyasc.cli import main
from tinyasc.train.config import ARCHS, PRESET_NAMES, TrainConfig
from tinyasc.translator.config import TranslatorConfig


def _param(command, name):
    found = [p for p in command.params if p.name == name]
    assert len(found) == 1, f"tinyasc {command.name} has {len(found)} parameters for the field {name}"
    return found[0]


def _check_default(field, param):
    meta = field.metadata
    if meta.get("multiple"):
        assert param.multiple and tuple(param.default) == () and field.default == ""
    elif "by_arch" in meta:  # resolved by --arch; the dataclass default is the paper's architecture's
        assert param.default is None and meta["by_arch"][TrainConfig.arch] == field.default
    elif "choices" in meta:
        assert isinstance(param.type, click.Choice) and param.default == str(field.default)
        assert list(param.type.choices) == [str(c) for c in meta["choices"]]
    else:
        assert param.default == field.default, f"--{field.name}: {param.default!r} vs {field.default!r}"


@pytest.mark.parametrize("field", dataclasses.fields(TrainConfig), ids=lambda f: f.name)
def test_every_train_config_field_is_an_option_with_its_default(field):
    where = field.metadata.get("command", "train")
    command = main.commands[where]
    if field.name == "init_from":  # tinyasc compress starts one fine-tuning from each of its RUNS
        assert _param(command, "runs").nargs == -1
        return
    param = _param(command, field.name)
    assert param.help and param.opts
    if where == "train":
        _check_default(field, param)


@pytest.mark.parametrize("field", dataclasses.fields(TranslatorConfig), ids=lambda f: f.name)
def test_every_translator_config_field_is_an_option_with_its_default(field):
    param = _param(main.commands["translator"].commands["train"], field.name)
    assert param.help
    _check_default(field, param)


def test_compress_keeps_table_3_defaults():
    params = {p.name: p for p in main.commands["compress"].params}
    assert (params["prune"].default, params["bits"].default, params["epochs"].default) == (0.89, "8", 10)
    assert params["lr"].default is None and params["per_channel"].default is False


def test_the_preset_names_are_the_generator_presets():
    from tinyasc.data.synth import PRESETS

    assert PRESET_NAMES == tuple(PRESETS)


@pytest.fixture
def captured(monkeypatch):
    """The config the command would train with; nothing is trained."""
    import tinyasc.train.classifier
    import tinyasc.translator.train

    seen = []

    def fake_train(config, run_dir, **_):
        seen.append(config)
        return "trained", None

    def fake_translator(config, out_dir, **_):
        seen.append(config)
        return "trained"

    monkeypatch.setattr(tinyasc.train.classifier, "train", fake_train)
    monkeypatch.setattr(tinyasc.translator.train, "train_translator", fake_translator)
    return seen


def test_train_without_options_builds_the_default_config(captured, tmp_path):
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert captured == [TrainConfig()]


@pytest.mark.parametrize("arch", ARCHS)
def test_width_and_norm_follow_the_architecture(captured, tmp_path, arch):
    from tinyasc.train.config import DEFAULT_NORM, DEFAULT_WIDTH

    assert CliRunner().invoke(main, ["train", "--arch", arch, "--out", str(tmp_path / "run")]).exit_code == 0
    assert (captured[0].width, captured[0].norm) == (DEFAULT_WIDTH[arch], DEFAULT_NORM[arch])


def test_train_options_reach_the_config(captured, tmp_path):
    args = ["train", "--no-roll", "--no-mixup", "--no-specaugment", "--teacher", "a", "--teacher", "b",
            "--subbands", "8", "--model-width", "12", "--momentum", "0.5", "--translator", "tr",
            "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert captured == [TrainConfig(roll_seconds=0.0, mixup_alpha=0.0, specaugment=False, teacher="a,b", subbands=8,
                                    width=12, momentum=0.5, translator="tr")]


def test_translator_train_without_options_builds_the_default_config(captured, tmp_path):
    result = CliRunner().invoke(main, ["translator", "train", "--out", str(tmp_path / "tr")])
    assert result.exit_code == 0, result.output
    assert captured == [TranslatorConfig()]
    result = CliRunner().invoke(main, ["translator", "train", "--beta1", "0.9", "--out", str(tmp_path / "tr")])
    assert captured[1] == TranslatorConfig(beta1=0.9)


def test_an_option_outside_the_checks_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "--momentum", "1.5", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needle, helps", [
    (["train", "--epochz", "2"], "No such option '--epochz'", "tinyasc train --help"),
    (["trian"], "No such command 'trian'", "tinyasc --help"),
    (["train", "--epochs", "two"], "Invalid value for '--epochs': 'two' is not an integer", "tinyasc train --help"),
    (["train", "--norm", "bn"], "Invalid value for '--norm': 'bn' is not one of", "tinyasc train --help"),
    (["synth"], "Missing option '--out'", "tinyasc synth --help"),
    (["evaluate"], "Missing argument 'RUN'", "tinyasc evaluate --help"),
])
def test_click_usage_errors_are_one_line(args, needle, helps):
    """click prints a usage error as three lines (usage, hint, error); tinyasc as one `error:` line
    naming the option or value and the help to read, exit code 2 (click's), no traceback."""
    result = CliRunner().invoke(main, args, prog_name="tinyasc")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    assert needle in lines[0] and f"see '{helps}'" in lines[0]


def test_help_version_and_a_bare_command_keep_clicks_output():
    for args in (["--help"], ["train", "--help"], ["--version"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "error" not in result.output.lower()[:20], result.output
    bare = CliRunner().invoke(main, [])
    assert bare.exit_code == 2 and bare.output.startswith("Usage: ")
