"""`lavin serve`: load a model once and answer runs over HTTP (see lavin_cli/serve)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.console import log, warn

SERVER = "Server"


def serve(
    ctx: typer.Context,
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    attention: str = options.ATTENTION,
    offload: str = options.OFFLOAD,
    compile: bool = options.COMPILE,
    quantize: str = options.QUANTIZE,
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDR", rich_help_panel=SERVER,
                             help="Address to listen on; any but loopback needs --token."),
    port: int = typer.Option(8765, "--port", metavar="N", rich_help_panel=SERVER,
                             help="TCP port (0: any free one; the startup line says which)."),
    unix: Optional[Path] = typer.Option(None, "--socket", metavar="PATH", rich_help_panel=SERVER,
                                        help="Listen on a Unix socket instead of TCP (only its owner may connect)."),
    allow_dir: Optional[list[Path]] = typer.Option(None, "--allow-dir", metavar="DIR", rich_help_panel=SERVER,
                                                   help="A folder whose context folders requests may name "
                                                        "(repeatable); nothing outside them is read."),
    token: Optional[str] = typer.Option(None, "--token", metavar="TEXT", rich_help_panel=SERVER,
                                        help="Require 'Authorization: Bearer TEXT' (default: $LAVIN_SERVE_TOKEN)."),
    max_batch: int = typer.Option(8, "--max-batch", metavar="N", rich_help_panel=SERVER,
                                  help="Most queries of several requests run in one model call."),
    batch_wait_ms: float = typer.Option(10.0, "--batch-wait-ms", metavar="MS", rich_help_panel=SERVER,
                                        help="How long the worker waits for requests to batch with the first."),
    queue: int = typer.Option(64, "--queue", metavar="N", rich_help_panel=SERVER,
                              help="Jobs that may wait; beyond, requests get 503 with Retry-After."),
    max_body_mb: float = typer.Option(64.0, "--max-body-mb", metavar="MB", rich_help_panel=SERVER,
                                      help="Largest request body; beyond, 413."),
    max_pixels: int = typer.Option(16_000_000, "--max-pixels", metavar="N", rich_help_panel=SERVER,
                                   help="Largest image or video frame a request may send; beyond, 413."),
    max_queries: int = typer.Option(64, "--max-queries", metavar="N", rich_help_panel=SERVER,
                                    help="Most queries in one request; beyond, 413."),
    request_timeout: float = typer.Option(600.0, "--request-timeout", metavar="S", rich_help_panel=SERVER,
                                          help="Seconds a request may take from arrival to answer; beyond, 504."),
    cache_mb: float = typer.Option(512.0, "--cache-mb", metavar="MB", rich_help_panel=SERVER,
                                   help="Memory for encoded contexts and uploaded pairs, least recently used dropped."),
    access_log: bool = typer.Option(False, "--access-log", rich_help_panel=SERVER, help="Log each request on stderr."),
    quiet: bool = options.QUIET,
) -> None:
    """Load a model once and answer runs over HTTP: for shell loops (lavin run --server), Python,
    other tools and a browser (the page at /). SIGTERM or Ctrl-C drains: queued and running work
    finishes, new work gets 503, then exit 0.

    [dim]lavin serve --port 8765 &[/]
    [dim]lavin run --server localhost:8765 -t depth_estimation -i img.png -o depth.png[/]
    [dim]curl -F query=@img.png -F task=depth_estimation localhost:8765/v1/run -o d.png[/]
    """
    from lavin_cli.errors import UsageError
    from lavin_cli.serve.setup import ServeOptions, start

    tcp = [flag for name, flag in options.typed(ctx) if name in ("host", "port")]
    if unix is not None and tcp:
        raise UsageError(f"{tcp[0]} is for TCP, and --socket listens on a Unix socket instead: give one of them")
    settings = ServeOptions(host=host, port=port, unix=unix, allow=tuple(allow_dir or ()),
                            token=token or os.environ.get("LAVIN_SERVE_TOKEN") or None, max_batch=max_batch,
                            batch_wait_ms=batch_wait_ms, queue=queue, max_body_mb=max_body_mb, max_pixels=max_pixels,
                            max_queries=max_queries, request_timeout=request_timeout, cache_mb=cache_mb)
    for text in settings.warnings():
        if not quiet:
            warn(text)
    start(settings, model, home, options_of_load(device, dtype, attention, offload, compile, quantize), access_log,
          on_ready=lambda line: log(line), on_drain=lambda: None if quiet else log(
              "draining: queued and running work finishes, new work gets 503 (a second signal stops at once)"))


def options_of_load(device: str, dtype: str, attention: str, offload: str, compile: bool, quantize: str = "none"):
    from lavin_cli.inference.options import LoadOptions

    return LoadOptions(device, dtype, attention, offload, compile, quantize)
