"""Front end: audio file -> 256-band log-mel spectrogram (paper 3.1; docs/data.md).

The paper downsamples to 16 kHz and uses 256 log-mel bands with a 130 ms window and a 30 ms
hop. The exact recipe (torch.stft + torchaudio mel filterbank semantics) is pinned down by
docs/decisions.md and reproduced here with plain NumPy:

    wave -> mono (channel mean) -> 16 kHz (polyphase) -> reflect-pad n_fft/2 each side
         -> frames every 480 samples -> periodic Hann(2080) -> |rfft_4096|^2
         -> 256 HTK triangles over 0-8000 Hz (no area normalisation) -> log(mel + 1e-6)

A 10 s clip gives 1 + 160000 // 480 = 334 frames. Everything is vectorised: frames are a
strided view, the FFT is one batched call and the filterbank is one (sparse) matrix product.
"""
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from math import gcd

import numpy as np
import scipy.fft
import scipy.signal
import scipy.sparse
import soundfile as sf

from tinyasc.errors import DataError

# Bump when the numbers log_mel produces change; part of every feature cache key.
FRONTEND_VERSION = 1

# Sample rates an audio file may have (docs/decisions.md). Every clip is resampled to 16 kHz,
# so a file at 1 Hz would be upsampled 16000-fold: gigabytes from a 40 KB file.
MIN_SAMPLE_RATE = 8_000     # telephone band, the lowest rate commonly met
MAX_SAMPLE_RATE = 384_000   # the highest rate common recorders write

FRAME_BLOCK = 1024  # frames per block of the front end: ~70 MB of float64 work arrays, whatever the clip's length


@dataclass(frozen=True)
class FrontEnd:
    """Settings of the log-mel front end; the defaults are the paper's (docs/decisions.md)."""
    sample_rate: int = 16000
    win_length: int = 2080      # 130 ms
    hop_length: int = 480       # 30 ms
    n_fft: int = 4096
    n_mels: int = 256
    f_min: float = 0.0
    f_max: float = 8000.0
    log_offset: float = 1e-6

    def as_dict(self):
        return {"version": FRONTEND_VERSION, **asdict(self)}

    def num_frames(self, num_samples, sample_rate):
        """Frames of a clip of `num_samples` at `sample_rate` (after resampling)."""
        up, down = _ratio(sample_rate, self.sample_rate)
        resampled = -(-num_samples * up // down)  # resample_poly keeps ceil(n * up / down)
        return 1 + resampled // self.hop_length

    def samples_for(self, n_frames, sample_rate):
        """Samples at `sample_rate` that fix the first n_frames frames: any clip cut after them
        gives those frames bit for bit as the whole clip does.

        The last frame's window, centred, ends before (n_frames - 1) * hop + n_fft resampled
        samples; each resampled sample reads resample_poly's filter, 10 * max(up, down) taps at
        the up-sampled rate, on either side.
        """
        up, down = _ratio(sample_rate, self.sample_rate)
        resampled = (n_frames - 1) * self.hop_length + self.n_fft
        return -(-resampled * down // up) + 10 * max(up, down) // up + 1

    def __call__(self, wave, sample_rate):
        x = resample(to_mono(wave), sample_rate, self.sample_rate)
        frames = stft_frames(x, self.n_fft, self.win_length, self.hop_length)       # T x win, a view
        fb_t = _sparse_filterbank_t(self.n_fft // 2 + 1, self.sample_rate, self.n_mels,
                                    self.f_min, self.f_max)                          # M x bins
        out = np.empty((self.n_mels, len(frames)), np.float32)
        # Blocks of frames bound the memory of a long clip (an hour's spectrum is gigabytes in
        # float64); every frame is computed on its own, so the blocks give the same bits.
        for t0 in range(0, len(frames), FRAME_BLOCK):
            power = frame_power(frames[t0:t0 + FRAME_BLOCK], self.n_fft, self.win_length)
            out[:, t0:t0 + FRAME_BLOCK] = np.log(fb_t @ power.T + self.log_offset)   # M x block
        return out


DEFAULT_FRONTEND = FrontEnd()


def log_mel(wave, sample_rate, frontend=DEFAULT_FRONTEND):
    """Log-mel spectrogram of `wave` (1-D, or frames x channels as soundfile returns it).

    Returns float32 n_mels x T; with the default settings a 10 s clip gives 256 x 334.
    """
    return frontend(wave, sample_rate)


def to_mono(wave):
    """Channel mean of a frames x channels array; 1-D input is returned as float64."""
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim == 2:
        return wave.mean(axis=1)
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D or frames x channels wave, got shape {wave.shape}")
    return wave


def _ratio(sample_rate, target):
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sample_rate}")
    g = gcd(int(sample_rate), int(target))
    return int(target) // g, int(sample_rate) // g


def resample(wave, sample_rate, target=16000):
    """Polyphase resampling (scipy.signal.resample_poly, Kaiser-windowed FIR) to `target` Hz."""
    up, down = _ratio(sample_rate, target)
    if up == down:
        return np.asarray(wave, dtype=np.float64)
    return scipy.signal.resample_poly(wave, up, down)


@lru_cache(maxsize=8)
def hann_window(win_length):
    """Periodic Hann window, as torch.hann_window(win_length) (periodic=True by default)."""
    n = np.arange(win_length)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)


def stft_frames(x, n_fft, win_length, hop_length):
    """The frames torch.stft(center=True, pad_mode="reflect") takes of a 1-D signal, as a
    T x win_length view (no copy) of the padded signal.

    torch centres the win_length window inside the n_fft frame, i.e. at offset
    (n_fft - win_length) // 2; only those samples are non-zero, so we take win_length-sample
    frames at that offset and let rfft zero-pad them to n_fft (frame_power). Dropping the
    offset only multiplies each bin by a unit-modulus phase factor, which the power discards.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected a non-empty 1-D signal, got shape {x.shape}")
    pad = n_fft // 2
    # numpy's reflect mode keeps reflecting when the clip is shorter than the pad (torch
    # refuses such clips); that only matters for clips under 0.128 s.
    padded = np.pad(x, (pad, pad), mode="reflect")
    n_frames = 1 + (padded.size - n_fft) // hop_length
    offset = (n_fft - win_length) // 2
    frames = np.lib.stride_tricks.sliding_window_view(padded[offset:], win_length)
    return frames[: (n_frames - 1) * hop_length + 1: hop_length]


def frame_power(frames, n_fft, win_length):
    """|rfft|^2 of Hann-windowed frames (T x win_length), zero-padded to n_fft: T x (n_fft // 2 + 1)."""
    spectrum = scipy.fft.rfft(frames * hann_window(win_length), n=n_fft, axis=1)
    return spectrum.real ** 2 + spectrum.imag ** 2


def power_spectrogram(x, n_fft, win_length, hop_length):
    """|STFT|^2 of a 1-D signal as torch.stft(center=True, pad_mode="reflect") computes it:
    T x (n_fft // 2 + 1) float64 (stft_frames, then frame_power)."""
    return frame_power(stft_frames(x, n_fft, win_length, hop_length), n_fft, win_length)


def hz_to_mel(f):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_freqs, sample_rate, n_mels, f_min, f_max):
    """Triangular filters, n_freqs x n_mels, as torchaudio.functional.melscale_fbanks
    (mel_scale="htk", norm=None): peaks of height 1 at n_mels + 2 points equally spaced in
    mel between f_min and f_max, evaluated on the rfft bin frequencies."""
    bins = np.linspace(0.0, sample_rate // 2, n_freqs)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(f_pts)
    slopes = f_pts[None, :] - bins[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    fb = np.maximum(0.0, np.minimum(rising, falling))
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=8)
def _sparse_filterbank_t(n_freqs, sample_rate, n_mels, f_min, f_max):
    """The transposed filterbank as a sparse matrix: each bin feeds at most two bands, so
    this product costs ~1% of the dense one and, unlike BLAS, does not spawn threads that
    fight the extraction threads for the two cores."""
    return scipy.sparse.csr_matrix(mel_filterbank(n_freqs, sample_rate, n_mels, f_min, f_max).T)


def check_sample_rate(path, sample_rate):
    """The sample rate of the audio file `path` lies in MIN_SAMPLE_RATE..MAX_SAMPLE_RATE."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise DataError(f"{path}: sample rate {sample_rate} Hz is outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
                        "tinyasc reads; resample the file, e.g. to 16000 Hz")
    return sample_rate


@contextmanager
def _open_audio(path):
    """The sound file `path`, open, with a header fit to read; any failure to open or read it is a
    one-line DataError naming it."""
    try:
        with sf.SoundFile(str(path)) as f:
            if f.frames <= 0:
                raise DataError(f"{path}: audio file holds no samples; replace or re-download it")
            check_sample_rate(path, f.samplerate)
            yield f
    except FileNotFoundError:
        raise DataError(f"{path}: audio file not found; check the dataset folder") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{path}: not a readable audio file ({reason}); replace or re-download "
                        "it") from None


def audio_info(path):
    """(sample rate, frames, channels) of an audio file, from its header alone.

    Refuses the file as load_audio does (missing, unreadable, empty, a sample rate out of range)
    without reading its samples, so a clip's length can be checked before it is loaded.
    """
    with _open_audio(path) as f:
        return int(f.samplerate), int(f.frames), int(f.channels)


def load_audio(path, max_samples=None):
    """Read an audio file as float32 (frames, or frames x channels) and its sample rate; only
    its first max_samples samples when given.

    Raises DataError with a one-line message naming the file when it is missing, not a
    readable audio file, empty, at a sample rate outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE
    (checked from the header, before any sample is read), or holds non-finite samples.
    """
    with _open_audio(path) as f:
        count = -1 if max_samples is None else int(max_samples)
        wave, sr = f.read(count, dtype="float32", always_2d=False), int(f.samplerate)
    if wave.shape[0] == 0:
        raise DataError(f"{path}: audio file holds no samples; replace or re-download it")
    if not np.isfinite(wave).all():
        raise DataError(f"{path}: audio file holds NaN or infinite samples; replace it")
    return wave, sr


def file_log_mel(path, frontend=DEFAULT_FRONTEND, max_frames=None):
    """log_mel of an audio file (load_audio + front end).

    max_frames: return at most this many frames, from only the samples that fix them
    (FrontEnd.samples_for), so a clip far longer than that costs no more memory or time.
    """
    if max_frames is None:
        wave, sr = load_audio(path)
        return frontend(wave, sr)
    sample_rate = audio_info(path)[0]
    wave, sr = load_audio(path, max_samples=frontend.samples_for(max_frames, sample_rate))
    return frontend(wave, sr)[:, :max_frames]
