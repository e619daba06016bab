"""The `tinyasc` command: a thin click layer over functions you can call from Python.

Errors a user can fix (`TinyAscError`) print one line and exit with code 1; anything
else is a bug and keeps its traceback. The options of `tinyasc train` and `tinyasc translator
train` are made from the fields of `TrainConfig` and `TranslatorConfig` (their defaults, choices
and help), so a setting is defined once, in its config.
"""
import contextlib
import dataclasses
import functools
import os
import signal
import sys
from pathlib import Path

import click

from tinyasc.errors import TinyAscError
from tinyasc.kernels.runtime import configure_runtime
from tinyasc.run.folder import refuse_other_folder
from tinyasc.train.config import DEFAULT_NORM, DEFAULT_WIDTH, NORMS, TrainConfig
from tinyasc.translator.config import TranslatorConfig


def one_line(text):
    """`text` with control characters escaped: a file name holding a newline cannot split the line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def stopped_by_ctrl_c(exc):
    """A KeyboardInterrupt, or the SystemError a Numba kernel turns one raised inside it into
    (a second Ctrl-C during a training step)."""
    return isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemError)
                                                  and isinstance(exc.__context__ or exc.__cause__, KeyboardInterrupt))


def friendly_errors(fn):
    """Turn TinyAscError into `error: <message>` on stderr and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TinyAscError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:  # outside a training loop's own handler: nothing half-written to save
            click.echo("interrupted", err=True)
            sys.exit(130)
        except SystemError as exc:
            if not stopped_by_ctrl_c(exc):
                raise
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader went away (`tinyasc ... | head`): stop quietly, as a shell tool does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
            sys.exit(141)
        except OSError as exc:  # a path that is a file, not a folder; no permission; a full disk
            where = exc.filename if exc.filename is not None else "a file"
            click.echo(one_line(f"error: {where}: {exc.strerror or exc}; check the path, its permissions and the "
                                "free space"), err=True)
            sys.exit(1)
        except MemoryError as exc:  # the checks of the options keep this rare; never a traceback
            detail = " ".join(str(exc).split()) or "MemoryError"
            click.echo(f"error: out of memory ({detail}); lower --batch-size or --model-width where the command "
                       "has them, use shorter clips, or free memory", err=True)
            sys.exit(1)
    return wrapper


class Number(click.ParamType):
    """An int or float option in ASCII digits (click's INT and FLOAT take any script's digits);
    a bad value is one `error:` line naming the option."""

    def __init__(self, kind):
        self.kind, self.name = kind, kind.__name__

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            return value
        from tinyasc.checks import parse_number
        try:
            return parse_number(value, self.kind)  # click's message names the option
        except TinyAscError as exc:
            self.fail(str(exc), param, ctx)


INT, FLOAT = Number(int), Number(float)


class NonEmptyPath(click.Path):
    """A path option or argument: an empty value is refused, not taken as the current folder or
    as the option left out."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path; name a file or folder", param, ctx)
        return super().convert(value, param, ctx)


PATH = NonEmptyPath()


def config_option(config_class, name, **overrides):
    """The click option of one field of a config dataclass, from what `setting` stored in the field.

    overrides (default, help) adapt it to a command that shares the field with another meaning.
    """
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    meta = {**field.metadata, **overrides}
    default, text = meta.get("default", field.default), meta["help"]
    decls = (meta.get("option", "--" + name.replace("_", "-")), name)
    if "flag_value" in meta:
        return click.option(*decls, flag_value=meta["flag_value"], default=default, help=text)
    kind = click.Path() if meta.get("path") else {int: INT, float: FLOAT}.get(field.type, field.type)
    if "choices" in meta:  # as text: click before 8.2 compares choices with the text typed
        kind = click.Choice([str(c) for c in meta["choices"]])
        default = None if default is None else str(default)
    if "by_arch" in meta and "default" not in overrides:
        default = None  # resolved once --arch is known
        if "help" not in overrides:
            text += " Default by --arch: " + ", ".join(f"{v} ({a})" for a, v in meta["by_arch"].items()) + "."
    if meta.get("multiple"):
        default = ()
    return click.option(*decls, type=kind, default=default, multiple=meta.get("multiple", False), help=text,
                        show_default=default not in (None, "", ()))


def config_options(config_class):
    """Options for every field of `config_class` (but those another command sets); the command
    receives the finished `config` instead of one argument per field."""
    fields = [f for f in dataclasses.fields(config_class) if "command" not in f.metadata]

    def value(field, values):  # the option's value as the field holds it
        raw, meta = values[field.name], field.metadata
        if meta.get("multiple"):
            return ",".join(raw)
        if raw is None and "by_arch" in meta:
            return meta["by_arch"][values["arch"]]
        return field.type(raw) if "choices" in meta and raw is not None else raw

    def decorate(fn):
        @functools.wraps(fn)
        def command(**kwargs):
            values = {f.name: kwargs.pop(f.name) for f in fields}
            return fn(config=config_class(**{f.name: value(f, values) for f in fields}), **kwargs)
        for field in reversed(fields):  # click lists options in the order the decorators are written
            command = config_option(config_class, field.name)(command)
        return command
    return decorate


class Commands(click.Group):
    """click's command group, with click's own errors (an unknown option, a bad value, a missing
    argument) reported as the commands report theirs: one `error:` line, exit code 2."""

    def main(self, *args, standalone_mode=True, **kwargs):
        if not standalone_mode:  # a caller that handles click's exceptions itself
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `tinyasc`: the help, as click shows it
                exc.show()
                sys.exit(exc.exit_code)
            command = exc.ctx.command_path if exc.ctx is not None else "tinyasc"
            message = exc.format_message().rstrip(".")
            click.echo(one_line(f"error: {message}; see '{command} --help'"), err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(one_line(f"error: {exc.format_message()}"), err=True)
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C before a command started
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)  # --help and --version give their exit code


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tinyasc")
def main():
    """tinyasc: Residual Normalization for device-imbalanced acoustic scene classification,
    from scratch in NumPy and Numba (DCASE2021 Task 1A, Kim et al.)."""
    from tinyasc.kernels.dispatch import backend_problem

    if backend_problem():  # before any command runs, so no command fails halfway over it
        click.echo(f"error: {backend_problem()}", err=True)
        sys.exit(1)
    configure_runtime()  # passive thread waits, one BLAS thread, freed memory kept: kernels/runtime.py
    # `kill` and a closed terminal stop a command as Ctrl-C does: training saves its checkpoint
    # (StopFlag), everything else cleans up what it started and exits 130
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
    except ValueError:  # called outside the main thread: signals stay as they are
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@main.command()
@click.option("--select", "-k", default=None, help="Only checks whose name contains this text.")
@click.option("--seed", type=INT, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--no-full", is_flag=True, help="Skip the full-Jacobian mode (directional checks only).")
@friendly_errors
def gradcheck(select, seed, no_full):
    """Check every op's and layer's backward against float64 central differences.

    Prints one line per check (name, mode, max error, pass/fail) and a summary; exits
    non-zero if any check fails.
    """
    from tinyasc.checks import check_seed
    from tinyasc.testing import catalog

    check_seed(seed)
    failed = total = 0
    for result in catalog.run(select=select, seed=seed, full=not no_full):
        total += 1
        failed += not result.passed
        click.echo(result.line())
    if total == 0:
        raise TinyAscError(f"no gradient check matches --select {select!r}; run without it to list them all")
    click.echo(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


@contextlib.contextmanager
def resume_hint_if_interrupted(checkpoint, command):
    """A second Ctrl-C stops a run at once, before it saves: say how to go on from the checkpoint
    it kept, if it has one."""
    try:
        yield
    except (KeyboardInterrupt, SystemError) as exc:
        if stopped_by_ctrl_c(exc) and Path(checkpoint).is_file():
            click.echo(f"stopped at once; the last checkpoint, {checkpoint}, is kept. Resume with: {command}",
                       err=True)
        raise


def refuse_changed_settings(config, saved, run_dir):
    """A resumed run continues with the settings saved in `run_dir`; an option given with --resume
    that would change one of them is refused (naming it), not silently ignored. An option repeating
    the saved value is fine, so the first command with --resume added works; values compare as
    the run uses them (folders as the folders they name, after validation's normalizing)."""
    from tinyasc.train.runs import same_setting

    ctx = click.get_current_context()
    given_config = dataclasses.replace(config).validate()  # e.g. minvar's val_fraction 0 -> 0.1
    for field in dataclasses.fields(saved):
        if ctx.get_parameter_source(field.name) in (None, click.ParameterSource.DEFAULT,
                                                    click.ParameterSource.DEFAULT_MAP):
            continue  # not a command-line option here, or left alone
        given, kept = getattr(given_config, field.name), getattr(saved, field.name)
        if field.name == "targets":  # the translator's devices, in any case and spacing
            given, kept = given_config.target_list, saved.target_list
        if same_setting(field.name, kept, given):
            continue
        option = field.metadata.get("option", "--" + field.name.replace("_", "-"))
        what = option if "flag_value" in field.metadata else f"{option} {getattr(config, field.name)}"
        shown = "none (the embedded synthetic dataset)" if field.name == "data" and kept is None else repr(kept)
        raise TinyAscError(f"{what} would change {run_dir}'s saved {field.name} = {shown}, but a resumed run keeps "
                           f"the settings it started with; drop {option}, or start a new run with --out")


def _default_run_dir():  # a function, so a test can name the second two runs start in
    import time
    return f"runs/{time.strftime('%Y%m%d-%H%M%S')}"


@main.command()
@config_options(TrainConfig)
@click.option("--out", "run_dir", type=PATH, default=None, help="Run folder. Default: runs/<date-time>.")
@click.option("--resume", "resume_dir", type=PATH, default=None,
              help="Continue the run in this folder from its last checkpoint, with its saved settings (an option "
                   "that would change one is refused).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def train(config, run_dir, resume_dir, quiet):
    """Train BC-ResNet-Mod (or a baseline: --arch) with the paper's recipe and print the per-device table."""
    from tinyasc.fileio import new_folder
    from tinyasc.train.classifier import train as run_training
    from tinyasc.train.config import load_run_config

    created = None
    if resume_dir:
        if run_dir is not None and Path(run_dir).resolve() != Path(resume_dir).resolve():
            raise TinyAscError(f"--out {run_dir} and --resume {resume_dir} name different folders; a resumed run "
                               "stays in its own folder: drop --out")
        run_dir = resume_dir
        refuse_changed_settings(config, load_run_config(run_dir), run_dir)
    else:
        config.validate()  # before a folder is made for it
        if run_dir is None:  # runs/<date-time>, or -2, -3, ... if another run took it this second
            run_dir = created = new_folder(_default_run_dir())
        if Path(run_dir).exists() and not Path(run_dir).is_dir():
            raise TinyAscError(f"--out {run_dir} is a file, not a folder; name a new folder for the run")
        if (Path(run_dir) / "checkpoint.npz").exists():
            raise TinyAscError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        refuse_other_folder(run_dir, "classifier")
    click.echo(f"run folder: {run_dir}")
    try:
        with resume_hint_if_interrupted(Path(run_dir) / "checkpoint.npz", f"tinyasc train --resume {run_dir}"):
            text, _ = run_training(config, run_dir, resume=bool(resume_dir), log=click.echo, progress=not quiet)
    except BaseException:
        if created is not None and not any(created.iterdir()):
            created.rmdir()  # a run that failed before writing anything leaves no empty folder
        raise
    if text is None:
        sys.exit(130)
    click.echo(text)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=PATH)
@config_option(TrainConfig, "prune", default=0.89)  # Table 3's recipe, not the plain training's defaults
@config_option(TrainConfig, "bits", default=8)
@config_option(TrainConfig, "per_channel")
@config_option(TrainConfig, "teacher",
               help="Distil from this run while fine-tuning (repeat for an ensemble of teachers).")
@config_option(TrainConfig, "epochs", default=10, help="Fine-tuning epochs after pruning.")
@config_option(TrainConfig, "lr", default=None, help="Peak learning rate of the fine-tuning. Default: the run's / 10.")
@click.option("--out", "out_dir", type=PATH, required=True,
              help="Folder for the fine-tuning runs, model.npz and size.txt.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def compress(runs, prune, bits, per_channel, teacher, epochs, lr, out_dir, quiet):
    """Prune, fine-tune (QAT, KD) and export RUNS as one compressed model (paper 2.4, Table 3).

    Several RUNS (two seeds in Table 3) are fine-tuned one by one and stored as an ensemble.
    Re-running the same command resumes an interrupted fine-tuning.
    """
    from tinyasc.train.finetune import MODEL_FILE, compress_runs

    refuse_other_folder(out_dir, "compress")
    summary = compress_runs(runs, out_dir, prune, int(bits), per_channel, teacher, epochs, lr, log=click.echo,
                            progress=not quiet)
    if summary is None:  # the fine-tuning said how to resume it; the whole command finishes the job
        click.echo("to finish the compression (fine-tuning, then model.npz and size.txt), run this tinyasc "
                   "compress command again")
        sys.exit(130)
    click.echo(summary.text())
    click.echo(f"evaluate it with: tinyasc evaluate {Path(out_dir) / MODEL_FILE}")


@main.command()
@click.argument("run", type=PATH)
@config_option(TrainConfig, "data", help="Dataset root. Default: the run's own dataset.")
@click.option("--out", "out_dir", type=PATH, default=None,
              help="Folder for eval_device_table.csv and eval_classes.csv. Default: the run folder (for a "
                   "model file, its folder, the names prefixed with the file's).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def evaluate(run, data, out_dir, quiet):
    """Per-device accuracy and log loss (Table 2 form), per-class accuracy, confusion matrix.

    RUN is a run folder of tinyasc train, or a compressed model file (model.npz) of tinyasc compress.
    """
    from tinyasc.train.inference import evaluate_run

    text = evaluate_run(run, data=data, log=click.echo, progress=not quiet, out=out_dir)
    click.echo(text)


@main.command()
@click.argument("run", type=PATH)
@click.argument("paths", nargs=-1, required=True, type=PATH)
@click.option("--out", "out_file", type=PATH, required=True, help="Submission file to write (TSV).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def predict(run, paths, out_file, quiet):
    """Write the DCASE submission file for audio files (or folders of .wav / .flac files).

    RUN is a run folder of tinyasc train, or a compressed model file (model.npz) of tinyasc compress.
    """
    from tinyasc.train.inference import predict_files

    count = predict_files(run, paths, out_file, log=click.echo, progress=not quiet)
    click.echo(f"wrote {count} predictions to {out_file}")


@main.command()
@click.option("--out", "out_dir", type=PATH, required=True, help="Folder to create (must not exist).")
@config_option(TrainConfig, "preset", help="Size: tiny (tests), default (minutes end to end), full (TAU-sized, "
                                          "10 s clips).")
@click.option("--seed", type=INT, default=0, show_default=True,
              help="Seed of the generated dataset (the same seed writes the same files).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def synth(out_dir, preset, seed, quiet):
    """Generate the synthetic device-imbalanced dataset in the TAU 2020 Mobile layout."""
    from tinyasc.data.synth import write_dataset
    from tinyasc.data.tau import counts_table

    summary = write_dataset(out_dir, preset, seed, progress=not quiet)
    click.echo(f"wrote {summary['files']} files to {summary['path']} in {summary['seconds']:.1f} s")
    click.echo(counts_table(summary["counts"]))


@main.command("data-info")
@click.option("--data", type=PATH, required=True, help="TAU-layout dataset root.")
@friendly_errors
def data_info(data):
    """Check a TAU-layout dataset and print its per-split, per-device counts."""
    from tinyasc.data.tau import load_dataset

    dataset = load_dataset(data)
    click.echo(f"{dataset.root}")
    click.echo(dataset.summary())


@main.group()
def translator():
    """The device translator (paper 2.3): a U-Net GAN from device A to the other devices."""


@translator.command("train")
@config_options(TranslatorConfig)
@click.option("--out", "out_dir", type=PATH, required=True,
              help="Translator folder (checkpoint, metrics, evaluation).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its checkpoint, with its saved settings (an option that would "
                   "change one is refused).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def translator_train(config, out_dir, resume, quiet):
    """Train the translator on the paired training segments, then evaluate it on the test pairs."""
    from tinyasc.run.folder import StopFlag
    from tinyasc.translator.config import load_translator_config
    from tinyasc.translator.train import train_translator

    if resume:
        refuse_changed_settings(config, load_translator_config(out_dir), out_dir)
    else:
        refuse_other_folder(out_dir, "translator")
    hint = f"tinyasc translator train --resume --out {out_dir}"
    with StopFlag() as flag, resume_hint_if_interrupted(Path(out_dir) / "translator.npz", hint):
        text = train_translator(config, out_dir, resume=resume, log=click.echo, progress=not quiet,
                                stop=flag)
    if text is None:
        sys.exit(130)
    click.echo(text)


@translator.command("evaluate")
@click.argument("run", type=PATH)
@friendly_errors
def translator_evaluate(run):
    """Log-spectral distance of a trained translator vs the identity and EQ baselines."""
    from tinyasc.translator.evaluate import evaluate_translator

    click.echo(evaluate_translator(run, log=click.echo))


@main.command()
@config_option(TrainConfig, "data", help="Dataset root. Default: the embedded synthetic dataset.")
@config_option(TrainConfig, "preset")
@click.option("--rows", default=None,
              help="'table2' (the whole of Table 2 at CPU scale) or comma-separated rows "
                   "[arch[@width]:]norm[+translator][/N], e.g. resnorm,resnorm+translator,cpresnet@10:none/1; "
                   "/N runs that row on the first N seeds only. Default: the normalization ablation of --arch.")
@config_option(TrainConfig, "arch", help="Architecture of --norms rows (ignored with --rows).")
@config_option(TrainConfig, "width", help=f"c of BC-ResNet-Mod rows given without an architecture (default "
                                           f"{DEFAULT_WIDTH['bcresnet-mod']}); with --norms, the width of --arch "
                                           f"(default {', '.join(map(str, DEFAULT_WIDTH.values()))} by architecture). "
                                           "Other rows: arch@width.")
@click.option("--norms", default=None,
              help="Comma-separated normalization variants of --arch (instead of --rows). "
                   f"Default: {','.join(NORMS)} for bcresnet-mod, {DEFAULT_NORM['bcresnet']} otherwise.")
@click.option("--translator", type=PATH, default=None,
              help="Translator folder for '+translator' rows. Default: train one in OUT/translator.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@config_option(TrainConfig, "epochs", help="Training epochs of every run (the paper: 100).")
@config_option(TrainConfig, "batch_size")
@click.option("--out", "out_dir", type=PATH, default="runs/experiment", show_default=True,
              help="Experiment folder; finished runs in it are reused, interrupted ones resumed.")
@click.option("--jobs", type=INT, default=1, show_default=True,
              help="Runs trained at a time, each in its own process on one core (2 on two cores: about 1.6x "
                   "the runs per hour); their output goes to OUT/logs/.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def experiment(data, preset, rows, arch, width, norms, translator, seeds, epochs, batch_size, out_dir, jobs, quiet):
    """Run rows of Table 2 over several seeds and print the table (also table.md / table.csv)."""
    from tinyasc.checks import check_int
    from tinyasc.train.experiment import parse_rows, run_experiment

    if rows is not None and norms is not None:
        raise TinyAscError("give --rows or --norms, not both (--rows can name norms: resnorm,freqin,...)")
    if rows is None:
        if norms is None:
            norms = ",".join(NORMS) if arch == "bcresnet-mod" else DEFAULT_NORM[arch]
        arch_width = DEFAULT_WIDTH[arch] if width is None else width
        rows = ",".join(f"{arch}@{arch_width}:{n.strip()}" for n in norms.split(",") if n.strip()) or " "
    row_list = parse_rows(rows, width)
    if translator is not None and not any(r.translator for r in row_list):
        raise TinyAscError("--translator is used only by '+translator' rows, and none was asked for; "
                           "add one (e.g. --rows resnorm,resnorm+translator) or drop --translator")
    seed_list = _seed_list(seeds)
    config = TrainConfig(data=data, preset=preset, arch=row_list[0].arch, width=row_list[0].width,
                         norm=DEFAULT_NORM[row_list[0].arch], epochs=epochs, batch_size=batch_size).validate()
    check_int(jobs, "--jobs", 1, 64)
    if jobs > 1:
        from tinyasc.train.parallel import run_experiment_parallel

        _, text = run_experiment_parallel(config, row_list, seed_list, out_dir, jobs, log=click.echo,
                                          progress=not quiet, translator=translator)
    else:
        _, text = run_experiment(config, row_list, seed_list, out_dir, log=click.echo, progress=not quiet,
                                 translator=translator)
    if text is None:
        click.echo("experiment interrupted; run the same command again to continue where it stopped")
        sys.exit(130)
    click.echo(text)


@main.command()
@config_option(TrainConfig, "data", help="Dataset root. Default: the embedded synthetic dataset.")
@config_option(TrainConfig, "preset")
@config_option(TrainConfig, "width", default=80, help="c of the teacher and the students (the paper: 80).")
@click.option("--teacher", type=PATH, default=None,
              help="A finished run to distil from (e.g. tinyasc experiment's ResNorm row at c=80). Default: train "
                   "one in OUT/teacher.")
@click.option("--teacher-epochs", type=INT, default=300, show_default=True,
              help="Epochs of the teacher trained here (the paper's best: 300).")
@click.option("--seeds", default="1,2", show_default=True,
              help="Seeds of the distilled students, one model of model 1's ensemble each (Table 3: two).")
@config_option(TrainConfig, "epochs", default=300, help="Epochs of each student (the paper's KD row: 300).")
@config_option(TrainConfig, "warmup_epochs", default=10.0,
               help="Linear warm-up epochs of the teacher and the students (the paper: 10 of 300).")
@config_option(TrainConfig, "batch_size")
@click.option("--finetune-epochs", type=INT, default=10, show_default=True,
              help="Fine-tuning epochs after pruning, with the masks held, QAT and the teacher.")
@click.option("--out", "out_dir", type=PATH, default="runs/table3", show_default=True,
              help="Folder of every step; finished steps in it are read back, an interrupted one resumed.")
@click.option("--jobs", type=INT, default=1, show_default=True,
              help="Students trained at a time, each in its own process on one core (2 on two cores: about "
                   "1.6x the runs per hour); their output goes to OUT/logs/.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def table3(data, preset, width, teacher, teacher_epochs, seeds, epochs, warmup_epochs, batch_size, finetune_epochs,
           out_dir, jobs, quiet):
    """Table 3 end to end: teacher, distilled students, the compressed submissions (paper 2.4).

    Model 1: the students pruned 89%, 8-bit QAT convs, the rest in half precision, ensembled.
    Model 4: the first student pruned 84%, all half precision. Writes table3.md/.csv/.json
    (accuracy per device before and after compression, size, parameters, MMACs), the DCASE
    submission file of model 1 on the test split and model 1 in ONNX. Paths are kept as given:
    run it again from the same folder.
    """
    from tinyasc.checks import check_int
    from tinyasc.train.table3 import run_table3

    check_int(teacher_epochs, "--teacher-epochs", 1, 100_000)
    check_int(finetune_epochs, "--finetune-epochs", 1, 100_000)
    check_int(jobs, "--jobs", 1, 64)
    config = TrainConfig(data=data, preset=preset, width=width, epochs=epochs, warmup_epochs=warmup_epochs,
                         batch_size=batch_size).validate()
    if warmup_epochs > min(epochs, teacher_epochs):
        raise TinyAscError(f"--warmup-epochs {warmup_epochs:g} is longer than the training "
                           f"(--epochs {epochs}, --teacher-epochs {teacher_epochs})")
    text = run_table3(config, out_dir, _seed_list(seeds), teacher=teacher, teacher_epochs=teacher_epochs,
                      finetune_epochs=finetune_epochs, log=click.echo, progress=not quiet, jobs=jobs)
    if text is None:
        click.echo("interrupted; run the same command again to continue where it stopped")
        sys.exit(130)
    click.echo(text)


def _seed_list(text):
    """Comma-separated seeds of --seeds, checked."""
    from tinyasc.checks import check_seed, parse_number

    seeds = [parse_number(s, int, "--seeds (comma-separated integers)") for s in text.split(",") if s.strip()]
    if not seeds:
        raise TinyAscError("--seeds is empty; pass e.g. --seeds 0,1,2")
    if len(set(seeds)) < len(seeds):
        raise TinyAscError(f"--seeds names a seed twice: {text!r}")
    for s in seeds:
        check_seed(s, "--seeds")
    return seeds


@main.command()
@click.option("--what", type=click.Choice(["kernels", "train-step", "all"]), default="all", show_default=True,
              help="Kernel benchmarks, the whole training step against PyTorch, or both.")
@click.option("--widths", default="10,80", show_default=True, help="BC-ResNet-Mod widths c for the kernel table.")
@click.option("--batch", type=INT, default=64, show_default=True, help="Batch size of the kernel table.")
@click.option("--repeats", type=INT, default=5, show_default=True, help="Timed repeats (the median is reported).")
@click.option("--no-torch", is_flag=True, help="Skip the PyTorch comparison even when it is installed.")
@click.option("--no-reference", is_flag=True, help="Skip the slow NumPy references in the kernel table.")
@click.option("--out", default=None, type=PATH, help="Write the kernel table's rows to this .csv or .json file (by its suffix).")
@friendly_errors
def bench(what, widths, batch, repeats, no_torch, no_reference, out):
    """Speed: each kernel at BC-ResNet-Mod's shapes, and one training step against PyTorch."""
    from tinyasc.checks import MAX_WIDTH, check_int, parse_number
    width_list = tuple(parse_number(w, int, "--widths (comma-separated integers)") for w in widths.split(","))
    for w in width_list:
        check_int(w, "--widths", 1, MAX_WIDTH["bcresnet-mod"])
    check_int(batch, "--batch", 2, 4096)
    check_int(repeats, "--repeats", 1, 1000)
    if out is not None:  # checked now, not after minutes of benchmarks

        from tinyasc.fileio import check_writable
        if what == "train-step":
            raise TinyAscError("--out writes the kernel table, which --what train-step does not make; "
                               "use --what kernels or all, or drop --out")
        if Path(out).suffix.lower() not in (".csv", ".json"):
            raise TinyAscError(f"--out {out}: name a .csv or .json file")
        check_writable(out)  # its folders are made when it is written
    from importlib.util import find_spec
    if not no_torch and find_spec("torch") is None:
        raise TinyAscError("PyTorch is not installed: pip install torch==2.13.0 for the side-by-side, "
                           "or pass --no-torch")
    # the benchmarks package (benchmarks/ in the repository) is installed beside tinyasc, imported only here
    from benchmarks import kernels as kernel_bench
    from benchmarks import train_step as step_bench
    if what in ("kernels", "all"):
        kernel_bench.main(widths=width_list, batch=batch, repeats=repeats, torch=not no_torch,
                          reference=not no_reference, jit=True, out=out)
    if what in ("train-step", "all"):
        step_bench.run(repeats=repeats, log=click.echo, torch=not no_torch)


@main.command()
@click.option("--experiment", type=PATH, default=None,
              help="Experiment folder of tinyasc experiment (its table.csv and run folders).")
@click.option("--translator", type=PATH, default=None,
              help="Translator folder of tinyasc translator train, for the translation figure.")
@click.option("--spectra", is_flag=True,
              help="Also draw each device's colouring of the same test segments, raw and after FreqIN / ResNorm.")
@config_option(TrainConfig, "data", help="Dataset of --spectra. Default: the embedded synthetic dataset (--preset).")
@config_option(TrainConfig, "preset", help="Synthetic preset of --spectra when --data is not given.")
@config_option(TrainConfig, "lam", help="lambda of ResNorm in --spectra.")
@click.option("--out", "out_dir", type=PATH, default="docs/figures", show_default=True,
              help="Folder for the PNGs.")
@friendly_errors
def figures(experiment, translator, spectra, data, preset, lam, out_dir):
    """PNGs of the results (needs the plot extra): Table 2 per-device bars, training curves, translator,
    device spectra."""
    from tinyasc.figures import make_figures

    ctx = click.get_current_context()
    given = [f"--{name}" for name in ("data", "preset", "lam")
             if ctx.get_parameter_source(name) not in (None, click.ParameterSource.DEFAULT)]
    if given and not spectra:  # they only shape the spectra figure: never silently unused
        raise TinyAscError(f"{', '.join(given)}: only used with --spectra; add --spectra or leave "
                           f"{'it' if len(given) == 1 else 'them'} out")
    spectra_config = TrainConfig(data=data, preset=preset, lam=lam).validate() if spectra else None
    make_figures(experiment, out_dir, translator=translator, spectra=spectra_config, log=click.echo)


@main.command("export")
@click.argument("run", type=NonEmptyPath(exists=True))
@click.option("--onnx", "onnx_file", type=PATH, required=True, help="ONNX file to write.")
@click.option("--frames", type=INT, default=None,
              help="Fix the number of frames T (default: dynamic; 334 for 10 s clips).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the file with onnxruntime (if installed) and compare with tinyasc on a random input.")
@friendly_errors
def export(run, onnx_file, frames, check):
    """Export a trained run folder or a compressed .npz (tinyasc compress) to ONNX.

    Input "logmel" N x 1 x 256 x T, output "logits" N x 10 (an ensemble: log of the mean probabilities).
    BC-ResNet-Mod runs only (--arch bcresnet-mod, the paper's model and everything tinyasc compress
    makes): the comparison systems BC-ResNet and CP-ResNet have no ONNX export.
    """

    import numpy as np

    from tinyasc.checks import check_frames
    from tinyasc.compress.onnx_export import export_onnx, onnx_predict, onnxruntime_installed
    from tinyasc.fileio import pending
    from tinyasc.train.classifier import load_run

    if Path(onnx_file).suffix.lower() != ".onnx":  # never the model's own .npz or config.json
        raise TinyAscError(f"--onnx {onnx_file}: name a file ending in .onnx (e.g. model.onnx)")
    if Path(onnx_file).resolve() == Path(run).resolve():
        raise TinyAscError(f"--onnx {onnx_file} is the model being exported; name another file")
    config, model = load_run(run)
    if frames is not None:
        check_frames(frames, config.arch, "--frames")
    # Written under a temporary name and checked there: a file that fails the check never
    # takes the name onnx_file.
    with pending(onnx_file) as tmp:
        try:
            summary = export_onnx(model.eval(), tmp, num_bins=256, frames=frames, atomic=False)
        except (TypeError, ValueError) as exc:
            raise TinyAscError(f"{run}: {exc}") from None
        summary = dataclasses.replace(summary, path=str(onnx_file))
        checked = None
        if check:
            if not onnxruntime_installed():  # not a failed import, which Ctrl-C can cause
                checked = "onnxruntime is not installed: skipped the check (pip install 'tinyasc[onnx]')"
            else:
                import tinyasc as ta

                x = np.random.default_rng(0).normal(-4.0, 2.0, (2, 1, 256, frames or 334)).astype(np.float32)
                with ta.no_grad():
                    expected = model(ta.Tensor(x)).numpy()
                error = float(np.abs(onnx_predict(tmp, x) - expected).max())
                if not error <= 1e-3:
                    raise TinyAscError(f"onnxruntime disagrees with tinyasc on {run} (max |difference| {error:.3g}); "
                                       f"{onnx_file} was not written")
                checked = f"checked with onnxruntime: max |difference| {error:.2e}"
    click.echo(summary.line())
    if checked:
        click.echo(checked)
