"""Errors a user can act on.

Anything raised as a `TinyAscError` is a problem with the user's input or environment, not
a bug: the CLI prints its one-line message and exits with code 1, without a traceback.
"""


class TinyAscError(Exception):
    """Base class of every error whose message tells the user what to do."""


class DataError(TinyAscError):
    """A dataset, audio file or feature cache cannot be used as it is."""
