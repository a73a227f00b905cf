"""Writing a run's results as they arrive: each output atomically the moment its prediction is
done, its record entry beside it; at the end (or at an interrupt) the record and a summary.

A prediction that failed, or whose output cannot be written, fails alone: the others go on, and
the exit code says so (7 when some failed, the failure's own code when all did).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.cli import signals
from lavin_cli.cli.console import log, message, out
from lavin_cli.errors import LavinError, PartialFailure


class Results:
    def __init__(self, record_path: Optional[Path], as_json: bool, overwrite: bool, quiet: bool):
        self.record_path, self.as_json, self.overwrite, self.quiet = record_path, as_json, overwrite, quiet
        self.header: dict = {}
        self.entries: list[dict] = []
        self.failures: list[tuple[str, int]] = []  # (message, exit code)

    def add(self, prediction, write: Callable[[object, dict], None]) -> None:
        """Write one prediction's outputs (`write(prediction, entry)` fills in what it wrote); an
        interrupt waits until the outputs and the entry agree."""
        with signals.deferred():
            entry = prediction.entry
            if prediction.error:
                self._failed(prediction.error, prediction.code or 1)
            else:
                try:
                    write(prediction, entry)
                except LavinError as error:
                    entry["error"] = message(error)
                    self._failed(entry["error"], error.exit_code)
            self.entries.append(entry)

    def _failed(self, text: str, code: int) -> None:
        self.failures.append((text, code))
        log(f"failed: {text}", style="red")

    def record(self, timings: dict, stopped: Optional[str] = None) -> dict:
        record = {**self.header, "timings": {**self.header.get("timings", {}), **timings}}
        if stopped:
            record["interrupted" if stopped in ("SIGINT", "SIGTERM") else "stopped"] = stopped
        record["queries"] = self.entries
        return record

    def finish(self, timings: dict, stopped: Optional[BaseException] = None, noun: str = "prediction(s)") -> None:
        """Write the record, print the summary, and end with the right exit code (when the run was
        `stopped` by an interrupt or an error, its caller re-raises that)."""
        from lavin_cli.io.files import write_atomic

        why = None
        if isinstance(stopped, KeyboardInterrupt):
            why = str(stopped) or "SIGINT"
        elif stopped is not None:
            why = message(stopped)
        with signals.deferred():
            text = json.dumps(self.record(timings, why), indent=2)
            if self.record_path:
                write_atomic(self.record_path, text.encode() + b"\n", self.overwrite)
            if self.as_json:
                out.print_json(text) if out.is_terminal else print(text, flush=True)
        done = len(self.entries) - len(self.failures)
        if not self.quiet or (stopped is not None and done):
            tail = f", {len(self.failures)} failed" if self.failures else ""
            ending = f"; interrupted ({why})" if isinstance(stopped, KeyboardInterrupt) else "; stopped" if why else ""
            log(f"{done} {noun} written{tail}{ending}")
        if stopped is not None:
            return
        if self.failures and not done:
            raise SystemExit(self.failures[0][1])
        if self.failures:
            raise PartialFailure(f"{len(self.failures)} of {len(self.entries)} queries failed")
