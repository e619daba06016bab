"""The `tinyasc` command: a thin click layer over functions you can call from Python.

Errors a user can fix (`TinyAscError`) print one line and exit with code 1; anything
else is a bug and keeps its traceback.
"""
import functools
import sys

import click

from tinyasc.errors import TinyAscError
from tinyasc.kernels.runtime import configure_runtime


def one_line(text):
    """`text` with control characters escaped: a file name holding a newline cannot split the line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


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
        except OSError as exc:  # a path that is a file, not a folder; no permission; a full disk
            where = exc.filename if exc.filename is not None else "a file"
            click.echo(one_line(f"error: {where}: {exc.strerror or exc}; check the path, its permissions and the "
                                "free space"), err=True)
            sys.exit(1)
        except MemoryError as exc:  # the checks of the options keep this rare; never a traceback
            detail = " ".join(str(exc).split()) or "MemoryError"
            click.echo(f"error: out of memory ({detail}); lower --batch-size or --model-width, or free memory",
                       err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tinyasc")
def main():
    """tinyasc: Residual Normalization for device-imbalanced acoustic scene classification,
    from scratch in NumPy and Numba (DCASE2021 Task 1A, Kim et al.)."""
    configure_runtime()  # passive thread waits, one BLAS thread, freed memory kept: kernels/runtime.py


@main.command()
@click.option("--select", "-k", default=None, help="Only checks whose name contains this text.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
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


def _default_run_dir():
    import time
    return f"runs/{time.strftime('%Y%m%d-%H%M%S')}"


@main.command()
@click.option("--data", type=click.Path(), default=None,
              help="TAU 2020 Mobile dataset root. Default: the embedded synthetic dataset (created on first use).")
@click.option("--preset", type=click.Choice(["tiny", "default", "full"]), default="default", show_default=True,
              help="Size of the synthetic dataset when --data is not given.")
@click.option("--arch", type=click.Choice(["bcresnet-mod", "bcresnet", "cpresnet"]), default="bcresnet-mod",
              show_default=True, help="BC-ResNet-Mod (the paper's), or Table 2's BC-ResNet / CP-ResNet.")
@click.option("--model-width", "width", type=int, default=None,
              help="c of Table 1 (10 = BC-ResNet-Mod-1, 80 = -Mod-8); tau of BC-ResNet; c of CP-ResNet. "
                   "Default: 10, 8, 64 by --arch.")
@click.option("--norm", type=click.Choice(["none", "global", "freqin", "preresnorm", "resnorm"]),
              default=None, help="Normalization variant of Table 2. Default: resnorm (BC-ResNet-Mod), none (others).")
@click.option("--rho", type=int, default=5, show_default=True, help="CP-ResNet's receptive-field parameter.")
@click.option("--lam", type=float, default=0.1, show_default=True, help="lambda of ResNorm (eq. 3).")
@click.option("--epochs", type=int, default=100, show_default=True, help="Training epochs (the paper: 100).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--eval-every", type=int, default=5, show_default=True,
              help="Evaluate the test split every this many epochs (and always after the last one).")
@click.option("--lr", type=float, default=0.06, show_default=True, help="Peak learning rate.")
@click.option("--warmup-epochs", type=float, default=None, help="Linear warm-up length. Default: 5% of --epochs.")
@click.option("--dropout", type=float, default=0.1, show_default=True)
@click.option("--no-roll", is_flag=True, help="Switch off the random time roll.")
@click.option("--no-mixup", is_flag=True, help="Switch off Mixup.")
@click.option("--no-specaugment", is_flag=True, help="Switch off SpecAugment.")
@click.option("--select", type=click.Choice(["last", "minvar"]), default="last", show_default=True,
              help="Model selection: the last epoch, or Min Var (smallest device spread on validation).")
@click.option("--val-fraction", type=float, default=0.0, show_default=True,
              help="Fraction of training locations held out for validation (minvar uses 0.1 if 0).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--teacher", "teachers", multiple=True, type=click.Path(),
              help="Knowledge distillation from this run folder (repeat for an ensemble of teachers).")
@click.option("--kd-alpha", type=float, default=0.5, show_default=True,
              help="Weight of the cross-entropy; 1 - alpha weighs the teacher term T^2 KL.")
@click.option("--kd-temperature", type=float, default=3.0, show_default=True, help="Distillation temperature T.")
@click.option("--translator", "translator_dir", type=click.Path(), default="",
              help="Translator folder (tinyasc translator train): add its translations of the device-A "
                   "training clips to every target device to the training set.")
@click.option("--out", "run_dir", type=click.Path(), default=None, help="Run folder. Default: runs/<date-time>.")
@click.option("--resume", "resume_dir", type=click.Path(), default=None,
              help="Continue the run in this folder from its last checkpoint (its saved config is used).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def train(data, preset, arch, width, norm, rho, lam, epochs, batch_size, eval_every, lr, warmup_epochs, dropout, no_roll, no_mixup,
          no_specaugment, select, val_fraction, seed, teachers, kd_alpha, kd_temperature, translator_dir, run_dir,
          resume_dir, quiet):
    """Train BC-ResNet-Mod with the paper's recipe and print the per-device table."""
    from tinyasc.train.classifier import train as run_training
    from tinyasc.train.config import TrainConfig

    from tinyasc.train.config import DEFAULT_NORM, DEFAULT_WIDTH

    width = DEFAULT_WIDTH[arch] if width is None else width
    norm = DEFAULT_NORM[arch] if norm is None else norm
    config = TrainConfig(data=data, preset=preset, arch=arch, rho=rho, width=width, norm=norm, lam=lam, epochs=epochs,
                         eval_every=eval_every, batch_size=batch_size, lr=lr, warmup_epochs=warmup_epochs, dropout=dropout,
                         roll_seconds=0.0 if no_roll else 1.5, mixup_alpha=0.0 if no_mixup else 0.3,
                         specaugment=not no_specaugment, select=select, val_fraction=val_fraction, seed=seed,
                         teacher=",".join(teachers), kd_alpha=kd_alpha, kd_temperature=kd_temperature,
                         translator=translator_dir)
    from pathlib import Path

    from tinyasc.fileio import new_folder
    created = None
    if resume_dir:
        run_dir = resume_dir
        if not (Path(run_dir) / "config.json").is_file():
            raise TinyAscError(f"{run_dir}: no config.json here; --resume needs a run folder written by tinyasc train")
    else:
        config.validate()  # before a folder is made for it
        if run_dir is None:  # runs/<date-time>, or -2, -3, ... if another run took it this second
            run_dir = created = new_folder(_default_run_dir())
        if Path(run_dir).exists() and not Path(run_dir).is_dir():
            raise TinyAscError(f"--out {run_dir} is a file, not a folder; name a new folder for the run")
        if (Path(run_dir) / "checkpoint.npz").exists():
            raise TinyAscError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    click.echo(f"run folder: {run_dir}")
    try:
        text, _ = run_training(config, run_dir, resume=bool(resume_dir), log=click.echo, progress=not quiet)
    except BaseException:
        if created is not None and not any(created.iterdir()):
            created.rmdir()  # a run that failed before writing anything leaves no empty folder
        raise
    if text is None:
        sys.exit(130)
    click.echo(text)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--prune", "prune_ratio", type=float, default=0.89, show_default=True,
              help="Share of conv weights set to zero (Table 3: 0.89; model 4: 0.84).")
@click.option("--bits", type=click.Choice(["2", "3", "4", "5", "6", "7", "8", "16"]), default="8", show_default=True,
              help="Conv weight bits: 2-8 integer codes learned with QAT, or 16 (half precision).")
@click.option("--per-channel", is_flag=True, help="One quantization scale per output channel instead of per conv.")
@click.option("--teacher", "teachers", multiple=True, type=click.Path(),
              help="Distil from this run while fine-tuning (repeat for an ensemble of teachers).")
@click.option("--epochs", type=int, default=10, show_default=True, help="Fine-tuning epochs after pruning.")
@click.option("--lr", type=float, default=None, help="Peak learning rate of the fine-tuning. Default: the run's / 10.")
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="Folder for the fine-tuning runs, model.npz and size.txt.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def compress(runs, prune_ratio, bits, per_channel, teachers, epochs, lr, out_dir, quiet):
    """Prune, fine-tune (QAT, KD) and export RUNS as one compressed model (paper 2.4, Table 3).

    Several RUNS (two seeds in Table 3) are fine-tuned one by one and stored as an ensemble.
    Re-running the same command resumes an interrupted fine-tuning.
    """
    import dataclasses
    import json
    from pathlib import Path

    from tinyasc.compress import save_compressed
    from tinyasc.train.checkpoint import atomic_write_text
    from tinyasc.train.classifier import train as run_training
    from tinyasc.train.config import load_run_config
    from tinyasc.train.inference import load_run

    bits, out, models = int(bits), Path(out_dir), []
    for i, run in enumerate(runs):
        base = load_run_config(run)
        if base.arch != "bcresnet-mod":
            raise TinyAscError(f"{run}: tinyasc compress exports BC-ResNet-Mod; this run is --arch {base.arch}")
        config = dataclasses.replace(base, init_from=str(run), prune=prune_ratio, bits=bits, per_channel=per_channel,
                                     teacher=",".join(teachers), epochs=epochs, lr=lr or base.lr / 10,
                                     warmup_epochs=0.0).validate()
        run_dir = out / f"finetune-{i}"
        resume = (run_dir / "checkpoint.npz").is_file()
        click.echo(f"fine-tuning {run} in {run_dir}" + (" (resuming)" if resume else ""))
        text, _ = run_training(config, run_dir, resume=resume, log=click.echo, progress=not quiet)
        if text is None:
            sys.exit(130)
        click.echo(text)
        models.append(load_run(run_dir)[1])
    summary = save_compressed(out / "model.npz", models, bits, per_channel, prune_ratio,
                              config=json.loads(config.to_json()))
    atomic_write_text(out / "size.txt", summary.text() + "\n")
    click.echo(summary.text())
    click.echo(f"evaluate it with: tinyasc evaluate {out / 'model.npz'}")


@main.command()
@click.argument("run", type=click.Path())
@click.option("--data", type=click.Path(), default=None, help="Dataset root. Default: the run's own dataset.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def evaluate(run, data, quiet):
    """Per-device accuracy and log loss (Table 2 form), per-class accuracy, confusion matrix."""
    from tinyasc.train.inference import evaluate_run

    text = evaluate_run(run, data=data, log=click.echo, progress=not quiet)
    click.echo(text)


@main.command()
@click.argument("run", type=click.Path())
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_file", type=click.Path(), required=True, help="Submission file to write (TSV).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def predict(run, paths, out_file, quiet):
    """Write the DCASE submission file for audio files (or folders of .wav files)."""
    from tinyasc.train.inference import predict_files

    count = predict_files(run, paths, out_file, log=click.echo, progress=not quiet)
    click.echo(f"wrote {count} predictions to {out_file}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Folder to create (must not exist).")
@click.option("--preset", type=click.Choice(["tiny", "default", "full"]), default="default", show_default=True,
              help="Size: tiny (tests), default (minutes end to end), full (TAU-sized, 10 s clips).")
@click.option("--seed", type=int, default=0, show_default=True)
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
@click.option("--data", type=click.Path(), required=True, help="TAU-layout dataset root.")
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
@click.option("--data", type=click.Path(), default=None, help="Dataset root. Default: the embedded synthetic dataset.")
@click.option("--preset", type=click.Choice(["tiny", "default", "full"]), default="default", show_default=True)
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Translator folder (checkpoint, metrics, evaluation).")
@click.option("--targets", default="", help="Comma-separated target devices. Default: every device paired with A in training.")
@click.option("--width", type=int, default=8, show_default=True, help="Generator channels at full resolution.")
@click.option("--depth", type=int, default=3, show_default=True, help="U-Net down-sampling steps.")
@click.option("--res-blocks", type=int, default=6, show_default=True, help="Residual blocks in the middle.")
@click.option("--subbands", type=int, default=16, show_default=True, help="SubSpectralNorm sub-bands.")
@click.option("--disc-width", type=int, default=16, show_default=True)
@click.option("--disc-layers", type=int, default=3, show_default=True, help="Strided PatchGAN layers (3: 70x70 patches).")
@click.option("--epochs", type=int, default=12, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--l2-weight", type=float, default=100.0, show_default=True, help="Weight of the L2 reconstruction loss.")
@click.option("--adv-weight", type=float, default=1.0, show_default=True, help="Weight of the LSGAN loss (0: no GAN).")
@click.option("--crop-frames", type=int, default=128, show_default=True, help="Random time crops for longer clips.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its checkpoint, with its saved settings (other options are ignored).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def translator_train(data, preset, out_dir, targets, width, depth, res_blocks, subbands, disc_width, disc_layers,
                     epochs, batch_size, lr, l2_weight, adv_weight, crop_frames, seed, resume, quiet):
    """Train the translator on the paired training segments, then evaluate it on the test pairs."""
    from tinyasc.train.classifier import _StopFlag
    from tinyasc.translator.train import TranslatorConfig, train_translator

    config = TranslatorConfig(data=data, preset=preset, targets=targets, width=width, depth=depth,
                              res_blocks=res_blocks, subbands=subbands, disc_width=disc_width,
                              disc_layers=disc_layers, epochs=epochs, batch_size=batch_size, lr=lr,
                              l2_weight=l2_weight, adv_weight=adv_weight, crop_frames=crop_frames, seed=seed)
    with _StopFlag() as flag:
        text = train_translator(config, out_dir, resume=resume, log=click.echo, progress=not quiet,
                                stop=lambda: flag.stop)
    if text is None:
        sys.exit(130)
    click.echo(text)


@translator.command("evaluate")
@click.argument("run", type=click.Path())
@friendly_errors
def translator_evaluate(run):
    """Log-spectral distance of a trained translator vs the identity and EQ baselines."""
    from tinyasc.translator.evaluate import evaluate_translator

    click.echo(evaluate_translator(run, log=click.echo))


@main.command()
@click.option("--data", type=click.Path(), default=None, help="Dataset root. Default: the embedded synthetic dataset.")
@click.option("--preset", type=click.Choice(["tiny", "default", "full"]), default="default", show_default=True)
@click.option("--rows", default=None,
              help="'table2' (the whole of Table 2 at CPU scale) or comma-separated rows "
                   "[arch[@width]:]norm[+translator], e.g. resnorm,resnorm+translator,cpresnet@10:none. "
                   "Default: the normalization ablation of --arch.")
@click.option("--arch", type=click.Choice(["bcresnet-mod", "bcresnet", "cpresnet"]), default="bcresnet-mod",
              show_default=True, help="Architecture of --norms rows (ignored with --rows).")
@click.option("--model-width", "width", type=int, default=None,
              help="c of BC-ResNet-Mod rows given without an architecture (default 10); with --norms, the "
                   "width of --arch (default 10, 8, 64 by architecture). Other rows: arch@width.")
@click.option("--norms", default=None,
              help="Comma-separated normalization variants of --arch (instead of --rows). "
                   "Default: none,global,freqin,preresnorm,resnorm for bcresnet-mod, none otherwise.")
@click.option("--translator", type=click.Path(), default=None,
              help="Translator folder for '+translator' rows. Default: train one in OUT/translator.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--epochs", type=int, default=100, show_default=True, help="Training epochs of every run (the paper: 100).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--out", "out_dir", type=click.Path(), default="runs/experiment", show_default=True,
              help="Experiment folder; finished runs in it are reused, interrupted ones resumed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@friendly_errors
def experiment(data, preset, rows, arch, width, norms, translator, seeds, epochs, batch_size, out_dir, quiet):
    """Run rows of Table 2 over several seeds and print the table (also table.md / table.csv)."""
    from tinyasc.train.config import DEFAULT_NORM, DEFAULT_WIDTH, TrainConfig
    from tinyasc.train.experiment import parse_rows, run_experiment

    if rows is not None and norms is not None:
        raise TinyAscError("give --rows or --norms, not both (--rows can name norms: resnorm,freqin,...)")
    if rows is None:
        if norms is None:
            norms = "none,global,freqin,preresnorm,resnorm" if arch == "bcresnet-mod" else "none"
        arch_width = DEFAULT_WIDTH[arch] if width is None else width
        rows = ",".join(f"{arch}@{arch_width}:{n.strip()}" for n in norms.split(",") if n.strip()) or " "
    row_list = parse_rows(rows, width)
    if translator is not None and not any(r.translator for r in row_list):
        raise TinyAscError("--translator is used only by '+translator' rows, and none was asked for; "
                           "add one (e.g. --rows resnorm,resnorm+translator) or drop --translator")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise TinyAscError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    if not seed_list:
        raise TinyAscError("--seeds is empty; pass e.g. --seeds 0,1,2")
    from tinyasc.checks import check_seed
    for s in seed_list:
        check_seed(s, "--seeds")
    config = TrainConfig(data=data, preset=preset, arch=row_list[0].arch, width=row_list[0].width,
                         norm=DEFAULT_NORM[row_list[0].arch], epochs=epochs, batch_size=batch_size).validate()
    _, text = run_experiment(config, row_list, seed_list, out_dir, log=click.echo, progress=not quiet,
                             translator=translator)
    if text is None:
        click.echo("experiment interrupted; run the same command again to continue where it stopped")
        sys.exit(130)
    click.echo(text)


@main.command()
@click.option("--what", type=click.Choice(["kernels", "train-step", "all"]), default="all", show_default=True,
              help="Kernel benchmarks, the whole training step against PyTorch, or both.")
@click.option("--widths", default="10,80", show_default=True, help="BC-ResNet-Mod widths c for the kernel table.")
@click.option("--batch", type=int, default=64, show_default=True, help="Batch size of the kernel table.")
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed repeats (the median is reported).")
@click.option("--no-torch", is_flag=True, help="Skip the PyTorch comparison even when it is installed.")
@click.option("--no-reference", is_flag=True, help="Skip the slow NumPy references in the kernel table.")
@click.option("--out", default=None, type=click.Path(), help="Write the kernel rows to this .csv or .json file.")
@friendly_errors
def bench(what, widths, batch, repeats, no_torch, no_reference, out):
    """Speed: each kernel at BC-ResNet-Mod's shapes, and one training step against PyTorch."""
    from tinyasc.checks import MAX_WIDTH, check_int
    try:
        width_list = tuple(int(w) for w in widths.split(","))
    except ValueError:
        raise TinyAscError(f"--widths must be comma-separated integers, got {widths!r}") from None
    for w in width_list:
        check_int(w, "--widths", 1, MAX_WIDTH["bcresnet-mod"])
    check_int(batch, "--batch", 2, 4096)
    check_int(repeats, "--repeats", 1, 1000)
    if what in ("kernels", "all"):
        from tinyasc.bench import main as kernel_main
        kernel_main(widths=width_list, batch=batch, repeats=repeats, torch=not no_torch,
                    reference=not no_reference, jit=True, out=out)
    if what in ("train-step", "all"):
        from tinyasc import bench_step
        if no_torch:
            bench_step.torch_available = lambda: False
        bench_step.run(repeats=repeats, log=click.echo)


@main.command()
@click.option("--experiment", type=click.Path(), default=None,
              help="Experiment folder of tinyasc experiment (its table.csv and run folders).")
@click.option("--translator", type=click.Path(), default=None,
              help="Translator folder of tinyasc translator train, for the translation figure.")
@click.option("--spectra", is_flag=True,
              help="Also draw each device's colouring of the same test segments, raw and after FreqIN / ResNorm.")
@click.option("--data", type=click.Path(), default=None,
              help="Dataset of --spectra. Default: the embedded synthetic dataset (--preset).")
@click.option("--preset", type=click.Choice(["tiny", "default", "full"]), default="default", show_default=True,
              help="Synthetic preset of --spectra when --data is not given.")
@click.option("--lam", type=float, default=0.1, show_default=True, help="lambda of ResNorm in --spectra.")
@click.option("--out", "out_dir", type=click.Path(), default="docs/figures", show_default=True,
              help="Folder for the PNGs.")
@friendly_errors
def figures(experiment, translator, spectra, data, preset, lam, out_dir):
    """PNGs of the results (needs the plot extra): Table 2 per-device bars, training curves, translator,
    device spectra."""
    from tinyasc.figures import make_figures
    from tinyasc.train.config import TrainConfig

    spectra_config = TrainConfig(data=data, preset=preset, lam=lam).validate() if spectra else None
    make_figures(experiment, out_dir, translator=translator, spectra=spectra_config, log=click.echo)


@main.command("export")
@click.argument("run", type=click.Path(exists=True))
@click.option("--onnx", "onnx_file", type=click.Path(), required=True, help="ONNX file to write.")
@click.option("--frames", type=int, default=None,
              help="Fix the number of frames T (default: dynamic; 334 for 10 s clips).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the file with onnxruntime (if installed) and compare with tinyasc on a random input.")
@friendly_errors
def export(run, onnx_file, frames, check):
    """Export a trained run folder or a compressed .npz (tinyasc compress) to ONNX.

    Input "logmel" N x 1 x 256 x T, output "logits" N x 10 (an ensemble: log of the mean probabilities).
    """
    import dataclasses

    import numpy as np

    from tinyasc.checks import check_frames
    from tinyasc.compress.onnx_export import export_onnx, onnx_predict
    from tinyasc.fileio import pending
    from tinyasc.train.inference import load_run

    config, model = load_run(run)
    if frames is not None:
        check_frames(frames, config.arch, "--frames")
    # Written under a temporary name and checked there: a file that fails the check never
    # takes the name onnx_file.
    with pending(onnx_file) as tmp:
        try:
            summary = export_onnx(model.eval(), tmp, num_bins=256, frames=frames)
        except (TypeError, ValueError) as exc:
            raise TinyAscError(f"{run}: {exc}") from None
        summary = dataclasses.replace(summary, path=str(onnx_file))
        checked = None
        if check:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
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
