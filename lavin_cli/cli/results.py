"""Writing a run's results as they arrive: each output atomically the moment its prediction is
done, and its line in the record beside it; at the end (or at an interrupt) a summary.

The record (--record FILE) is JSON Lines, written as the run goes: a "run" line (model, hashes,
options), one "query" line per query, flushed as soon as its output is on disk, and an "end"
line. A killed run's record is valid up to its last line; a resumed run (--skip-existing)
appends to it. Under torchrun each rank writes FILE.rank<N> and rank 0 joins them at the end.
--json prints one document (the run fields, "queries", "end") on stdout instead.

A prediction that failed, or whose output cannot be written, fails alone: the others go on, and
the exit code says so (7 when some failed, the failure's own code when all did).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.cli import progress_stream, signals
from lavin_cli.cli.console import log, message, out, report, warn
from lavin_cli.errors import BrokenPipe, LavinError, OutputError, PartialFailure
from lavin_cli.io.files import describe_os_error


class RecordFile:
    """A JSON Lines file written line by line (each line flushed), appended to on resume."""

    def __init__(self, path: Path, append: bool):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a" if append else "w")
        except OSError as exc:
            raise OutputError(f"{path}: could not be written ({describe_os_error(exc)})") from None

    def write(self, line: dict) -> None:
        try:
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()
        except OSError as exc:
            raise OutputError(f"{self.path}: could not be written ({describe_os_error(exc)})") from None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass


def auxiliary(entry: dict, key: str, path: Path, write: Callable[[], None]) -> None:
    """Write a file beside the main output (the --grid picture): where that fails, the main
    output stays written and counted, and the entry says why the other is missing."""
    try:
        write()
    except LavinError as error:
        entry[f"{key}_error"] = message(error)
        entry.setdefault("warnings", []).append(f"{path}: not written ({message(error)}); the prediction itself is")
        return
    entry[key] = str(path)


def _announce(entry: dict) -> None:
    """The item's outcome on the --progress-json stream."""
    query = {"index": entry.get("index"), "query": entry.get("query")}
    if entry.get("error"):
        progress_stream.emit("failed", **query, error=entry["error"])
    elif entry.get("skipped"):
        progress_stream.emit("kept", **query, output=entry.get("output"))
    elif entry.get("output"):
        progress_stream.emit("written", **query, output=entry["output"])


class Results:
    def __init__(self, record_path: Optional[Path], as_json: bool, quiet: bool, append: bool = False,
                 skip: frozenset[int] = frozenset(), outputs: Optional[list[str]] = None, keep_existing: bool = False):
        self.record_path, self.as_json, self.quiet, self.append = record_path, as_json, quiet, append
        self.skip = skip  # positions whose outputs exist already (resume): recomputed, not written again
        self.outputs = outputs or []  # every position's output, for messages
        self.keep_existing = keep_existing  # --skip-existing: an output that exists counts as done
        self.header: dict = {}
        self.entries: list[dict] = []
        self.failures: list[tuple[str, int]] = []  # (message, exit code)
        self.file: Optional[RecordFile] = None

    def start(self, header: dict) -> None:
        self.header = header
        if self.record_path:
            self.file = RecordFile(self.record_path, self.append)
            self.file.write({"type": "run", **header, **({"resumed": True} if self.append else {})})

    def add(self, prediction, write: Callable[[object, dict], None]) -> None:
        """Write one prediction's outputs (`write(prediction, entry)` fills in what it wrote) and
        its record line; an interrupt waits until outputs and record agree."""
        with signals.deferred():
            entry = {"index": prediction.index, **prediction.entry}
            if prediction.error:
                exception = getattr(prediction, "exception", None)
                entry["error"] = message(exception) if exception is not None else prediction.error
                self._failed(entry["error"], prediction.code or 1)
            elif prediction.index in self.skip or (getattr(prediction, "skipped", False) and self.keep_existing):
                entry["skipped"] = "exists"
            elif getattr(prediction, "skipped", False):  # its output appeared during the run, written by another
                entry["error"] = f"{self.outputs[prediction.index]} exists (written during this run by another process); " \
                                 "pass --overwrite to replace it"
                self._failed(entry["error"], OutputError.exit_code)
            else:
                try:
                    write(prediction, entry)
                except BrokenPipe:  # nobody reads the outputs any more: the run stops
                    raise
                except LavinError as error:
                    entry["error"] = message(error)
                    self._failed(entry["error"], error.exit_code)
            if not self.quiet:
                for text in entry.get("warnings", []):
                    warn(text)
            _announce(entry)
            self.entries.append(entry)
            if self.file is not None:
                self.file.write({"type": "query", **entry})

    def kept(self, index: int, query: str) -> None:
        """The record line of an output that exists already and is kept (--skip-existing)."""
        entry = {"index": index, "query": query, "output": self.outputs[index], "skipped": "exists"}
        self.entries.append(entry)
        if self.file is not None:
            self.file.write({"type": "query", **entry})

    def _failed(self, text: str, code: int) -> None:
        self.failures.append((text, code))
        log(f"failed: {text}", style="red")

    @property
    def written(self) -> int:
        return sum(1 for e in self.entries if "output" in e and not e.get("error") and not e.get("skipped"))

    def end_line(self, timings: dict, stopped: Optional[str]) -> dict:
        line = {"type": "end", "written": self.written, "failed": len(self.failures),
                "skipped": sum(1 for e in self.entries if e.get("skipped")),
                "timings": {**self.header.get("timings", {}), **timings}}
        if stopped:
            line["interrupted" if stopped in ("SIGINT", "SIGTERM") else "stopped"] = stopped
        return line

    def finish(self, timings: dict, stopped: Optional[BaseException] = None, noun: str = "prediction(s)") -> int:
        """Close the record, print the summary; the exit code (when the run was `stopped` by an
        interrupt or an error, its caller re-raises that)."""
        why = None
        if isinstance(stopped, KeyboardInterrupt):
            why = str(stopped) or "SIGINT"
        elif stopped is not None:
            why = message(stopped)
        with signals.deferred():
            end = self.end_line(timings, why)
            if self.file is not None:
                try:
                    self.file.write(end)
                except OutputError:
                    if stopped is None:
                        raise  # a run that stops for another reason keeps that reason
                finally:
                    self.file.close()
            if self.as_json:
                text = json.dumps({**self.header, "timings": end["timings"], "queries": self.entries, "end": end}, indent=2)
                out.print_json(text) if out.is_terminal else print(text, flush=True)
        return self.report(stopped, why, noun)

    def report(self, stopped: Optional[BaseException], why: Optional[str], noun: str) -> int:
        done, failed = self.written, len(self.failures)
        skipped = sum(1 for e in self.entries if e.get("skipped"))
        if getattr(stopped, "silent", False):
            return 0
        if isinstance(stopped, LavinError):  # what stopped the run comes first, then what it left
            report(stopped)
            stopped.reported = True
        if not self.quiet or (stopped is not None and done):
            tail = (f", {failed} failed" if failed else "") + (f", {skipped} already there" if skipped else "")
            ending = f"; interrupted ({why})" if isinstance(stopped, KeyboardInterrupt) else "; stopped" if why else ""
            log(f"{done} {noun} written{tail}{ending}")
        if stopped is not None or not failed:
            return 0
        if not done and not skipped:
            return self.failures[0][1]
        return report(PartialFailure(f"{failed} of {len(self.entries)} queries failed"))
