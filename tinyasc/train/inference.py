"""Using a trained run: evaluate it on a dataset, or predict scenes for audio files."""
from pathlib import Path

import numpy as np

from tinyasc import audio
from tinyasc.errors import DataError, TinyAscError
from tinyasc.checks import check_frames
from tinyasc.train import evaluate
from tinyasc.data.training import TrainingData
from tinyasc.fileio import (WriteError, atomic_write_text, atomic_write_texts, check_writable, first_missing_folder,
                            progressbar, remove_empty_folders)
from tinyasc.train.classifier import load_run


def evaluate_run(run, data=None, log=print, progress=True, out=None):
    """Evaluate a run (or a compressed model file) on the test split of its own dataset or `data`;
    writes eval_device_table.csv and eval_classes.csv beside the model, or into the folder `out`
    (made if needed, and removed again if the files cannot be written). Returns the printed text."""
    run = Path(run)
    out_dir, prefix = (run.parent, f"{run.stem}_") if run.is_file() else (run, "")
    if out is not None:
        out_dir = Path(out)
        check_writable(out_dir / f"{prefix}eval_device_table.csv")  # before any work; nothing is made yet
    config, model = load_run(run)
    if data is not None:
        config.data = data
        config.validate()
    elif config.data is not None and not Path(config.data).expanduser().is_absolute() \
            and not Path(config.data).expanduser().is_dir():
        # config.json keeps --data as it was typed: relative to the folder training ran in
        raise DataError(f"{run}: its config.json names the dataset {config.data!r}, a path relative to the "
                        f"folder the run was trained in, not found from {Path.cwd()}; run from that folder "
                        "or pass --data")
    training_data = TrainingData.load(config, log=log, progress=progress)
    check_frames(training_data.features.shape[-1], config.arch, f"the clips of {training_data.dataset.root}")
    rows, labels = training_data.rows("test"), training_data.labels("test")
    probs = evaluate.predict_proba(model, training_data.features, rows)
    table = evaluate.device_metrics(probs, labels, training_data.devices("test"))
    per_class = evaluate.class_accuracy(probs, labels)
    matrix = evaluate.confusion_matrix(probs, labels)
    text = "\n".join([evaluate.format_device_table(table, f"Test split of {training_data.dataset.root}"), "",
                      "per-class accuracy (%)", evaluate.format_class_table(per_class), "",
                      "confusion matrix (rows: true, columns: predicted)", str(matrix)])
    made = first_missing_folder(out_dir)
    try:
        atomic_write_texts({out_dir / f"{prefix}eval_device_table.csv": evaluate.device_table_csv(table),
                            out_dir / f"{prefix}eval_classes.csv": evaluate.class_csv(per_class, matrix)})
    except WriteError:  # a read-only or full folder: the result is shown all the same
        if made is not None:
            remove_empty_folders(out_dir, made)
        log(text)
        raise
    return text


AUDIO_SUFFIXES = (".wav", ".flac")  # what a folder given to predict is searched for, in any case


def _folder_label(folder):
    """The folder part of a clip's name in the submission: the folder's name as given, as in the
    DCASE lists' `audio/<clip>.wav` (a link keeps its own name); `.` and `..` by the folder they are."""
    return folder.name if folder.name not in ("", "..") else folder.resolve().name


def _audio_files(paths, log=print):
    """(path, name in the submission) of every clip to predict: files as given, and the audio
    files (AUDIO_SUFFIXES, any case) of folders as `<folder name>/<file name>`, sorted.

    Other files and hidden ones (a Mac's `._<name>.wav`) in a folder are skipped and counted.
    Two clips may not share a name, and every name must fit the submission format.
    """
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            entries = sorted(f for f in p.iterdir() if f.is_file())
            found = [f for f in entries if f.suffix.lower() in AUDIO_SUFFIXES and not f.name.startswith(".")]
            kinds = " or ".join(AUDIO_SUFFIXES)
            if not found:
                raise TinyAscError(f"{p}: no {kinds} files in this folder ({len(entries)} other files)")
            if len(found) < len(entries):
                log(f"{p}: skipped {len(entries) - len(found)} files that are not {kinds} audio, or hidden")
            label = _folder_label(p)
            files.extend((f, f"{label}/{f.name}" if label else f.name) for f in found)
        elif p.is_file():
            files.append((p, str(p)))
        else:
            raise TinyAscError(f"{p}: no such file or folder")
    seen = {}
    for path, name in files:  # checked before any work: the submission file cannot hold these names
        problem = evaluate.tsv_field_problem(name)
        if problem:
            raise DataError(f"{path}: the file name {problem}; rename the file")
        if name in seen:
            raise TinyAscError(f"{path} and {seen[name]} would both be {name!r} in the submission file; "
                               "give each clip once, from folders of different names")
        seen[name] = path
    return files


def predict_files(run, paths, out_file, batch_size=32, log=print, progress=True):
    """`tinyasc predict`: the DCASE submission file of a run (or compressed model) for audio files
    or folders of them; returns the number of clips."""
    if Path(out_file).is_dir():
        raise TinyAscError(f"--out {out_file} is a folder; name the submission file to write, "
                           f"e.g. {Path(out_file) / 'submission.tsv'}")
    files = _audio_files(paths, log)
    target = Path(out_file).resolve()
    for path, _ in files:
        if path.resolve() == target:
            raise TinyAscError(f"--out {out_file} is one of the audio files to predict; name another file, "
                               "e.g. submission.tsv")
    model_path = Path(run).resolve()
    # a run folder's own files (its checkpoint, config.json, metrics, reports) are not submission files
    own = target.parent == model_path and target.exists() and target.suffix.lower() != ".tsv"
    if target == model_path or own:
        raise TinyAscError(f"--out {out_file} is {'the model' if target == model_path else 'a file of the run'} "
                           "that makes the predictions; name another file, e.g. submission.tsv")
    config, model = load_run(run)
    probs = write_submission(config, model, files, out_file, batch_size, progress)
    return len(probs)


def _seconds(path):
    sample_rate, samples, _ = audio.audio_info(path)
    return samples / sample_rate


def write_submission(config, model, files, out_file, batch_size=32, progress=True):
    """Read and classify the audio `files` ((path, name in the file) pairs) with the front end of
    training, write the submission file and return the N x 10 probabilities.

    Every file's sample rate and length are checked from its header before any file is read, so
    a file at 1 Hz or hours long is refused at once, not after gigabytes of resampling.
    """
    for path, _ in files:
        sample_rate, samples, _ = audio.audio_info(path)
        check_frames(audio.DEFAULT_FRONTEND.num_frames(samples, sample_rate), config.arch, str(path))
    names, probs = [], []
    with progressbar(len(files), "predict", quiet=not progress) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            try:
                feats = [audio.file_log_mel(path) for path, _ in chunk]
                lengths = {f.shape[1] for f in feats}
                if len(lengths) > 1:  # different durations: one at a time
                    for f in feats:
                        probs.append(evaluate.predict_proba(model, f[None]))
                else:
                    probs.append(evaluate.predict_proba(model, np.stack(feats)))
            except MemoryError:  # the network's activations grow with the clip's length
                longest = max((path for path, _ in chunk), key=_seconds)
                raise DataError(f"{longest}: out of memory predicting this clip of {_seconds(longest):.0f} s; "
                                "cut it into shorter clips (or free memory)") from None
            names.extend(name for _, name in chunk)
            bar.update(len(chunk))
    probs = np.concatenate(probs) if probs else np.zeros((0, model.num_classes), np.float32)
    atomic_write_text(out_file, evaluate.submission_tsv(names, probs))
    return probs
