"""SIGINT and SIGTERM for the CLI: both stop the run the same clean way (finished outputs kept,
the record written, exit 130 or 143), and never in the middle of writing one item.

    with signals.installed():          # in main(), around the whole command
        ...
        with signals.deferred():       # writing one output and its record entry
            ...                        # a signal arriving here is raised when the block ends
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 130)


class _State:
    received: int | None = None  # the first signal of this run
    pending: int | None = None  # arrived inside a deferred block
    depth = 0


_state = _State()


def _handler(signum, frame) -> None:
    _state.received = _state.received or signum
    if _state.depth:
        _state.pending = _state.pending or signum
        return
    raise Interrupted(signum)


def received() -> int | None:
    return _state.received


@contextmanager
def installed():
    """Handle SIGINT and SIGTERM for the duration (main thread only; elsewhere a no-op)."""
    _state.received = _state.pending = None
    try:
        previous = {s: signal.signal(s, _handler) for s in EXIT_CODES}
    except ValueError:  # not the main thread (lavin embedded in another program): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def deferred():
    """A block that a signal does not cut in two: the signal is raised when the block ends."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _state.pending:
            signum, _state.pending = _state.pending, None
            raise Interrupted(signum)
