"""Compressing trained runs (paper 2.4): prune, fine-tune with the masks held, QAT and a
teacher, then write them as one compressed model. `tinyasc compress` and `tinyasc table3`
both do it through `compress_runs`.
"""
import json
from dataclasses import replace
from pathlib import Path

from tinyasc.compress import save_compressed
from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_text
from tinyasc.train import classifier
from tinyasc.train.config import load_run_config
from tinyasc.train.runs import check_same_config, finished, require_checkpoint

MODEL_FILE = "model.npz"


def finetune_config(run_config, run, prune, bits, per_channel=False, teachers=(), epochs=10, lr=None):
    """The fine-tuning of `run` (trained with run_config): its weights, pruned, at a tenth of its
    learning rate unless `lr` is given, without warm-up."""
    if run_config.arch != "bcresnet-mod":
        raise TinyAscError(f"{run}: compression exports BC-ResNet-Mod; this run is --arch {run_config.arch}")
    lr = run_config.lr / 10 if lr is None else lr  # an lr given is checked by validate, not replaced
    config = replace(run_config, init_from=str(run), prune=prune, bits=bits, per_channel=per_channel,
                     teacher=",".join(map(str, teachers)), epochs=epochs, lr=lr, warmup_epochs=0.0)
    return config.validate()


def compress_runs(runs, out_dir, prune, bits, per_channel=False, teachers=(), epochs=10, lr=None,
                  log=print, progress=True, data=None):
    """Fine-tune each run in out_dir/finetune-<i> (finished ones are read back, an interrupted one
    resumes) and write them as one compressed model, an ensemble if several, to
    out_dir/model.npz with its size table in size.txt. Returns the ExportSummary, or None when
    interrupted (the same call resumes)."""
    out = Path(out_dir)
    configs = [finetune_config(load_run_config(run), run, prune, bits, per_channel, teachers, epochs, lr)
               for run in runs]
    for i, config in enumerate(configs):  # a folder of other settings fails before any training
        config.check_inputs()
        check_same_config(out / f"finetune-{i}", config)
    for run in runs:  # so does an unfinished or damaged run or teacher, not after the runs before it
        _check_source(run, "")
    for teacher in teachers:
        _check_source(teacher, "--teacher ")
    made = not out.exists()
    try:
        return _compress(runs, configs, out, prune, bits, per_channel, epochs, log, progress, data)
    finally:
        if made and out.is_dir() and not any(out.iterdir()):  # nothing written: leave nothing behind
            out.rmdir()


def _check_source(path, option):
    """A run or teacher compress reads: a finished run that kept its weights, or a compressed
    model file. Loaded once here, so a damaged file fails before any training."""
    path = Path(path)
    if path.is_dir():
        config = load_run_config(path)
        if not finished(path, config.epochs):
            raise TinyAscError(f"{option}{path}: not a finished run; finish it first (tinyasc train --resume {path})")
        require_checkpoint(path)
    classifier.load_run(path)


def _compress(runs, configs, out, prune, bits, per_channel, epochs, log, progress, data):
    models = []
    for i, (run, config) in enumerate(zip(runs, configs)):
        run_dir = out / f"finetune-{i}"
        if finished(run_dir, epochs):
            require_checkpoint(run_dir)
            log(f"compressing {run}: fine-tuned before in {run_dir}")
        else:
            resume = (run_dir / classifier.CHECKPOINT).is_file()
            log(f"compressing {run}: fine-tuning in {run_dir}" + (" (resuming)" if resume else ""))
            text, _ = classifier.train(config, run_dir, resume=resume, log=log, progress=progress, data=data)
            if text is None:
                return None
            log(text)
        models.append(classifier.load_run(run_dir)[1])
    summary = save_compressed(out / MODEL_FILE, models, bits, per_channel, prune,
                              config=json.loads(configs[-1].to_json()))
    atomic_write_text(out / "size.txt", summary.text() + "\n")
    return summary
