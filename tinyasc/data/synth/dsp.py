"""Signal helpers of the synthetic dataset: spectral shapes in dB, filters, shaped noise,
envelopes, tones.

Part of tinyasc's synthetic stand-in for TAU Urban Acoustic Scenes 2020 Mobile; not part
of the paper's method. The sounds (sounds.py), scenes (scenes.py) and devices (devices.py)
are built from these. The names keep their leading underscore: they are the package's
own tools, not an API.

Gains are built in dB on the rfft frequency grid and applied in the frequency domain. To
keep them cheap, spectral shapes are built on a coarse log-spaced grid (GRID, 1024 points)
and interpolated onto the rfft grid only when applied. Envelopes are built at a control
rate of 210 Hz (one value per HOP = 210 samples).
"""
from functools import lru_cache

import numpy as np
import scipy.fft

from tinyasc.data.synth.plan import SR

HOP = 210
CTRL = SR / HOP
GRID = np.geomspace(1.0, SR / 2, 1024)
_LOG_GRID = np.log2(GRID)


@lru_cache(maxsize=8)
def _freqs(n):
    f = scipy.fft.rfftfreq(n, 1.0 / SR)
    f.setflags(write=False)
    return f


@lru_cache(maxsize=8)
def _log_freqs(n):
    lf = np.log2(np.maximum(_freqs(n), 1.0))
    lf.setflags(write=False)
    return lf


def _expand(gain, n):
    """A magnitude response on GRID, interpolated onto the rfft grid of n samples."""
    if np.isscalar(gain):
        return np.float32(gain)
    return np.interp(_log_freqs(n), _LOG_GRID, gain).astype(np.float32)


def _octaves(f, ref):
    return np.log2(np.maximum(f, 10.0) / ref)


def _bump_db(f, center, width_oct, gain_db):
    return gain_db * np.exp(-0.5 * (_octaves(f, center) / width_oct) ** 2)


def _tilt_db(f, db_per_octave, ref=1000.0):
    return db_per_octave * _octaves(f, ref)


def _highpass(f, cutoff, order=2):
    return 1.0 / np.sqrt(1.0 + (cutoff / np.maximum(f, 1.0)) ** (2 * order))


def _lowpass(f, cutoff, order=2):
    return 1.0 / np.sqrt(1.0 + (f / cutoff) ** (2 * order))


def _gain(db):
    return 10.0 ** (np.asarray(db) / 20.0)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20)) if x.size else 1e-10


def _unit(x):
    return x / _rms(x)


def _noise(rng, n, gain):
    """Gaussian noise of n samples shaped by `gain` (on GRID), unit RMS."""
    nf = n // 2 + 1
    white = rng.standard_normal((nf, 2), dtype=np.float32).view(np.complex64)[:, 0]
    return _unit(scipy.fft.irfft(white * _expand(gain, n), n))


def _filter(x, gain):
    """x through the magnitude response `gain` (on GRID), zero phase, circular."""
    spec = scipy.fft.rfft(x.astype(np.float32, copy=False))     # float32: half the FFT cost
    return scipy.fft.irfft(spec * _expand(gain, x.size), x.size)


def _smooth_random(rng, n_ctrl, rate_hz, shape=()):
    """Smooth Gaussian-like random curves (..., n_ctrl) varying at about `rate_hz`."""
    step = max(1, int(CTRL / rate_hz))
    knots = rng.standard_normal(shape + (n_ctrl // step + 2,))
    pos = np.arange(n_ctrl) / step
    i = pos.astype(int)
    w = pos - i
    w = w * w * (3 - 2 * w)       # smoothstep between knots
    return knots[..., i] * (1 - w) + knots[..., i + 1] * w


_RAMP = np.arange(HOP) / HOP


def _to_audio_rate(env, n):
    """Linear interpolation of a control-rate envelope (n_ctrl >= n / HOP + 1 values)."""
    env = np.asarray(env, dtype=np.float64)
    k = -(-n // HOP)
    seg = env[:k, None] + (env[1: k + 1] - env[:k])[:, None] * _RAMP
    return seg.ravel()[:n]


def _pulses(f0, n):
    """A unit impulse each time the phase of an f0 track (Hz, per sample) passes an integer:
    the excitation of voiced sounds (voices, engines, horns) before the filter."""
    phase = np.cumsum(f0) / SR
    return np.diff(np.floor(phase), prepend=np.floor(phase[0]) - 1.0).clip(0.0, 1.0)


def _add(out, x, start):
    start = int(start)
    a, b = max(start, 0), min(start + x.size, out.size)
    if b > a:
        out[a:b] += x[a - start: b - start]


def _decay(length, tau_s):
    """exp(-t / tau) over `length` samples."""
    t = np.arange(length) / SR
    return np.exp(-t / tau_s)


def _tone(freq, length, partials=(1.0,), vibrato=0.0, rate=5.0):
    """Sum of harmonics a_k sin(k phase) of a (possibly gliding) frequency; the higher
    harmonics come from the Chebyshev recurrence sin((k+1)p) = 2 cos(p) sin(kp) - sin((k-1)p)."""
    if np.isscalar(freq):
        phase = (2 * np.pi * float(freq) / SR) * np.arange(1, length + 1)
        if vibrato:
            t = np.arange(length) / SR
            phase += (float(freq) * vibrato / rate) * (1 - np.cos(2 * np.pi * rate * t))
    else:
        phase = 2 * np.pi * np.cumsum(freq) / SR
    s_prev, s_k = np.zeros(length), np.sin(phase)
    two_cos = 2 * np.cos(phase) if len(partials) > 1 else None
    out = partials[0] * s_k
    for a in partials[1:]:
        s_prev, s_k = s_k, two_cos * s_k - s_prev
        if a:
            out += a * s_k
    return out


def _window(length, attack, release):
    env = np.ones(length)
    a, r = max(1, int(attack * SR)), max(1, int(release * SR))
    a, r = min(a, length), min(r, length)
    env[:a] *= np.linspace(0, 1, a)
    env[length - r:] *= np.linspace(1, 0, r)
    return env
