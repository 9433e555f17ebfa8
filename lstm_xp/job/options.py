"""Errors about named options, spelled the way the user typed them.

The same bad value can come from Python (``TrainConfig(batch_size=0)``) or from a command
line (``--batch-size 0``); the message should name it as the user wrote it. A
:class:`ConfigError` keeps its message as a template whose option names are filled in
late: ``str(err)`` spells them as Python fields, ``err.render(flag)`` as flags.

    >>> err = ConfigError("batch_size", "{name} must be a positive integer, got {got!r}", got=0)
    >>> str(err)
    'batch_size must be a positive integer, got 0'
    >>> err.render(flag)
    '--batch-size must be a positive integer, got 0'
"""

from __future__ import annotations

import math
import numbers


def python_name(option: str) -> str:
    return option


def flag(option: str) -> str:
    """The command-line spelling of a config field: ``batch_size`` -> ``--batch-size``."""
    return "--" + option.replace("_", "-")


class _Spelled(dict):
    def __init__(self, spell):
        super().__init__()
        self.spell = spell

    def __missing__(self, option):
        return self.spell(option)


class ConfigError(ValueError):
    """A bad option value. ``template`` names the option as ``{name}`` and any other option
    as ``{opt[other_name]}``; ``values`` fill the rest of it."""

    def __init__(self, option: str, template: str, **values):
        self.option, self.template, self.values = option, template, values
        super().__init__(self.render(python_name))

    def __reduce__(self):             # picklable (it crosses MPI ranks): rebuilt, not re-parsed
        return (_rebuild, (self.option, self.template, self.values))

    def render(self, spell) -> str:
        """The message with every option name spelled by ``spell`` (e.g. :func:`flag`)."""
        return self.template.format(name=spell(self.option), opt=_Spelled(spell),
                                    **self.values)


def _rebuild(option, template, values) -> ConfigError:
    return ConfigError(option, template, **values)


def require(ok: bool, option: str, expected: str, got) -> None:
    """ConfigError "<option> must be <expected>, got <got>" unless ``ok``."""
    if not ok:
        raise ConfigError(option, "{name} must be {expected}, got {got!r}",
                          expected=expected, got=got)


def is_real(value) -> bool:
    """A finite real number (bool excluded)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def positive_int_option(option: str, value) -> int:
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    require(is_int and value >= 1, option, "a positive integer", value)
    return int(value)


def not_for_task(option: str, task: str, takers) -> ConfigError:
    """The one error for an option given to a task that does not take it."""
    which = (f"the {takers[0]} task" if len(takers) == 1
             else "the tasks " + ", ".join(takers))
    return ConfigError(option, "{name} applies only to {which}, not to {task!r}",
                       which=which, task=task)
