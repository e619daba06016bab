"""Checkpoints: one .npz of plain arrays, with the JSON metadata stored inside it as bytes.

No pickle anywhere: arrays are saved as arrays, everything else (config, epoch, step,
random-generator states, metric history) as JSON text in the array `__meta__`. One file
means one atomic rename: a reader sees the old checkpoint or the new one, never half.
"""
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tinyasc.errors import TinyAscError

META_KEY = "__meta__"


class CheckpointError(TinyAscError):
    """A checkpoint cannot be read or does not fit the model."""


def atomic_write_bytes(path, write):
    """Call write(file) on a temporary file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_checkpoint(path, arrays, meta):
    """arrays: name -> ndarray (numeric dtypes only); meta: JSON-serialisable dict."""
    payload = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"checkpoint array {name} has dtype {array.dtype}; only numbers are stored")
        payload[name] = array
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({exc})") from None
    return arrays, meta


def split_prefix(arrays, prefix):
    """The entries 'prefix/name' of a flat checkpoint, as name -> array."""
    head = prefix + "/"
    return {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)}


def load_model_state(model, state, source):
    """load_state_dict with a CheckpointError naming the file when the model does not fit."""
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as exc:
        raise CheckpointError(f"{source}: checkpoint does not fit this model — {exc}. "
                              "Use the same --model-width/--norm as the run that wrote it") from None
