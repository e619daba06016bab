"""The `tinyasc` command: a thin click layer over functions you can call from Python.

Errors a user can fix (`TinyAscError`) print one line and exit with code 1; anything
else is a bug and keeps its traceback.
"""
import functools
import sys

import click

from tinyasc.errors import TinyAscError


def friendly_errors(fn):
    """Turn TinyAscError into `error: <message>` on stderr and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TinyAscError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tinyasc")
def main():
    """tinyasc: Residual Normalization for device-imbalanced acoustic scene classification,
    from scratch in NumPy and Numba (DCASE2021 Task 1A, Kim et al.)."""


@main.command()
@click.option("--select", "-k", default=None, help="Only checks whose name contains this text.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--no-full", is_flag=True, help="Skip the full-Jacobian mode (directional checks only).")
@friendly_errors
def gradcheck(select, seed, no_full):
    """Check every op's and layer's backward against float64 central differences.

    Prints one line per check (name, mode, max error, pass/fail) and a summary; exits
    non-zero if any check fails.
    """
    from tinyasc.testing import catalog

    failed = total = 0
    for result in catalog.run(select=select, seed=seed, full=not no_full):
        total += 1
        failed += not result.passed
        click.echo(result.line())
    if total == 0:
        raise TinyAscError(f"no gradient check matches --select {select!r}; run without it to list them all")
    click.echo(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
