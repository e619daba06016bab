"""What every command that trains several runs into one folder shares (tinyasc experiment,
tinyasc table3, tinyasc compress): is a run folder found there the one asked for, has it
finished, and its per-device table."""
import json
import math
import re
from dataclasses import fields
from pathlib import Path

from tinyasc.errors import TinyAscError
from tinyasc.fileio import read_csv
from tinyasc.run.checkpoint import CheckpointError, load_checkpoint
from tinyasc.train import classifier
from tinyasc.train.config import read_json_object


def check_same_config(run_dir, config):
    """A run (or translator) folder found in an output folder must hold the settings asked for now."""
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        made = [name for name in (classifier.CHECKPOINT, "device_table.csv", "metrics.csv")
                if (Path(run_dir) / name).is_file()]
        if made:  # a run's outputs without its settings: nothing says which run they are
            raise TinyAscError(f"{run_dir} holds a run ({', '.join(made)}) without its config.json; restore the "
                               "file (from git), or delete the folder to train the run again")
        return
    saved = read_json_object(saved_path, "settings", "use another --out or delete that folder")
    wanted = json.loads(config.to_json())
    defaults = {f.name: f.default for f in fields(type(config))}
    # A setting added after the run was made is missing there: it ran with the default.
    different = sorted(k for k in wanted if not same_setting(k, saved.get(k, defaults.get(k)), wanted[k]))
    if different:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in different)
        raise TinyAscError(f"{run_dir} holds a run with other settings ({detail}); "
                           "use another --out or delete that folder")


PATH_SETTINGS = ("data", "translator", "teacher", "init_from")  # folders, comma-separated for teachers


def same_setting(key, saved, wanted):
    """Whether a saved setting is the one wanted; folders compare as the folders they name."""
    if key in PATH_SETTINGS and saved and wanted:  # the same folders, however the paths were written
        return _folders(saved) == _folders(wanted)
    return saved == wanted


def _folders(text):
    return [Path(p.strip()).expanduser().resolve() for p in str(text).split(",") if p.strip()]


def finished(run_dir, epochs):
    """True if the run trained all its epochs and wrote its device table.

    The checkpoint says so where there is one. A folder of a finished run may also hold only
    its small outputs (config.json, metrics.csv, device_table.csv: what is kept in git, while
    checkpoints are not), and then metrics.csv's last epoch says so; such a folder is read
    back, never resumed."""
    run_dir = Path(run_dir)
    if not (run_dir / "device_table.csv").is_file():
        return False
    path = run_dir / classifier.CHECKPOINT
    if path.is_file():
        _, meta = load_checkpoint(path)
        epoch = meta.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise CheckpointError(f"{path}: its metadata has no valid epoch count ({epoch!r}); the file is "
                                  "damaged: delete the run folder to train it again")
        return epoch >= epochs
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return False
    fix = "delete the run folder to train it again, or restore the file from git"
    _, rows = read_csv(metrics, fix)
    if not rows:
        return False
    last = rows[-1].get("epoch") or ""
    if not re.fullmatch(r"[0-9]{1,9}", last):  # str.isdigit would take '²', which int() refuses
        raise TinyAscError(f"{metrics}: its last epoch {last!r:.40} is not an epoch number; the file is damaged: "
                           f"{fix}")
    return int(last) >= epochs


def read_device_table(run_dir):
    """{device: accuracy %} of a finished run's device_table.csv, with its 'overall' row."""
    path = Path(run_dir) / "device_table.csv"
    damaged = f"{path}: not a device table written by tinyasc train"
    fix = "delete the run folder to train it again, or restore the file from git"
    header, rows = read_csv(path, fix)
    if not {"device", "accuracy"} <= set(header):
        raise TinyAscError(f"{damaged} (columns {header}, need device and accuracy); {fix}")
    table = {}
    for row in rows:
        try:
            accuracy = float(row["accuracy"])
        except (TypeError, ValueError):
            accuracy = math.nan
        if not 0 <= accuracy <= 100 or not row["device"] or row["device"] in table:
            raise TinyAscError(f"{damaged} (row {row['device']!r}, accuracy {row['accuracy']!r}); {fix}")
        table[row["device"]] = accuracy
    if "overall" not in table:
        raise TinyAscError(f"{damaged} (no 'overall' row); {fix}")
    return table


def require_checkpoint(run_dir):
    """A finished run whose weights are needed must still have them (git keeps only the small
    outputs of a run, never its checkpoint)."""
    if not (Path(run_dir) / classifier.CHECKPOINT).is_file():
        raise TinyAscError(f"{run_dir}: finished, but its {classifier.CHECKPOINT} is gone and its weights are "
                           "needed here; restore the file, or delete the folder to train it again")
