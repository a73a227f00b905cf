"""Progress on stderr, one helper for every command: Rich bars on a terminal; off a terminal (a
log file, a batch job) a plain line every few seconds, like ffmpeg's stats; nothing with -q.

    with Progress(enabled=not quiet) as progress:
        progress.update("query", "queries", done, total)          # any number of named bars
"""

from __future__ import annotations

import time

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress

from lavin_cli.cli import progress_stream
from lavin_cli.cli.console import err, log

PLAIN_INTERVAL_S = 10.0  # off a terminal: at most one line per bar this often


class Progress:
    """Bars keyed by name; `units` is "items" (done/total) or "bytes" (sizes and speed)."""

    def __init__(self, enabled: bool = True, units: str = "items", interval: float | None = None):
        self.enabled, self.units = enabled, units
        self.interval = PLAIN_INTERVAL_S if interval is None else interval
        self.terminal = enabled and err.is_terminal
        self._rich: RichProgress | None = None
        self._tasks: dict[str, int] = {}
        self._plain: dict[str, list] = {}  # key -> [label, done, total, extra, start time, start done]
        self._last_line = time.monotonic()

    def __enter__(self) -> "Progress":
        if self.terminal:
            self._rich = RichProgress(*self._columns(), console=err, transient=False)
            self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)

    def _columns(self):
        if self.units == "bytes":
            return (TextColumn("{task.description:<28}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn())
        return (TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(), TimeRemainingColumn())

    def update(self, key: str, label: str, done: int, total: int, extra: str = "") -> None:
        progress_stream.progress(key, label, done, total, extra)  # --progress-json, even with -q
        if not self.enabled:
            return
        if self._rich is not None:
            if key not in self._tasks:
                self._tasks[key] = self._rich.add_task(label, total=total, extra=extra)
            self._rich.update(self._tasks[key], completed=done, total=total, extra=extra)
            return
        now = time.monotonic()
        state = self._plain.setdefault(key, [label, done, total, extra, now, done])
        state[1:4] = [done, total, extra]
        if now - self._last_line >= self.interval:
            self._last_line = now
            log("; ".join(self._describe(state, now) for state in self._plain.values()))
            for key in [k for k, st in self._plain.items() if st[2] and st[1] >= st[2]]:
                del self._plain[key]  # a finished bar is said once

    def _describe(self, state: list, now: float) -> str:
        """'label 3/8 (0.52/s)'; the rate only once it has been measured, 'done' at the end."""
        label, done, total, extra, start, first = state
        rate = (done - first) / max(now - start, 1e-9)
        if self.units == "bytes":
            text = f"{label} {done / 1e6:.1f}/{total / 1e6:.1f} MB"
            speed = f" ({rate / 1e6:.2f} MB/s)"
        else:
            text, speed = f"{label} {done}/{total}", f" ({rate:.2f}/s)"
        tail = " done" if total and done >= total else speed if done > first else ""
        return text + tail + (f" {extra}" if extra else "")
