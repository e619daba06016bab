"""The one random generator behind dropout, initialisation and anything else stochastic.

`manual_seed` makes a run repeatable; `get_state` / `set_state` give a JSON-friendly
snapshot so a checkpoint can resume the exact stream.
"""
import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator():
    return _generator


def get_state():
    return _generator.bit_generator.state


def set_state(state):
    _generator.bit_generator.state = state
