"""Typed errors. Each carries the exit code the CLI uses and a one-line message for the user.

Exit codes (documented in README and man/lavin.1):
    0  success
    1  internal error (a bug: please report it)
    2  usage error (bad option or argument; Typer's own code)
    3  bad input file or folder (missing, unreadable, wrong format)
    4  model or checkpoint problem (unknown model, wrong or corrupt weights)
    5  device problem (CUDA requested but absent, out of memory)
    6  output problem (exists without --overwrite, not writable)
    7  some items of a batch failed, the others were written
"""

from __future__ import annotations


class LavinError(Exception):
    """Base class: `str(err)` is one line that names the problem and, where known, the fix."""

    exit_code = 1


class UsageError(LavinError):
    """An invalid option value (size, steps, pairs, ...)."""

    exit_code = 2


class ConfigError(UsageError):
    """An impossible model configuration."""


class InputError(LavinError):
    exit_code = 3


class CheckpointError(LavinError):
    """Missing, unexpected or mis-shaped weights, unsafe or unreadable checkpoint files."""

    exit_code = 4


class DeviceError(LavinError):
    exit_code = 5


class OutputError(LavinError):
    exit_code = 6


class PartialFailure(LavinError):
    exit_code = 7
