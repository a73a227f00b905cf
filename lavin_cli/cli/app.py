"""The `lavin` command: a thin Typer layer over the library. Only this package prints.

Heavy imports (torch, the models) happen inside commands, so `lavin --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from lavin_cli import __version__
from lavin_cli.cli import convert as convert_cmd
from lavin_cli.cli import evaluate as eval_cmd
from lavin_cli.cli import info as info_cmd
from lavin_cli.cli import models as models_cmd
from lavin_cli.cli import run as run_cmd
from lavin_cli.cli import train as train_cmd
from lavin_cli.cli import video as video_cmd
from lavin_cli.cli.console import fail
from lavin_cli.errors import LavinError

app = typer.Typer(
    name="lavin",
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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """In-context vision tasks with LaVin-DiT.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 model/checkpoint,
    5 device, 6 output, 7 some batch items failed.
    """


app.command("run")(run_cmd.run)
app.command("video")(video_cmd.video)
app.command("tasks")(run_cmd.tasks)
app.command("download")(models_cmd.download)
app.command("models")(models_cmd.models)
app.command("verify")(models_cmd.verify)
app.command("eval")(eval_cmd.evaluate)
app.command("info")(info_cmd.info)
app.command("convert")(convert_cmd.convert)
app.add_typer(train_cmd.app, name="train")


def main() -> None:
    try:
        app(prog_name="lavin")
    except LavinError as err:
        fail(err)
    except KeyboardInterrupt:
        sys.stderr.write("lavin: interrupted\n")
        sys.exit(130)
