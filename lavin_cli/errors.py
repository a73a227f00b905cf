"""Typed errors. Each carries the exit code the CLI uses and a one-line message for the user.

Exit codes (documented in README and man/lavin.1):
    0  success
    1  internal error (a bug: please report it)
    2  usage error (bad option or argument)
    3  bad input file or folder (missing, unreadable, wrong format, too large)
    4  model or checkpoint problem (unknown model, wrong or corrupt weights, non-finite output)
    5  device problem (CUDA requested but absent, out of memory)
    6  output problem (exists without --overwrite, not writable, disk full)
    7  some items of a batch failed, the others were written
    8  the lavin server (--server) could not be reached, or broke off mid-request
  130  interrupted (SIGINT); 143 terminated (SIGTERM); finished outputs are kept
  141  the reader of stdout went away (a closed pipe, as `| head`): nothing is said, as Unix tools do

Messages speak of options by name, written `{{steps}}` or `{{offload=sequential}}` in the
source: `str(error)` shows them as Python keywords (`steps`, `offload='sequential'`), and the CLI
as flags (`--steps`, `--offload sequential`) through `error.render(flag_style)`.
"""

from __future__ import annotations

import re
from typing import Callable

_OPTION = re.compile(r"\{\{(\w+)(?:=([^}]*))?\}\}")
OptionStyle = Callable[[str, "str | None"], str]


def python_style(name: str, value: str | None) -> str:
    """`steps`, `steps=20`, `offload='sequential'`, `overwrite=True`."""
    if value is None:
        return name
    bare = value in ("True", "False", "None") or re.fullmatch(r"-?[0-9.e+]+", value)
    return f"{name}={value}" if bare else f"{name}={value!r}"


def render(text: str, style: OptionStyle = python_style) -> str:
    """A message with its option references (`{{steps}}`) written in `style`."""
    return _OPTION.sub(lambda m: style(m.group(1), m.group(2)), text)


class LavinError(Exception):
    """Base class: `str(err)` is one line that names the problem and, where known, the fix."""

    exit_code = 1
    silent = False  # stops the run without a message (a closed pipe)

    def __init__(self, message: str = "", *, option: str | None = None):
        super().__init__(message)
        self.option = option  # the option at fault, for usage errors

    def render(self, style: OptionStyle = python_style) -> str:
        return render(str(self.args[0]) if self.args else "", style)

    def __str__(self) -> str:
        return self.render()


class UsageError(LavinError):
    """An invalid option value (size, steps, pairs, ...)."""

    exit_code = 2


class OptionError(UsageError):
    """One option's value is wrong: the message starts with the option's name."""

    def __init__(self, option: str, problem: str):
        super().__init__(f"{{{{{option}}}}} {problem}", option=option)


class ConfigError(UsageError):
    """An impossible model configuration."""


class UnknownTask(UsageError):
    """--task names no task folder of the model, of examples/ (or of the server's allowed folders)."""


class InputError(LavinError):
    exit_code = 3


class TooLarge(InputError):
    """An input above a limit (pixels, frames, bytes, queries): refused before it is decoded."""


class CheckpointError(LavinError):
    """Missing, unexpected or mis-shaped weights, unsafe or unreadable checkpoint files."""

    exit_code = 4


class DeviceError(LavinError):
    exit_code = 5


class OutputError(LavinError):
    exit_code = 6


class PartialFailure(LavinError):
    exit_code = 7


class ServerError(LavinError):
    """`--server`: the lavin server cannot be reached, refused the token, or broke off."""

    exit_code = 8


class BrokenPipe(OutputError):
    """The reader of stdout closed it (`lavin run -o - | head -c 10`): the run stops, quietly."""

    exit_code = 141
    silent = True
