"""Checkpoints: one .npz of plain arrays, with the JSON metadata stored inside it as bytes.

No pickle anywhere: arrays are saved as arrays, everything else (config, epoch, step,
random-generator states, metric history) as JSON text in the array `__meta__`. One file
means one atomic rename: a reader sees the old checkpoint or the new one, never half.
"""
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from tinyasc.checks import first_nonfinite
from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_bytes, json_problem

META_KEY = "__meta__"


class CheckpointError(TinyAscError):
    """A checkpoint cannot be read or does not fit the model."""


class NonFiniteWeights(CheckpointError):
    """Weights to save or load hold NaN or infinity: the training that made them diverged."""

    def __init__(self, message, array="", what=""):
        super().__init__(message)
        self.array, self.what = array, what


# Deflate cannot expand data by more than about 1032 times; a zip member that claims more
# is damaged or hostile, and its declared size must not be allocated.
MAX_DEFLATE_RATIO = 1100


def save_checkpoint(path, arrays, meta):
    """arrays: name -> ndarray (numeric dtypes only); meta: JSON-serialisable dict."""
    payload = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"checkpoint array {name} has dtype {array.dtype}; only numbers are stored")
        payload[name] = array
    bad = first_nonfinite(payload)
    if bad is not None:  # a diverged model is never written over a good checkpoint
        raise NonFiniteWeights(f"{path}: not saved: {bad[0]} holds {bad[1]} (the training diverged); "
                               "the previous file is kept. Try a lower --lr", *bad)
    payload[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path):
    """Return (arrays, meta). Every way a file can be wrong becomes a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file here; pass a run folder that finished at least one epoch")
    if not zipfile.is_zipfile(path):  # else np.load would take it for a pickle and blame "object arrays"
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (not an .npz archive); "
                              "delete it or resume from another run")
    check_npz_headers(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise CheckpointError(f"{path}: holds object arrays, which tinyasc never loads (pickle); "
                                  "re-save it with plain numeric arrays") from None
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({exc}); delete it or resume from another run") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({exc.__class__.__name__}); "
                              "delete it or resume from another run") from None
    if META_KEY not in arrays:
        raise CheckpointError(f"{path}: not a tinyasc checkpoint (no {META_KEY} entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also: not UTF-8, nested too deeply, a 5,000-digit number
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({json_problem(exc)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is not a JSON object; not a tinyasc file")
    return arrays, meta


def check_npz_headers(path):
    """Read the header of every array in the .npz and refuse, before anything is allocated,
    object arrays and arrays whose declared shape does not match the bytes stored for them."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(f"{path}: holds {info.filename!r}, which is not a .npy array; "
                                          "not a tinyasc file")
                if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1) + 4096:
                    raise CheckpointError(f"{path}: member {info.filename} claims {info.file_size:,} bytes from "
                                          f"{info.compress_size:,} compressed; the file is damaged")
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(fh)
                    header = fh.tell()
                if dtype.hasobject:
                    raise CheckpointError(f"{path}: holds object arrays, which tinyasc never loads (pickle); "
                                          "re-save it with plain numeric arrays")
                declared = math.prod(shape) * dtype.itemsize
                if header + declared != info.file_size:
                    raise CheckpointError(f"{path}: array {info.filename[:-4]} declares shape {tuple(shape)} "
                                          f"({declared:,} bytes) but stores {info.file_size - header:,} bytes; "
                                          "the file is damaged: delete it or use another run")
    except (ValueError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({' '.join(str(exc).split())[:200]}); "
                              "delete it or resume from another run") from None


def split_prefix(arrays, prefix):
    """The entries 'prefix/name' of a flat checkpoint, as name -> array."""
    head = prefix + "/"
    return {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)}


def _listing(names, limit=3):
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def state_mismatch(model, state):
    """A short description of how `state` does not fit `model` (names and shapes), or None."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} (checkpoint {tuple(np.shape(state[k]))}, model {own[k].shape})" for k in own
              if k in state and tuple(np.shape(state[k])) != own[k].shape]
    problems = []
    if shapes:
        problems.append(f"shape mismatch: {_listing(shapes)}")
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    return "; ".join(problems) or None


def check_finite_state(arrays, source):
    """Refuse weights (or optimizer state) holding NaN or infinity, naming the first such array."""
    bad = first_nonfinite(arrays)
    if bad is not None:
        raise NonFiniteWeights(f"{source}: {bad[0]} holds {bad[1]}: the training that wrote it diverged; "
                               "retrain with a lower --lr (or resume from a copy saved before it diverged)", *bad)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked_position(meta, epochs, steps_per_epoch):
    """(epoch, step_in_epoch) of a checkpoint's metadata, checked before use: whole numbers (not
    a bool, a string or a float; JSON reads 1e400 as infinity) within the run's epochs and steps,
    and no step past the last epoch."""
    epoch, step = meta["epoch"], meta["step_in_epoch"]
    if type(epoch) is not int or type(step) is not int:
        raise ValueError(f"epoch {epoch!r:.40} and step_in_epoch {step!r:.40} must be whole numbers")
    if not (0 <= epoch <= epochs and 0 <= step <= steps_per_epoch and (epoch < epochs or step == 0)):
        raise ValueError(f"epoch {epoch}, step {step} is outside this run's {epochs} epochs of {steps_per_epoch} steps")
    return epoch, step


def checked_history(history, epoch):
    """A checkpoint's per-epoch metrics rows, checked before use: one row of named numbers per
    finished epoch, numbered 1..epoch (metrics.csv is written from them)."""
    if not isinstance(history, list) or len(history) != epoch:
        size = len(history) if isinstance(history, list) else type(history).__name__
        raise ValueError(f"history holds {size} rows for {epoch} finished epochs")
    for i, row in enumerate(history, start=1):
        if (not isinstance(row, dict) or row.get("epoch") != i
                or not all(isinstance(k, str) and _number(v) for k, v in row.items())):
            raise ValueError(f"history row {i} is not that epoch's metrics")
    return [dict(row) for row in history]


def checked_tally(tally_type, values):
    """A running tally (NamedTuple of numbers) from a checkpoint's metadata."""
    if not isinstance(values, list) or len(values) != len(tally_type._fields) or not all(map(_number, values)):
        raise ValueError(f"running totals {values!r} are not {len(tally_type._fields)} numbers")
    return tally_type(*values)


def load_model_state(model, state, source):
    """load_state_dict, refusing (one line naming the file) weights that do not fit or are not finite."""
    # A float array must be stored as floats, an integer one (a counter) as integers: anything else
    # (strings, bytes, booleans, complex, dates) would be cast into other numbers without a word.
    own = model.state_dict()
    kinds = [f"{k} ({np.asarray(v).dtype})" for k, v in state.items()
             if k in own and np.asarray(v).dtype.kind not in ("f" if own[k].dtype.kind == "f" else "iu")]
    if kinds:
        raise CheckpointError(f"{source}: arrays of the wrong type: {_listing(kinds)}; the file is damaged: "
                              "restore it or retrain")
    problem = state_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{source}: checkpoint does not fit this model: {problem}. "
                              "Use the same --arch/--model-width/--norm as the run that wrote it")
    check_finite_state(state, source)
    model.load_state_dict(state, strict=True)


# The settings that decide a classifier's weights: a checkpoint written under others does not
# belong to the run even where the array shapes agree (ResNorm and no norm have the same arrays).
MODEL_FIELDS = ("arch", "width", "rho", "norm", "lam", "subbands", "bits", "per_channel")  # bits: QAT's weights
ADDED_LATER = {"bits": 32, "per_channel": False}  # what a checkpoint written before them held


def check_same_model(saved_config, config, source):
    """The checkpoint's own record of its settings (meta["config"]) against the run's."""
    if not isinstance(saved_config, dict):
        return  # written before checkpoints recorded their settings: only the shapes can be checked
    saved = {name: saved_config.get(name, ADDED_LATER.get(name)) for name in MODEL_FIELDS}
    differ = [f"{name} {saved[name]!r} there, {getattr(config, name)!r} in the run's config.json"
              for name in MODEL_FIELDS if saved[name] != getattr(config, name)]
    if differ:
        raise CheckpointError(f"{source}: written by a run with other model settings ({'; '.join(differ)}); "
                              "it belongs to another run: restore this run's own checkpoint or retrain")
