"""Table 2: every row (architecture, normalization, +- device translator) x several seeds.

Each (row, seed) is an ordinary run folder under the experiment folder, so a run
that was interrupted resumes and a finished one is read back instead of retrained.
The table has the paper's form: per-device accuracy (mean over seeds) and the overall
accuracy as mean +- standard deviation over seeds.
"""
import csv
import io
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from tinyasc.errors import TinyAscError
from tinyasc.models.bcresnet import INPUT_NORMS
from tinyasc.models.bcresnet_mod import NORMS
from tinyasc.train import classifier
from tinyasc.train.checkpoint import atomic_write_text, load_checkpoint
from tinyasc.train.config import DEFAULT_WIDTH, read_json_object
from tinyasc.train.data import TrainingData
from tinyasc.train.evaluate import DEVICE_COLUMNS

ARCH_NAMES = {"bcresnet-mod": "BC-ResNet-Mod", "bcresnet": "BC-ResNet", "cpresnet": "CP-ResNet"}
NORM_SUFFIX = {"none": "", "global": " + Global FreqNorm", "freqin": " + FreqIN",
               "preresnorm": " + Pre-ResNorm", "resnorm": " + ResNorm"}
# Table 2 of the paper at CPU scale: the normalization ablation of BC-ResNet-Mod, the two
# comparison systems at the smallest widths they allow, and ResNorm with the translator.
TABLE2_ROWS = ("none", "global", "freqin", "preresnorm", "resnorm", "cpresnet@10:none", "bcresnet@1:none",
               "resnorm+translator")


@dataclass(frozen=True)
class Row:
    """One row of the table: an architecture at a width, an input/stage norm, +- translator."""
    arch: str
    width: int
    norm: str
    translator: bool = False

    @property
    def key(self):
        """The run-folder stem: 'resnorm', 'resnorm-translator', 'cpresnet10-none', ..."""
        head = self.norm if self.arch == "bcresnet-mod" else f"{self.arch}{self.width}-{self.norm}"
        return head + ("-translator" if self.translator else "")

    @property
    def name(self):
        width = "tau" if self.arch == "bcresnet" else "c"
        return (f"{ARCH_NAMES[self.arch]} ({width}={self.width}){NORM_SUFFIX[self.norm]}"
                + (", device translator" if self.translator else ""))


def parse_rows(text, width=None):
    """Rows from 'table2' or comma-separated specs '[arch[@width]:]norm[+translator]'.

    A spec without an architecture is BC-ResNet-Mod at `width` (default 10); an architecture
    without a width takes its default (DEFAULT_WIDTH)."""
    specs = TABLE2_ROWS if text.strip() == "table2" else [r.strip() for r in text.split(",") if r.strip()]
    if not specs:
        raise TinyAscError("--rows is empty; pass 'table2' or specs like resnorm,cpresnet@10:none")
    rows = []
    for spec in specs:
        body, plus, extra = spec.partition("+")
        if plus and extra != "translator":
            raise TinyAscError(f"--rows: {spec!r}: only '+translator' may follow a norm")
        arch_part, colon, norm = body.rpartition(":")
        arch, at, w = (arch_part or "bcresnet-mod").partition("@")
        if arch not in ARCH_NAMES:
            raise TinyAscError(f"--rows: {spec!r}: unknown architecture {arch!r}; choose from {', '.join(ARCH_NAMES)}")
        allowed = NORMS if arch == "bcresnet-mod" else INPUT_NORMS
        if norm not in allowed:
            raise TinyAscError(f"--rows: {spec!r}: {arch} takes the norms {', '.join(allowed)}, not {norm!r}")
        if at:
            try:
                row_width = int(w)
            except ValueError:
                raise TinyAscError(f"--rows: {spec!r}: width {w!r} is not an integer") from None
        elif arch == "bcresnet-mod" and width is not None:
            row_width = width
        else:
            row_width = DEFAULT_WIDTH[arch]
        rows.append(Row(arch, row_width, norm, bool(plus)))
    keys = [r.key for r in rows]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise TinyAscError(f"--rows: two rows would share the run folders {', '.join(twice)}-seed*; "
                           "BC-ResNet-Mod rows of different widths belong in different --out folders")
    return rows


def row_name(config, norm):
    return Row(config.arch, config.width, norm, bool(config.translator)).name


def run_folder(out_dir, row, seed):
    return Path(out_dir) / f"{row.key}-seed{seed}"


def _check_same_config(run_dir, config):
    """A run (or translator) folder found in the experiment folder must be the one this experiment asks for."""
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        return
    saved = read_json_object(saved_path, "settings", "use another --out or delete that folder")
    wanted = json.loads(config.to_json())
    defaults = {f.name: f.default for f in fields(type(config))}
    # A setting added after the run was made is missing there: it ran with the default.
    different = sorted(k for k in wanted if not _same_setting(k, saved.get(k, defaults.get(k)), wanted[k]))
    if different:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in different)
        raise TinyAscError(f"{run_dir} holds a run with other settings ({detail}); "
                           "use another --out or delete that folder")


def _same_setting(key, saved, wanted):
    if key == "translator" and saved and wanted:  # one folder, however the path was written
        return Path(saved).resolve() == Path(wanted).resolve()
    return saved == wanted


def _finished(run_dir, epochs):
    path = Path(run_dir) / classifier.CHECKPOINT
    if not (Path(run_dir) / "device_table.csv").is_file() or not path.is_file():
        return False
    _, meta = load_checkpoint(path)
    return meta["epoch"] >= epochs


def _read_device_table(run_dir):
    with open(Path(run_dir) / "device_table.csv", newline="") as f:
        return {row["device"]: float(row["accuracy"]) for row in csv.DictReader(f)}


def default_translator_config(base_config):
    from tinyasc.translator.train import TranslatorConfig

    return TranslatorConfig(data=base_config.data, preset=base_config.preset)


def ensure_translator(base_config, out_dir, translator, log, progress):
    """The translator folder for '+translator' rows: `translator` if given, else one trained
    (or resumed, or reused) in out_dir/translator with the default settings."""
    from tinyasc.train.classifier import _StopFlag
    from tinyasc.translator.train import CHECKPOINT, load_translator, train_translator

    if translator:
        load_translator(translator)  # a wrong folder fails now, not after the other rows trained
        return str(translator)
    folder = Path(out_dir) / "translator"
    config = default_translator_config(base_config)
    _check_same_config(folder, config)  # a translator of other data or settings must not be reused
    if (folder / CHECKPOINT).is_file():
        _, _, _, _, meta = load_translator(folder)
        if meta["epoch"] >= meta["config"]["epochs"]:
            return str(folder)
        log(f"--- translator: resuming {folder}")
    else:
        log(f"--- translator: training into {folder}")
    with _StopFlag() as flag:
        text = train_translator(config, folder, resume=(folder / CHECKPOINT).is_file(), log=log, progress=progress,
                                stop=lambda: flag.stop)
    if text is None:
        return None
    log(text)
    return str(folder)


def run_experiment(base_config, rows, seeds, out_dir, log=print, progress=True, translator=None):
    """Train every (row, seed) not yet finished; return (table rows, table text).

    rows: Row objects (see parse_rows); base_config holds the shared recipe (epochs, data...).
    """
    out_dir = Path(out_dir)
    for row in rows:  # every row's settings are checked before the first run starts
        replace(base_config, arch=row.arch, width=row.width, norm=row.norm).validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = TrainingData.load(base_config, log=log, progress=progress)
    if any(r.translator for r in rows):
        translator = ensure_translator(base_config, out_dir, translator, log, progress)
        if translator is None:
            return None, None
    results = {}
    for row in rows:
        for seed in seeds:
            run_dir = run_folder(out_dir, row, seed)
            config = replace(base_config, arch=row.arch, width=row.width, norm=row.norm, seed=seed,
                             translator=translator if row.translator else "").validate()
            _check_same_config(run_dir, config)
            if not _finished(run_dir, config.epochs):
                resume = (run_dir / classifier.CHECKPOINT).is_file()
                log(f"--- {row.name}, seed {seed}: {run_dir}")
                text, _ = classifier.train(config, run_dir, resume=resume, log=log, progress=progress, data=data)
                if text is None:  # Ctrl-C: the run saved its checkpoint; the same command resumes it
                    return None, None
            results[(row.key, seed)] = _read_device_table(run_dir)
    table = summarize(results, rows, seeds)
    atomic_write_text(out_dir / "table.csv", table_csv(table))
    text = format_table(table, base_config, seeds)
    atomic_write_text(out_dir / "table.md", text + "\n")
    atomic_write_text(out_dir / "experiment.json", json.dumps(
        {"rows": [r.key for r in rows], "seeds": list(seeds), "config": json.loads(base_config.to_json()),
         "translator": translator, "results": {f"{k}-seed{s}": v for (k, s), v in results.items()}}, indent=2) + "\n")
    return table, text


def summarize(results, rows, seeds):
    table = []
    for spec in rows:
        per_seed = [results[(spec.key, s)] for s in seeds]
        row = {"row": spec.key, "name": spec.name}
        for column in DEVICE_COLUMNS:
            values = [r[column] for r in per_seed if column in r]
            row[column] = float(np.mean(values)) if values else float("nan")
        overall = np.array([r["overall"] for r in per_seed])
        row["overall_mean"], row["overall_std"] = float(overall.mean()), float(overall.std())
        table.append(row)
    return table


def table_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "row"] + list(DEVICE_COLUMNS) + ["overall_mean", "overall_std"])
    for row in rows:
        writer.writerow([row["name"], row["row"]] + [f"{row[c]:.2f}" for c in DEVICE_COLUMNS]
                        + [f"{row['overall_mean']:.2f}", f"{row['overall_std']:.2f}"])
    return buf.getvalue()


def format_table(rows, config, seeds):
    head = "| Method | " + " | ".join(DEVICE_COLUMNS) + " | Overall |"
    lines = [f"{config.epochs} epochs, seeds {list(seeds)}: "
             "test accuracy (%) per device (mean over seeds); overall mean +- std over seeds (population std, ddof 0)", "", head,
             "|" + "---|" * (len(DEVICE_COLUMNS) + 2)]
    for row in rows:
        cells = " | ".join(f"{row[c]:.1f}" for c in DEVICE_COLUMNS)
        lines.append(f"| {row['name']} | {cells} | {row['overall_mean']:.1f} +- {row['overall_std']:.1f} |")
    return "\n".join(lines)
