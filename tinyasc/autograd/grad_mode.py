"""Gradient mode: whether new operations record themselves in the graph.

`no_grad()` is what evaluation and the optimizer's update run under, so that
neither builds a graph nobody will walk backwards.
"""
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


def set_grad_enabled(enabled):
    _state.enabled = bool(enabled)


class no_grad:
    """Context manager (and decorator) that turns graph recording off."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper


class enable_grad(no_grad):
    """Turns recording back on inside a `no_grad` block."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(True)
        return self
