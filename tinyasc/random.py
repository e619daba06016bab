"""The one random generator behind dropout, initialisation and anything else stochastic.

`manual_seed` makes a run repeatable; `get_state` / `set_state` give a JSON-friendly
snapshot so a checkpoint can resume the exact stream.
"""
import numpy as np

_generator = np.random.default_rng(0)

# The bits of each integer in a PCG64 state (default_rng's generator): NumPy refuses others only
# with an OverflowError that names nothing, or (has_uint32 of 7) takes them as they come.
STATE_BITS = {"state": 128, "inc": 128, "has_uint32": 1, "uinteger": 32}


def manual_seed(seed):
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator():
    return _generator


def get_state():
    return _generator.bit_generator.state


def set_state(state):
    """Resume the stream of a get_state() snapshot; one read from a file is checked first
    (a ValueError says what is wrong with it)."""
    _check_state(state, get_state(), "random state")
    _generator.bit_generator.state = state


def _check_state(value, like, where):
    """`value` has the form of `like` (this generator's own state): the same keys and names,
    and whole numbers within their bits."""
    if isinstance(like, dict):
        if not isinstance(value, dict) or set(value) != set(like):
            raise ValueError(f"{where} must have exactly the keys {sorted(like)}, got {value!r:.100}")
        for key in like:
            _check_state(value[key], like[key], f"{where}.{key}")
    elif isinstance(like, str):
        if value != like:
            raise ValueError(f"{where} is {value!r:.100}, not {like!r}")
    else:
        bits = STATE_BITS.get(where.rsplit(".", 1)[-1], 64)
        if type(value) is not int or not 0 <= value < 2 ** bits:  # not a bool, a float or a string
            raise ValueError(f"{where} is {value!r:.100}, not a whole number from 0 to 2**{bits} - 1")
