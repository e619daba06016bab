"""Front end (tinyasc.audio) against an independent, deliberately plain NumPy computation,
audio loading and its errors, and the progress bar."""
import io
import sys

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyasc import audio
from tinyasc.errors import DataError
from tinyasc.fileio import progressbar


# ----------------------------------------------------------------------------------------
# An independent reference: explicit frame loop, full complex FFT, explicit triangles.

def reference_log_mel_16k(x, n_fft=4096, win=2080, hop=480, n_mels=256, sr=16000):
    x = np.asarray(x, dtype=np.float64)
    pad = n_fft // 2
    left = x[1:pad + 1][::-1]                # reflect: mirror without repeating the edge
    right = x[-pad - 1:-1][::-1]
    padded = np.concatenate([left, x, right])
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    n = np.arange(win)
    window[start:start + win] = np.sin(np.pi * n / win) ** 2   # periodic Hann, other form
    n_frames = 1 + len(x) // hop
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    mel_max = 2595.0 * np.log10(1.0 + (sr / 2) / 700.0)
    edges_mel = np.linspace(0.0, mel_max, n_mels + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    weights = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo <= f <= mid:
                weights[m, k] = (f - lo) / (mid - lo)
            elif mid < f <= hi:
                weights[m, k] = (hi - f) / (hi - mid)
    out = np.empty((n_mels, n_frames))
    for t in range(n_frames):
        frame = padded[t * hop: t * hop + n_fft] * window
        spectrum = np.fft.fft(frame)[: n_fft // 2 + 1]
        power = np.abs(spectrum) ** 2
        out[:, t] = np.log(weights @ power + 1e-6)
    return out


@pytest.fixture(scope="module")
def clip16k():
    rng = np.random.default_rng(1)
    t = np.arange(int(1.2 * 16000)) / 16000
    return (0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t)
            + 0.05 * np.sin(2 * np.pi * 3100 * t * (1 + t)))


def test_matches_independent_reference_at_16k(clip16k):
    ours = audio.log_mel(clip16k, 16000)
    ref = reference_log_mel_16k(clip16k)
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (256, 1 + clip16k.size // 480)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)


def test_resampled_input_matches_reference_after_polyphase_resampling(clip16k):
    rng = np.random.default_rng(2)
    x44 = rng.standard_normal(44100) * 0.1
    ours = audio.log_mel(x44, 44100)
    ref = reference_log_mel_16k(scipy.signal.resample_poly(x44, 160, 441))
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("sr", [44100, 48000, 16000])
def test_ten_seconds_give_256_by_334(sr):
    x = np.random.default_rng(sr).standard_normal(10 * sr).astype(np.float32) * 0.1
    m = audio.log_mel(x, sr)
    assert m.shape == (256, 334) and m.dtype == np.float32
    assert audio.DEFAULT_FRONTEND.num_frames(10 * sr, sr) == 334


def test_stereo_is_the_channel_mean():
    rng = np.random.default_rng(3)
    stereo = rng.standard_normal((44100 * 10, 2)).astype(np.float32) * 0.1
    m = audio.log_mel(stereo, 44100)
    assert m.shape == (256, 334)
    np.testing.assert_allclose(m, audio.log_mel(stereo.mean(axis=1), 44100), atol=1e-5)


def test_sine_lands_in_the_band_of_its_frequency():
    t = np.arange(16000 * 2) / 16000
    for f0 in (250.0, 1000.0, 5000.0):
        m = audio.log_mel(np.sin(2 * np.pi * f0 * t), 16000)
        band = int(np.argmax(m[:, m.shape[1] // 2]))
        edges = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(8000.0), 258))
        assert edges[band] <= f0 <= edges[band + 2]


def test_periodic_hann_and_htk_scale_known_values():
    np.testing.assert_allclose(audio.hann_window(4), [0.0, 0.5, 1.0, 0.5], atol=1e-12)
    assert abs(audio.hz_to_mel(1000.0) - 1000.0) < 0.1            # HTK: 1 kHz ~ 1000 mel
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel([0.0, 440.0, 8000.0])),
                               [0.0, 440.0, 8000.0], atol=1e-9)
    fb = audio.mel_filterbank(2049, 16000, 256, 0.0, 8000.0)
    assert fb.shape == (2049, 256) and fb.min() >= 0 and fb.max() <= 1
    assert (fb.sum(axis=0) > 0).all()            # every band sees at least one bin


@settings(max_examples=25, deadline=None)
@given(st.integers(2100, 20000), st.sampled_from([8000, 16000, 22050, 44100, 48000]))
def test_frame_count_formula(n, sr):
    x = np.random.default_rng(n).standard_normal(n)
    assert audio.log_mel(x, sr).shape == (256, audio.DEFAULT_FRONTEND.num_frames(n, sr))


def test_log_mel_rejects_bad_shapes():
    with pytest.raises(ValueError):
        audio.log_mel(np.zeros((2, 3, 4)), 16000)
    with pytest.raises(ValueError):
        audio.log_mel(np.zeros(100), 0)


# ----------------------------------------------------------------------------------------
# load_audio

@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_load_audio_formats(tmp_path, subtype, channels):
    rng = np.random.default_rng(4)
    data = (rng.uniform(-0.5, 0.5, (2205, channels))).astype(np.float32)
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, data if channels > 1 else data[:, 0], 22050, subtype=subtype)
    wave, sr = audio.load_audio(path)
    assert sr == 22050 and wave.dtype == np.float32
    assert wave.shape == ((2205, 2) if channels == 2 else (2205,))
    tol = {"PCM_16": 1 / 2 ** 15, "PCM_24": 1 / 2 ** 23, "FLOAT": 1e-7}[subtype]
    np.testing.assert_allclose(wave.reshape(2205, -1), data, atol=tol)


@pytest.mark.parametrize("sr, channels", [(48000, 1), (44100, 2), (8000, 1), (384000, 1)])
def test_a_long_clip_read_only_as_far_as_its_frames_gives_the_same_frames(tmp_path, sr, channels, monkeypatch):
    """The feature cache crops every clip to the dataset's length: reading only the samples
    that fix those frames must give them bit for bit, at every resampling ratio."""
    rng = np.random.default_rng(sr)
    frontend = audio.DEFAULT_FRONTEND
    n_frames = 40
    path = tmp_path / "long.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, (int(sr * 4), channels)).astype(np.float32), sr, subtype="FLOAT")
    whole = audio.file_log_mel(path, frontend)
    assert whole.shape[1] > 2 * n_frames
    reads = []
    load = audio.load_audio
    monkeypatch.setattr(audio, "load_audio", lambda p, max_samples=None: reads.append(max_samples) or load(p, max_samples))
    part = audio.file_log_mel(path, frontend, max_frames=n_frames)
    assert reads == [frontend.samples_for(n_frames, sr)] and reads[0] < sr * 4 / 2
    np.testing.assert_array_equal(part, whole[:, :n_frames])
    # the check can fail: a cut one n_fft earlier reaches into the last frame's window
    cut = reads[0] - frontend.n_fft * sr // frontend.sample_rate
    early = frontend(load(path, cut)[0], sr)
    assert not np.array_equal(early[:, n_frames - 1], whole[:, n_frames - 1])
    np.testing.assert_array_equal(audio.file_log_mel(path, frontend, max_frames=10 ** 6), whole)  # a limit past the clip's end reads all of it


@pytest.mark.parametrize("block", [1, 100, 333, 334, 10 ** 6])
def test_the_front_end_in_blocks_of_frames_gives_the_whole_clips_bits(monkeypatch, block):
    """FrontEnd works on blocks of frames so that a long clip's spectrum never sits in memory whole;
    each frame is computed on its own, so any block size gives the same bits as the whole clip."""
    rng = np.random.default_rng(block)
    wave = rng.uniform(-0.5, 0.5, (441000, 2)).astype(np.float32)  # 10 s, stereo, 44.1 kHz: 334 frames
    fe = audio.DEFAULT_FRONTEND
    x = audio.resample(audio.to_mono(wave), 44100, fe.sample_rate)
    power = audio.power_spectrogram(x, fe.n_fft, fe.win_length, fe.hop_length)
    fb_t = audio._sparse_filterbank_t(fe.n_fft // 2 + 1, fe.sample_rate, fe.n_mels, fe.f_min, fe.f_max)
    whole = np.log(fb_t @ power.T + fe.log_offset).astype(np.float32)
    monkeypatch.setattr(audio, "FRAME_BLOCK", block)
    np.testing.assert_array_equal(fe(wave, 44100), whole)


def test_load_audio_errors_name_the_file(tmp_path):
    missing = tmp_path / "nothere.wav"
    with pytest.raises(DataError, match="nothere.wav"):
        audio.load_audio(missing)

    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF this is not audio at all" * 10)
    with pytest.raises(DataError, match="garbage.wav.*not a readable audio file") as err:
        audio.load_audio(garbage)
    assert "\n" not in str(err.value)

    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    with pytest.raises(DataError, match="zero.wav"):
        audio.load_audio(zero)

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 44100, subtype="PCM_24")
    with pytest.raises(DataError, match="empty.wav.*no samples"):
        audio.load_audio(empty)

    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="nan.wav.*NaN"):
        audio.load_audio(nan)


# ----------------------------------------------------------------------------------------
# Progress (click's bar, through tinyasc.fileio.progressbar)

class _Tty(io.StringIO):
    def isatty(self):
        return True


def _draw(monkeypatch, stderr, quiet=False, env="1"):
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setenv("TINYASC_PROGRESS", env)
    with progressbar(10, "epoch 1", quiet=quiet) as bar:
        for _ in range(10):
            bar.update(1, "loss 0.1235, acc 50.0%, 97 clips/s")
    return stderr.getvalue()


def test_progress_silent_off_a_terminal(monkeypatch):
    assert _draw(monkeypatch, io.StringIO()) == ""           # logs, CI, pytest: nothing at all


def test_progress_redraws_in_place_on_a_terminal(monkeypatch):
    text = _draw(monkeypatch, _Tty())
    assert text.count("\r") >= 3 and text.endswith("\n")
    assert "epoch 1" in text and "10/10" in text and "100%" in text
    assert "loss 0.1235, acc 50.0%, 97 clips/s" in text


def test_quiet_and_the_environment_silence_the_terminal_bar(monkeypatch):
    assert _draw(monkeypatch, _Tty(), quiet=True) == ""      # --quiet: no output at all
    assert _draw(monkeypatch, _Tty(), env="0") == ""         # TINYASC_PROGRESS=0
