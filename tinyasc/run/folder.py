"""The skeleton every training run shares: its folder, its stop flag, its metrics.

The classifier (tinyasc/train/classifier.py) and the device translator
(tinyasc/translator/train.py) differ in their step and their metrics; the rest is here:
a folder held by one run at a time, config.json written first, the checkpoint (one atomic
.npz, tinyasc/run/checkpoint.py) tagged with the kind of run that wrote it, metrics.csv
rewritten after every epoch, and Ctrl-C turned into "stop after this step, save, exit".
"""
import csv
import io
import json
import signal
from pathlib import Path

from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_text, exclusive_folder
from tinyasc.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class RunFolder:
    """One run's folder. `kind` tags its checkpoints ("tinyasc-classifier", "tinyasc-translator"),
    so a checkpoint of one kind is never resumed as the other."""

    def __init__(self, path, kind, checkpoint="checkpoint.npz"):
        self.path, self.kind, self.checkpoint = Path(path), kind, checkpoint

    def hold(self, busy):
        """Context manager: this process alone uses the folder (else TinyAscError(busy))."""
        return exclusive_folder(self.path, busy)

    def write_config(self, config):
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.json", config.to_json() + "\n")

    def save(self, arrays, meta, name=None):
        save_checkpoint(self.path / (name or self.checkpoint), arrays, {"kind": self.kind, **meta})

    def load(self, path=None):
        """(arrays, meta) of this folder's checkpoint (or `path`), refusing another kind of run's."""
        path = Path(path) if path is not None else self.path / self.checkpoint
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != self.kind:
            what = self.kind.replace("tinyasc-", "")
            raise CheckpointError(f"{path}: not a {what} checkpoint (kind {meta.get('kind')!r})")
        return arrays, meta

    def write_metrics(self, history):
        atomic_write_text(self.path / "metrics.csv", metrics_csv(history))


# the file that marks each command's folder, checked in this order (an experiment's or table3's
# folder holds run folders, a run folder a config.json)
FOLDER_MARKS = (("experiment.json", "experiment", "an experiment's folder (tinyasc experiment)"),
                ("table3.json", "table3", "a table3 folder (tinyasc table3)"),
                ("meta.csv", "dataset", "a dataset"),
                ("model.npz", "compress", "a compress folder (tinyasc compress)"),
                ("translator.npz", "translator", "a translator folder (tinyasc translator train)"),
                ("checkpoint.npz", "classifier", "a run folder of tinyasc train"))


def folder_kind(path):
    """(kind, description) of the command whose folder `path` is, or None when it is new, empty or
    unmarked. A run folder without its checkpoint (git keeps only a run's small outputs) is told
    by its config.json: the translator's names target devices."""
    path = Path(path)
    if not path.is_dir():
        return None
    for name, kind, what in FOLDER_MARKS:
        if (path / name).exists():
            return kind, what
    if (path / "config.json").is_file():
        try:
            saved = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):  # unreadable: the command that reads it says what is wrong
            saved = None
        kind = "translator" if isinstance(saved, dict) and "targets" in saved else "classifier"
        return kind, next(what for _, k, what in FOLDER_MARKS if k == kind)
    return None


def refuse_other_folder(path, kind, option="--out"):
    """A command writing into `path` must not write over another command's folder (a translator
    over a classifier run, a run over a dataset): its files would be replaced by this one's."""
    found = folder_kind(path)
    if found is not None and found[0] != kind:
        raise TinyAscError(f"{option} {path} is {found[1]}; its files would be overwritten: pass another {option}")


def metrics_csv(history):
    """One row per epoch; columns in order of first appearance, empty where an epoch has no value
    (the test split is evaluated only every few epochs); floats to 6 significant digits."""
    keys = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, `kill`, a closed terminal


class StopFlag:
    """Ctrl-C (or `kill`, or a closed terminal: STOP_SIGNALS) sets a flag checked between steps,
    so a checkpoint is saved and never taken mid-update.

    A second signal interrupts at once. Outside the main thread no handler can be installed and
    Ctrl-C behaves as usual.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.stop = False
        self.signals = tuple(signals)
        self._previous = {}

    def __call__(self):
        return self.stop

    def __enter__(self):
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        except ValueError:
            self._previous = {}
        return self

    def _handle(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False
