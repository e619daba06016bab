"""Writing a synthetic dataset in the TAU 2020 Mobile layout, and finding the default one.

Part of tinyasc's synthetic stand-in for TAU Urban Acoustic Scenes 2020 Mobile; not part
of the paper's method. `write_dataset` renders every segment of the plan (plan.py) as the
scene (scenes.py) recorded by its devices (devices.py), writes the WAV files and the
meta.csv and evaluation_setup/ index files TAU has, and MARKER last. Everything is
deterministic for a seed: each segment and each recording has its own generator keyed by
its identity, so the bytes do not depend on which worker process (workers.py) renders it.
"""
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from tinyasc.checks import check_seed
from tinyasc.data.cache import tinyasc_home
from tinyasc.data.synth.devices import DEVICE_MODELS, apply_device
from tinyasc.data.synth.plan import SR, get_preset, make_plan
from tinyasc.data.synth.scenes import render_source
from tinyasc.data.tau import DEVICES
from tinyasc.data.workers import run_tasks
from tinyasc.errors import DataError
from tinyasc.fileio import (exclusive_folder, make_parent, progressbar, remove_stale_temporaries, temporary_path,
                            write_error)

SYNTH_VERSION = 1                 # bump when the generated audio changes
MARKER = "tinyasc_synth.json"     # written last: a dataset without it is incomplete


def _render_segment(segment, seed, seconds, audio_dir):
    """Render one segment for all its devices and write the WAV files."""
    source = render_source(segment, seed, seconds)
    key = [seed, 11] + segment.key
    a = apply_device(source, "a", np.random.default_rng(key + [0]))
    for device in segment.devices:
        m = DEVICE_MODELS[device]
        if device == "a":
            y = a
        else:
            rng = np.random.default_rng(key + [DEVICES.index(device)])
            y = apply_device(a if m.source == "a" else source, device, rng)
        path = audio_dir / Path(segment.filename(device)).name
        try:
            sf.write(str(path), y.astype(np.float32), SR, subtype="PCM_24")
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:  # a full disk lands here
            raise write_error(path, exc) from None
    return len(segment.devices)


def _write_tsv(path, header, rows):
    try:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write("\t".join(header) + "\n")
            for row in rows:
                fh.write("\t".join(row) + "\n")
    except OSError as exc:
        raise write_error(path, exc) from None


def write_dataset(out, preset="default", seed=0, workers=None, progress=True, overwrite=False):
    """Generate a synthetic dataset in the TAU layout at `out`; returns a summary dict.

    Built in a temporary sibling folder and renamed into place at the end, so `out` is
    either absent or complete. An existing `out` is an error unless overwrite=True. Temporary
    folders of `out` left by killed processes are removed first.
    """
    preset = get_preset(preset)
    check_seed(seed)
    out = Path(out).expanduser().absolute()
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; remove it or choose another --out")
    make_parent(out)
    remove_stale_temporaries(out.parent, out.name)
    tmp = temporary_path(out)
    start = time.perf_counter()
    segments = make_plan(preset, seed)
    n_files = sum(len(s.devices) for s in segments)
    try:
        (tmp / "audio").mkdir(parents=True)
        (tmp / "evaluation_setup").mkdir()
        audio = tmp / "audio"

        def render(i):
            return _render_segment(segments[i], seed, preset.clip_seconds, audio)

        with progressbar(n_files, f"synth {preset.name}", quiet=not progress) as bar:
            run_tasks(render, len(segments), workers, done=bar.update)
        _write_index_files(tmp, segments)
        counts = _counts(segments)
        marker = dict(version=SYNTH_VERSION, preset=asdict(preset), seed=seed,
                      files=n_files, counts=counts)
        try:
            with open(tmp / MARKER, "w", encoding="utf-8") as fh:
                json.dump(marker, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            _replace_dir(tmp, out)
        except OSError as exc:
            raise write_error(out, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(path=str(out), seconds=time.perf_counter() - start, files=n_files,
                counts=counts)


def _write_index_files(root, segments):
    rows = sorted((s.filename(d), s.scene, s.identifier, d) for s in segments for d in s.devices)
    _write_tsv(root / "meta.csv", ("filename", "scene_label", "identifier", "source_label"), rows)
    for split, name in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        split_rows = sorted((s.filename(d), s.scene) for s in segments if s.split == split
                            for d in s.devices)
        _write_tsv(root / "evaluation_setup" / name, ("filename", "scene_label"), split_rows)
        if split == "test":
            _write_tsv(root / "evaluation_setup" / "fold1_test.csv", ("filename",),
                       [(r[0],) for r in split_rows])


def _counts(segments):
    return {split: {d: sum(1 for s in segments if s.split == split and d in s.devices)
                    for d in DEVICES} for split in ("train", "test")}


def _replace_dir(tmp, out):
    """Move the finished `tmp` folder to `out`, replacing an old `out` if there is one."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


# The default dataset in the user's cache.

def default_dataset_path(preset="default", seed=0):
    return tinyasc_home() / "datasets" / f"synth-{get_preset(preset).name}-seed{seed}"


def is_complete(root, preset=None, seed=None):
    """True if `root` holds a finished synthetic dataset of this generator version (and
    of the given preset and seed, if given) with all of its audio files."""
    root = Path(root)
    try:
        with open(root / MARKER, encoding="utf-8") as fh:
            marker = json.load(fh)
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply
        return False
    if not isinstance(marker, dict) or marker.get("version") != SYNTH_VERSION:  # damaged or outdated
        return False
    if preset is not None and marker.get("preset") != asdict(get_preset(preset)):
        return False
    if seed is not None and marker.get("seed") != seed:
        return False
    required = ["meta.csv", "evaluation_setup/fold1_train.csv",
                "evaluation_setup/fold1_evaluate.csv"]
    if not all((root / r).is_file() for r in required):
        return False
    try:
        n_audio = sum(1 for e in os.scandir(root / "audio") if e.name.endswith(".wav"))
    except OSError:
        return False
    return n_audio == marker.get("files")


def ensure_default_dataset(preset="default", seed=0, progress=True, log=None):
    """Path of the default synthetic dataset, generated on first use (or when the one on
    disk is incomplete or from another generator version). `log`: callable for messages."""
    path = default_dataset_path(preset, seed)
    if is_complete(path, preset, seed):
        return path
    # One generator at a time: a second process waits here, then finds the dataset complete
    # (generating it twice would replace the files under the first one's feature cache).
    with exclusive_folder(path.parent):
        if not is_complete(path, preset, seed):
            if log is not None:
                state = "incomplete or outdated, regenerating" if path.exists() else "first use"
                log(f"synthetic dataset '{get_preset(preset).name}' (seed {seed}) at {path}: "
                    f"{state}")
            summary = write_dataset(path, preset, seed, progress=progress, overwrite=True)
            if log is not None:
                log(f"generated {summary['files']} files in {summary['seconds']:.1f} s")
    return path
