"""The nineteen sound components of the synthetic scenes: traffic, engines, rails, voices,
babble, announcements, music, footsteps, birds, wind, ...

Part of tinyasc's synthetic stand-in for TAU Urban Acoustic Scenes 2020 Mobile; not part
of the paper's method. Each `comp_*` function draws one component for one clip from the
clip's own generator and returns a unit-scale signal of c.n samples; the scene recipes
(scenes.py) decide which components a scene has and at what level. Every component occurs
in several scenes, so no single sound decides the class.
"""
import numpy as np
import scipy.fft

from tinyasc.data.synth.dsp import (CTRL, GRID, HOP, _add, _bump_db, _decay, _expand, _filter, _gain,
                                    _highpass, _lowpass, _noise, _pulses, _rms, _smooth_random, _tilt_db,
                                    _to_audio_rate, _tone, _unit, _window)
from tinyasc.data.synth.plan import SR


class _Clip:
    """What a component generator needs: length, frequency grid, generator, scene."""

    def __init__(self, n, rng, scene):
        self.n = n
        self.rng = rng
        self.f = GRID
        self.seconds = n / SR
        self.n_ctrl = -(-n // HOP) + 1
        self.scene = scene
        self.inside_vehicle = scene in ("bus", "metro", "tram")

    def events(self, rate_per_s, minimum=0):
        return max(minimum, int(self.rng.poisson(rate_per_s * self.seconds)))

    def onset(self, length=0):
        # onsets may fall before the start: the clip is cut from a longer recording
        return int(self.rng.uniform(-0.3 * length, self.n - 0.3 * length))


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
