"""Audio files from outside: every reader refuses a sample rate the front end cannot resample
sanely, `tinyasc predict` refuses a clip's length from its header before any spectrogram, and a
worker process that dies is one line, not a BrokenProcessPool traceback (docs/decisions.md)."""
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from click.testing import CliRunner

from tinyasc import audio, checks
from tinyasc.cli import main
from tinyasc.data import cache, tau
from tinyasc.errors import DataError, TinyAscError
from tinyasc.train import inference
from tinyasc.train.classifier import build_model
from tinyasc.train.config import TrainConfig


def write_wav(path, sample_rate, samples):
    sf.write(path, np.zeros(samples, np.float32), sample_rate, subtype="PCM_16")
    return path


@pytest.fixture
def no_spectrogram(monkeypatch):
    """Fail at once if a clip is resampled or its spectrogram computed: at 1 Hz the old code
    allocated gigabytes here."""
    def boom(*args, **kwargs):
        raise AssertionError("the front end ran on a clip that should have been refused")

    monkeypatch.setattr(scipy.signal, "resample_poly", boom)
    monkeypatch.setattr(audio.FrontEnd, "__call__", boom)


@pytest.fixture
def untrained_run(monkeypatch):
    """`tinyasc predict RUN` answers with a small untrained BC-ResNet-Mod, whatever RUN is."""
    config = TrainConfig(width=2)
    model = build_model(config).eval()
    monkeypatch.setattr(inference, "load_run", lambda run: (config, model))


def one_line(message, *needles):
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


# ----------------------------------------------------------------------------------------
# Sample rates

@pytest.mark.parametrize("rate", [1, 7, 7999, 384_001])
def test_load_audio_refuses_a_sample_rate_out_of_range(tmp_path, no_spectrogram, rate):
    path = write_wav(tmp_path / f"at{rate}.wav", rate, 20_000)  # 40 KB: at 1 Hz, 2.6 GB at 16 kHz
    for read in (audio.load_audio, audio.audio_info, audio.file_log_mel):
        with pytest.raises(DataError) as err:
            read(path)
        one_line(str(err.value), f"at{rate}.wav", f"{rate} Hz", "8000-384000 Hz", "resample")


@pytest.mark.parametrize("rate", [8000, 44100, 384_000])
def test_load_audio_takes_the_rates_in_range(tmp_path, rate):
    path = write_wav(tmp_path / "ok.wav", rate, 100)
    wave, sr = audio.load_audio(path)
    assert sr == rate and wave.shape == (100,)
    assert audio.audio_info(path) == (rate, 100, 1)


@pytest.mark.parametrize("rate", [1, 7])
def test_predict_refuses_a_sample_rate_out_of_range(tmp_path, no_spectrogram, untrained_run, rate):
    good = write_wav(tmp_path / "good.wav", 16000, 16000)
    bad = write_wav(tmp_path / f"at{rate}.wav", rate, 20_000)
    out = tmp_path / "s.tsv"
    result = CliRunner().invoke(main, ["predict", "RUN", str(good), str(bad), "--out", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    one_line(result.output.strip(), "error: ", str(bad), f"{rate} Hz", "8000-384000 Hz")
    assert sorted(tmp_path.iterdir()) == [bad, good]  # no submission file, no temporary


def test_the_dataset_reader_and_feature_workers_refuse_it(tmp_path, no_spectrogram):
    root = tmp_path / "ds"
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    rows = [("audio/park-milan-2-0-a.wav", "park", "milan-2"), ("audio/tram-paris-4-0-c.wav", "tram", "paris-4")]
    write_wav(root / rows[0][0], 44100, 441)
    write_wav(root / rows[1][0], 1, 20_000)
    (root / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n"
                                   + "".join(f"{n}\t{s}\t{i}\t{tau.device_of(n)}\n" for n, s, i in rows))
    (root / "evaluation_setup/fold1_train.csv").write_text(f"filename\tscene_label\n{rows[0][0]}\tpark\n")
    (root / "evaluation_setup/fold1_evaluate.csv").write_text(f"filename\tscene_label\n{rows[1][0]}\ttram\n")
    with pytest.raises(DataError) as err:
        tau.load_dataset(root)
    one_line(str(err.value), "tram-paris-4-0-c.wav", "1 Hz", "8000-384000 Hz", "fold1_evaluate.csv line 2")

    dataset = tau.load_dataset(root, check_audio=False)  # the workers check again, file by file
    with pytest.raises(DataError) as err:
        cache.extract_features([dataset.path(rows[1][0])], np.zeros((1, 256, 2), np.float32), workers=1,
                               progress=False)
    one_line(str(err.value), "tram-paris-4-0-c.wav", "1 Hz")


# ----------------------------------------------------------------------------------------
# Clip lengths, from the header

def test_predict_refuses_a_short_clip_before_reading_any(tmp_path, no_spectrogram, untrained_run, monkeypatch):
    monkeypatch.setattr(audio, "load_audio", lambda path: pytest.fail(f"{path} was read"))
    good = write_wav(tmp_path / "good.wav", 16000, 16000)
    short = write_wav(tmp_path / "short.wav", 16000, 1600)  # 0.1 s: 4 frames, BC-ResNet-Mod needs 7
    with pytest.raises(TinyAscError) as err:
        inference.predict_files("RUN", [good, short], tmp_path / "s.tsv", progress=False)
    one_line(str(err.value), "short.wav", "4 frame(s)", "too short")
    assert not (tmp_path / "s.tsv").exists()


def test_predict_refuses_a_long_clip_before_reading_any(tmp_path, no_spectrogram, untrained_run, monkeypatch):
    monkeypatch.setattr(audio, "load_audio", lambda path: pytest.fail(f"{path} was read"))
    monkeypatch.setattr(checks, "MAX_FRAMES", 100)  # stands in for 100,000 frames: 50 minutes
    good = write_wav(tmp_path / "good.wav", 16000, 16000)
    long = write_wav(tmp_path / "long.wav", 8000, 32000)  # 4 s: 134 frames
    with pytest.raises(TinyAscError) as err:
        inference.predict_files("RUN", [good, long], tmp_path / "s.tsv", progress=False)
    one_line(str(err.value), "long.wav", "134 frames", "cut the audio into shorter clips")
    assert not (tmp_path / "s.tsv").exists()


def test_predict_still_predicts_clips_of_any_usable_rate(tmp_path, untrained_run):
    files = [write_wav(tmp_path / f"at{rate}.wav", rate, rate // 2) for rate in (8000, 22050, 44100)]
    assert inference.predict_files("RUN", files, tmp_path / "s.tsv", progress=False) == 3
    assert len((tmp_path / "s.tsv").read_text().splitlines()) == 4  # a header and one row per clip


# ----------------------------------------------------------------------------------------
# Folders given to predict

def _rows(path):
    return [line.split("\t")[0] for line in path.read_text().splitlines()[1:]]


def test_predict_names_the_clips_of_dot_and_dotdot_by_the_folders_name(tmp_path, untrained_run, monkeypatch):
    audio_dir = tmp_path / "audio"
    (audio_dir / "sub").mkdir(parents=True)
    write_wav(audio_dir / "0.wav", 16000, 16000)
    monkeypatch.chdir(audio_dir)
    assert inference.predict_files("RUN", ["."], tmp_path / "dot.tsv", progress=False) == 1
    monkeypatch.chdir(audio_dir / "sub")
    assert inference.predict_files("RUN", [".."], tmp_path / "up.tsv", progress=False) == 1
    assert _rows(tmp_path / "dot.tsv") == _rows(tmp_path / "up.tsv") == ["audio/0.wav"]  # as the DCASE lists name it
    (tmp_path / "eval").symlink_to(audio_dir)  # a link keeps its own name
    assert inference.predict_files("RUN", [tmp_path / "eval"], tmp_path / "link.tsv", progress=False) == 1
    assert _rows(tmp_path / "link.tsv") == ["eval/0.wav"]


def test_predict_takes_wav_and_flac_of_any_case_and_says_what_it_skipped(tmp_path, untrained_run):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.wav", "b.WAV", "c.flac", "._a.wav"):
        sf.write(folder / name, np.zeros(16000, np.float32), 16000)
    (folder / "readme.txt").write_text("not audio")
    lines = []
    assert inference.predict_files("RUN", [folder], tmp_path / "s.tsv", log=lines.append, progress=False) == 3
    assert _rows(tmp_path / "s.tsv") == ["clips/a.wav", "clips/b.WAV", "clips/c.flac"]
    assert lines == [f"{folder}: skipped 2 files that are not .wav or .flac audio, or hidden"]
    (folder / "a.wav").unlink(), (folder / "b.WAV").unlink(), (folder / "c.flac").unlink()
    with pytest.raises(TinyAscError) as err:
        inference.predict_files("RUN", [folder], tmp_path / "none.tsv", progress=False)
    one_line(str(err.value), str(folder), "no .wav or .flac files", "2 other files")


def test_predict_refuses_two_clips_that_would_share_a_row(tmp_path, untrained_run):
    first, second = tmp_path / "x" / "audio", tmp_path / "y" / "audio"
    first.mkdir(parents=True), second.mkdir(parents=True)
    write_wav(first / "0.wav", 16000, 16000), write_wav(second / "0.wav", 8000, 16000)
    for paths in ([first, second], [first / "0.wav", first / "0.wav"]):
        with pytest.raises(TinyAscError) as err:
            inference.predict_files("RUN", paths, tmp_path / "s.tsv", progress=False)
        one_line(str(err.value), str(paths[0] if paths[0].is_file() else first / "0.wav"), "both be", "0.wav")
        assert not (tmp_path / "s.tsv").exists()


def test_predict_refuses_an_out_file_that_is_one_of_its_clips(tmp_path, untrained_run):
    clip = write_wav(tmp_path / "0.wav", 16000, 16000)
    before = clip.read_bytes()
    result = CliRunner().invoke(main, ["predict", "RUN", str(tmp_path), "--out", str(clip)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    one_line(result.output.strip(), "error: ", f"--out {clip}", "one of the audio files")
    assert clip.read_bytes() == before


def test_predict_out_of_memory_names_the_clip_and_the_fix(tmp_path, untrained_run, monkeypatch):
    short, long = write_wav(tmp_path / "short.wav", 16000, 16000), write_wav(tmp_path / "long.wav", 16000, 64000)

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 9.9 GiB")

    monkeypatch.setattr(inference.evaluate, "predict_proba", no_memory)
    result = CliRunner().invoke(main, ["predict", "RUN", str(short), str(long), "--out", str(tmp_path / "s.tsv")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    one_line(result.output.strip(), "error: ", str(long), "4 s", "cut it into shorter clips")
    assert not (tmp_path / "s.tsv").exists()


def test_out_of_memory_elsewhere_is_one_line_that_fits_every_command(tmp_path, monkeypatch):
    def no_memory(run):
        raise MemoryError("Unable to allocate 9.9 GiB")

    monkeypatch.setattr(inference, "load_run", no_memory)
    write_wav(tmp_path / "0.wav", 16000, 16000)
    result = CliRunner().invoke(main, ["predict", "RUN", str(tmp_path / "0.wav"), "--out", str(tmp_path / "s.tsv")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    one_line(result.output.strip(), "error: out of memory (Unable to allocate 9.9 GiB)", "where the command has them",
             "shorter clips")


# ----------------------------------------------------------------------------------------
# A worker process that dies

def test_a_dead_worker_process_is_one_line_naming_its_task():
    """os._exit stands in for the kernel's OOM killer. Run in a fresh process: only there are
    the workers forked (this one has Numba's pool threads up)."""
    code = ("import multiprocessing, os\n"
            "from tinyasc.data import workers\n"
            "from tinyasc.errors import TinyAscError\n"
            "assert workers.can_fork()\n"
            "def task(i):\n"
            "    if i == 5:\n"
            "        os._exit(1)\n"
            "    return i\n"
            "for name in (lambda i: f'clip{i}.wav', None):\n"
            "    try:\n"
            "        workers.run_tasks(task, 12, workers=2, name=name)\n"
            "    except TinyAscError as exc:\n"
            "        print(exc)\n"
            "assert multiprocessing.active_children() == []\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    named, unnamed = result.stdout.splitlines()
    one_line(named, "a worker process died while working on", "clip5.wav", "lack of memory", "fewer cores")
    one_line(unnamed, "item 6 of 12", "lack of memory")


def _alive(pid):
    """Whether process pid still runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_end_with_a_parent_killed_outright(tmp_path):
    """SIGKILL (or the OOM killer) gives the parent no chance to stop its workers; they must
    not live on holding the locks they inherited (the cache's, the run folder's)."""
    code = ("import os, sys, time\n"
            "from tinyasc.data import workers\n"
            "def task(i):\n"
            f"    open(os.path.join({str(tmp_path)!r}, f'worker{{os.getpid()}}'), 'w').close()\n"
            "    time.sleep(60)\n"
            "workers.run_tasks(task, 4, workers=2)\n")
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("worker*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(p.name[len("worker"):]) for p in tmp_path.glob("worker*")]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)



@pytest.mark.parametrize("other_thread", [False, True])
def test_ctrl_c_while_the_pool_forks_stops_without_hanging(other_thread):
    """Ctrl-C (SIGINT to this process) sent right after the pool forks its first worker, inside
    the executor: the interrupt is held back until every worker runs, then stops the tasks. Without
    it this printed "interrupted" and then waited for ever (5 of 5 tries); with a signal mask
    instead, it still did so in a process with another thread (3 of 3)."""
    code = ("import multiprocessing, os, signal, sys, threading, time\n"
            # Ctrl-C as a terminal's foreground process has it: a shell's background job starts with
            # SIGINT ignored, and Python then keeps it ignored
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from concurrent.futures import process\n"
            "from tinyasc.data import workers\n"
            "assert workers.can_fork()\n"
            f"if {other_thread}:\n"
            "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "spawn, calls = process.ProcessPoolExecutor._spawn_process, []\n"
            "def spawn_then_ctrl_c(self):\n"
            "    spawn(self)\n"
            "    calls.append(1)\n"
            "    if len(calls) == 1:\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "process.ProcessPoolExecutor._spawn_process = spawn_then_ctrl_c\n"
            "def task(i):\n"
            "    time.sleep(0.05)\n"
            "    return i\n"
            "try:\n"
            "    workers.run_tasks(task, 16, workers=2)\n"
            "except KeyboardInterrupt:\n"
            "    assert multiprocessing.active_children() == []\n"
            "    print('interrupted', flush=True)\n"
            "    sys.exit(130)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130 and result.stdout == "interrupted\n", result.stderr[-2000:]
