"""`lavin --progress-json FILE|fd:N COMMAND ...`: progress for wrappers, as ffmpeg's -progress.

One JSON object per line, flushed as written:

    {"event": "start", "command": "run", "argv": [...], "t": 0.0}
    {"event": "progress", "stage": "sampling", "label": "sampling", "done": 3, "total": 11, "t": 1.52}
    {"event": "written", "index": 0, "query": "a.png", "output": "out/a.png", "t": 2.1}
    {"event": "failed", "index": 1, "query": "b.png", "error": "...", "t": 2.1}
    {"event": "end", "exit_code": 0, "t": 2.4}

`t` is seconds since the start. A stage's updates come at most every 0.2 s, its last one always.
The stream never stops the command: if it cannot be written, a warning says so once and the
command goes on without it.
"""

from __future__ import annotations

import json
import os
import time
from typing import IO, Optional

from lavin_cli.errors import UsageError

THROTTLE_S = 0.2


class _Stream:
    def __init__(self) -> None:
        self.file: Optional[IO[str]] = None
        self.start = time.monotonic()
        self.last: dict[str, float] = {}


_stream = _Stream()


def open_stream(spec: str, argv: list[str], command: str | None) -> None:
    """FILE (created or truncated) or fd:N (a descriptor the caller opened, e.g. 3>progress)."""
    try:
        if spec.startswith("fd:"):
            _stream.file = os.fdopen(int(spec[3:]), "w", buffering=1, closefd=False)
        else:
            _stream.file = open(spec, "w", buffering=1, encoding="utf-8")
    except (ValueError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"--progress-json {spec}: cannot write there ({reason}); give a file or fd:N") from None
    _stream.start, _stream.last = time.monotonic(), {}
    emit("start", command=command, argv=argv)


def active() -> bool:
    return _stream.file is not None


def emit(event: str, **fields) -> None:
    if _stream.file is None:
        return
    line = {"event": event, **fields, "t": round(time.monotonic() - _stream.start, 3)}
    try:
        _stream.file.write(json.dumps(line, default=str) + "\n")
    except (OSError, ValueError):
        _stream.file = None
        from lavin_cli.cli.console import warn

        warn("--progress-json: the stream cannot be written any more; going on without it")


def progress(stage: str, label: str, done: int, total: int, extra: str = "") -> None:
    """A progress update, throttled per stage (the last one of a stage always goes out)."""
    if _stream.file is None:
        return
    now = time.monotonic()
    if now - _stream.last.get(stage, -1.0) < THROTTLE_S and not (total and done >= total):
        return
    _stream.last[stage] = now
    emit("progress", stage=stage, label=label, done=done, total=total, **({"extra": extra} if extra else {}))


def close(exit_code: int) -> None:
    if _stream.file is None:
        return
    emit("end", exit_code=exit_code)
    try:
        _stream.file.close()
    except OSError:
        pass
    _stream.file = None
