"""The results in pictures: `tinyasc figures` (needs the optional `plot` extra, matplotlib).

From an experiment folder written by `tinyasc experiment` (paper Table 2):

    table.csv                 one row per method: method, A, B, C, S1..S6, overall_mean, overall_std
    <run>/config.json, <run>/metrics.csv     one folder per (row, seed)

it draws the per-device accuracy of the Table 2 rows as grouped bars (`table2_devices.png`)
and the training curves of every run (`table2_curves.png`). From a dataset (the default
synthetic one unless another is given) it draws each device's colouring of the same test
segments before and after FreqIN and ResNorm (`device_spectra.png`, tinyasc.spectra). Given a translator folder
(`tinyasc translator train`, paper 2.3) it also asks the translator for its Figure 1 style
picture (`translator.png`). Only the columns named above are read, so other columns of
table.csv may come and go.
"""
import math
import os
import re
import shutil
from pathlib import Path

from tinyasc.errors import TinyAscError
from tinyasc.fileio import (WriteError, first_missing_folder, read_csv, remove_empty_folders, remove_stale_temporaries,
                            temporary_path)
from tinyasc.run import plots
from tinyasc.train.evaluate import DEVICE_COLUMNS

SPECTRA_PNG = "device_spectra.png"
DEVICES_PNG = "table2_devices.png"
CURVES_PNG = "table2_curves.png"
TRANSLATOR_PNG = "translator.png"


def _number(text, where, low=-math.inf, high=math.inf):
    """A finite number in [low, high] written in ASCII, as tinyasc writes its CSVs; anything else
    (nan, inf, another script's digits, a negative std) is a one-line error naming `where`."""
    try:
        value = float(text) if isinstance(text, str) and text.isascii() else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise TinyAscError(f"{where}: {text!r} is not a finite number; rerun the command that wrote it")
    if not low <= value <= high:
        raise TinyAscError(f"{where}: {text!r} is outside {low:g}..{high:g}; rerun the command that wrote it")
    return value


def _read_csv(path):
    return read_csv(path, "rerun the command that wrote it")


def read_table(experiment):
    """(rows, device columns) of <experiment>/table.csv; rows are dicts of floats plus "method"."""
    path = Path(experiment) / "table.csv"
    if not path.is_file():
        raise TinyAscError(f"{path}: not found; `tinyasc experiment --out {experiment}` writes it")
    header, records = _read_csv(path)
    missing = [c for c in ("method", "overall_mean", "overall_std") if c not in header]
    columns = [c for c in DEVICE_COLUMNS if c in header]
    if missing or not columns:
        raise TinyAscError(f"{path}: columns {missing or list(DEVICE_COLUMNS)} missing; "
                           "is this a table.csv of tinyasc experiment?")
    rows = []
    for lineno, record in enumerate(records, start=2):
        where = f"{path}, line {lineno}"
        row = {"method": record["method"]}
        for column in columns:  # empty: the test split has no clips of this device
            row[column] = math.nan if record[column] == "" else _number(record[column], f"{where}, {column}", 0, 100)
        for column in ("overall_mean", "overall_std"):  # percentages, and a spread of them
            row[column] = _number(record[column], f"{where}, {column}", 0, 100)
        rows.append(row)
    if not rows:
        raise TinyAscError(f"{path}: no rows; the experiment has not finished")
    return rows, [c for c in columns if not all(math.isnan(row[c]) for row in rows)]


def _header(path):
    return _read_csv(path)[0]


def find_runs(experiment):
    """Classifier run folders directly inside the experiment folder: config.json and a
    metrics.csv with test accuracy (the translator that `--rows ...+translator` trains in
    <experiment>/translator has a metrics.csv of its own, without it)."""
    return sorted(p for p in Path(experiment).iterdir()
                  if p.is_dir() and (p / "config.json").is_file() and (p / "metrics.csv").is_file()
                  and "test_overall" in _header(p / "metrics.csv"))


def read_metrics(run_dir):
    """metrics.csv of a run: one dict per epoch, numbers as floats (epoch as int)."""
    path = Path(run_dir) / "metrics.csv"
    history = []
    for lineno, record in enumerate(_read_csv(path)[1], start=2):
        row = {k: _number(v, f"{path}, line {lineno}") for k, v in record.items() if v not in ("", None)}
        if "epoch" not in row:
            raise TinyAscError(f"{path}: no epoch column; is this a metrics.csv of tinyasc train?")
        if not (math.isfinite(row["epoch"]) and row["epoch"] >= 1 and row["epoch"].is_integer()):
            raise TinyAscError(f"{path}, line {lineno}: epoch {record['epoch']!r} is not an epoch number; "
                               "rerun the command that wrote it")
        row["epoch"] = int(row["epoch"])
        history.append(row)
    return history


def variant_of(run_name):
    """The run folder name without its seed: 'resnorm-seed2' -> 'resnorm' (seeds share a colour)."""
    return re.sub(r"-seed\d+$", "", run_name)


def spectra_of(config, log=print):
    """What device_spectra.png shows, from the test split of config's dataset: (spectra, segments)."""
    from tinyasc.spectra import device_spectra, paired_segments, summary_lines
    from tinyasc.data.training import TrainingData

    data = TrainingData.load(config, log=log)
    paired, n_segments = paired_segments(data.filenames("test"), data.devices("test"), data.rows("test"))
    spectra = device_spectra(data.features, paired, lam=config.lam)
    for line in summary_lines(spectra, n_segments, config.lam):
        log(line)
    return spectra, n_segments


def check_translator_folder(translator):
    """A translator folder that loads (tinyasc translator train), or a one-line error saying what it is."""
    from tinyasc.translator.load import load_translator

    translator = Path(translator)
    if not translator.is_dir():
        raise TinyAscError(f"{translator}: no such translator folder")
    if not (translator / "translator.npz").is_file() and (translator / "checkpoint.npz").is_file():
        raise TinyAscError(f"--translator {translator}: a classifier run (tinyasc train), not a translator folder; "
                           "pass a folder written by tinyasc translator train")
    load_translator(translator)


def make_figures(experiment, out, translator=None, spectra=None, log=print):
    """Write the experiment's (and optionally the translator's and the device spectra's) PNGs
    into `out`; return their paths. spectra: a TrainConfig naming the dataset, or None.

    Every input is read and checked before anything is drawn, and the figures are drawn into a
    hidden folder inside `out` and moved in at the end: a bad input, or a full disk or Ctrl-C
    while drawing, leaves `out` as it was (and no new empty folders)."""
    if not plots.available():
        raise TinyAscError("tinyasc figures needs matplotlib: pip install -e \".[plot]\"")
    if experiment is None and spectra is None and translator is None:
        raise TinyAscError("nothing to draw: give --experiment DIR (Table 2's figures), --spectra "
                           "and/or --translator DIR")
    out = Path(out)
    check_out_folder(out)
    drawings = []  # (file name, draw(path))
    if experiment is not None:
        experiment = Path(experiment)
        if not experiment.is_dir():
            raise TinyAscError(f"{experiment}: no such experiment folder")
        rows, columns = read_table(experiment)
        title = f"{experiment.name}: test accuracy per device (mean over seeds; overall +- std)"
        drawings.append((DEVICES_PNG, lambda path: plots.device_bars(rows, columns, path, title=title)))
        runs = [(variant_of(run.name), run.name, read_metrics(run)) for run in find_runs(experiment)]
        if runs:
            drawings.append((CURVES_PNG, lambda path: plots.experiment_curves(runs, path)))
        else:
            log(f"{experiment}: no run folders with metrics.csv; skipped the training curves")
    if translator is None:
        log("no --translator given: skipped the translator figure")
    else:
        check_translator_folder(translator)
    if spectra is not None:
        curves, segments = spectra_of(spectra, log=log)
        drawings.append((SPECTRA_PNG, lambda path: plots.device_spectra(curves, segments, spectra.lam, path)))
    if translator is not None:
        from tinyasc.translator.evaluate import save_translation_figure
        drawings.append((TRANSLATOR_PNG, lambda path: save_translation_figure(translator, path, log=log)))
    return _draw_into(out, drawings, log)


def check_out_folder(out):
    """--out must be (or become) a folder, with no folder where one of the figures goes."""
    if out.exists() and not out.is_dir():
        raise TinyAscError(f"--out {out}: is a file, not a folder; name a folder for the figures")
    in_the_way = [name for name in (DEVICES_PNG, CURVES_PNG, SPECTRA_PNG, TRANSLATOR_PNG) if (out / name).is_dir()]
    if in_the_way:
        raise TinyAscError(f"--out {out}: {in_the_way[0]} there is a folder; move it, or name another --out")


def _draw_into(out, drawings, log):
    made = first_missing_folder(out)  # removed again, with what is inside it, if the figures fail
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, "figures")
    staging = temporary_path(out / "figures")
    try:
        staging.mkdir()
        for name, draw in drawings:
            try:
                draw(staging / name)  # each written atomically, as every PNG
            except WriteError as exc:  # named by the figure asked for, not the hidden folder
                raise WriteError(str(exc).replace(str(staging / name), str(out / name))) from None
        written = []
        for name, _ in drawings:
            os.replace(staging / name, out / name)
            written.append(out / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made is not None:
            remove_empty_folders(out, made)
        raise
    staging.rmdir()
    for path in written:
        log(f"wrote {path}")
    return written

