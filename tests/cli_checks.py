"""What a command that refuses bad input must print: shared by the reliability tests."""


def one_line_error(result, *needles):
    """The command failed with exactly one `error:` line holding every needle, and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an unhandled exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert str(needle) in errors[0], (needle, errors[0])
    return errors[0]
