"""The Table 2 ablation: every normalization variant x several seeds, one table.

Each (variant, seed) is an ordinary run folder under the experiment folder, so a run
that was interrupted resumes and a finished one is read back instead of retrained.
The table has the paper's form: per-device accuracy (mean over seeds) and the overall
accuracy as mean +- standard deviation over seeds.
"""
import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinyasc.errors import TinyAscError
from tinyasc.train import classifier
from tinyasc.train.checkpoint import atomic_write_text, load_checkpoint
from tinyasc.train.data import TrainingData
from tinyasc.train.evaluate import DEVICE_COLUMNS

ARCH_NAMES = {"bcresnet-mod": "BC-ResNet-Mod", "bcresnet": "BC-ResNet", "cpresnet": "CP-ResNet"}
NORM_SUFFIX = {"none": "", "global": " + Global FreqNorm", "freqin": " + FreqIN",
               "preresnorm": " + Pre-ResNorm", "resnorm": " + ResNorm"}


def row_name(config, norm):
    width = "tau" if config.arch == "bcresnet" else "c"
    return f"{ARCH_NAMES[config.arch]} ({width}={config.width}){NORM_SUFFIX[norm]}"


def run_folder(out_dir, config, norm, seed):
    prefix = "" if config.arch == "bcresnet-mod" else f"{config.arch}-"
    return Path(out_dir) / f"{prefix}{norm}-seed{seed}"


def _check_same_config(run_dir, config):
    """A run folder found in the experiment folder must be the run this experiment asks for."""
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    wanted = json.loads(config.to_json())
    different = sorted(k for k in wanted if saved.get(k) != wanted[k])
    if different:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in different)
        raise TinyAscError(f"{run_dir} holds a run with other settings ({detail}); "
                           "use another --out or delete that folder")


def _finished(run_dir, epochs):
    path = Path(run_dir) / classifier.CHECKPOINT
    if not (Path(run_dir) / "device_table.csv").is_file() or not path.is_file():
        return False
    _, meta = load_checkpoint(path)
    return meta["epoch"] >= epochs


def _read_device_table(run_dir):
    with open(Path(run_dir) / "device_table.csv", newline="") as f:
        return {row["device"]: float(row["accuracy"]) for row in csv.DictReader(f)}


def run_experiment(base_config, norms, seeds, out_dir, log=print, progress=True):
    """Train every (norm, seed) not yet finished; return the rows of the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = TrainingData.load(base_config, log=log)
    results = {}
    for norm in norms:
        for seed in seeds:
            run_dir = run_folder(out_dir, base_config, norm, seed)
            config = replace(base_config, norm=norm, seed=seed)
            _check_same_config(run_dir, config)
            if not _finished(run_dir, config.epochs):
                resume = (run_dir / classifier.CHECKPOINT).is_file()
                log(f"--- {row_name(base_config, norm)}, seed {seed}: {run_dir}")
                text, _ = classifier.train(config, run_dir, resume=resume, log=log, progress=progress, data=data)
                if text is None:  # Ctrl-C: the run saved its checkpoint; the same command resumes it
                    return None, None
            results[(norm, seed)] = _read_device_table(run_dir)
    rows = summarize(results, norms, seeds, base_config)
    atomic_write_text(out_dir / "table.csv", table_csv(rows))
    text = format_table(rows, base_config, seeds)
    atomic_write_text(out_dir / "table.md", text + "\n")
    atomic_write_text(out_dir / "experiment.json", json.dumps(
        {"norms": list(norms), "seeds": list(seeds), "config": json.loads(base_config.to_json()),
         "results": {f"{n}-seed{s}": v for (n, s), v in results.items()}}, indent=2) + "\n")
    return rows, text


def summarize(results, norms, seeds, config):
    rows = []
    for norm in norms:
        per_seed = [results[(norm, s)] for s in seeds]
        row = {"norm": norm, "name": row_name(config, norm)}
        for column in DEVICE_COLUMNS:
            values = [r[column] for r in per_seed if column in r]
            row[column] = float(np.mean(values)) if values else float("nan")
        overall = np.array([r["overall"] for r in per_seed])
        row["overall_mean"], row["overall_std"] = float(overall.mean()), float(overall.std())
        rows.append(row)
    return rows


def table_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "norm"] + list(DEVICE_COLUMNS) + ["overall_mean", "overall_std"])
    for row in rows:
        writer.writerow([row["name"], row["norm"]] + [f"{row[c]:.2f}" for c in DEVICE_COLUMNS]
                        + [f"{row['overall_mean']:.2f}", f"{row['overall_std']:.2f}"])
    return buf.getvalue()


def format_table(rows, config, seeds):
    head = "| Method | " + " | ".join(DEVICE_COLUMNS) + " | Overall |"
    lines = [f"{ARCH_NAMES[config.arch]}, {config.epochs} epochs, seeds {list(seeds)}: "
             "test accuracy (%) per device (mean over seeds); overall mean +- std over seeds (population std, ddof 0)", "", head,
             "|" + "---|" * (len(DEVICE_COLUMNS) + 2)]
    for row in rows:
        cells = " | ".join(f"{row[c]:.1f}" for c in DEVICE_COLUMNS)
        lines.append(f"| {row['name']} | {cells} | {row['overall_mean']:.1f} +- {row['overall_std']:.1f} |")
    return "\n".join(lines)
