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
import re
from pathlib import Path

from tinyasc.errors import TinyAscError
from tinyasc.fileio import read_csv
from tinyasc.run import plots
from tinyasc.train.evaluate import DEVICE_COLUMNS

SPECTRA_PNG = "device_spectra.png"
DEVICES_PNG = "table2_devices.png"
CURVES_PNG = "table2_curves.png"
TRANSLATOR_PNG = "translator.png"


def _number(text, where):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise TinyAscError(f"{where}: {text!r} is not a number; rerun the command that wrote it") from None


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
            row[column] = math.nan if record[column] == "" else _number(record[column], where)
        for column in ("overall_mean", "overall_std"):
            row[column] = _number(record[column], where)
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


def make_spectra_figure(config, out, log=print):
    """device_spectra.png from the test split of config's dataset; returns its path."""
    from tinyasc.spectra import device_spectra, paired_segments, summary_lines
    from tinyasc.data.training import TrainingData

    data = TrainingData.load(config, log=log)
    paired, n_segments = paired_segments(data.filenames("test"), data.devices("test"), data.rows("test"))
    spectra = device_spectra(data.features, paired, lam=config.lam)
    for line in summary_lines(spectra, n_segments, config.lam):
        log(line)
    target = Path(out) / SPECTRA_PNG
    plots.device_spectra(spectra, n_segments, config.lam, target)  # written atomically, as every PNG
    return target


def make_figures(experiment, out, translator=None, spectra=None, log=print):
    """Write the experiment's (and optionally the translator's and the device spectra's) PNGs
    into `out`; return their paths. spectra: a TrainConfig naming the dataset, or None."""
    if not plots.available():
        raise TinyAscError("tinyasc figures needs matplotlib: pip install -e \".[plot]\"")
    if experiment is None and spectra is None and translator is None:
        raise TinyAscError("nothing to draw: give --experiment DIR (Table 2's figures), --spectra "
                           "and/or --translator DIR")
    written = []
    out = Path(out)
    if experiment is not None:
        experiment = Path(experiment)
        if not experiment.is_dir():
            raise TinyAscError(f"{experiment}: no such experiment folder")
        rows, columns = read_table(experiment)
        out.mkdir(parents=True, exist_ok=True)
        plots.device_bars(rows, columns, out / DEVICES_PNG,
                          title=f"{experiment.name}: test accuracy per device (mean over seeds; overall +- std)")
        written.append(out / DEVICES_PNG)
        runs = [(variant_of(run.name), run.name, read_metrics(run)) for run in find_runs(experiment)]
        if runs:
            plots.experiment_curves(runs, out / CURVES_PNG)
            written.append(out / CURVES_PNG)
        else:
            log(f"{experiment}: no run folders with metrics.csv; skipped the training curves")
    if spectra is not None:
        out.mkdir(parents=True, exist_ok=True)
        written.append(make_spectra_figure(spectra, out, log=log))
    if translator is None:
        log("no --translator given: skipped the translator figure")
    else:
        if not Path(translator).is_dir():
            raise TinyAscError(f"{translator}: no such translator folder")
        try:
            from tinyasc.translator.evaluate import save_translation_figure
        except ImportError as exc:
            raise TinyAscError(f"the translator figure needs tinyasc.translator ({exc})") from None
        out.mkdir(parents=True, exist_ok=True)
        save_translation_figure(translator, out / TRANSLATOR_PNG, log=log)  # written atomically, as every PNG
        written.append(out / TRANSLATOR_PNG)
    for path in written:
        log(f"wrote {path}")
    return written
