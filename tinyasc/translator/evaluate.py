"""How close translations come to the real recordings, against two baselines.

The measure is the log-spectral distance (LSD) in dB between a translated log-mel and the
real target-device log-mel of the same held-out test segment:
    LSD = mean over frames t of sqrt( mean over mel bins f of (10 log10 P^_ft - 10 log10 P_ft)^2 )
Features are natural-log power, so a difference d of features is 10 d / ln 10 dB.

Baselines:
- identity: the device-A clip itself (no translation);
- EQ: the device-A clip plus a fixed per-mel-bin offset per target device, the mean
  difference target - source over the training pairs (what a fixed equalizer learned from
  the same pairs can do).
"""
import csv
import io
from pathlib import Path

import numpy as np

from tinyasc.errors import DataError
from tinyasc.fileio import atomic_write_texts
from tinyasc.run import plots
from tinyasc.translator.data import CHUNK, PairData, eq_offsets
from tinyasc.translator.load import load_translator, translate

DB_PER_NEPER = 10.0 / np.log(10.0)


def lsd_db(pred, real):
    """Per-clip log-spectral distance in dB of N x F x T natural-log power features."""
    diff = (np.asarray(pred, np.float64) - np.asarray(real, np.float64)) * DB_PER_NEPER
    return np.sqrt((diff ** 2).mean(axis=-2)).mean(axis=-1)


def translator_lsd(generator, normalizer, features, pairs, index):
    """Per-pair LSD (dB) of the translations of pairs `index`, computed chunk by chunk."""
    out = np.empty(len(index))
    for start in range(0, len(index), CHUNK):
        j = index[start:start + CHUNK]
        pred = translate(generator, normalizer, features[pairs.source[j]], pairs.device[j])
        out[start:start + len(j)] = lsd_db(pred, features[pairs.target[j]])
    return out


def evaluation_table(generator, normalizer, data):
    """Rows (device, pairs, identity, eq, translator): mean LSD in dB over the test pairs."""
    test, features = data.test, data.features
    offsets = eq_offsets(features, data.train)
    rows = []
    for k, device in enumerate(test.targets):
        i = test.of_device(k)
        identity, eq = [], []
        for start in range(0, len(i), CHUNK):
            j = i[start:start + CHUNK]
            source, real = np.asarray(features[test.source[j]]), np.asarray(features[test.target[j]])
            identity.append(lsd_db(source, real))
            eq.append(lsd_db(source + offsets[k][:, None], real))
        rows.append({"device": device, "pairs": len(i), "identity": float(np.concatenate(identity).mean()),
                     "eq": float(np.concatenate(eq).mean()),
                     "translator": float(translator_lsd(generator, normalizer, features, test, i).mean())})
    if rows:
        total = sum(r["pairs"] for r in rows)
        rows.append({"device": "all", "pairs": total,
                     **{m: sum(r[m] * r["pairs"] for r in rows) / total for m in ("identity", "eq", "translator")}})
    return rows


def format_table(rows):
    lines = ["Log-spectral distance to the real target recording (dB, lower is better), held-out test pairs",
             "", "| target | pairs | identity | EQ (per-bin offset) | translator |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['device']} | {r['pairs']} | {r['identity']:.2f} | {r['eq']:.2f} | {r['translator']:.2f} |")
    return "\n".join(lines)


def table_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["device", "pairs", "identity_lsd_db", "eq_lsd_db", "translator_lsd_db"])
    for r in rows:
        writer.writerow([r["device"], r["pairs"], f"{r['identity']:.4f}", f"{r['eq']:.4f}", f"{r['translator']:.4f}"])
    return buf.getvalue()


def check_targets(run_dir, targets, data):
    """The generator knows a target device only by its index in `targets`: the data must pair
    device A with the same devices in the same order, or every row would be another device's."""
    if tuple(data.train.targets) != tuple(targets):
        raise DataError(f"{run_dir}: the translator was trained for target devices {', '.join(targets)}, but its "
                        f"dataset {data.dataset.root} now pairs device A with {', '.join(data.train.targets)}; "
                        "restore the dataset it was trained on, or retrain the translator on this one")


def evaluate_translator(run_dir, data=None, log=print):
    """Evaluate a translator folder on its dataset's test pairs; write evaluation.csv/.md
    (and translation.png with the plot extra); return the table text."""
    run_dir = Path(run_dir)
    config, generator, normalizer, targets, _ = load_translator(run_dir)
    if data is None:
        data = PairData.load(config, log=log)
    check_targets(run_dir, targets, data)
    rows = evaluation_table(generator, normalizer, data)
    text = format_table(rows)
    atomic_write_texts({run_dir / "evaluation.csv": table_csv(rows), run_dir / "evaluation.md": text + "\n"})
    if plots.available():
        save_translation_figure(run_dir, run_dir / "translation.png", data=data)
    return text


def save_translation_figure(run_dir, path, data=None, example=0, log=print):
    """A figure like the paper's Figure 1: a real device-A test clip, its translations to
    every target device, and the real recordings of those devices (needs the plot extra).

    log receives the dataset's lines when `data` is loaded here, so a feature cache that must
    be computed first is announced, as in every other command."""
    config, generator, normalizer, targets, _ = load_translator(run_dir)
    if data is None:
        data = PairData.load(config, log=log)
    check_targets(run_dir, targets, data)
    test = data.test
    first = test.of_device(0)
    segment = test.segments[first[example % len(first)]]
    columns = []
    for k in range(len(targets)):
        hits = [i for i in test.of_device(k) if test.segments[i] == segment]
        if hits:
            columns.append((k, hits[0]))
    source = np.asarray(data.features[test.source[columns[0][1]]])
    plt = plots.pyplot()
    fig, axes = plt.subplots(2, len(columns) + 1, figsize=(2.4 * (len(columns) + 1), 5.0), sharex=True, sharey=True,
                             squeeze=False)
    vmin, vmax = np.percentile(source, [1, 99.5])
    kw = dict(origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
    axes[0, 0].imshow(source, **kw)
    axes[0, 0].set_title("(a) real A")
    axes[1, 0].axis("off")
    for j, (k, i) in enumerate(columns, start=1):
        fake = translate(generator, normalizer, source[None], k)[0]
        axes[0, j].imshow(fake, **kw)
        axes[0, j].set_title(f"A -> {targets[k].upper()} (translated)")
        axes[1, j].imshow(np.asarray(data.features[test.target[i]]), **kw)
        axes[1, j].set_title(f"real {targets[k].upper()}")
    for ax in axes[:, 0]:
        ax.set_ylabel("mel bin")
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    fig.suptitle(f"Device translation of test segment {segment}")
    fig.tight_layout()
    plots.save_png(fig, path, dpi=60)  # six spectrogram panels: keep the PNG small enough for docs/
