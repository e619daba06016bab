"""PNG figures, with the optional `plot` extra (matplotlib).

Of one run: training curves (loss, learning rate, per-device test accuracy per epoch) and
the confusion matrix. Of an experiment (tinyasc/figures.py reads the folders): the Table 2
rows as per-device bars, and the training curves of all its runs in one figure. Without
matplotlib, `available()` is False and nothing is drawn. Every PNG is written atomically.
"""
import numpy as np

from tinyasc.data.tau import DEVICES, SCENES
from tinyasc.fileio import pending

DEVICE_COLUMNS = tuple(d.upper() for d in DEVICES)  # the per-device columns of Table 2


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no window."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path, dpi=110):
    """Atomic PNG write: draw into a temporary file beside `path`, then rename."""
    with pending(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")


def _series(history, key):
    """(epochs, values) of the epochs whose row has `key` (the test split is evaluated every few epochs)."""
    rows = [row for row in history if key in row]
    return [row["epoch"] for row in rows], [row[key] for row in rows]


def training_curves(history, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(*_series(history, "loss"), label="train loss")
    if any("test_log_loss" in row for row in history):
        axes[0].plot(*_series(history, "test_log_loss"), marker=".", label="test log loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    axes[1].plot(*_series(history, "lr"))
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("learning rate (end of epoch)")
    for column in DEVICE_COLUMNS:
        key = f"test_{column}"
        if any(key in row for row in history):
            axes[2].plot(*_series(history, key), label=column, linewidth=1)
    axes[2].plot(*_series(history, "test_overall"), label="overall", color="black", linewidth=2)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("test accuracy (%)")
    axes[2].legend(ncol=2, fontsize=8)
    save_png(fig, path)
    plt.close(fig)


def confusion(matrix, path, title="confusion matrix (test)"):
    plt = pyplot()
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
    save_png(fig, path)
    plt.close(fig)


def device_bars(rows, columns, path, title="test accuracy per device"):
    """Grouped bars: one group per device column (then "Overall"), one bar per row (method).

    rows: dicts with "method", the device columns, "overall_mean" and "overall_std" (the
    std, over seeds, is drawn as an error bar on the Overall group).
    """
    plt = pyplot()
    groups = list(columns) + ["Overall"]
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(groups) * max(1, len(rows) / 4)), 4.5))
    colors = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        heights = [row[c] for c in columns] + [row["overall_mean"]]
        positions = [g + (i - (len(rows) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(positions, heights, width, label=row["method"], color=colors(i % 10))
        ax.errorbar(positions[-1], heights[-1], yerr=row.get("overall_std", 0.0), color="black", capsize=2,
                    linewidth=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.axvline(len(columns) - 0.5, color="grey", linewidth=0.8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    ax.grid(axis="y", linewidth=0.3)
    save_png(fig, path)
    plt.close(fig)


def experiment_curves(runs, path):
    """Training loss and overall test accuracy per epoch, one line per run, one colour per variant.

    runs: (variant, run name, history) triples; history: dicts with "epoch" and, where
    present, "loss" and "test_overall". Runs of one variant (its seeds) share a colour.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    variants = list(dict.fromkeys(variant for variant, _, _ in runs))
    colors = plt.get_cmap("tab10")
    labelled = set()
    for variant, _, history in runs:
        color = colors(variants.index(variant) % 10)
        for ax, key in zip(axes, ("loss", "test_overall")):
            epochs, values = _series(history, key)
            if values:
                label = None if (variant, key) in labelled else variant
                labelled.add((variant, key))
                ax.plot(epochs, values, color=color, linewidth=1.2, label=label)
    from matplotlib.ticker import MaxNLocator

    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("test accuracy, all devices (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(linewidth=0.3)
    axes[1].legend(fontsize=8)
    save_png(fig, path)
    plt.close(fig)


def device_spectra(spectra, n_segments, lam, path):
    """Two rows by three views (raw, FreqIN, ResNorm): each device's mean log-mel spectrum over the
    same test segments, and its relative RMS distance to device A's recording (tinyasc.spectra)."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5), sharex=True)
    colors = plt.get_cmap("tab10")
    styles = {d: ("-" if d in ("a", "b", "c", "s1", "s2", "s3") else "--") for d in DEVICES}
    titles = {"raw": "raw log-mel", "FreqIN": "FreqIN (eq. 1)", "ResNorm": f"ResNorm, lambda = {lam} (eq. 3)"}
    for j, view in enumerate(spectra["mean"]):  # raw, FreqIN, ResNorm (tinyasc.spectra.VIEWS)
        for i, device in enumerate(DEVICES):
            axes[0, j].plot(spectra["mean"][view][device], styles[device], color=colors(i), linewidth=1,
                            label=device.upper())
            if device != "a":
                axes[1, j].plot(spectra["distance"][view][device], styles[device], color=colors(i), linewidth=1,
                                label=device.upper())
        axes[0, j].set_title(titles[view])
        axes[1, j].set_xlabel("mel bin (0-8 kHz)")
        axes[0, j].grid(linewidth=0.3)
        axes[1, j].grid(linewidth=0.3)
    # FreqIN's means are zero up to rounding: drawn on ResNorm's scale, not on the rounding's
    axes[0, 1].set_ylim(axes[0, 2].get_ylim())
    axes[0, 1].text(0.5, 0.08, "0 for every device: each clip's own\nper-bin mean is subtracted",
                    transform=axes[0, 1].transAxes, ha="center", fontsize=9)
    axes[0, 2].text(0.5, 0.08, "lambda x keeps a tenth of the raw spectrum\n(the scene's envelope, and the device offset)"
                    if lam == 0.1 else f"lambda x keeps {lam} x the raw spectrum",
                    transform=axes[0, 2].transAxes, ha="center", fontsize=9)
    top = max(spectra["distance"][v][d].max() for v in spectra["distance"] for d in DEVICES if d != "a")
    for ax in axes[1]:
        ax.set_ylim(0, top * 1.05)
    axes[0, 0].set_ylabel("mean over segments and frames")
    axes[1, 0].set_ylabel("RMS difference to device A\n/ std of A's values in the bin")
    axes[0, 0].legend(ncol=3, fontsize=8, title="solid: seen in training, dashed: unseen")
    fig.suptitle(f"The same {n_segments} test segments recorded by nine devices: the device offsets per "
                 "frequency bin, before and after frequency-wise normalization")
    save_png(fig, path)
    plt.close(fig)
