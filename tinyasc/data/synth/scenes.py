"""Scene recipes and the scene as it reaches the microphones, before any device.

Part of tinyasc's synthetic stand-in for TAU Urban Acoustic Scenes 2020 Mobile; not part
of the paper's method. A scene is a background texture plus foreground components
(sounds.py), each present with a scene-specific probability at a random level, the
foreground through the room's reverberation. A location (a recording place inside a city)
adds its own coloration, a steady tone, level and habits; train and test use different
locations, as TAU does.
"""
from functools import lru_cache

import numpy as np
import scipy.fft

from tinyasc.data.synth.dsp import (GRID, _bump_db, _expand, _filter, _gain, _highpass, _lowpass, _noise,
                                    _rms, _smooth_random, _tilt_db, _to_audio_rate, _tone)
from tinyasc.data.synth.plan import SR
from tinyasc.data.synth.sounds import COMPONENTS, DRY, _Clip
from tinyasc.data.tau import CITIES

# Scene recipes. background: (tilt dB/oct mean, bump centre Hz, bump dB, modulation depth);
# loudness: mean RMS in dBFS (sd LOUDNESS_SD_DB); rt60: reverberation time range in s (wet
# level); components: name -> (probability present, level in dB relative to the background).
# Every component appears in several scenes; levels have a LEVEL_SD_DB spread on top.
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
    c = _Clip(n, rng, segment.scene)
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
