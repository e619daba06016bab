"""Data: TAU reader and its errors, synthetic dataset (split, pairing, devices,
determinism, atomicity), feature cache (reuse, atomicity, rebuilds), augmentation and the
batch loader."""
import hashlib
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyasc.audio import file_log_mel
from tinyasc.data import augment, cache, synth, tau, workers
from tinyasc.data.training import BatchLoader
from tinyasc.errors import DataError


# ----------------------------------------------------------------------------------------
# A hand-written TAU-layout dataset, small enough to break in every way.

GOOD = [  # filename, scene, identifier, split
    ("audio/airport-lyon-1-0-a.wav", "airport", "lyon-1", "train"),
    ("audio/airport-lyon-1-0-b.wav", "airport", "lyon-1", "train"),
    ("audio/park-milan-2-0-a.wav", "park", "milan-2", "train"),
    ("audio/park-milan-3-0-s4.wav", "park", "milan-3", "test"),
    ("audio/tram-paris-4-0-c.wav", "tram", "paris-4", "test"),
]


def write_tau(root, rows=GOOD, seconds=0.5, meta_header="filename\tscene_label\tidentifier\t"
              "source_label", split_header="filename\tscene_label"):
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "evaluation_setup").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name, *_ in rows:
        sf.write(root / name, rng.uniform(-0.3, 0.3, int(seconds * 44100)).astype(np.float32),
                 44100, subtype="PCM_24")
    meta = [meta_header] + [f"{n}\t{s}\t{i}\t{tau.device_of(n)}" for n, s, i, _ in rows]
    (root / "meta.csv").write_text("\n".join(meta) + "\n")
    for split, fname in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        lines = [split_header] + [f"{n}\t{s}" for n, s, _, sp in rows if sp == split]
        (root / "evaluation_setup" / fname).write_text("\n".join(lines) + "\n")
    return root


def expect_error(root, *fragments):
    with pytest.raises(DataError) as err:
        tau.load_dataset(root)
    msg = str(err.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def test_reader_good_input(tmp_path):
    ds = tau.load_dataset(write_tau(tmp_path / "ds"))
    assert ds.train.filenames == tuple(r[0] for r in GOOD[:3])
    assert list(ds.train.labels) == [0, 0, tau.SCENES.index("park")]
    assert ds.train.devices == ("a", "b", "a")
    assert ds.test.devices == ("s4", "c")
    assert ds.test.identifiers == ("milan-3", "paris-4")
    assert ds.test.cities == ("milan", "paris")
    assert list(ds.test.device_ids) == [tau.DEVICES.index("s4"), tau.DEVICES.index("c")]
    assert ds.counts()["train"]["a"] == 2 and ds.counts()["test"]["s4"] == 1
    assert ds.audio_info["audio/park-milan-2-0-a.wav"] == (44100, 22050, 1)
    assert ds.filenames == tuple(r[0] for r in GOOD)
    summary = ds.summary()
    assert "train" in summary and "s4" in summary and "shared 0" in summary
    assert tau.segment_of("audio/bus-lyon-1-2-s3.wav") == "bus-lyon-1-2"


def test_reader_missing_folder_and_files(tmp_path):
    expect_error(tmp_path / "nope", "nope", "not found")
    root = write_tau(tmp_path / "ds")
    (root / "meta.csv").unlink()
    expect_error(root, "meta.csv", "missing")
    root = write_tau(tmp_path / "ds2")
    (root / "evaluation_setup" / "fold1_train.csv").unlink()
    expect_error(root, "fold1_train.csv", "missing")


def test_reader_wrong_columns(tmp_path):
    root = write_tau(tmp_path / "a", meta_header="filename\tscene\tidentifier\tsource_label")
    expect_error(root, "meta.csv", "line 1", "scene_label")
    root = write_tau(tmp_path / "b", split_header="file\tscene_label")
    expect_error(root, "fold1_train.csv", "line 1", "filename")
    root = write_tau(tmp_path / "c")
    with open(root / "evaluation_setup" / "fold1_evaluate.csv", "a") as fh:
        fh.write("audio/tram-paris-4-0-c.wav tram\n")        # spaces, not a tab
    expect_error(root, "fold1_evaluate.csv", "line 4", "tab")
    root = write_tau(tmp_path / "d")
    (root / "meta.csv").write_text("")
    expect_error(root, "meta.csv", "empty")


def test_reader_row_naming_a_missing_file(tmp_path):
    root = write_tau(tmp_path / "ds")
    (root / "audio" / "park-milan-2-0-a.wav").unlink()
    expect_error(root, "fold1_train.csv", "line 4", "park-milan-2-0-a.wav", "does not exist")


def test_reader_corrupt_and_empty_wavs(tmp_path):
    root = write_tau(tmp_path / "a")
    (root / "audio" / "tram-paris-4-0-c.wav").write_bytes(b"RIFF....WAVEjunkjunk" * 5)
    expect_error(root, "tram-paris-4-0-c.wav", "not a readable audio file",
                 "fold1_evaluate.csv line 3")
    root = write_tau(tmp_path / "b")
    (root / "audio" / "tram-paris-4-0-c.wav").write_bytes(b"")
    expect_error(root, "tram-paris-4-0-c.wav", "not a readable audio file")
    root = write_tau(tmp_path / "c")
    sf.write(root / "audio" / "airport-lyon-1-0-b.wav", np.zeros(0, np.float32), 44100,
             subtype="PCM_24")
    expect_error(root, "airport-lyon-1-0-b.wav", "no samples", "fold1_train.csv line 3")


def test_reader_unknown_labels_and_devices(tmp_path):
    rows = list(GOOD)
    rows[2] = ("audio/park-milan-2-0-a.wav", "forest", "milan-2", "train")
    expect_error(write_tau(tmp_path / "a", rows), "meta.csv", "line 4", "unknown scene label",
                 "forest")
    rows = list(GOOD)
    rows[4] = ("audio/tram-paris-4-0-s9.wav", "tram", "paris-4", "test")
    expect_error(write_tau(tmp_path / "b", rows), "meta.csv", "line 6", "unknown device", "s9")
    rows = list(GOOD)
    rows[0] = ("audio/airport.wav", "airport", "lyon-1", "train")
    expect_error(write_tau(tmp_path / "c", rows), "meta.csv", "line 2", "airport.wav")


def test_reader_inconsistent_rows(tmp_path):
    root = write_tau(tmp_path / "a")            # split label disagrees with meta.csv
    path = root / "evaluation_setup" / "fold1_evaluate.csv"
    path.write_text(path.read_text().replace("tram-paris-4-0-c.wav\ttram",
                                             "tram-paris-4-0-c.wav\tbus"))
    expect_error(root, "fold1_evaluate.csv", "line 3", "disagrees with meta.csv")
    root = write_tau(tmp_path / "b")            # a file in both splits
    with open(root / "evaluation_setup" / "fold1_evaluate.csv", "a") as fh:
        fh.write("audio/airport-lyon-1-0-a.wav\tairport\n")
    expect_error(root, "fold1_evaluate.csv", "line 4", "already listed in fold1_train.csv")
    root = write_tau(tmp_path / "c")            # a split file naming a file not in meta.csv
    with open(root / "evaluation_setup" / "fold1_train.csv", "a") as fh:
        fh.write("audio/bus-lyon-9-0-a.wav\tbus\n")
    expect_error(root, "fold1_train.csv", "line 5", "not listed in meta.csv")
    root = write_tau(tmp_path / "d")            # duplicate meta row
    with open(root / "meta.csv", "a") as fh:
        fh.write("audio/park-milan-2-0-a.wav\tpark\tmilan-2\ta\n")
    expect_error(root, "meta.csv", "line 7", "listed twice")
    root = write_tau(tmp_path / "e", [r for r in GOOD if r[3] == "train"])
    expect_error(root, "fold1_evaluate.csv", "no files")


# ----------------------------------------------------------------------------------------
# The synthetic dataset: plans (cheap, every preset) and audio (tiny preset).

@pytest.mark.parametrize("preset", ["tiny", "default", "full"])
def test_plan_has_tau_proportions(preset):
    p = synth.PRESETS[preset]
    plan = synth.make_plan(preset, seed=5)
    counts = synth._counts(plan)
    assert counts["train"]["a"] == p.train_a
    for d in synth.TRAIN_OTHER_DEVICES:
        assert counts["train"][d] == p.train_other
    for d in ("s4", "s5", "s6"):
        assert counts["train"][d] == 0                   # unseen devices: test only
    assert set(counts["test"].values()) == {p.test_per_device}
    if preset == "full":
        assert (p.train_a, p.train_other, p.test_per_device) == (10215, 750, 330)
    if preset != "tiny":                                 # TAU's 10,215 : 750 ratio
        assert abs(p.train_a / p.train_other - 10215 / 750) < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_plan_split_locations_and_pairing(seed):
    plan = synth.make_plan("default", seed)
    train = {s.identifier for s in plan if s.split == "train"}
    test = {s.identifier for s in plan if s.split == "test"}
    assert train and test and not train & test           # locations never shared
    assert {s.city for s in plan} == set(tau.CITIES)
    stems = [s.stem for s in plan]
    assert len(stems) == len(set(stems))
    for s in plan:
        assert "a" in s.devices                          # every segment has its device-a take
        assert s.identifier == f"{s.city}-{s.location}"
        assert s.filename("s2") == f"audio/{s.scene}-{s.city}-{s.location}-{s.index}-s2.wav"
        if s.split == "test":
            assert s.devices == tau.DEVICES              # test: every device, same segments
        # b and c recorded together with a; each simulated device picked its own segments
        assert ("b" in s.devices) == ("c" in s.devices)
    for scene in tau.SCENES:                             # stratified: every scene on b, s4
        assert any(s.scene == scene and "b" in s.devices for s in plan if s.split == "train")
        assert any(s.scene == scene for s in plan if s.split == "test")
    s1 = {s.stem for s in plan if "s1" in s.devices and s.split == "train"}
    s2 = {s.stem for s in plan if "s2" in s.devices and s.split == "train"}
    assert s1 != s2


def test_device_models_are_fixed_and_distinct():
    f = np.geomspace(50, 8000, 400)
    responses = {d: synth.device_response_db(d, f) for d in tau.DEVICES}
    assert np.abs(responses["a"][f > 100]).max() < 1.0                 # the flat reference
    for d in tau.DEVICES[1:]:
        eq = synth.device_eq_db(d, f)
        assert np.abs(eq).max() <= 12.0 + 1e-9           # EQ within +-12 dB
        assert np.ptp(eq) > 6.0, d                       # clearly coloured
        m = synth.DEVICE_MODELS[d]
        limits = responses[d] - eq                       # band limits on top of the EQ
        outside = (f < m.highpass_hz) | (f > m.lowpass_hz)
        inside = (f > 2 * m.highpass_hz) & (f < m.lowpass_hz / 2)
        assert (limits[outside] <= -3.0 + 1e-9).all() and (limits[inside] > -1.0).all()
    band = (f > 500) & (f < 4000)
    for d in ("s4", "s5", "s6"):                         # unseen devices: strongly coloured
        assert np.ptp(responses[d][band] - responses["a"][band]) > 9.0, d
    synth._device_fixed.cache_clear()
    again = synth.device_response_db("s5", f)
    np.testing.assert_array_equal(again, responses["s5"])


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "tiny"
    synth.write_dataset(root, "tiny", seed=3, progress=False)
    return root


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_synth_writes_a_readable_tau_dataset(tiny_root):
    ds = tau.load_dataset(tiny_root)
    p = synth.PRESETS["tiny"]
    counts = ds.counts()
    assert counts["train"]["a"] == p.train_a and counts["train"]["s3"] == p.train_other
    assert counts["test"] == {d: p.test_per_device for d in tau.DEVICES}
    assert set(ds.unlabelled_test) == set(ds.test.filenames)
    info = sf.info(str(ds.path(ds.train.filenames[0])))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_24")
    assert info.frames == int(p.clip_seconds * 44100)
    assert not set(ds.train.identifiers) & set(ds.test.identifiers)
    assert synth.is_complete(tiny_root, "tiny", 3)
    assert not synth.is_complete(tiny_root, "tiny", 4)


def test_synth_is_deterministic_and_seeded(tiny_root, tmp_path):
    again = synth.write_dataset(tmp_path / "again", "tiny", seed=3, workers=1, progress=False)
    assert _digest(again["path"]) == _digest(tiny_root)
    other = tmp_path / "other"
    synth.write_dataset(other, "tiny", seed=4, progress=False)
    name = sorted((other / "audio").iterdir())[0].name
    a, _ = sf.read(other / "audio" / name)
    plan3 = {s.stem for s in synth.make_plan("tiny", 3)}
    plan4 = {s.stem for s in synth.make_plan("tiny", 4)}
    if Path(name).stem.rsplit("-", 1)[0] in plan3:
        b, _ = sf.read(tiny_root / "audio" / name)
        assert not np.array_equal(a, b)
    assert plan3 != plan4


def test_paired_recordings_share_content_not_colour(tiny_root):
    """A segment's device takes have the same time-frequency content (after per-band
    normalisation) but different per-band levels; unpaired segments share neither."""
    ds = tau.load_dataset(tiny_root)
    stems = sorted({tau.segment_of(f) for f in ds.test.filenames})

    def feat(stem, dev):
        return file_log_mel(tiny_root / f"audio/{stem}-{dev}.wav")[:160]  # up to ~2.3 kHz

    def normed(m):
        return (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-6)

    paired, unpaired, shift = [], [], []
    for i, stem in enumerate(stems[:6]):
        a, s1 = feat(stem, "a"), feat(stem, "s1")
        paired.append(np.mean(normed(a) * normed(s1)))
        unpaired.append(np.mean(normed(a) * normed(feat(stems[i - 1], "s1"))))
        shift.append(np.ptp(a.mean(1) - feat(stem, "s5")[:160].mean(1)))
    assert min(paired) > 0.5 > max(unpaired) + 0.2, (paired, unpaired)
    assert np.median(shift) > 2.0                        # > ~9 dB of per-band level change


def test_synth_refuses_to_overwrite_and_leaves_nothing_on_failure(tiny_root, tmp_path,
                                                                  monkeypatch):
    with pytest.raises(DataError, match="already exists"):
        synth.write_dataset(tiny_root, "tiny", 3, progress=False)
    with pytest.raises(DataError, match="unknown synthetic preset"):
        synth.write_dataset(tmp_path / "x", "huge", 3, progress=False)

    calls = []

    def failing(segment, *args):
        calls.append(segment)
        if len(calls) == 5:
            raise RuntimeError("disk on fire")
        return real(segment, *args)

    real = synth.write._render_segment
    monkeypatch.setattr(synth.write, "_render_segment", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        synth.write_dataset(tmp_path / "broken", "tiny", 3, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []                # no output, no temporary folder


def test_default_dataset_location_and_reuse(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYASC_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.tinyasc_home() == tmp_path / "xdg" / "tinyasc"
    monkeypatch.setenv("TINYASC_HOME", str(tmp_path / "home"))
    path = synth.default_dataset_path("tiny", 7)
    assert path.parent.parent == tmp_path / "home" and path.name == "synth-tiny-seed7"
    assert synth.ensure_default_dataset("tiny", 7, progress=False) == path
    stamp = (path / synth.MARKER).stat().st_mtime_ns
    assert synth.ensure_default_dataset("tiny", 7, progress=False) == path
    assert (path / synth.MARKER).stat().st_mtime_ns == stamp          # reused
    victim = sorted((path / "audio").iterdir())[3]
    victim.unlink()                                                   # now incomplete
    assert not synth.is_complete(path, "tiny", 7)
    synth.ensure_default_dataset("tiny", 7, progress=False)
    assert victim.exists() and synth.is_complete(path, "tiny", 7)
    assert [p.name for p in path.parent.iterdir()] == [path.name]     # nothing left over


# ----------------------------------------------------------------------------------------
# Feature cache

@pytest.fixture
def small_ds(tmp_path):
    return tau.load_dataset(write_tau(tmp_path / "ds", seconds=0.7))


def test_cache_builds_then_reuses(small_ds, tmp_path, monkeypatch):
    fs = cache.load_features(small_ds, tmp_path / "c", progress=False)
    assert isinstance(fs.x, np.memmap) and fs.x.dtype == np.float32 and not fs.x.flags.writeable
    frames = 1 + int(0.7 * 16000) // 480
    assert fs.x.shape == (len(GOOD), 256, frames)
    row = fs.index["audio/park-milan-2-0-a.wav"]
    np.testing.assert_array_equal(fs.x[row], file_log_mel(small_ds.path(GOOD[2][0])))
    assert list(fs.rows([GOOD[4][0], GOOD[0][0]])) == [4, 0]

    def boom(*a, **k):
        raise AssertionError("features recomputed")

    monkeypatch.setattr(cache, "extract_features", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cache.load_features(small_ds, tmp_path / "c", progress=False)
    np.testing.assert_array_equal(again.x, fs.x)


def test_extract_features_fills_plain_arrays_and_memmaps_alike(small_ds, tmp_path):
    # a memmap is filled by worker processes through the shared file mapping, an array by threads
    paths = [small_ds.path(f) for f in small_ds.filenames]
    plain = np.zeros((len(paths), 256, 1 + int(0.7 * 16000) // 480), np.float32)
    cache.extract_features(paths, plain, workers=2, progress=False)
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=plain.shape)
    cache.extract_features(paths, mapped, workers=2, progress=False)
    np.testing.assert_array_equal(mapped, plain)
    np.testing.assert_array_equal(plain[-1], file_log_mel(paths[-1]))


@pytest.mark.parametrize("processes", [True, False])
def test_run_tasks_runs_each_task_once_and_passes_errors_on(processes):
    seen = []
    workers.run_tasks(lambda i: i * i, 50, workers=2, processes=processes, done=seen.append)
    assert sorted(seen) == [i * i for i in range(50)]
    in_order = []
    workers.run_tasks(lambda i: i, 5, workers=1, done=in_order.append)
    assert in_order == [0, 1, 2, 3, 4]

    def fails(i):
        if i == 7:
            raise DataError(f"task {i} failed")
        return i

    with pytest.raises(DataError, match="task 7 failed"):
        workers.run_tasks(fails, 30, workers=2, processes=processes)


def test_run_tasks_forks_only_before_numba_starts_its_threads():
    """A fresh process (as the command line is when it makes a dataset) forks workers; a process
    whose parallel kernels have run has pool threads, and gets threads instead."""
    code = ("from tinyasc.data import workers\n"
            "assert workers.can_fork()\n"
            "out = []\n"
            "workers.run_tasks(lambda i: (i * i, __import__('os').getpid()), 24, workers=2, done=out.append)\n"
            "assert sorted(v for v, _ in out) == [i * i for i in range(24)]\n"
            "assert __import__('os').getpid() not in {pid for _, pid in out}\n"
            "print('forked')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "forked", result.stderr[-2000:]
    from tinyasc import Tensor
    from tinyasc.models import BCResNetMod
    BCResNetMod(c=2)(Tensor(np.zeros((2, 1, 256, 20), np.float32)))  # parallel kernels: the pool is up
    assert not workers.can_fork()


def test_cache_key_follows_dataset_and_settings(small_ds):
    from tinyasc.audio import FrontEnd
    key = cache.cache_key(small_ds)
    assert cache.cache_key(small_ds, FrontEnd(n_mels=128)) != key
    path = small_ds.path(GOOD[0][0])
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    assert cache.cache_key(small_ds) != key


def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.endswith(".lock"))


def test_cache_never_trusts_an_interrupted_write(small_ds, tmp_path):
    folder = tmp_path / "c"
    fs = cache.load_features(small_ds, folder, progress=False)
    good = np.array(fs.x)
    npy, index = fs.path, fs.path.with_suffix(".json")
    # an interrupted write: the array renamed into place, the index never written, and a
    # temporary file of a process that died
    index.unlink()
    np.save(npy, np.zeros_like(good))
    dead = folder / f".{npy.name}.tmp-{2**22 + 12345}-1"
    dead.write_bytes(b"partial")
    with pytest.warns(UserWarning, match="has no index"):
        fs2 = cache.load_features(small_ds, folder, progress=False)
    np.testing.assert_array_equal(fs2.x, good)
    assert not dead.exists()
    assert _files(folder) == sorted([npy.name, index.name])


@pytest.mark.parametrize("damage", ["content", "shape", "index"])
def test_cache_mismatching_index_is_rebuilt_with_a_warning(small_ds, tmp_path, damage):
    folder = tmp_path / "c"
    fs = cache.load_features(small_ds, folder, progress=False)
    good = np.array(fs.x)
    npy, index = fs.path, fs.path.with_suffix(".json")
    del fs
    if damage == "content":
        tampered = good.copy()
        tampered[-1, 3, 2] += 1.0
        np.save(npy, tampered)
    elif damage == "shape":
        np.save(npy, good[:, :, :-1])
    else:
        index.write_text(index.read_text()[:-20])
    with pytest.warns(UserWarning, match="does not match its index"):
        fs2 = cache.load_features(small_ds, folder, progress=False)
    np.testing.assert_array_equal(fs2.x, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.load_features(small_ds, folder, progress=False)


def test_cache_extraction_error_names_file_and_leaves_nothing(small_ds, tmp_path):
    (small_ds.root / GOOD[3][0]).write_bytes(b"RIFF" + b"\0" * 100)   # corrupted after reading
    folder = tmp_path / "c"
    with pytest.raises(DataError, match="park-milan-3-0-s4.wav"):
        cache.load_features(small_ds, folder, progress=False)
    assert _files(folder) == []


def test_clips_of_another_length_are_named_once_when_the_cache_is_built(tmp_path):
    """A truncated file trains as a repeated copy of itself: the build says how many clips are
    not of the common length (TAU and the synthetic sets have one length)."""
    root = write_tau(tmp_path / "ds", seconds=0.7)
    sf.write(root / GOOD[1][0], np.full(2000, 0.1, np.float32), 44100)
    small_ds = tau.load_dataset(root)
    lines = []
    cache.load_features(small_ds, tmp_path / "c", progress=False, log=lines.append)
    frames = 1 + int(0.7 * 16000) // 480
    notices = [line for line in lines if "frames long" in line]
    assert len(notices) == 1 and notices[0].startswith(f"features: 1 of {len(GOOD)} clips are not {frames} frames")
    lines.clear()
    cache.load_features(small_ds, tmp_path / "c", progress=False, log=lines.append)  # from the cache: no notice
    assert not [line for line in lines if "frames long" in line]


def test_fit_frames_crops_or_wraps():
    m = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(cache.fit_frames(m, 4), m[:, :4])
    np.testing.assert_array_equal(cache.fit_frames(m, 8), np.concatenate([m, m[:, :2]], 1))


# ----------------------------------------------------------------------------------------
# Augmentation

shapes = st.tuples(st.integers(1, 6), st.sampled_from([(), (1,)]), st.integers(1, 12),
                   st.integers(1, 30))


def _batch(shape, seed=0):
    n, c, f, t = shape
    return np.random.default_rng(seed).standard_normal((n,) + c + (f, t)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 40), st.integers(0, 2**31 - 1))
def test_time_roll_rolls_each_clip_with_wraparound(shape, max_shift, seed):
    x = _batch(shape)
    before = x.copy()
    out = augment.time_roll(x, np.random.default_rng(seed), max_shift)
    np.testing.assert_array_equal(x, before)                       # input untouched
    assert out.shape == x.shape and out.dtype == np.float32
    shifts = np.random.default_rng(seed).integers(-max_shift, max_shift + 1, size=x.shape[0])
    for i, s in enumerate(shifts):
        assert abs(s) <= max_shift
        np.testing.assert_array_equal(out[i], np.roll(x[i], s, axis=-1))
    again = augment.time_roll(x, np.random.default_rng(seed), max_shift)
    np.testing.assert_array_equal(out, again)


@settings(max_examples=40, deadline=None)
@given(shapes, st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_mixup_mixes_inputs_and_targets_alike(shape, per_sample, soft, seed):
    x = _batch(shape)
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    y = np.eye(10, dtype=np.float32)[labels] if soft else labels
    before = x.copy()
    xm, ym = augment.mixup(x, y, np.random.default_rng(seed + 1), per_sample=per_sample)
    np.testing.assert_array_equal(x, before)
    assert xm.dtype == np.float32 and ym.shape == (n, 10)
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)
    assert (ym >= 0).all()
    # replay the draws: each row is lam x_i + (1 - lam) x_perm(i), targets likewise
    r = np.random.default_rng(seed + 1)
    lam = r.beta(0.3, 0.3, size=n if per_sample else 1).astype(np.float32)
    perm = r.permutation(n)
    lam = np.broadcast_to(lam, (n,))
    for i in range(n):
        np.testing.assert_allclose(xm[i], lam[i] * x[i] + (1 - lam[i]) * x[perm[i]],
                                   rtol=1e-5, atol=1e-6)
        expected = np.zeros(10)
        expected[labels[i]] += lam[i]
        expected[labels[perm[i]]] += 1 - lam[i]
        np.testing.assert_allclose(ym[i], expected, atol=1e-6)


def _runs(mask_1d):
    """Lengths of the runs of True."""
    padded = np.concatenate([[0], mask_1d.astype(int), [0]])
    d = np.diff(padded)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(8, 64), st.integers(8, 120), st.integers(0, 3),
       st.integers(1, 40), st.integers(0, 2**31 - 1), st.sampled_from(["mean", 0.0]))
def test_spec_augment_masks_within_widths(n, f, t, masks, width, seed, fill):
    x = np.random.default_rng(seed).standard_normal((n, 1, f, t)).astype(np.float32) + 5
    before = x.copy()
    out = augment.spec_augment(x, np.random.default_rng(seed), masks, width, masks, width,
                               fill=fill)
    np.testing.assert_array_equal(x, before)
    assert out.shape == x.shape and out.dtype == np.float32
    fmask, tmask = augment.spec_augment_masks(np.random.default_rng(seed), n, f, t, masks,
                                              width, masks, width)
    for i in range(n):
        value = x[i].mean() if fill == "mean" else 0.0
        mask = fmask[i][:, None] | tmask[i][None, :]
        np.testing.assert_allclose(out[i, 0][mask], value, rtol=1e-6)
        np.testing.assert_array_equal(out[i, 0][~mask], x[i, 0][~mask])
        # at most `masks` bands, each narrower than `width` (overlapping bands merge)
        for runs in (_runs(fmask[i]), _runs(tmask[i])):
            assert len(runs) <= masks and runs.sum() <= masks * (width - 1)


def test_spec_augment_masks_are_used():
    x = np.ones((64, 1, 256, 101), np.float32)
    x[:, :, :, ::2] = 3.0
    out = augment.spec_augment(x, np.random.default_rng(0))
    masked = (out != x).mean()
    assert 0.05 < masked < 0.9                    # masks are drawn, not all empty or all


def test_augment_outputs_probabilities():
    x = np.random.default_rng(0).standard_normal((8, 1, 32, 60)).astype(np.float32)
    y = np.arange(8) % 10
    xt, yt = augment.Augment(roll_frames=5, freq_width=4, time_width=8)(x, y, np.random.default_rng(1))
    assert xt.shape == x.shape and xt.dtype == np.float32 and yt.shape == (8, 10)
    np.testing.assert_allclose(yt.sum(1), 1, atol=1e-6)


# ----------------------------------------------------------------------------------------
# Loader

def _loader(**kw):
    x = np.arange(23 * 2 * 3, dtype=np.float32).reshape(23, 2, 3)
    y = np.arange(23) % 10
    rows = kw.pop("rows", None)
    return BatchLoader(x, rows, y if rows is None else y[rows], **kw)


def _batches(loader, epoch, start=0):
    out = []
    for step, (xb, yb) in loader.epoch(epoch, start=start):
        assert step == start + len(out)
        out.append((xb, yb))
    return out


def test_loader_covers_every_row_once_per_epoch():
    loader = _loader(batch_size=5, seed=1)
    assert len(loader) == 5
    batches = _batches(loader, 0)
    assert [len(xb) for xb, _ in batches] == [5, 5, 5, 5, 3]
    xs = np.concatenate([xb for xb, _ in batches])
    ys = np.concatenate([yb for _, yb in batches])
    assert xs.shape == (23, 1, 2, 3) and xs.dtype == np.float32
    firsts = xs[:, 0, 0, 0] / 6
    assert sorted(firsts) == list(range(23))
    np.testing.assert_array_equal(ys, firsts.astype(int) % 10)     # targets follow rows
    assert list(firsts) != list(range(23))                         # shuffled
    dropped = _batches(_loader(batch_size=5, drop_last=True), 0)
    assert len(dropped) == 4 and all(len(xb) == 5 for xb, _ in dropped)
    ordered = np.concatenate([xb for xb, _ in _loader(batch_size=4, shuffle=False)])
    assert list(ordered[:, 0, 0, 0] / 6) == list(range(23))


def test_loader_rows_select_a_subset():
    loader = _loader(rows=[4, 2, 9], batch_size=2, shuffle=False)
    batches = _batches(loader, 0)
    xs = np.concatenate([xb for xb, _ in batches])
    ys = np.concatenate([yb for _, yb in batches])
    assert list(xs[:, 0, 0, 0] / 6) == [4, 2, 9] and list(ys) == [4, 2, 9]


def _noisy(x, y, rng):
    return x + rng.standard_normal(x.shape).astype(np.float32), y


def test_loader_is_deterministic_and_resumable():
    a = _batches(_loader(batch_size=4, transform=_noisy), 2)
    b = _batches(_loader(batch_size=4, transform=_noisy), 2)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    tail = _batches(_loader(batch_size=4, transform=_noisy), 2, start=3)
    for (xa, _), (xt, _) in zip(a[3:], tail, strict=True):
        np.testing.assert_array_equal(xa, xt)
    xb3, _ = _loader(batch_size=4, transform=_noisy).batch(2, 3)
    np.testing.assert_array_equal(xb3, a[3][0])
    other = _batches(_loader(batch_size=4, transform=_noisy), 3)
    assert not np.array_equal(other[0][0], a[0][0])
    different_seed = _batches(_loader(batch_size=4, transform=_noisy, seed=9), 2)
    assert not np.array_equal(different_seed[0][0], a[0][0])
    it = _loader(batch_size=4)
    first, second = [next(iter(it))[0] for _ in range(2)]          # __iter__: epochs 0, 1
    np.testing.assert_array_equal(first, _batches(_loader(batch_size=4), 0)[0][0])
    np.testing.assert_array_equal(second, _batches(_loader(batch_size=4), 1)[0][0])


def test_loader_stops_its_thread_when_the_consumer_stops_early():
    before = threading.active_count()
    gen = _loader(batch_size=1, prefetch=2).epoch(0)
    next(gen)
    gen.close()
    assert threading.active_count() == before
    for i, _ in enumerate(_loader(batch_size=1)):
        if i == 2:
            break
    assert threading.active_count() == before


def test_loader_passes_on_transform_errors():
    def bad(x, y, rng):
        raise ValueError("broken transform")

    before = threading.active_count()
    with pytest.raises(ValueError, match="broken transform"):
        list(_loader(transform=bad).epoch(0))
    assert threading.active_count() == before
