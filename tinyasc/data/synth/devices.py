"""The nine recording devices of the synthetic dataset: a, b, c (real devices in TAU) and
s1-s6 (simulated ones).

Part of tinyasc's synthetic stand-in for TAU Urban Acoustic Scenes 2020 Mobile; not part
of the paper's method. As in TAU (paper section 3.1), b and c record the scene alongside a,
not perfectly synchronised, and s1-s6 process device-a audio; here the simulated devices
apply an impulse response and dynamic range compression, as TAU's description of its
simulated devices (the paper's reference [6]) says. Each chain is fixed per device (seeded
by DEVICE_SEED, never by the dataset seed): band limits, a smooth EQ within +-12 dB plus a
spectral tilt, a short impulse response, compression, gain, noise floor and
requantisation. Devices differ mostly along frequency, which is what Residual
Normalization removes.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from tinyasc.data.synth.dsp import GRID, _freqs, _gain, _highpass, _lowpass, _noise, _tilt_db
from tinyasc.data.synth.plan import SR
from tinyasc.data.tau import DEVICES

DEVICE_SEED = 20210601            # device models never depend on the dataset seed


@dataclass(frozen=True)
class DeviceModel:
    name: str
    source: str              # "scene" (records the scene) or "a" (processes device-a audio)
    highpass_hz: float
    highpass_order: int
    lowpass_hz: float
    lowpass_order: int
    tilt_db_per_octave: float    # about 1 kHz
    eq_db: float             # random smooth EQ: 8 bands, gains uniform in [-eq_db, eq_db]
    ir_ms: float             # length of the short impulse response (0: none)
    reflections: int
    comp_threshold_db: float  # dBFS; None: no compression
    comp_ratio: float
    attack_ms: float
    release_ms: float
    gain_db: float
    noise_db: float          # noise floor, dBFS RMS
    bits: int                # requantisation
    max_delay_ms: float = 0.0  # b and c were not perfectly synchronised with a


DEVICE_MODELS = {m.name: m for m in (
    DeviceModel("a", "scene", 20, 2, 20000, 2, 0.0, 0.5, 0, 0, None, 1, 5, 50, 0, -96, 24),
    DeviceModel("b", "scene", 110, 2, 11000, 4, 0.8, 4, 3, 4, -32, 2.5, 5, 80, -2, -80, 16, 10),
    DeviceModel("c", "scene", 200, 2, 9000, 4, -0.8, 5, 4, 5, -28, 3, 3, 60, 2, -76, 16, 10),
    DeviceModel("s1", "a", 90, 2, 12000, 4, 0.6, 6, 5, 6, -30, 2, 5, 100, 0, -84, 16),
    DeviceModel("s2", "a", 250, 3, 7500, 4, -1.0, 6, 6, 6, -26, 3, 5, 100, -3, -78, 16),
    DeviceModel("s3", "a", 60, 2, 14000, 4, 1.2, 7, 4, 6, -34, 2.5, 5, 100, 3, -82, 16),
    DeviceModel("s4", "a", 250, 3, 9000, 6, 2.2, 9, 8, 8, -24, 4, 2, 50, -4, -76, 14),
    DeviceModel("s5", "a", 50, 2, 7000, 6, -2.5, 9, 10, 8, -30, 4, 2, 50, 4, -74, 14),
    DeviceModel("s6", "a", 200, 3, 7500, 4, 0.5, 12, 12, 10, -24, 4, 1, 40, 0, -72, 12),
)}
EQ_LIMIT_DB = 12.0
EQ_CENTRES_HZ = np.geomspace(125, 8000, 8)


@lru_cache(maxsize=64)
def _device_fixed(name):
    """The device's fixed random parts (EQ band gains, impulse response), from DEVICE_SEED."""
    m = DEVICE_MODELS[name]
    rng = np.random.default_rng([DEVICE_SEED, DEVICES.index(name)])
    band_db = rng.uniform(-m.eq_db, m.eq_db, EQ_CENTRES_HZ.size)
    ir = np.zeros(max(1, int(m.ir_ms * 1e-3 * SR)))
    ir[0] = 1.0
    if m.reflections:
        delays = rng.integers(max(1, int(0.0003 * SR)), ir.size, m.reflections)
        amps = rng.uniform(0.1, 0.5, m.reflections) * rng.choice([-1, 1], m.reflections)
        amps *= np.exp(-3.0 * delays / ir.size)
        np.add.at(ir, delays, amps)
    return band_db, ir


def device_eq_db(name, f):
    """The device's smooth EQ plus spectral tilt in dB at frequencies `f` (Hz), clipped to
    +-12 dB."""
    m = DEVICE_MODELS[name]
    band_db, _ = _device_fixed(name)
    lf = np.log2(np.maximum(f, 1.0))
    eq = np.interp(lf, np.log2(EQ_CENTRES_HZ), band_db) + _tilt_db(f, m.tilt_db_per_octave)
    return eq.clip(-EQ_LIMIT_DB, EQ_LIMIT_DB)


def device_response_db(name, f):
    """The device's magnitude response in dB at frequencies `f` (Hz), impulse response
    excluded: band limits (Butterworth magnitudes) + device_eq_db."""
    m = DEVICE_MODELS[name]
    eq = device_eq_db(name, f)
    limits = _highpass(f, m.highpass_hz, m.highpass_order) * _lowpass(f, m.lowpass_hz,
                                                                      m.lowpass_order)
    return eq + 20 * np.log10(np.maximum(limits, 1e-12))


@lru_cache(maxsize=64)
def _device_spectra(name, size):
    """Complex response (EQ, band limits, impulse response) on a `size`-point rfft grid,
    and the magnitude shape of the device's slightly pink noise floor."""
    _, ir = _device_fixed(name)
    f = _freqs(size)
    response = _gain(device_response_db(name, f)) * scipy.fft.rfft(ir, size)
    floor = _gain(_tilt_db(GRID, -1.5).clip(-20, 20))
    response.setflags(write=False)
    return response, floor


def _compress(x, m):
    """Feed-forward compressor on 5 ms blocks: level above threshold reduced by the ratio,
    gain smoothed with attack/release, then make-up gain of half the reduction at 0 dBFS."""
    if m.comp_threshold_db is None:
        return x
    block = int(0.005 * SR)
    n_blocks = -(-x.size // block)
    padded = np.pad(x, (0, n_blocks * block - x.size))
    level = 10 * np.log10(np.mean(padded.reshape(n_blocks, block) ** 2, axis=1) + 1e-12)
    target = -np.maximum(level - m.comp_threshold_db, 0.0) * (1 - 1 / m.comp_ratio)
    att = np.exp(-0.005 / (m.attack_ms * 1e-3))
    rel = np.exp(-0.005 / (m.release_ms * 1e-3))
    gain = np.empty(n_blocks)
    g = 0.0
    for i, tgt in enumerate(target.tolist()):
        coef = att if tgt < g else rel
        g = coef * g + (1 - coef) * tgt
        gain[i] = g
    makeup = 0.5 * (-m.comp_threshold_db) * (1 - 1 / m.comp_ratio)
    centres = (np.arange(n_blocks) + 0.5) * block
    return x * _gain(np.interp(np.arange(x.size), centres, gain) + makeup)


def apply_device(x, name, rng):
    """Record `x` (float64 44.1 kHz) with device `name`; `rng` draws the recording's own
    noise floor and delay. Returns float64 in [-1, 1)."""
    m = DEVICE_MODELS[name]
    n = x.size
    _, ir = _device_fixed(name)
    if m.max_delay_ms:
        delay = int(rng.uniform(0, m.max_delay_ms) * 1e-3 * SR)
        x = np.concatenate([np.zeros(delay), x[: n - delay]])
    size = scipy.fft.next_fast_len(n + ir.size, real=True)
    response, floor_shape = _device_spectra(name, size)
    y = scipy.fft.irfft(scipy.fft.rfft(x, size) * response, size)[:n]
    y = _compress(y, m) * _gain(m.gain_db)
    y = y + _noise(rng, size, floor_shape)[:n] * _gain(m.noise_db)
    scale = 2.0 ** (m.bits - 1)
    return np.clip(np.round(y * scale) / scale, -1.0, 1.0 - 1.0 / scale)
