"""Using a trained run: evaluate it on a dataset, or predict scenes for audio files."""
from pathlib import Path

import numpy as np

from tinyasc import audio
from tinyasc.errors import DataError, TinyAscError
from tinyasc.train import evaluate
from tinyasc.train.checkpoint import atomic_write_text, load_checkpoint, load_model_state, split_prefix
from tinyasc.train.classifier import CHECKPOINT, SELECTED, build_model
from tinyasc.train.config import TrainConfig, load_run_config
from tinyasc.train.data import TrainingData


def load_run(run):
    """(config, model) of a run folder, with the selected (Min Var) or last weights,
    or of a compressed model file written by `tinyasc compress`."""
    run = Path(run)
    if run.is_file():
        from tinyasc.compress import load_compressed

        model, meta = load_compressed(run, return_meta=True)
        if not isinstance(meta.get("config"), dict):
            raise TinyAscError(f"{run}: this compressed model carries no training config; "
                               "write it with tinyasc compress")
        return TrainConfig.from_dict(meta["config"]).validate(), model
    config = load_run_config(run)
    path = run / SELECTED if config.select == "minvar" and (run / SELECTED).is_file() else run / CHECKPOINT
    arrays, meta = load_checkpoint(path)
    model = build_model(config)
    load_model_state(model, split_prefix(arrays, "model"), path)
    model.eval()
    return config, model


def evaluate_run(run, data=None, log=print):
    config, model = load_run(run)
    if data is not None:
        config.data = data
    training_data = TrainingData.load(config, log=log)
    rows, labels = training_data.rows("test"), training_data.labels("test")
    probs = evaluate.predict_proba(model, training_data.features, rows)
    table = evaluate.device_metrics(probs, labels, training_data.devices("test"))
    per_class = evaluate.class_accuracy(probs, labels)
    matrix = evaluate.confusion_matrix(probs, labels)
    run = Path(run)
    out_dir, prefix = (run.parent, f"{run.stem}_") if run.is_file() else (run, "")
    atomic_write_text(out_dir / f"{prefix}eval_device_table.csv", evaluate.device_table_csv(table))
    atomic_write_text(out_dir / f"{prefix}eval_classes.csv", evaluate.class_csv(per_class, matrix))
    return "\n".join([evaluate.format_device_table(table, f"Test split of {training_data.dataset.root}"), "",
                      "per-class accuracy (%)", evaluate.format_class_table(per_class), "",
                      "confusion matrix (rows: true, columns: predicted)", str(matrix)])


MIN_FRAMES = 7  # the head's stride and two max-pools must leave at least one frame


def _audio_files(paths):
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.wav"))
            if not found:
                raise TinyAscError(f"{p}: no .wav files in this folder")
            files.extend((f, f"{p.name}/{f.name}") for f in found)
        elif p.is_file():
            files.append((p, str(p)))
        else:
            raise TinyAscError(f"{p}: no such file or folder")
    return files


def predict_files(run, paths, out_file, batch_size=32, log=print):
    _, model = load_run(run)
    files = _audio_files(paths)
    names, probs = [], []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        feats = [audio.file_log_mel(path) for path, _ in chunk]
        for (path, _), f in zip(chunk, feats):
            if f.shape[1] < MIN_FRAMES:
                raise DataError(f"{path}: {f.shape[1]} frames ({f.shape[1] * 0.03:.2f} s) is too short for "
                                f"BC-ResNet-Mod, which needs at least {MIN_FRAMES} frames (0.21 s)")
        lengths = {f.shape[1] for f in feats}
        if len(lengths) > 1:  # different durations: one at a time
            for f in feats:
                probs.append(evaluate.predict_proba(model, f[None]))
        else:
            probs.append(evaluate.predict_proba(model, np.stack(feats)))
        names.extend(name for _, name in chunk)
    probs = np.concatenate(probs)
    atomic_write_text(out_file, evaluate.submission_tsv(names, probs))
    return len(names)
