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

from lavin_cli.cli.console import err, log

PLAIN_INTERVAL_S = 10.0  # off a terminal: at most one line per bar this often


class Progress:
    """Bars keyed by name; `units` is "items" (done/total) or "bytes" (sizes and speed)."""

    def __init__(self, enabled: bool = True, units: str = "items", main: str | None = None,
                 interval: float = PLAIN_INTERVAL_S):
        self.enabled, self.units, self.main, self.interval = enabled, units, main, interval
        self.terminal = enabled and err.is_terminal
        self._rich: RichProgress | None = None
        self._tasks: dict[str, int] = {}
        self._plain: dict[str, tuple[float, int]] = {}  # key -> (time, done) of its first update
        self._last_line = 0.0

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
        if not self.enabled:
            return
        if self._rich is not None:
            if key not in self._tasks:
                self._tasks[key] = self._rich.add_task(label, total=total, extra=extra)
            self._rich.update(self._tasks[key], completed=done, total=total, extra=extra)
            return
        self._plain_line(key, label, done, total, extra)

    def _plain_line(self, key: str, label: str, done: int, total: int, extra: str) -> None:
        now = time.monotonic()
        start, first = self._plain.setdefault(key, (now, done))
        if self.main is not None and key != self.main:
            return  # off a terminal only the main bar speaks
        if now - max(self._last_line, start) < self.interval:
            return
        self._last_line = now
        rate = (done - first) / max(now - start, 1e-9)
        amount = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if self.units == "bytes" else f"{done}/{total}"
        speed = f"{rate / 1e6:.2f} MB/s" if self.units == "bytes" else f"{rate:.2f}/s"
        log(f"{label} {amount} ({speed}{', ' + extra if extra else ''})")
