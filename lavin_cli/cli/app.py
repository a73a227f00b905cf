"""The `lavin` command: a thin Typer layer over the library. Only this package prints.

Heavy imports (torch, the models) happen inside commands, so `lavin --help` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import warnings
from typing import Optional

import typer

from lavin_cli import __version__
from lavin_cli.cli import convert as convert_cmd
from lavin_cli.cli import evaluate as eval_cmd
from lavin_cli.cli import info as info_cmd
from lavin_cli.cli import models as models_cmd
from lavin_cli.cli import options, progress_stream, signals
from lavin_cli.cli import run as run_cmd
from lavin_cli.cli import serve as serve_cmd
from lavin_cli.cli import train as train_cmd
from lavin_cli.cli import video as video_cmd
from lavin_cli.cli.console import (ClosedStdout, PipeGuard, fail_quietly, forget_unwritten, internal_error, report,
                                   silence_stdout)
from lavin_cli.errors import BrokenPipe, LavinError
from lavin_cli.io.files import WRITE_ERRNOS, describe_os_error

app = typer.Typer(
    name="lavin",
    cls=options.Group,
    help="In-context vision tasks with LaVin-DiT: show example pairs, get the query's answer.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lavin {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    progress_json: Optional[str] = typer.Option(None, "--progress-json", metavar="FILE|fd:N",
                                                help="Write progress as JSON lines (start, progress per stage, each "
                                                     "output written or failed, end with the exit code) to FILE or "
                                                     "an open descriptor, for wrappers; before the command."),
) -> None:
    """In-context vision tasks with LaVin-DiT.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 model/checkpoint,
    5 device, 6 output, 7 some batch items failed, 8 server unreachable,
    130 interrupted, 141 stdout's reader gone, 143 terminated.
    """
    if progress_json:
        progress_stream.open_stream(progress_json, sys.argv[1:], ctx.invoked_subcommand)


app.command("run", cls=options.Command)(run_cmd.run)
app.command("video", cls=options.Command)(video_cmd.video)
app.command("serve", cls=options.Command)(serve_cmd.serve)
app.command("tasks", cls=options.Command)(run_cmd.tasks)
app.command("download", cls=options.Command)(models_cmd.download)
app.command("models", cls=options.Command)(models_cmd.models)
app.command("verify", cls=options.Command)(models_cmd.verify)
app.command("eval", cls=options.Command)(eval_cmd.evaluate)
app.command("info", cls=options.Command)(info_cmd.info)
app.command("convert", cls=options.Command)(convert_cmd.convert)
app.add_typer(train_cmd.app, name="train")


def main() -> None:
    """Run `lavin`: every outcome becomes at most a line or two on stderr and a documented exit code."""
    given = sys.stdout
    sys.stdout = ClosedStdout() if given is None else PipeGuard(given)  # None: started with `>&-`
    code = 1
    try:
        with signals.installed(), _third_party_warnings():
            code = _run(sys.argv[1:])
        code = _flushed(code)
    except SystemExit as exc:  # a command's own exit code (7: some items failed)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        progress_stream.close(code)
        forget_unwritten()
        sys.stdout = given
    sys.exit(code)


@contextlib.contextmanager
def _third_party_warnings():
    """Libraries' warnings (torch's pickle notes, deprecations) are not the user's business: the
    one-line errors say what matters; LAVIN_DEBUG=1 shows them."""
    if os.environ.get("LAVIN_DEBUG"):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _flushed(code: int) -> int:
    """Flush stdout before exit, where a reader that went away shows (`lavin tasks --json | head`)."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, BrokenPipe):
        silence_stdout()
        return code or BrokenPipe.exit_code
    except (OSError, ValueError):
        pass
    return code


def _run(args: list[str]) -> int:
    try:
        result = app(args=args, prog_name="lavin", standalone_mode=False)
    except LavinError as exc:
        if isinstance(exc, BrokenPipe):
            silence_stdout()
        return exc.exit_code if getattr(exc, "reported", False) else report(exc)
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:  # the reader of stdout went away (`| head`): quiet, as Unix tools are
        silence_stdout()
        return BrokenPipe.exit_code
    except OSError as exc:  # an I/O failure no layer named: still one line, and a plausible code
        if exc.errno == errno.EBADF and exc.filename == "stdout":
            return fail_quietly("stdout is closed, so what this command prints is lost; run it with stdout open "
                                "(lavin run and video: -o FILE and --record FILE write files instead)", 6)
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return fail_quietly(f"{where}{describe_os_error(exc)}", 6 if exc.errno in WRITE_ERRNOS else 3)
    except Exception as exc:
        kinds = {c.__name__ for c in type(exc).__mro__}  # click's classes (Typer may carry its own copy)
        if "NoArgsIsHelpError" in kinds:  # `lavin` alone, `lavin train`: the help
            print(exc.ctx.get_help() if getattr(exc, "ctx", None) else "see lavin --help")
            return 0
        if "ClickException" in kinds:  # unknown option, missing argument, a value of the wrong type
            return fail_quietly(f"{exc.format_message()}{_help_hint(exc)}", exc.exit_code)
        if "Abort" in kinds:
            return _interrupted()
        return internal_error(exc)  # a bug: one line, the details in a file
    if result == 130 or signals.received():  # Typer turns an interrupt into exit 130
        return _interrupted()
    return result if isinstance(result, int) else 0


def _help_hint(exc: Exception) -> str:
    ctx = getattr(exc, "ctx", None)
    return f" (see {ctx.command_path} --help)" if ctx is not None else ""


def _interrupted() -> int:
    signum = signals.received()
    code = signals.EXIT_CODES.get(signum, 130) if signum else 130
    sys.stderr.write(f"lavin: {'terminated' if code == 143 else 'interrupted'}; finished outputs are kept\n")
    return code
