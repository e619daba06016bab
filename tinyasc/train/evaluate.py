"""Metrics of the paper's Table 2 and the DCASE task: per device and overall.

Top-1 accuracy and multi-class log loss (mean of -log p(true class), probabilities
clipped to [1e-15, 1] as the DCASE evaluation does), per-class accuracy and the
confusion matrix. Model inference runs in batches under no_grad in eval mode.
"""
import csv
import io

import numpy as np

from tinyasc import functional as F
from tinyasc.autograd import Tensor, no_grad
from tinyasc.data.tau import DEVICES, SCENES

DEVICE_COLUMNS = tuple(d.upper() for d in DEVICES)


def predict_proba(model, features, indices=None, batch_size=64):
    """Class probabilities for features[indices] (N x F x T memmap or array) -> N x K."""
    indices = np.arange(len(features)) if indices is None else np.asarray(indices)
    was_training = model.training
    model.eval()
    out = []
    with no_grad():
        for start in range(0, len(indices), batch_size):
            rows = np.sort(indices[start:start + batch_size])
            order = np.argsort(np.argsort(indices[start:start + batch_size]))
            x = np.asarray(features[rows], dtype=np.float32)[:, None]
            probs = F.softmax(model(Tensor(x)), dim=1).numpy()
            out.append(probs[order])
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def log_loss(probs, labels):
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-15, 1.0)
    return float(-np.mean(np.log(p))) if len(labels) else float("nan")


def device_metrics(probs, labels, devices):
    """{'A': {'accuracy', 'log_loss', 'count'}, ..., 'overall': {...}} (accuracy in %)."""
    devices = np.asarray(devices)
    pred = probs.argmax(axis=1)
    table = {}
    for d, column in zip(DEVICES, DEVICE_COLUMNS):
        mask = devices == d
        if mask.any():
            table[column] = {"accuracy": 100.0 * float(np.mean(pred[mask] == labels[mask])),
                             "log_loss": log_loss(probs[mask], labels[mask]), "count": int(mask.sum())}
    table["overall"] = {"accuracy": 100.0 * float(np.mean(pred == labels)) if len(labels) else float("nan"),
                        "log_loss": log_loss(probs, labels), "count": int(len(labels))}
    return table


def class_accuracy(probs, labels, num_classes=len(SCENES)):
    pred = probs.argmax(axis=1)
    return np.array([100.0 * np.mean(pred[labels == k] == k) if np.any(labels == k) else np.nan
                     for k in range(num_classes)])


def confusion_matrix(probs, labels, num_classes=len(SCENES)):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, probs.argmax(axis=1)), 1)
    return matrix


def device_spread(table):
    """Standard deviation of the per-device accuracies: the 'Min Var' selection criterion."""
    accs = [v["accuracy"] for k, v in table.items() if k != "overall"]
    return float(np.std(accs)) if accs else float("nan")


def format_device_table(table, title=""):
    columns = [c for c in DEVICE_COLUMNS if c in table] + ["overall"]
    lines = [title] if title else []
    lines.append(f"{'':<10}" + "".join(f"{c:>8}" for c in columns))
    lines.append(f"{'accuracy':<10}" + "".join(f"{table[c]['accuracy']:8.1f}" for c in columns))
    lines.append(f"{'log loss':<10}" + "".join(f"{table[c]['log_loss']:8.3f}" for c in columns))
    lines.append(f"{'clips':<10}" + "".join(f"{table[c]['count']:8d}" for c in columns))
    return "\n".join(lines)


def format_class_table(accuracy):
    return "\n".join(f"{scene:<18}{acc:6.1f}" for scene, acc in zip(SCENES, accuracy))


def device_table_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["device", "accuracy", "log_loss", "count"])
    for key, row in table.items():
        writer.writerow([key, f"{row['accuracy']:.4f}", f"{row['log_loss']:.6f}", row["count"]])
    return buf.getvalue()


def class_csv(accuracy, matrix):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["scene", "accuracy"] + [f"pred_{s}" for s in SCENES])
    for scene, acc, row in zip(SCENES, accuracy, matrix):
        writer.writerow([scene, f"{acc:.4f}"] + [int(v) for v in row])
    return buf.getvalue()


_CONTROL_NAMES = {"\t": "a tab", "\n": "a newline", "\r": "a carriage return"}


def tsv_field_problem(text):
    """Why `text` cannot be one field of a tab-separated line (it holds a control character), or ""."""
    for ch in text:
        if ord(ch) < 32 or ord(ch) == 127:
            return (f"holds {_CONTROL_NAMES.get(ch, f'the control character {ch!r}')}, which would break "
                    "the tab-separated submission file")
    return ""


def submission_tsv(filenames, probs):
    """The DCASE submission file: filename, scene_label, then one probability per scene.

    The format has no quoting, so a name holding a tab or newline is refused (ValueError)."""
    lines = ["\t".join(("filename", "scene_label") + SCENES)]
    for name, p in zip(filenames, probs):
        problem = tsv_field_problem(name)
        if problem:
            raise ValueError(f"{name!r}: {problem}")
        lines.append("\t".join([name, SCENES[int(np.argmax(p))]] + [f"{v:.6f}" for v in p]))
    return "\n".join(lines) + "\n"
