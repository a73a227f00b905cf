"""Where the CLI writes: results to stdout, messages to stderr, one line each, never wrapped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from lavin_cli import __version__

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

FLAGS = {"queries": "--query"}  # option names whose flag is not --name-with-dashes


def flag_style(name: str, value: str | None) -> str:
    """How the CLI names an option in a message: `--steps`, `--offload sequential`, `--overwrite`."""
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    return flag if value in (None, "True") else f"{flag} {value}"


def message(error: Exception) -> str:
    render = getattr(error, "render", None)
    return render(flag_style) if render else str(error)


def log(text: str, style: str | None = None) -> None:
    """One plain line on stderr (no markup is read from `text`)."""
    err.print(escape(text), style=style, highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def fail_quietly(text: str, code: int) -> int:
    """Print one error line; return the exit code."""
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    return code


def report(error: Exception) -> int:
    """A LavinError as one line, named with flags; its documented exit code."""
    return fail_quietly(message(error), getattr(error, "exit_code", 1))


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
    first = f"{error.__class__.__name__}: {error}".splitlines()[0][:200]
    return fail_quietly(f"internal error ({first}){where}; please report it with that file "
                        "(LAVIN_DEBUG=1 shows the traceback)", 1)
