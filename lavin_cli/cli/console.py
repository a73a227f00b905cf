"""Where the CLI writes: results to stdout, messages to stderr, one line each, never wrapped."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from lavin_cli import __version__

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

def print_table(table) -> None:
    """A table on stdout: fitted to a terminal; piped, at its full width (a name cut with an
    ellipsis is useless to grep and scripts)."""
    if out.is_terminal:
        out.print(table)
        return
    wide = Console(file=sys.stdout, width=4096, soft_wrap=True, no_color=True, highlight=False)
    width = wide.measure(table).maximum
    Console(file=sys.stdout, width=max(20, width), soft_wrap=True, no_color=True, highlight=False).print(table)


FLAGS = {"queries": "--query"}  # option names whose flag is not --name-with-dashes


def flag_style(name: str, value: str | None) -> str:
    """How the CLI names an option in a message: `--steps`, `--offload sequential`, `--overwrite`."""
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    return flag if value in (None, "True") else f"{flag} {value}"


def message(error: Exception) -> str:
    render = getattr(error, "render", None)
    return render(flag_style) if render else str(error)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f)} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def one_line(text: str) -> str:
    """`text` without control characters: a file name holding a newline or an escape sequence
    stays one line of its own and cannot steer the terminal (they are shown as \\n, \\x1b)."""
    return text.translate(_CONTROL)


def log(text: str, style: str | None = None) -> None:
    """One plain line on stderr (no markup is read from `text`)."""
    err.print(escape(one_line(text)), style=style, highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(one_line(text))}", highlight=False, soft_wrap=True)


def fail_quietly(text: str, code: int) -> int:
    """Print one error line; return the exit code."""
    err.print(f"[bold red]error:[/] {escape(one_line(text))}", highlight=False, soft_wrap=True)
    return code


def report(error: Exception) -> int:
    """A LavinError as one line, named with flags (nothing for a silent one); its exit code."""
    if getattr(error, "silent", False):
        return error.exit_code
    return fail_quietly(message(error), getattr(error, "exit_code", 1))


class ClosedStdout:
    """Stands in for sys.stdout when lavin starts with it closed (`lavin ... >&-`): writing a
    result there is an output error (exit 6), not a crash on None or output silently lost."""

    closed = False
    encoding = "utf-8"

    def write(self, data) -> int:
        raise OSError(errno.EBADF, "stdout is closed", "stdout")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "stdout is closed", "stdout")

    @property
    def buffer(self) -> "ClosedStdout":
        return self


class PipeGuard:
    """sys.stdout as lavin prints to it: a reader that went away (`| head`) becomes BrokenPipe,
    which ends the run quietly with exit 141, instead of an OSError that click turns into exit 1."""

    def __init__(self, stream, binary: bool = False):
        self._stream, self._binary = stream, binary

    def write(self, data):
        from lavin_cli.errors import BrokenPipe

        try:
            return self._stream.write(data)
        except BrokenPipeError:
            raise BrokenPipe("stdout: the reader closed the pipe") from None

    def flush(self) -> None:
        from lavin_cli.errors import BrokenPipe

        try:
            self._stream.flush()
        except BrokenPipeError:
            raise BrokenPipe("stdout: the reader closed the pipe") from None

    @property
    def buffer(self):
        return PipeGuard(self._stream.buffer, binary=True) if not self._binary else self

    def __getattr__(self, name):
        return getattr(self._stream, name)


def stdout_closed() -> bool:
    return isinstance(sys.stdout, ClosedStdout) or sys.stdout is None


def forget_unwritten() -> None:
    """Drop text that a failed write (stdout closed) left in rich's buffer, so that it does not
    come out with the next print of this process (lavin called in-process again: tests, Python)."""
    for console in (out, err):
        buffer = getattr(console, "_buffer", None)  # rich keeps unwritten text per thread there
        if isinstance(buffer, list):
            del buffer[:]


def silence_stdout() -> None:
    """After a closed pipe: point fd 1 at /dev/null, so that the flush at exit says nothing."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


def fail(error: Exception, code: int | None = None) -> NoReturn:
    """One line on stderr, the error's documented exit code, no traceback."""
    report(error)
    sys.exit(code if code is not None else getattr(error, "exit_code", 1))


def internal_error(error: BaseException) -> int:
    """A bug: one line naming a report file with the traceback (LAVIN_DEBUG=1 prints it instead)."""
    import os
    import time
    import traceback

    details = "".join(traceback.format_exception(error))
    if os.environ.get("LAVIN_DEBUG"):
        sys.stderr.write(details)
        return 1
    where = ""
    try:
        import platformdirs

        folder = Path(platformdirs.user_cache_dir("lavin", appauthor=False)) / "bug-reports"
        folder.mkdir(parents=True, exist_ok=True)
        report_file = folder / f"lavin-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        report_file.write_text(f"lavin {__version__}\nargv: {sys.argv}\n\n{details}")
        where = f"; details in {report_file}"
    except OSError:
        pass
    first = (f"{error.__class__.__name__}: {error}".splitlines() or [error.__class__.__name__])[0][:200]
    ask = "please report it with that file" if where else "please report it (no report file could be written)"
    return fail_quietly(f"internal error ({first}){where}; {ask} (LAVIN_DEBUG=1 shows the traceback)", 1)
