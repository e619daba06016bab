"""Table 2: every row (architecture, normalization, +- device translator) x several seeds.

Each (row, seed) is an ordinary run folder under the experiment folder, so a run
that was interrupted resumes and a finished one is read back instead of retrained.
The table has the paper's form: per-device accuracy (mean over seeds) and the overall
accuracy as mean +- standard deviation over seeds. Because one run's digits are not a
result (seeds, and CPUs, move them by points), every row is also compared with the plain
BC-ResNet-Mod row seed by seed: the paired difference on the seen devices (A-S3), on the
unseen ones (S4-S6) and overall, with a 95 % t interval over the seeds both rows share.

The tables are rewritten after every finished run, over the runs finished so far, so a
long experiment can be read (and its small outputs kept) while it is still running.
"""
import csv
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.stats

from tinyasc.errors import TinyAscError
from tinyasc.models.bcresnet import INPUT_NORMS
from tinyasc.models.bcresnet_mod import NORMS
from tinyasc.train import classifier
from tinyasc.fileio import atomic_write_texts
from tinyasc.run.folder import StopFlag, refuse_other_folder
from tinyasc.checks import check_frames, parse_number
from tinyasc.train.config import DEFAULT_WIDTH, read_json_object
from tinyasc.train.runs import check_same_config, finished, read_device_table, same_setting
from tinyasc.data.training import TrainingData
from tinyasc.translator.config import TranslatorConfig
from tinyasc.translator.load import CHECKPOINT as TRANSLATOR_CHECKPOINT
from tinyasc.translator.load import load_translator
from tinyasc.translator.train import train_translator
from tinyasc.train.evaluate import DEVICE_COLUMNS

ARCH_NAMES = {"bcresnet-mod": "BC-ResNet-Mod", "bcresnet": "BC-ResNet", "cpresnet": "CP-ResNet"}
NORM_SUFFIX = {"none": "", "global": " + Global FreqNorm", "freqin": " + FreqIN",
               "preresnorm": " + Pre-ResNorm", "resnorm": " + ResNorm"}
# Table 2 of the paper at CPU scale: the normalization ablation of BC-ResNet-Mod, the two
# comparison systems at the smallest widths they allow, and ResNorm with the translator. The
# last three are slower (the translator row 4.7x: its epochs hold the translated clips too)
# and run on the first three of the seeds only ('/3').
TABLE2_ROWS = ("none", "global", "freqin", "preresnorm", "resnorm", "cpresnet@10:none/3", "bcresnet@1:none/3",
               "resnorm+translator/3")
SEEN = ("A", "B", "C", "S1", "S2", "S3")    # the devices of the training split
UNSEEN = ("S4", "S5", "S6")                 # recorded only in the test split
GROUPS = {"seen": SEEN, "unseen": UNSEEN}


@dataclass(frozen=True)
class Row:
    """One row of the table: an architecture at a width, an input/stage norm, +- translator."""
    arch: str
    width: int
    norm: str
    translator: bool = False
    max_seeds: int = None    # run on the first max_seeds of the experiment's seeds (None: all)

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

    @property
    def is_reference(self):
        """The row the others are compared with: plain BC-ResNet-Mod (Table 2's first row)."""
        return self.arch == "bcresnet-mod" and self.norm == "none" and not self.translator

    def seeds(self, seeds):
        return list(seeds) if self.max_seeds is None else list(seeds)[: self.max_seeds]


def parse_rows(text, width=None):
    """Rows from 'table2' or comma-separated specs '[arch[@width]:]norm[+translator][/N]'.

    A spec without an architecture is BC-ResNet-Mod at `width` (default 10); an architecture
    without a width takes its default (DEFAULT_WIDTH). '/N' runs the row on the first N seeds
    only."""
    specs = TABLE2_ROWS if text.strip() == "table2" else [r.strip() for r in text.split(",") if r.strip()]
    if not specs:
        raise TinyAscError("--rows is empty; pass 'table2' or specs like resnorm,cpresnet@10:none")
    rows = []
    for spec in specs:
        head, slash, count = spec.partition("/")
        max_seeds = None
        if slash:
            if not re.fullmatch(r"[0-9]+", count) or int(count) < 1:
                raise TinyAscError(f"--rows: {spec!r}: '/N' takes a positive number of seeds, not {count!r}")
            max_seeds = int(count)
        body, plus, extra = head.partition("+")
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
            row_width = parse_number(w, int, f"--rows: {spec!r}: width")
        elif arch == "bcresnet-mod" and width is not None:
            row_width = width
        else:
            row_width = DEFAULT_WIDTH[arch]
        rows.append(Row(arch, row_width, norm, bool(plus), max_seeds))
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


def default_translator_config(base_config):
    return TranslatorConfig(data=base_config.data, preset=base_config.preset)


def ensure_translator(base_config, out_dir, translator, log, progress):
    """The translator folder for '+translator' rows: `translator` if given, else one trained
    (or resumed, or reused) in out_dir/translator with the default settings."""
    if translator:
        load_translator(translator)  # a wrong folder fails now, not after the other rows trained
        return str(translator)
    folder = Path(out_dir) / "translator"
    config = default_translator_config(base_config)
    if translator_finished(base_config, out_dir):
        return str(folder)
    if (folder / TRANSLATOR_CHECKPOINT).is_file():
        log(f"--- translator: resuming {folder}")
    else:
        log(f"--- translator: training into {folder}")
    with StopFlag() as flag:
        text = train_translator(config, folder, resume=(folder / TRANSLATOR_CHECKPOINT).is_file(), log=log, progress=progress,
                                stop=flag)
    if text is None:
        return None
    log(text)
    return str(folder)


def translator_finished(base_config, out_dir):
    """Whether out_dir/translator holds a finished translator of the default settings (one of
    other data or settings is refused: it must not be reused)."""
    folder = Path(out_dir) / "translator"
    check_same_config(folder, default_translator_config(base_config))
    if not (folder / TRANSLATOR_CHECKPOINT).is_file():
        return False
    _, _, _, _, meta = load_translator(folder)
    return meta["epoch"] >= meta["config"]["epochs"]


def run_order(rows, seeds):
    """(row, seed) pairs in training order: seed by seed over the rows that run on every seed,
    so that each finished seed completes a paired comparison, then the rows limited to fewer
    seeds ('/N', the slow ones), again seed by seed."""
    full = [r for r in rows if r.max_seeds is None]
    limited = [r for r in rows if r.max_seeds is not None]
    return ([(r, s) for s in seeds for r in full]
            + [(r, s) for s in seeds for r in limited if s in r.seeds(seeds)])


@dataclass
class Plan:
    """What an experiment folder holds and what is left to train."""
    out_dir: Path
    order: list           # (row, seed) pairs in training order
    results: dict         # (row key, seed) -> device table of the runs finished so far
    translator_dir: str   # the '+translator' rows' translator folder
    translator_ready: bool

    def todo(self):
        return [(row, seed) for row, seed in self.order if (row.key, seed) not in self.results]


def config_of(base_config, row, seed, translator_dir):
    return replace(base_config, arch=row.arch, width=row.width, norm=row.norm, seed=seed,
                   translator=translator_dir if row.translator else "").validate()


def plan_experiment(base_config, rows, seeds, out_dir, translator=None, log=print):
    """Check every row's settings and every existing run folder, and read the finished runs
    back, before the first run starts (a typo in the last row does not surface hours later)."""
    out_dir = Path(out_dir)
    for row in rows:
        try:
            replace(base_config, arch=row.arch, width=row.width, norm=row.norm).validate()
        except TinyAscError as exc:  # the width may come from the row's spec, not from --model-width
            raise TinyAscError(f"--rows: the row {row.name}: {exc}") from None
    base_config.check_inputs()
    check_experiment_folder(out_dir, base_config)
    if translator:
        load_translator(translator)  # a wrong folder fails now, not after the other rows trained
    translator_dir = str(translator) if translator else str(out_dir / "translator")
    # A translator finished before is ready now: '+translator' runs need not wait for an idle machine.
    ready = bool(translator) or (any(r.translator for r in rows) and translator_finished(base_config, out_dir))
    plan = Plan(out_dir, run_order(rows, seeds), {}, translator_dir, ready)
    for row, seed in plan.order:
        run_dir = run_folder(out_dir, row, seed)
        config = config_of(base_config, row, seed, translator_dir)
        check_same_config(run_dir, config)
        if finished(run_dir, config.epochs):
            plan.results[(row.key, seed)] = read_device_table(run_dir)
    check_same_devices(plan)
    if plan.results:
        log(f"{len(plan.results)} of {len(plan.order)} runs already finished in {out_dir}")
    return plan


TABLE_FILES = ("table.csv", "table.md", "experiment.json")
OWN_SETTINGS = ("arch", "width", "norm", "seed", "translator")  # what a row and a seed set; the rest is shared


def check_experiment_folder(out_dir, base_config):
    """--out is an experiment's folder (or new): not another command's folder, its table files
    can be written, and every run already in it shares this experiment's recipe (a table must
    not mix, say, runs of 1 and 2 epochs under one heading)."""
    refuse_other_folder(out_dir, "experiment")
    for name in TABLE_FILES:
        if (out_dir / name).is_dir():
            raise TinyAscError(f"{out_dir / name} is a folder; the experiment writes its table there: "
                               "move it away or pass another --out")
    wanted = json.loads(base_config.to_json())
    for saved_path in sorted(out_dir.glob("*-seed*/config.json")) if out_dir.is_dir() else ():
        saved = read_json_object(saved_path, "settings", "use another --out or delete that folder")
        different = sorted(k for k in wanted if k not in OWN_SETTINGS and k in saved
                           and not same_setting(k, saved[k], wanted[k]))
        if different:
            detail = ", ".join(f"{k}: {saved[k]!r} there, {wanted[k]!r} now" for k in different)
            raise TinyAscError(f"{saved_path.parent} was trained with another recipe ({detail}) than this "
                               f"experiment's; its table would mix the two: pass another --out")


def check_same_devices(plan):
    """Every finished run of the experiment reports the same devices: a device table that lost
    a row (damaged by hand) would otherwise shift its group means unnoticed."""
    devices = {key: set(table) for key, table in plan.results.items()}
    union = set().union(*devices.values()) if devices else set()
    for (row_key, seed), have in devices.items():
        if have != union:
            path = plan.out_dir / f"{row_key}-seed{seed}" / "device_table.csv"
            raise TinyAscError(f"{path}: no row for {', '.join(sorted(union - have))}, which the experiment's other "
                               "runs report; the file is damaged: restore it from git, or delete the run folder to "
                               "train it again")


def check_rows_fit(plan, base_config, data):
    """The clips are long enough for every row's network and numerous enough for a batch: found
    before the first run trains, not when a slow row starts hours later."""
    for row, seed in plan.todo():
        config = config_of(base_config, row, seed, plan.translator_dir)
        if row.translator:  # its translations come later; the clips' length must suit it already
            root = getattr(getattr(data, "dataset", None), "root", "the dataset")
            check_frames(data.features.shape[-1], config.arch, f"the clips of {root}")
        else:
            classifier.training_data(config, data, log=lambda *a: None, progress=False)


def run_experiment(base_config, rows, seeds, out_dir, log=print, progress=True, translator=None):
    """Train every (row, seed) not yet finished, one after the other; return (table rows, table text).

    rows: Row objects (see parse_rows); base_config holds the shared recipe (epochs, data...).
    The tables are written after every finished run (over the runs finished so far).
    """
    plan = plan_experiment(base_config, rows, seeds, out_dir, translator, log)
    data = TrainingData.load(base_config, log=log, progress=progress)
    check_rows_fit(plan, base_config, data)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    for row, seed in plan.todo():
        if row.translator and not plan.translator_ready:
            if ensure_translator(base_config, plan.out_dir, None, log, progress) is None:
                return None, None
            plan.translator_ready = True
        run_dir = run_folder(plan.out_dir, row, seed)
        resume = (run_dir / classifier.CHECKPOINT).is_file()
        log(f"--- {row.name}, seed {seed}: {run_dir}")
        text, _ = classifier.train(config_of(base_config, row, seed, plan.translator_dir), run_dir, resume=resume,
                                   log=log, progress=progress, data=data)
        if text is None:  # Ctrl-C: the run saved its checkpoint; the same command resumes it
            return None, None
        plan.results[(row.key, seed)] = read_device_table(run_dir)
        write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)
    return write_tables(plan.out_dir, rows, seeds, plan.results, base_config, plan.translator_dir)


def write_tables(out_dir, rows, seeds, results, base_config, translator_dir):
    """table.csv, table.md and experiment.json over the runs finished so far; returns (table, text)."""
    table = summarize(results, rows, seeds)
    text = format_table(table, base_config, seeds)
    uses_translator = any(r.translator for r in rows)
    record = {"rows": [r.key for r in rows], "seeds": list(seeds), "config": json.loads(base_config.to_json()),
              "translator": translator_dir if uses_translator else None,
              "results": {f"{k}-seed{s}": v for (k, s), v in results.items()}}
    atomic_write_texts({out_dir / "table.csv": table_csv(table), out_dir / "table.md": text + "\n",
                        out_dir / "experiment.json": json.dumps(record, indent=2) + "\n"})  # all three, or none
    return table, text


def group_accuracy(device_table, devices):
    """Mean of the per-device accuracies of `devices` (the test split has as many clips of each);
    a dataset whose test split lacks some of them averages those it has (NaN: none)."""
    present = [device_table[d] for d in devices if d in device_table]
    return float(np.mean(present)) if present else float("nan")


def paired_interval(differences, confidence=0.95):
    """Mean of per-seed differences and its two-sided t interval: (mean, low, high).

    With one seed there is no spread to estimate: low and high are NaN."""
    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan")
    half = scipy.stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return mean, mean - float(half), mean + float(half)


def summarize(results, rows, seeds):
    """One dict per row with finished runs: per-device means, overall mean and std, seen/unseen
    means, and the paired differences (d_<group>, d_<group>_low, d_<group>_high) to the
    reference row over the seeds both have."""
    reference = next((r for r in rows if r.is_reference), None)
    table = []
    for spec in rows:
        done = [s for s in spec.seeds(seeds) if (spec.key, s) in results]
        if not done:
            continue
        per_seed = [results[(spec.key, s)] for s in done]
        row = {"row": spec.key, "name": spec.name, "seeds": len(done), "seeds_planned": len(spec.seeds(seeds)),
               "reference": spec is reference}
        for column in DEVICE_COLUMNS:
            values = [r[column] for r in per_seed if column in r]
            row[column] = float(np.mean(values)) if values else float("nan")
        overall = np.array([r["overall"] for r in per_seed])
        row["overall_mean"], row["overall_std"] = float(overall.mean()), float(overall.std())
        for group, devices in GROUPS.items():
            row[f"{group}_mean"] = float(np.mean([group_accuracy(r, devices) for r in per_seed]))
        if reference is not None and spec is not reference:
            shared = [s for s in done if (reference.key, s) in results]
            row["paired_seeds"] = len(shared)
            for group in ("seen", "unseen", "overall"):
                differences = []
                for s in shared:
                    this, ref = results[(spec.key, s)], results[(reference.key, s)]
                    if group == "overall":
                        differences.append(this["overall"] - ref["overall"])
                    else:
                        differences.append(group_accuracy(this, GROUPS[group]) - group_accuracy(ref, GROUPS[group]))
                if differences:
                    mean, low, high = paired_interval(differences)
                    row[f"d_{group}"], row[f"d_{group}_low"], row[f"d_{group}_high"] = mean, low, high
        table.append(row)
    return table


PAIRED_COLUMNS = [f"d_{g}{end}" for g in ("seen", "unseen", "overall") for end in ("", "_low", "_high")]


def table_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "row"] + list(DEVICE_COLUMNS)
                    + ["overall_mean", "overall_std", "seen_mean", "unseen_mean", "seeds", "paired_seeds"]
                    + PAIRED_COLUMNS)
    for row in rows:
        writer.writerow([row["name"], row["row"]] + [_cell(row[c], ".2f") for c in DEVICE_COLUMNS]
                        + [_cell(row[k], ".2f") for k in ("overall_mean", "overall_std", "seen_mean", "unseen_mean")]
                        + [row["seeds"], row.get("paired_seeds", "")]
                        + [_cell(row.get(k), ".2f") for k in PAIRED_COLUMNS])
    return buf.getvalue()


def _cell(value, spec):
    return "" if value is None or np.isnan(value) else format(value, spec)


def _interval(row, group):
    """'+3.1 [+1.2, +5.0]' (95 % t interval over the paired seeds), or '' without a reference."""
    if f"d_{group}" not in row or np.isnan(row[f"d_{group}"]):
        return ""
    low, high = row[f"d_{group}_low"], row[f"d_{group}_high"]
    text = f"{row[f'd_{group}']:+.1f}"
    return text + (f" [{low:+.1f}, {high:+.1f}]" if not np.isnan(low) else " (1 seed)")


def format_table(rows, config, seeds):
    head = "| Method | " + " | ".join(DEVICE_COLUMNS) + " | Overall | seeds |"
    lines = [f"{config.epochs} epochs, seeds {list(seeds)}: "
             "test accuracy (%) per device (mean over seeds); overall mean +- std over seeds (population std, ddof 0)",
             "", head, "|" + "---|" * (len(DEVICE_COLUMNS) + 3)]
    for row in rows:
        cells = " | ".join(_cell(row[c], ".1f") or "-" for c in DEVICE_COLUMNS)  # '-': no clips of the device
        seeds_cell = f"{row['seeds']}" + (f" of {row['seeds_planned']}" if row["seeds"] < row["seeds_planned"] else "")
        lines.append(f"| {row['name']} | {cells} | {row['overall_mean']:.1f} +- {row['overall_std']:.1f} | {seeds_cell} |")
    compared = [row for row in rows if "d_overall" in row]
    if compared:
        reference = next(row["name"] for row in rows if row["reference"])
        lines += ["", f"Paired difference to {reference}, seed by seed (percentage points): mean "
                  "[95 % t interval over the seeds both rows ran]; seen = mean of A-S3, unseen = mean of S4-S6", "",
                  "| Method | seen (A-S3) | unseen (S4-S6) | overall | paired seeds |", "|---|---|---|---|---|"]
        for row in compared:
            lines.append(f"| {row['name']} | {_interval(row, 'seen')} | {_interval(row, 'unseen')} | "
                         f"{_interval(row, 'overall')} | {row['paired_seeds']} |")
    return "\n".join(lines)
