"""Training data from the translator (paper 3.2): every device-A training clip translated to
every target device, added to the classifier's training set.

The translations are computed once per (translator checkpoint, feature cache, clip list)
and cached beside the translator as one .npy (a memmap when read back) plus a JSON index
written last, so an interrupted computation is never mistaken for a finished one. The index
records the array's size and content digest: a truncated, replaced or damaged array is
recomputed, never used.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tinyasc.data.tau import segment_of
from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_text, pending, progressbar, read_index, reserve
from tinyasc.translator.load import CHECKPOINT, load_translator, translate

CACHE_VERSION = 2  # 2: the index holds the array's size and digest (older caches are recomputed once)


def file_digest(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_held_out(translator_dir, meta, held_out):
    """A translator trained on segments of the classifier's test split would carry test
    recordings into training: refuse it. (Checkpoints written before the translator
    recorded its training segments cannot be checked.)"""
    trained_on = set(meta.get("train_segments", ()))
    leaked = sorted(trained_on & {segment_of(name) for name in held_out})
    if leaked:
        raise TinyAscError(f"{translator_dir}: the translator was trained on {len(leaked)} segments of this "
                           f"dataset's test split (e.g. {leaked[0]}); train a translator on this dataset "
                           "(tinyasc translator train --data ...) so its pairs come from the training split")


def content_digest(x, rows_per_block=256):
    """(sha1 of the array's bytes, whether every value is finite), read a block of rows at a time."""
    h, finite = hashlib.sha1(), True
    for start in range(0, len(x), rows_per_block):
        block = np.ascontiguousarray(x[start:start + rows_per_block])
        finite = finite and bool(np.isfinite(block).all())
        h.update(block)
    return h.hexdigest(), finite


def open_cached(npy_path, json_path, expected):
    """(read-only memmap, None) if the cache holds what `expected` (the index fields that follow
    from the inputs) describes, else (None, what is wrong). The index records the array's size
    and digest, so a truncated, replaced or damaged array is never used."""
    index, problem = read_index(json_path)
    if problem:
        return None, problem
    for field, value in expected.items():
        if index.get(field) != value:
            return None, f"index field {field!r} differs"
    try:
        size = npy_path.stat().st_size
    except OSError:
        return None, "array file missing"
    if size != index.get("npy_bytes"):
        return None, f"array file has {size} bytes, the index says {index.get('npy_bytes')}"
    try:
        x = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"array unreadable ({' '.join(str(exc).split())})"
    if x.dtype != np.float32 or list(x.shape) != expected["shape"]:
        return None, f"array holds {x.dtype} {x.shape}, the index says float32 {tuple(expected['shape'])}"
    digest, finite = content_digest(x)
    if not finite:
        return None, "array holds NaN or infinity"
    if digest != index.get("sha1"):
        return None, "array content differs from the index's digest"
    return x, None


def translated_features(translator_dir, features, rows, filenames, log=print, progress=True, batch_size=16,
                        held_out=()):
    """(array len(rows)*K x F x T, target names): features[rows] translated to each of the
    translator's K targets; block k holds target k, in the order of `rows`.

    held_out: filenames of the classifier's test split, none of which the translator may have
    trained on (check_held_out)."""
    translator_dir = Path(translator_dir)
    checkpoint = translator_dir / CHECKPOINT
    config, generator, normalizer, targets, meta = load_translator(translator_dir)
    check_held_out(translator_dir, meta, held_out)
    key_source = {"checkpoint": file_digest(checkpoint), "shape": list(features.shape[1:]),
                  "files": hashlib.sha1("\n".join(filenames).encode()).hexdigest(),
                  "features": hashlib.sha1(np.ascontiguousarray(features[np.asarray(rows[:8])]).tobytes()).hexdigest()}
    key = hashlib.sha1(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:16]
    npy_path = translator_dir / f"translations-{key}.npy"
    json_path = translator_dir / f"translations-{key}.json"
    shape = (len(rows) * len(targets),) + tuple(features.shape[1:])
    expected = {"version": CACHE_VERSION, "key": key, **key_source, "targets": list(targets), "shape": list(shape),
                "dtype": "float32"}
    if json_path.is_file():
        x, problem = open_cached(npy_path, json_path, expected)
        if x is not None:
            log(f"translations: {shape} from cache {npy_path}")
            return x, targets
        log(f"translations: cache {npy_path} does not match its index ({problem}); recomputing it")
    elif npy_path.exists():
        log(f"translations: cache {npy_path} has no index (an interrupted write?); recomputing it")
    log(f"translations: {len(rows)} device-A clips x {len(targets)} devices ({', '.join(targets)}) into {npy_path}")
    with pending(npy_path) as tmp:  # a failure leaves no temporary; a full disk is one line naming the file
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        reserve(tmp)
        rows = np.asarray(rows)
        with progressbar(shape[0], "translations", quiet=not progress) as bar:
            for k in range(len(targets)):
                for start in range(0, len(rows), batch_size):
                    chunk = rows[start:start + batch_size]
                    out[k * len(rows) + start:k * len(rows) + start + len(chunk)] = translate(
                        generator, normalizer, features[np.sort(chunk)][np.argsort(np.argsort(chunk))], k,
                        batch_size=batch_size)
                    bar.update(len(chunk))
        out.flush()
        digest, finite = content_digest(out)
        del out
        if not finite:
            raise TinyAscError(f"{checkpoint}: the translator turns some clips into NaN or infinity; retrain it "
                               "(tinyasc translator train, with a lower --lr)")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    atomic_write_text(json_path, json.dumps({**expected, "npy_bytes": npy_path.stat().st_size, "sha1": digest},
                                            indent=2) + "\n")
    return np.load(npy_path, mmap_mode="r", allow_pickle=False), targets


def add_translations(data, translator_dir, log=print, progress=True):
    """`data` (a TrainingData) grown by every device-A training clip translated to every target
    device of the translator in `translator_dir` (paper 3.2, "Device Translator" of Table 2)."""
    rows, filenames = data.device_a_training_clips()
    extra, targets = translated_features(translator_dir, data.features, rows, filenames, log=log, progress=progress,
                                         held_out=data.filenames("test"))
    return data.with_translations(extra, targets, file_digest(Path(translator_dir) / CHECKPOINT))
