"""PNG figures of a run, with the optional `plot` extra (matplotlib).

Training curves (loss, learning rate, per-device test accuracy per epoch) and the
confusion matrix. Without matplotlib, `available()` is False and nothing is drawn.
"""
from pathlib import Path

import numpy as np

from tinyasc.data.tau import SCENES
from tinyasc.train.evaluate import DEVICE_COLUMNS


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    """Atomic PNG write: draw into a temporary file beside `path`, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)


def training_curves(history, path):
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(epochs, [row["loss"] for row in history], label="train loss")
    if "test_log_loss" in history[0]:
        axes[0].plot(epochs, [row["test_log_loss"] for row in history], label="test log loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    axes[1].plot(epochs, [row["lr"] for row in history])
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("learning rate (end of epoch)")
    for column in DEVICE_COLUMNS:
        key = f"test_{column}"
        if key in history[0]:
            axes[2].plot(epochs, [row[key] for row in history], label=column, linewidth=1)
    axes[2].plot(epochs, [row["test_overall"] for row in history], label="overall", color="black", linewidth=2)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("test accuracy (%)")
    axes[2].legend(ncol=2, fontsize=8)
    _save(fig, path)
    plt.close(fig)


def confusion(matrix, path, title="confusion matrix (test)"):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(SCENES)), SCENES, rotation=60, ha="right")
    ax.set_yticks(range(len(SCENES)), SCENES)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    _save(fig, path)
    plt.close(fig)
