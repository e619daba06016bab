"""A synthetic, device-imbalanced stand-in for TAU Urban Acoustic Scenes 2020 Mobile.

The paper's problem (section 1, 2.2): ten urban scenes, one high-quality device (a) with
most of the training data, a few hundred clips each from devices b, c, s1-s3, and devices
s4-s6 seen only at test time. Devices differ mostly along frequency, which is what
Residual Normalization removes. TAU itself is 30 GB and cannot be fetched here, so tinyasc
generates a dataset with the same layout, split rules, pairing and device structure:

  scene source  = background texture + foreground components (traffic, engines, rails,
                  babble, voices, announcements, music, footsteps, birds, wind, ...),
                  each present with a scene-specific probability at a random level, the
                  foreground through the room's reverberation; every component occurs in
                  several scenes, so no single cue decides the class
  location      = a recording place inside a city: its own coloration, a steady tone,
                  level and habits (which components it tends to have); train and test
                  use different locations, as TAU does
  device chain  = fixed per device (seeded by a constant): band limits, smooth EQ within
                  +-12 dB plus a spectral tilt, a short impulse response, dynamic range
                  compression, gain, noise floor and requantisation. b and c record the
                  scene; s1-s6 process device-a audio, as TAU's simulated devices did.

docs/data.md lists every parameter. Everything is deterministic for a seed: each segment
and each recording has its own generator keyed by its identity, so the bytes do not
depend on thread scheduling.
"""
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf

from tinyasc.checks import check_seed
from tinyasc.data.cache import tinyasc_home
from tinyasc.data.tau import CITIES, DEVICES, SCENES
from tinyasc.errors import DataError
from tinyasc.fileio import exclusive_folder, make_parent, remove_stale_temporaries, temporary_path, write_error
from tinyasc.progress import Progress

SR = 44100
SYNTH_VERSION = 1                 # bump when the generated audio changes
DEVICE_SEED = 20210601            # device models never depend on the dataset seed
MARKER = "tinyasc_synth.json"     # written last: a dataset without it is incomplete
TRAIN_OTHER_DEVICES = ("b", "c", "s1", "s2", "s3")


# --------------------------------------------------------------------------------------
# Presets: the one table of sizes (TAU: train a 10,215, b c s1 s2 s3 750 each; test 330
# per device for all nine).

@dataclass(frozen=True)
class Preset:
    name: str
    clip_seconds: float
    train_a: int                  # device-a training segments
    train_other: int              # training segments of each of b, c, s1, s2, s3
    test_per_device: int          # test segments, each recorded by all nine devices
    segments_per_location: int    # consecutive segments cut from one location's recording


PRESETS = {
    "tiny": Preset("tiny", 1.0, 27, 2, 10, 3),
    "default": Preset("default", 3.0, 1362, 100, 200, 4),
    "full": Preset("full", 10.0, 10215, 750, 330, 12),
}


def get_preset(preset):
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise DataError(f"unknown synthetic preset {preset!r}; choose one of "
                        f"{', '.join(PRESETS)}")
    return PRESETS[preset]


# --------------------------------------------------------------------------------------
# The plan: which segment is recorded where, by which devices, in which split.

@dataclass(frozen=True)
class Segment:
    split: str
    scene: str
    city: str
    location: int                 # unique within the city across both splits
    index: int                    # segment number within the location
    devices: tuple

    @property
    def stem(self):
        return f"{self.scene}-{self.city}-{self.location}-{self.index}"

    @property
    def identifier(self):
        return f"{self.city}-{self.location}"

    def filename(self, device):
        return f"audio/{self.stem}-{device}.wav"

    @property
    def key(self):
        """Integers naming the segment, for seeding its random generators."""
        return [CITIES.index(self.city), self.location, self.index]


def _spread(total, parts, rng):
    """`total` split into `parts` near-equal integers, the remainder on random parts."""
    counts = np.full(parts, total // parts)
    counts[rng.permutation(parts)[: total % parts]] += 1
    return counts


def make_plan(preset, seed):
    """The list of segments of a synthetic dataset (no audio)."""
    preset = get_preset(preset)
    rng = np.random.default_rng([seed, 1])
    next_location = {city: 0 for city in CITIES}
    segments = []
    for split, total in (("train", preset.train_a), ("test", preset.test_per_device)):
        devices = ("a",) if split == "train" else DEVICES
        split_segments = []
        for scene, count in zip(SCENES, _spread(total, len(SCENES), rng)):
            n_loc = max(1, int(round(count / preset.segments_per_location)))
            cities = rng.permutation(len(CITIES))
            for i, per_loc in enumerate(_spread(int(count), n_loc, rng)):
                city = CITIES[cities[i % len(CITIES)]]
                location = next_location[city]
                next_location[city] += 1
                for index in range(per_loc):
                    split_segments.append(Segment(split, scene, city, location, index, devices))
        if split == "train":
            split_segments = _assign_train_devices(split_segments, preset.train_other, rng)
        segments += split_segments
    return segments


def _assign_train_devices(segments, per_device, rng):
    """b and c record the same segments alongside a (TAU's real devices recorded
    simultaneously); s1, s2, s3 each process their own random choice of a-segments.
    Choices are stratified by scene."""
    def choose():
        by_scene = {s: [i for i, seg in enumerate(segments) if seg.scene == s] for s in SCENES}
        chosen = []
        for scene, k in zip(SCENES, _spread(per_device, len(SCENES), rng)):
            pool = by_scene[scene]
            chosen += list(rng.choice(pool, size=min(int(k), len(pool)), replace=False))
        return set(int(i) for i in chosen)

    extra = {i: [] for i in range(len(segments))}
    real = choose()
    for i in real:
        extra[i] += ["b", "c"]
    for dev in ("s1", "s2", "s3"):
        for i in choose():
            extra[i].append(dev)
    out = []
    for i, seg in enumerate(segments):
        devices = tuple(d for d in DEVICES if d == "a" or d in extra[i])
        out.append(Segment(seg.split, seg.scene, seg.city, seg.location, seg.index, devices))
    return out


# --------------------------------------------------------------------------------------
# Signal helpers. Gains are built in dB on the rfft frequency grid and applied in the
# frequency domain. To keep them cheap, spectral shapes are built on a coarse log-spaced
# grid (GRID, 1024 points) and interpolated onto the rfft grid only when applied.
# Envelopes are built at a control rate of 210 Hz (one value per 210 samples).

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


class _Clip:
    """What a component generator needs: length, frequency grid, generator, context."""

    def __init__(self, n, rng, city, scene):
        self.n = n
        self.rng = rng
        self.f = GRID
        self.seconds = n / SR
        self.n_ctrl = -(-n // HOP) + 1
        self.city = city
        self.scene = scene
        self.inside_vehicle = scene in ("bus", "metro", "tram")

    def events(self, rate_per_s, minimum=0):
        return max(minimum, int(self.rng.poisson(rate_per_s * self.seconds)))

    def onset(self, length=0):
        # onsets may fall before the start: the clip is cut from a longer recording
        return int(self.rng.uniform(-0.3 * length, self.n - 0.3 * length))


# --------------------------------------------------------------------------------------
# Components. Each returns a unit-scale signal of c.n samples; levels are set by the scene.

VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
          (570, 840, 2410), (440, 1020, 2240), (660, 1720, 2410))


def _formant_db(f, formants, shift):
    db = _tilt_db(f, -6.0, 500.0).clip(-60, 6)
    for k, (fk, g) in enumerate(zip(formants, (14.0, 11.0, 8.0))):
        db = db + _bump_db(f, fk * shift, 0.12 + 0.04 * k, g)
    return db + 20 * np.log10(_highpass(f, 80.0, 2) * _lowpass(f, 6000.0, 2))


def _syllables(rng, n_ctrl, rate, n_talkers=1, pauses=0.5):
    """Syllabic on/off envelopes at control rate, talkers x n_ctrl."""
    t = np.arange(n_ctrl) / CTRL
    rates = rate * rng.uniform(0.8, 1.25, (n_talkers, 1))
    ph = rng.uniform(0, 2 * np.pi, (n_talkers, 1))
    jitter = 0.6 * _smooth_random(rng, n_ctrl, rate, (n_talkers,))
    syl = np.maximum(0.0, np.sin(2 * np.pi * rates * t + ph + jitter)) ** 1.5
    phrase = _smooth_random(rng, n_ctrl, 0.7, (n_talkers,)) > (pauses - 0.5) * 1.5
    return syl * phrase


def voice_signal(c, start, length, shift=1.0, band=None):
    """One talker speaking from sample `start` for `length` samples (a full-length signal):
    an f0-contoured pulse train through two alternating vowel filters, gated into
    syllables, plus breath noise. `band` = (low, high) Hz for a loudspeaker."""
    rng = c.rng
    f0 = rng.uniform(90, 140) if rng.random() < 0.5 else rng.uniform(170, 250)
    phrase_s = rng.uniform(1.5, 3.0)        # pitch declines over each phrase, then resets
    declination = 0.15 * ((np.arange(c.n_ctrl) / CTRL / phrase_s) % 1.0)
    contour = f0 * np.exp(0.08 * _smooth_random(rng, c.n_ctrl, 3.0) - declination)
    spec = scipy.fft.rfft(_pulses(_to_audio_rate(contour, c.n), c.n).astype(np.float32))
    if band is not None:
        spec *= _expand(_highpass(c.f, band[0], 2) * _lowpass(c.f, band[1], 3), c.n)
    va, vb = rng.choice(len(VOWELS), 2, replace=False)
    xa = scipy.fft.irfft(spec * _expand(_gain(_formant_db(c.f, VOWELS[va], shift)), c.n), c.n)
    xb = scipy.fft.irfft(spec * _expand(_gain(_formant_db(c.f, VOWELS[vb], shift)), c.n), c.n)
    mix = 0.5 + 0.5 * np.tanh(3 * _smooth_random(rng, c.n_ctrl, 4.0))
    gate = _syllables(rng, c.n_ctrl, rng.uniform(3.5, 5.5), 1, rng.uniform(0.2, 0.6))[0]
    mix, gate = (_to_audio_rate(e, c.n) for e in (mix, gate))
    x = _unit(xa * mix + xb * (1 - mix)) + 0.05 * rng.standard_normal(c.n)
    span = np.zeros(c.n)
    _add(span, _window(length, 0.05, 0.1), start)
    return x * gate * span


def comp_voice(c, p):
    """One or two nearby talkers."""
    out = np.zeros(c.n)
    for _ in range(c.rng.integers(1, 3)):
        length = int(c.rng.uniform(0.4, 1.0) * c.n)
        out += (voice_signal(c, c.onset(length), length, p["formant_shift"])
                * _gain(c.rng.normal(0, 3)))
    return out / 0.5


def comp_babble(c, p):
    """A crowd: speech-shaped noise with formant bumps, modulated by many talkers'
    syllables (the more talkers, the flatter the modulation)."""
    rng = c.rng
    shift = p["formant_shift"]
    db = _tilt_db(c.f, -7.0, 600.0).clip(-60, 3)
    for fk, g in zip(VOWELS[rng.integers(len(VOWELS))], (6.0, 5.0, 4.0)):
        db = db + _bump_db(c.f, fk * shift, 0.4, g)
    x = _noise(rng, c.n, _gain(db) * _highpass(c.f, 120.0, 2))
    talkers = int(rng.integers(3, 16))
    env = _syllables(rng, c.n_ctrl, rng.uniform(3.5, 5.0), talkers, 0.4).mean(axis=0)
    env = env / (env.mean() + 1e-9)
    return x * _to_audio_rate(env, c.n)


def comp_announcement(c, p):
    """Public address: a two-to-four-note chime, then a band-limited voice."""
    rng = c.rng
    out = np.zeros(c.n)
    start = int(rng.uniform(-0.4, 0.6) * c.n)
    root = rng.choice([392.0, 440.0, 523.25, 587.33, 659.25])
    chimes = ((0, 4, 7), (7, 4, 0), (0, 4, 7, 12), (4, 0), (0, 5, 9))
    steps = chimes[rng.integers(len(chimes))]
    pos = start
    for s in steps:
        note = (_tone(root * 2 ** (s / 12), int(0.9 * SR), (1.0, 0.25, 0.08))
                * _decay(int(0.9 * SR), 0.35))
        _add(out, note * 0.8, pos)
        pos += int(rng.uniform(0.35, 0.6) * SR)
    pos = max(pos, 0)
    if pos >= c.n - int(0.2 * SR):
        return out
    length = c.n - pos
    v = voice_signal(c, pos, length, p["formant_shift"], band=(350, 4500))
    v = np.tanh(1.5 * v / (_rms(v[pos: pos + length]) + 1e-9))   # overdriven loudspeaker
    return out + v


def comp_music(c, p):
    """Background music: chord changes of additive tones, sometimes a beat, through a
    ceiling loudspeaker's band."""
    rng = c.rng
    out = np.zeros(c.n)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    chords = ([0, 4, 7], [5, 9, 12], [7, 11, 14], [9, 12, 16], [2, 5, 9])
    pos = -int(rng.uniform(0, 1.5) * SR)
    while pos < c.n:
        length = int(rng.uniform(1.0, 2.0) * SR)
        chord = chords[rng.integers(len(chords))]
        seg = sum(_tone(root * 2 ** ((s + 12 * rng.integers(0, 2)) / 12), length,
                        (1.0, 0.5, 0.3, 0.15)) for s in chord)
        _add(out, seg * _window(length, 0.02, 0.1) * 0.3, pos)
        pos += length
    if rng.random() < 0.6:
        beat = 60.0 / rng.uniform(90, 130)
        kick = _tone(rng.uniform(50, 80), int(0.25 * SR)) * _decay(int(0.25 * SR), 0.06)
        t0 = rng.uniform(0, beat)
        while t0 < c.seconds:
            _add(out, kick * 2.0, t0 * SR)
            t0 += beat
    return _unit(_filter(out, _highpass(c.f, 180, 2) * _lowpass(c.f, 6000, 2)))


def comp_steps(c, p):
    """Footsteps of a few walkers: heel-toe clicks on a hard floor, or longer crunches on
    gravel (parks)."""
    rng = c.rng
    out = np.zeros(c.n)
    gravel = c.scene == "park" or rng.random() < 0.15
    burst_len = 0.07 if gravel else 0.03
    for _ in range(int(rng.integers(1, 5))):
        period = rng.uniform(0.45, 0.65)
        level = _gain(rng.normal(0, 4))
        t0 = rng.uniform(0, period)
        while t0 < c.seconds:
            size = int(burst_len * SR)
            burst = rng.standard_normal(size) * _decay(size, burst_len / 4)
            thump = _tone(rng.uniform(60, 120), burst.size) * _decay(burst.size, 0.015)
            _add(out, (burst + 2 * thump) * level, (t0 + rng.normal(0, 0.01)) * SR)
            t0 += period
    db = _bump_db(c.f, 1800 if gravel else 3000, 1.2, 8) + _tilt_db(c.f, -2)
    return _unit(_filter(out, _gain(db) * _highpass(c.f, 50)))


def comp_impacts(c, p):
    """Random knocks: metallic clangs (inharmonic decaying partials) and dull thuds."""
    rng = c.rng
    out = np.zeros(c.n)
    for _ in range(c.events(0.8, 1)):
        if rng.random() < 0.5:
            base = rng.uniform(300, 1500)
            length = int(rng.uniform(0.2, 0.8) * SR)
            ratios = (1.0, rng.uniform(1.4, 2.9), rng.uniform(3.1, 5.4))
            x = sum(_tone(base * r, length) * a for r, a in zip(ratios, (1.0, 0.6, 0.3)))
            x = x * _decay(length, rng.uniform(0.05, 0.3))
        else:
            length = int(0.15 * SR)
            x = _tone(rng.uniform(70, 200), length) * _decay(length, 0.03)
            x[: 200] += rng.standard_normal(200) * np.linspace(1, 0, 200)
        _add(out, x * _gain(rng.normal(0, 4)), c.onset(length))
    return _unit(out)


def comp_trolley(c, p):
    """Rolling luggage / trolleys: band noise pulsed at the wheels' rate."""
    rng = c.rng
    carrier = _noise(rng, c.n, _gain(_bump_db(c.f, rng.uniform(300, 1500), 1.0, 12))
                     * _highpass(c.f, 100))
    env = np.zeros(c.n)
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.uniform(1.0, 3.0) * SR)
        wheel = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(6, 20) * np.arange(length) / SR)
        _add(env, wheel * _window(length, 0.3, 0.5), c.onset(length))
    return carrier * env


def comp_traffic(c, p):
    """Road and tyre noise with cars passing by (Gaussian swells)."""
    rng = c.rng
    db = (_bump_db(c.f, rng.uniform(700, 1300), 1.3, 10) + _bump_db(c.f, 80, 1.0, 6)
          + _tilt_db(c.f, -3))
    lp = _lowpass(c.f, 1200, 2) if c.inside_vehicle else 1.0
    x = _noise(rng, c.n, _gain(db) * lp * _highpass(c.f, 30))
    t = np.arange(c.n_ctrl) / CTRL
    env = np.full(c.n_ctrl, rng.uniform(0.2, 0.5))
    for _ in range(c.events(0.6 * p["traffic_density"])):
        center, width = rng.uniform(-1, c.seconds + 1), rng.uniform(0.4, 1.2)
        env += rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((t - center) / width) ** 2)
    return x * _to_audio_rate(np.sqrt(env), c.n)


def comp_engine(c, p):
    """Combustion engine: low pulse train (25-70 Hz firing rate) with RPM drift, through
    a body resonance; plus combustion noise."""
    rng = c.rng
    f0 = rng.uniform(25, 70) * np.exp(0.12 * _smooth_random(rng, c.n_ctrl, 0.4))
    src = _pulses(_to_audio_rate(f0, c.n), c.n)
    db = _bump_db(c.f, rng.uniform(100, 600), 0.8, 12) + _tilt_db(c.f, -6, 200).clip(-60, 0)
    x = _unit(_filter(src, _gain(db) * _lowpass(c.f, 2500, 2)))
    noise = _noise(rng, c.n, _gain(_tilt_db(c.f, -6, 150).clip(-60, 0)))
    return x + 0.3 * noise


def comp_whine(c, p):
    """Electric traction motor: a tone gliding as the vehicle accelerates or brakes."""
    rng = c.rng
    fa = rng.uniform(250, 900)
    ramp = (np.linspace(0, 1, c.n_ctrl) * rng.uniform(-1, 1)
            + 0.1 * _smooth_random(rng, c.n_ctrl, 0.5))
    f = _to_audio_rate(fa * 2 ** ramp, c.n)
    return _unit(_tone(f, c.n, (1.0, 0.4, 0.2)))


def comp_rail(c, p):
    """Rails: wheel-on-joint clack pairs at a steady period plus low rolling rumble."""
    rng = c.rng
    carrier = _noise(rng, c.n, _gain(_bump_db(c.f, rng.uniform(700, 2500), 1.0, 10)))
    env = np.zeros(c.n)
    period, gap = rng.uniform(0.5, 1.3), rng.uniform(0.06, 0.15)
    click = _decay(int(0.06 * SR), rng.uniform(0.005, 0.015))
    t0 = rng.uniform(0, period)
    while t0 < c.seconds:
        _add(env, click, t0 * SR)
        _add(env, click * rng.uniform(0.6, 1.0), (t0 + gap) * SR)
        t0 += period * rng.uniform(0.95, 1.05)
    rumble = _noise(rng, c.n, _gain(_bump_db(c.f, rng.uniform(40, 200), 1.0, 12)) *
                    _lowpass(c.f, 400, 3))
    rumble *= _to_audio_rate(np.exp(0.3 * _smooth_random(rng, c.n_ctrl, 0.5)), c.n)
    return _unit(carrier * env * 3) + rumble


def comp_squeal(c, p):
    """Wheel squeal in curves: narrow-band high tones with vibrato."""
    rng = c.rng
    out = np.zeros(c.n)
    for _ in range(int(rng.integers(1, 4))):
        length = int(rng.uniform(0.3, 1.5) * SR)
        x = _tone(rng.uniform(1800, 7000), length, (1.0, 0.3), vibrato=rng.uniform(0.002, 0.01),
                  rate=rng.uniform(3, 8))
        _add(out, x * _window(length, 0.1, 0.2) * _gain(rng.normal(0, 3)), c.onset(length))
    return out / 0.7


def comp_birds(c, p):
    """Bird phrases: runs of short frequency-modulated chirps between 2 and 7 kHz."""
    rng = c.rng
    out = np.zeros(c.n)
    for _ in range(c.events(1.2, 1)):
        pos = c.onset()
        base, sweep = rng.uniform(2000, 6000), rng.uniform(-3000, 3000)
        dur, gap = rng.uniform(0.03, 0.15), rng.uniform(0.04, 0.15)
        level = _gain(rng.normal(0, 5))
        for _ in range(int(rng.integers(2, 9))):
            length = int(dur * SR)
            f = np.clip(base + sweep * np.linspace(0, 1, length) ** 2, 1500, 9000)
            x = _tone(f, length, (1.0, 0.2)) * np.hanning(length)
            _add(out, x * level, pos)
            pos += int((dur + gap) * SR)
    return out / 0.3


def comp_wind(c, p):
    """Gusty low-frequency wind noise plus leaves rustling with the gusts."""
    rng = c.rng
    gust = np.exp(0.8 * _smooth_random(rng, c.n_ctrl, rng.uniform(0.2, 0.6)))
    gust = _to_audio_rate(gust / gust.mean(), c.n)
    low = _noise(rng, c.n, _gain(_tilt_db(c.f, -9, 60).clip(-80, 0)) * _highpass(c.f, 15))
    leaves = _noise(rng, c.n, _gain(_bump_db(c.f, rng.uniform(3000, 6000), 1.0, 6))
                    * _highpass(c.f, 1500, 3))
    return low * gust + rng.uniform(0.2, 0.7) * leaves * gust ** 2


def comp_water(c, p):
    """A fountain: steady broadband splashing."""
    rng = c.rng
    x = _noise(rng, c.n, _gain(_bump_db(c.f, rng.uniform(1500, 4000), 1.6, 8)) *
               _highpass(c.f, 300, 2))
    return x * _to_audio_rate(1 + 0.15 * _smooth_random(rng, c.n_ctrl, 20.0), c.n)


def comp_hvac(c, p):
    """Ventilation: mains hum harmonics, a fan's blade-pass tone and its broadband air."""
    rng = c.rng
    amps = rng.uniform(0, 1, 6) / np.arange(1, 7)
    hum = _tone(50.0, c.n, tuple(amps))
    fan = _noise(rng, c.n, _gain(_bump_db(c.f, rng.uniform(150, 600), 1.2, 10)
                                 + _tilt_db(c.f, -4).clip(-40, 10)))
    blade = _tone(rng.uniform(80, 300), c.n, (1.0, 0.5))
    return 0.3 * _unit(hum) + fan + 0.3 * _unit(blade)


def comp_beeps(c, p):
    """Ticket validators, door warnings, scanners: short square-ish beeps in groups."""
    rng = c.rng
    out = np.zeros(c.n)
    for _ in range(c.events(0.5, 1)):
        freq, length = rng.uniform(800, 3500), int(rng.uniform(0.06, 0.25) * SR)
        pos = c.onset(length)
        for _ in range(int(rng.integers(1, 4))):
            beep = _tone(freq, length, (1.0, 0.0, 0.33, 0.0, 0.2))     # odd harmonics
            _add(out, beep * _window(length, 0.005, 0.005), pos)
            pos += length + int(rng.uniform(0.08, 0.2) * SR)
    return out / 0.5


def comp_horn(c, p):
    """Car horns (two harmonic tones a third apart) or a distant siren."""
    rng = c.rng
    out = np.zeros(c.n)
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.7:
            length = int(rng.uniform(0.2, 0.8) * SR)
            f = rng.uniform(350, 500)
            x = (_tone(f, length, (1.0, 0.7, 0.5, 0.3, 0.2)) +
                 _tone(f * 1.26, length, (1.0, 0.7, 0.5, 0.3, 0.2)))
            x *= _window(length, 0.01, 0.03)
        else:
            length = int(rng.uniform(1.5, 3.0) * SR)
            period = rng.uniform(0.8, 3.0)
            lfo = 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(length) / SR / period)
            x = _tone(650 + 650 * lfo, length, (1.0, 0.3, 0.1)) * _window(length, 0.3, 0.3)
        _add(out, x, c.onset(length))
    lp = _lowpass(c.f, 1500, 2) if c.inside_vehicle else _lowpass(c.f, 5000, 1)
    return _filter(out, lp) / 0.5


def comp_doors(c, p):
    """Pneumatic doors: a hiss followed by a thud."""
    rng = c.rng
    hiss = _noise(rng, c.n, _highpass(c.f, 2500, 3) * _gain(_bump_db(c.f, 6000, 1.0, 6)))
    env = np.zeros(c.n)
    out = np.zeros(c.n)
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.uniform(0.4, 1.0) * SR)
        pos = c.onset(length)
        _add(env, _window(length, 0.02, 0.3), pos)
        _add(out, _tone(rng.uniform(50, 90), int(0.2 * SR)) * _decay(int(0.2 * SR), 0.05) * 3,
             pos + length)
    return hiss * env + out


COMPONENTS = {
    "traffic": comp_traffic, "engine": comp_engine, "whine": comp_whine, "rail": comp_rail,
    "squeal": comp_squeal, "babble": comp_babble, "voice": comp_voice,
    "announce": comp_announcement, "music": comp_music, "steps": comp_steps,
    "impacts": comp_impacts, "trolley": comp_trolley, "birds": comp_birds, "wind": comp_wind,
    "water": comp_water, "hvac": comp_hvac, "beeps": comp_beeps, "horn": comp_horn,
    "doors": comp_doors,
}

# Components that sound inside the room (reverberant); the rest are diffuse or outdoor.
DRY = {"traffic", "wind", "water"}

# Scene recipes. background: (tilt dB/oct mean, bump centre Hz, bump dB, modulation depth);
# loudness: mean RMS in dBFS (sd 4 dB); rt60: reverberation time range in s (wet level);
# components: name -> (probability present, level in dB relative to the background).
# Every component appears in several scenes; levels have a 4 dB spread on top.
SCENE_RECIPES = {
    "airport": dict(
        background=(-3.5, 350, 6, 0.15), loudness=-30, rt60=(1.2, 2.2, 0.8),
        components=dict(babble=(0.95, -2), voice=(0.5, -4), announce=(0.45, 2), music=(0.1, -8),
                        steps=(0.6, -6), impacts=(0.5, -4), trolley=(0.75, -3), hvac=(0.8, -4),
                        beeps=(0.2, -8), doors=(0.1, -8), traffic=(0.1, -12), engine=(0.1, -12))),
    "bus": dict(
        background=(-5.5, 120, 8, 0.3), loudness=-26, rt60=(0.2, 0.4, 0.4),
        components=dict(engine=(0.95, 1), traffic=(0.7, -4), babble=(0.5, -6), voice=(0.45, -3),
                        announce=(0.25, -2), beeps=(0.5, -4), doors=(0.4, -2), hvac=(0.4, -6),
                        impacts=(0.3, -6), horn=(0.15, -8), whine=(0.15, -10), music=(0.05, -10))),
    "metro": dict(
        background=(-5.0, 250, 9, 0.35), loudness=-22, rt60=(0.3, 0.6, 0.4),
        components=dict(rail=(0.95, 1), whine=(0.6, -4), squeal=(0.35, -4), babble=(0.5, -6),
                        voice=(0.4, -4), announce=(0.35, -2), beeps=(0.4, -5), doors=(0.35, -3),
                        hvac=(0.2, -8), impacts=(0.2, -6))),
    "metro_station": dict(
        background=(-4.0, 300, 6, 0.25), loudness=-27, rt60=(1.5, 3.0, 0.9),
        components=dict(rail=(0.5, -2), squeal=(0.25, -5), babble=(0.8, -3), voice=(0.4, -4),
                        announce=(0.5, 1), steps=(0.7, -4), impacts=(0.4, -5), trolley=(0.2, -6),
                        beeps=(0.35, -6), doors=(0.25, -5), hvac=(0.6, -5), music=(0.1, -10),
                        whine=(0.3, -6))),
    "park": dict(
        background=(-4.5, 150, 4, 0.3), loudness=-36, rt60=(0.05, 0.15, 0.1),
        components=dict(birds=(0.9, 3), wind=(0.65, 0), traffic=(0.45, -8), babble=(0.25, -9),
                        voice=(0.3, -6), steps=(0.35, -6), water=(0.2, -4), impacts=(0.1, -10),
                        horn=(0.05, -14), music=(0.05, -12))),
    "public_square": dict(
        background=(-4.0, 250, 4, 0.2), loudness=-31, rt60=(0.1, 0.4, 0.25),
        components=dict(babble=(0.7, -4), voice=(0.35, -4), traffic=(0.45, -5), birds=(0.45, -3),
                        steps=(0.5, -5), water=(0.35, -2), wind=(0.3, -4), music=(0.2, -6),
                        impacts=(0.3, -6), trolley=(0.2, -7), horn=(0.1, -9), engine=(0.15, -10))),
    "shopping_mall": dict(
        background=(-3.5, 400, 5, 0.15), loudness=-29, rt60=(0.8, 1.8, 0.7),
        components=dict(babble=(0.9, -2), voice=(0.45, -4), music=(0.6, -3), steps=(0.65, -5),
                        impacts=(0.45, -5), trolley=(0.4, -5), hvac=(0.8, -4), beeps=(0.3, -7),
                        announce=(0.2, -2), water=(0.1, -8))),
    "street_pedestrian": dict(
        background=(-4.0, 300, 4, 0.2), loudness=-30, rt60=(0.1, 0.5, 0.3),
        components=dict(babble=(0.75, -3), voice=(0.45, -3), steps=(0.7, -3), traffic=(0.5, -6),
                        trolley=(0.3, -5), birds=(0.25, -6), impacts=(0.35, -5), music=(0.15, -7),
                        horn=(0.15, -8), wind=(0.2, -5), engine=(0.2, -9))),
    "street_traffic": dict(
        background=(-4.5, 900, 5, 0.35), loudness=-25, rt60=(0.1, 0.4, 0.2),
        components=dict(traffic=(0.95, 2), engine=(0.7, -2), horn=(0.4, -3), babble=(0.25, -8),
                        voice=(0.2, -6), steps=(0.2, -8), birds=(0.1, -8), wind=(0.2, -5),
                        whine=(0.1, -10), impacts=(0.2, -8))),
    "tram": dict(
        background=(-5.0, 180, 7, 0.3), loudness=-25, rt60=(0.2, 0.5, 0.4),
        components=dict(rail=(0.9, -1), whine=(0.7, -3), squeal=(0.5, -3), traffic=(0.35, -6),
                        babble=(0.45, -5), voice=(0.45, -4), announce=(0.3, -2), beeps=(0.45, -5),
                        doors=(0.35, -3), hvac=(0.25, -8), impacts=(0.2, -7), engine=(0.1, -10))),
}
LEVEL_SD_DB = 3.0
LOUDNESS_SD_DB = 3.0


def _logit(p):
    return np.log(p / (1 - p))


@lru_cache(maxsize=4096)
def _location_character(seed, city_idx, location, scene):
    """What makes one recording place itself: colouration, a steady tone, level, and
    habits (component presence and level offsets). Shared by all its segments."""
    rng = np.random.default_rng([seed, 2, city_idx, location])
    recipe = SCENE_RECIPES[scene]
    return dict(
        eq_knots_db=rng.normal(0, 2.0, 6),
        tone=(rng.uniform(80, 4000) if rng.random() < 0.5 else None, rng.uniform(-22, -8)),
        gain_db=rng.normal(0, 3),
        tilt=rng.normal(0, 0.5),
        bump_shift=rng.normal(0, 0.3),
        rt60_scale=float(np.exp(rng.normal(0, 0.2))),
        presence_shift={k: rng.normal(0, 0.5) for k in recipe["components"]},
        level_shift={k: rng.normal(0, 2) for k in recipe["components"]},
    )


@lru_cache(maxsize=64)
def _city_character(seed, city_idx):
    rng = np.random.default_rng([seed, 3, city_idx])
    return dict(formant_shift=float(2 ** rng.normal(0, 0.06)),
                traffic_density=float(np.exp(rng.normal(0, 0.25))))


def _reverb(rng, x, rt60, wet):
    """Circular convolution with an exponentially decaying noise tail (high frequencies
    decaying faster): the clip is a cut from a continuous, stationary recording."""
    n = x.size
    length = min(n, int(rt60 * SR))
    t = np.arange(length) / SR
    ir = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    spec = scipy.fft.rfft(ir, n) * _expand(_lowpass(GRID, 3000.0, 1), n)
    tail = scipy.fft.irfft(scipy.fft.rfft(x.astype(np.float32)) * spec.astype(np.complex64), n)
    return x + wet * tail * (_rms(x) / (_rms(tail) + 1e-12))


def render_source(segment, seed, seconds):
    """The scene as it reaches the microphones (before any device), float64 at 44.1 kHz."""
    # Work on an FFT-friendly length, treated as circular, and keep the first samples.
    length = int(round(seconds * SR))
    n = scipy.fft.next_fast_len(length, real=True)
    city_idx = CITIES.index(segment.city)
    rng = np.random.default_rng([seed, 10] + segment.key)
    recipe = SCENE_RECIPES[segment.scene]
    loc = _location_character(seed, city_idx, segment.location, segment.scene)
    params = _city_character(seed, city_idx)
    c = _Clip(n, rng, segment.city, segment.scene)
    f = c.f

    tilt, bump_hz, bump_db, depth = recipe["background"]
    bg_db = (_tilt_db(f, tilt + loc["tilt"] + rng.normal(0, 0.5)).clip(-50, 15)
             + _bump_db(f, bump_hz * 2 ** (loc["bump_shift"] + rng.normal(0, 0.3)), 1.0,
                        bump_db + rng.normal(0, 2)))
    background = _noise(rng, n, _gain(bg_db) * _highpass(f, 20.0))
    background *= _to_audio_rate(np.exp(depth * _smooth_random(rng, c.n_ctrl, 0.5)), n)

    wet = np.zeros(n)
    dry = background
    for name, (prob, level) in recipe["components"].items():
        p = 1 / (1 + np.exp(-(_logit(prob) + loc["presence_shift"][name])))
        if rng.random() >= p:
            continue
        x = COMPONENTS[name](c, params)
        x = x * _gain(level + loc["level_shift"][name] + rng.normal(0, LEVEL_SD_DB))
        if name in DRY:
            dry = dry + x
        else:
            wet = wet + x
    tone_hz, tone_db = loc["tone"]
    if tone_hz is not None:
        wet = wet + _tone(tone_hz, n, (1.0, 0.3)) * np.sqrt(2) * _gain(tone_db)
    lo, hi, wet_level = recipe["rt60"]
    rt60 = rng.uniform(lo, hi) * loc["rt60_scale"]
    if np.any(wet):
        wet = _reverb(rng, wet, rt60, wet_level)
    x = dry + wet
    knots = np.geomspace(100, 10000, loc["eq_knots_db"].size)
    x = _filter(x, _gain(np.interp(np.log2(np.maximum(f, 1)), np.log2(knots),
                                   loc["eq_knots_db"])))
    loudness = recipe["loudness"] + loc["gain_db"] + rng.normal(0, LOUDNESS_SD_DB)
    x = x[:length]
    x = x * (_gain(loudness) / _rms(x))
    return 0.95 * np.tanh(x / 0.95)      # the rare loud transient saturates softly


# --------------------------------------------------------------------------------------
# Devices (SPEC 5: simulated devices = device-A audio convolved with an impulse response,
# then device-specific dynamic range compression).

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


# --------------------------------------------------------------------------------------
# Writing the dataset.

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
        workers = workers or os.cpu_count() or 1
        with Progress(n_files, f"synth {preset.name}", unit="files",
                      quiet=not progress) as bar:
            with ThreadPoolExecutor(workers) as pool:
                futures = [pool.submit(_render_segment, s, seed, preset.clip_seconds,
                                       tmp / "audio") for s in segments]
                try:
                    for fut in as_completed(futures):
                        bar.update(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
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


# --------------------------------------------------------------------------------------
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
    except (OSError, ValueError):
        return False
    if marker.get("version") != SYNTH_VERSION:
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
