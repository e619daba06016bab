"""Checks of values read from outside: the command line, config.json, checkpoint metadata.

Each check raises a TinyAscError whose one line names the value and what to pass instead,
before anything is allocated from the value. The limits are what the code can use, with
the reason beside each.
"""
import math

import numpy as np

from tinyasc.errors import TinyAscError

SEED_MAX = 2 ** 32 - 1  # seeds are drawn into NumPy's SeedSequence; 32 bits is the portable range

# The number of frequency bins the models see, and the sub-band counts SubSpectralNorm can
# split every stage of BC-ResNet(-Mod) into: the last stage has 256 / 8 = 32 bins.
NUM_BINS = 256
SUBBANDS = (1, 2, 4, 8, 16, 32)

# Widest model tinyasc builds per architecture: four times Table 2's widest (BC-ResNet-Mod-8's
# c = 80, BC-ResNet-8's tau = 8, CP-ResNet's c = 64), a few million parameters at most. Wider
# ones need gigabytes per training batch and fail with MemoryError part-way.
MAX_WIDTH = {"bcresnet-mod": 320, "bcresnet": 32, "cpresnet": 256}

# Fewest frames (30 ms each) each architecture's strides and pools leave at least one frame of;
# tests/test_reliability.py checks each against the model.
MIN_FRAMES = {"bcresnet-mod": 7, "bcresnet": 1, "cpresnet": 17}
MAX_FRAMES = 100_000  # 50 minutes of audio in one clip


def check_seed(seed, option="--seed"):
    """A seed must be an integer in 0..2^32 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise TinyAscError(f"{option} must be an integer from 0 to {SEED_MAX}, got {seed!r}")
    return int(seed)


def parse_number(text, kind, option=None):
    """kind(text) (int or float) for a number given as text, refusing what tinyasc never writes:
    Python's int() and float() also read other scripts' digits ('\u0663\u0664' as 34). The
    error names `option` if given."""
    text = str(text).strip()
    try:
        if text.isascii():
            return kind(text)
    except ValueError:
        pass
    what = "an integer" if kind is int else "a number"
    if not text.isascii():
        what += " written with the ASCII digits 0-9"
    raise TinyAscError(f"{option + ': ' if option else ''}{text!r} is not {what}")


def check_int(value, option, low, high=None, why=""):
    """An integer in low..high (high None: no upper limit)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TinyAscError(f"{option} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        span = f"at least {low}" if high is None else f"from {low} to {high}"
        raise TinyAscError(f"{option} must be {span}, got {value}" + (f" ({why})" if why else ""))
    return int(value)


def check_finite(value, option):
    """A float that is neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TinyAscError(f"{option} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise TinyAscError(f"{option} must be a finite number, got {value}")
    return value


def check_frames(frames, arch, what):
    """`what` (a clip, --frames) has enough frames for `arch`, and not absurdly many."""
    low = MIN_FRAMES[arch]
    if frames < low:
        raise TinyAscError(f"{what}: {frames} frame(s) ({frames * 0.03:.2f} s) is too short for --arch {arch}, "
                           f"which needs at least {low} frames ({low * 0.03:.2f} s); use longer clips")
    if frames > MAX_FRAMES:
        raise TinyAscError(f"{what}: {frames} frames ({frames * 0.03 / 60:.0f} min) in one clip is more than "
                           f"tinyasc handles ({MAX_FRAMES}); cut the audio into shorter clips")
    return frames


def first_nonfinite(arrays):
    """(name, what) of the first float array holding NaN or infinity, or None."""
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            what = "NaN" if np.isnan(array).any() else "infinity"
            return name, what
    return None
