"""Settings saved as config.json in a run folder: one dataclass per kind of run (the classifier's
TrainConfig, the translator's TranslatorConfig), each field carrying its command-line option.

The command line builds its options from these fields (tinyasc/cli.py, `config_options`), so a
default, a choice list or a help text is written once, beside the setting it belongs to.
"""
import dataclasses
import json

from tinyasc.errors import TinyAscError
from tinyasc.fileio import json_problem

# The synthetic presets by name (tinyasc.data.synth.PRESETS holds their sizes; a test checks the
# two agree). Named here so the command line need not import the generator to list them.
PRESET_NAMES = ("tiny", "default", "full")


def setting(default, help, **option):
    """A dataclass field with what its command-line option needs, kept in the field's metadata.

    option keys (all optional): option (the option's name when it is not --field-name),
    choices, path (the value is a file or folder), flag_value (the option is a flag that sets
    this value), multiple (repeatable; the values are joined with commas), by_arch (the default
    depends on --arch: this table), command (the option belongs to that command, not to the
    one the config is for).
    """
    return dataclasses.field(default=default, metadata={"help": help, **option})


def read_json_object(path, what, fix):
    """The JSON object in `path` (a config.json), or a one-line error saying what is wrong and `fix`."""
    try:
        values = json.loads(path.read_text())
    except (ValueError, RecursionError) as exc:  # also: not UTF-8, nested too deeply, a 5,000-digit number
        raise TinyAscError(f"{path}: not valid JSON ({json_problem(exc)}); {fix}") from None
    if not isinstance(values, dict):
        raise TinyAscError(f"{path}: expected a JSON object of {what}; {fix}")
    return values


class JsonConfig:
    """to_json / from_dict for a settings dataclass saved as config.json."""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TinyAscError(f"config has unknown keys {sorted(unknown)}; was it written by another version?")
        return cls(**values)

    @classmethod
    def from_saved(cls, values, source, fix):
        """The settings read back from a file (a config.json, a checkpoint's metadata), checked: every
        setting present (a default filled in for a missing one could silently change the model) and
        valid (`validate`). Errors are one line naming `source` and ending with `fix`."""
        missing = sorted({f.name for f in dataclasses.fields(cls)} - set(values))
        if values.get("data") == "":  # saved before an empty --data was refused: it meant the default
            values = {**values, "data": None}
        try:
            if missing:
                raise TinyAscError(f"missing settings {missing}")
            return cls.from_dict(values).validate()
        except TinyAscError as exc:
            raise TinyAscError(f"{source}: {exc}; {fix}") from None
