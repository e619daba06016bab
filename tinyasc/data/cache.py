"""Feature cache: a dataset's log-mel features, computed once, memory-mapped afterwards.

The front end (tinyasc.audio) is cheap per clip but not per epoch, so the features of every
file used by a split are stored as ONE float32 .npy array (N x F x T) opened with
np.load(mmap_mode="r"), plus a JSON index (file names in row order, shape, front-end
settings, a CRC-32 checksum of the whole array). Both are named by a hash of the front-end
settings and the dataset's identity (root, file names, sizes, modification times): change
any of them and a new cache is built.

Writes are atomic: the array goes to a temporary name in the same folder, is fsynced and
renamed, and the index is written (the same way) last. An array without an index, an
index that does not match its array, an array whose checksum differs or that holds NaN or
inf, or leftover temporary files are never trusted: the cache is rebuilt. Checking reads
the whole array once per load (about 0.3 s for the 380 MB of the default preset).
"""
import errno
import hashlib
import json
import os
import time
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tinyasc.audio import DEFAULT_FRONTEND, file_log_mel
from tinyasc.data.workers import run_tasks
from tinyasc.errors import DataError
from tinyasc.fileio import (atomic_write_text, file_lock, pending, progressbar, read_index, remove_stale_temporaries,
                            reserve)

CACHE_VERSION = 1


def tinyasc_home():
    """Where tinyasc keeps generated data: $TINYASC_HOME, else $XDG_CACHE_HOME/tinyasc,
    else ~/.cache/tinyasc."""
    if os.environ.get("TINYASC_HOME"):
        return Path(os.environ["TINYASC_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tinyasc"


def default_cache_dir():
    return tinyasc_home() / "features"


@dataclass(frozen=True)
class FeatureSet:
    """Features of a dataset's files: x[row] is the F x T log-mel of filenames[row]."""
    x: np.ndarray          # read-only memmap, N x F x T float32
    filenames: tuple
    index: dict            # filename -> row
    path: Path             # the .npy file
    settings: dict         # front-end settings

    def __len__(self):
        return len(self.filenames)

    def rows(self, filenames):
        """int64 rows of `filenames` (a KeyError names a file without features)."""
        return np.array([self.index[f] for f in filenames], dtype=np.int64)


def _identity(dataset, frontend):
    files = []
    for name in dataset.filenames:
        try:
            st = os.stat(dataset.path(name))
        except OSError:
            raise DataError(f"{dataset.path(name)}: audio file not found; the dataset changed "
                            "after it was read, reload it") from None
        files.append([name, st.st_size, st.st_mtime_ns])
    return {"cache_version": CACHE_VERSION, "frontend": frontend.as_dict(),
            "root": str(dataset.root), "files": files}


def cache_key(dataset, frontend=DEFAULT_FRONTEND):
    """Hash of the front-end settings and the dataset's identity."""
    blob = json.dumps(_identity(dataset, frontend), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _fingerprint(x):
    """sha256 of 8 rows spread over the array: what tinyasc checked before the checksum. Still
    written to the index, so that an older checkout sharing TINYASC_HOME reuses this cache
    instead of rebuilding it (and this one then rebuilding it again)."""
    n = x.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, 8)).astype(np.int64)) if n else []
    h = hashlib.sha256(repr(tuple(x.shape)).encode())
    for r in rows:
        h.update(np.ascontiguousarray(x[r]).tobytes())
    return h.hexdigest()


def _scan(x):
    """(CRC-32 of the array's bytes, rows holding NaN or inf), in one pass over blocks of
    about 16 MB. CRC-32 catches accidental damage anywhere (a partial write, a flipped block,
    a program writing into the file); it is not meant to resist deliberate forgery."""
    step = max(1, (16 << 20) // max(1, x[0].nbytes)) if len(x) else 1
    crc, bad = 0, []
    for start in range(0, len(x), step):
        block = np.ascontiguousarray(x[start:start + step])
        crc = zlib.crc32(block, crc)
        finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        bad.extend(int(r) for r in start + np.flatnonzero(~finite))
    return crc, bad


def _open_cached(npy_path, json_path, key, filenames, frontend):
    """(FeatureSet, None) if the cache is valid, else (None, reason)."""
    meta, problem = read_index(json_path)
    if problem:
        return None, problem
    expected = {"cache_version": CACHE_VERSION, "key": key, "frontend": frontend.as_dict(),
                "filenames": list(filenames), "dtype": "float32"}
    for field, value in expected.items():
        if meta.get(field) != value:
            return None, f"index field {field!r} differs"
    if not npy_path.is_file():
        return None, "array file missing"
    if npy_path.stat().st_size != meta.get("npy_bytes"):
        return None, "array file size differs from the index"
    try:
        x = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"array unreadable ({exc})"
    if list(x.shape) != meta.get("shape") or x.dtype != np.float32:
        return None, f"array shape {x.shape} / {x.dtype} differs from the index"
    if "crc32" not in meta:
        return None, "the index has no checksum (written by an earlier tinyasc)"
    crc, bad = _scan(x)
    if bad:
        return None, f"{len(bad)} row(s) hold NaN or inf, first row {bad[0]}: {filenames[bad[0]]}"
    if crc != meta.get("crc32"):
        return None, "array content differs from the index checksum"
    index = {f: i for i, f in enumerate(filenames)}
    return FeatureSet(x, tuple(filenames), index, npy_path, meta["frontend"]), None


def _remove_stale_temporaries(folder, stem):
    """Delete temporary files of this cache left by processes that no longer run."""
    for suffix in (".npy", ".json"):
        remove_stale_temporaries(folder, stem + suffix)


def _target_frames(dataset, frontend):
    """The number of frames of the most common clip length."""
    counts = Counter()
    for name in dataset.filenames:
        info = dataset.audio_info.get(name)
        if info is None:
            try:
                i = sf.info(str(dataset.path(name)))
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise DataError(f"{dataset.path(name)}: not a readable audio file "
                                f"({' '.join(str(exc).split())}); replace it") from None
            info = (i.samplerate, i.frames, i.channels)
        counts[frontend.num_frames(info[1], info[0])] += 1
    return counts.most_common(1)[0][0], counts


def fit_frames(feat, n_frames):
    """Crop a F x T feature to n_frames, or repeat it in time (wrap-around, as the time
    roll does) when it is shorter."""
    t = feat.shape[1]
    if t == n_frames:
        return feat
    if t > n_frames:
        return feat[:, :n_frames]
    return np.tile(feat, (1, -(-n_frames // t)))[:, :n_frames]


def extract_features(paths, out, frontend=DEFAULT_FRONTEND, workers=None, progress=True,
                     desc="features"):
    """Write the log-mel of paths[i] into out[i] (N x F x T), on `workers` processes (default:
    one per core; workers.py). Returns clips per second.

    Worker processes write into `out` directly when it is a writable memmap (a file mapping
    they share with this process); any other array is filled from threads."""
    n_frames = out.shape[2]
    shared = isinstance(out, np.memmap) and out.mode in ("r+", "w+")
    start = time.perf_counter()

    def one(i):  # a longer clip is read only as far as its first n_frames frames need
        out[i] = fit_frames(file_log_mel(paths[i], frontend, max_frames=n_frames), n_frames)
        return 1

    with progressbar(len(paths), desc, quiet=not progress) as bar:
        run_tasks(one, len(paths), workers, processes=shared, done=bar.update, name=lambda i: paths[i])
    return len(paths) / max(time.perf_counter() - start, 1e-9)


def load_features(dataset, cache_dir=None, frontend=DEFAULT_FRONTEND, workers=None,
                  progress=True, log=None):
    """Features of every file of the dataset's splits, from the cache or computed now.

    Returns a FeatureSet whose x is a read-only memmap; rows follow dataset.filenames.
    `log`: callable for one-line messages (which cache is used or built).
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{cache_dir}: cannot create the feature cache folder ({exc.strerror}); "
                        "pass another cache folder or set TINYASC_HOME") from None
    key = cache_key(dataset, frontend)
    stem = f"{dataset.root.name}-{key}"
    npy_path, json_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    filenames = dataset.filenames

    def notice(message):  # one line through `log`; a library caller without one gets a warning
        if log is not None:
            log(message)
        else:
            warnings.warn(message, stacklevel=3)

    with file_lock(cache_dir / f".{stem}.lock"):  # one builder per cache; others wait, then reuse
        if json_path.exists():
            features, reason = _open_cached(npy_path, json_path, key, filenames, frontend)
            if features is not None:
                if log is not None:
                    log(f"features: {features.x.shape} from cache {npy_path}")
                return features
            notice(f"feature cache {npy_path} does not match its index ({reason}); rebuilding it")
            json_path.unlink()
        elif npy_path.exists():
            notice(f"feature cache {npy_path} has no index (an interrupted write?); rebuilding it")
        _remove_stale_temporaries(cache_dir, stem)
        if log is not None:
            log(f"features: computing {len(filenames)} clips into {npy_path}")
        features = _build(dataset, frontend, key, npy_path, json_path, workers, progress, notice)
        if log is not None:
            log(f"features: {features.x.shape} computed")
        return features


def _build(dataset, frontend, key, npy_path, json_path, workers, progress, notice):
    filenames = dataset.filenames
    n_frames, lengths = _target_frames(dataset, frontend)
    others = len(filenames) - lengths[n_frames]
    if others:  # a cut or truncated file trains as a repeated copy of itself: say so once
        notice(f"features: {others} of {len(filenames)} clips are not {n_frames} frames long, the most common "
               f"length (frames: clips {dict(sorted(lengths.items()))}); shorter ones are repeated in time, "
               "longer ones cropped")
    shape = (len(filenames), frontend.n_mels, n_frames)
    start = time.perf_counter()
    with pending(npy_path) as tmp:  # renamed into place when complete; removed on any failure
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            reserve(tmp)
            paths = [dataset.path(f) for f in filenames]
            rate = extract_features(paths, out, frontend, workers, progress)
            out.flush()
            crc, bad = _scan(out)
            if bad:  # never cache what training cannot use; the next load would rebuild it forever
                more = f" (and {len(bad) - 1} other file(s))" if len(bad) > 1 else ""
                raise DataError(f"{paths[bad[0]]}: its log-mel features hold NaN or inf{more}; check "
                                "the file's samples or replace it")
            fingerprint = _fingerprint(out)
            del out
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DataError(f"{npy_path}: no space left for the feature cache "
                                f"({_megabytes(np.prod(shape) * 4)}); free space or set "
                                "TINYASC_HOME to a folder on another disk") from None
            raise
    meta = {"cache_version": CACHE_VERSION, "key": key, "frontend": frontend.as_dict(),
            "dataset_root": str(dataset.root), "filenames": list(filenames),
            "shape": list(shape), "dtype": "float32", "npy_bytes": npy_path.stat().st_size,
            "crc32": crc, "fingerprint": fingerprint,
            "frames_per_clip_length": dict(sorted(lengths.items())),
            "seconds": round(time.perf_counter() - start, 3), "clips_per_second": round(rate, 2)}
    meta["frames_per_clip_length"] = {str(k): v for k, v in meta["frames_per_clip_length"].items()}
    atomic_write_text(json_path, json.dumps(meta))
    x = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    index = {f: i for i, f in enumerate(filenames)}
    return FeatureSet(x, tuple(filenames), index, npy_path, meta["frontend"])


def _megabytes(n_bytes):
    """A size for a message: '4.4 MB', '1,431 MB' (never '0.00 GB' for a small cache)."""
    return f"{n_bytes / 1e6:,.1f} MB" if n_bytes < 1e8 else f"{n_bytes / 1e6:,.0f} MB"
