"""`lavin run`: in-context image tasks. Validates options, plans files, streams predictions from
`Pipeline` and writes each one as it arrives."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.console import flag_style, log, out, warn
from lavin_cli.cli.paths import STDIO, expand_queries, plan_outputs, preflight
from lavin_cli.cli.progress import Progress
from lavin_cli.cli.results import Results
from lavin_cli.errors import LavinError, UsageError, render

LABELS = {"context": "encoding context", "sample": "sampling", "query": "queries", "frames": "frames"}


def resolve_context(context: Optional[Path], task: Optional[str], model, clips: bool = False, quiet: bool = False):
    """--context PATH or --task NAME (a task folder of the model or of examples/) -> its pairs."""
    from lavin_cli.inference import context as ctx
    from lavin_cli.store import folders

    if (context is None) == (task is None):
        raise UsageError("give exactly one of --context FOLDER or --task NAME")
    if context is None:
        known = folders.tasks(model)
        if task not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise UsageError(f"unknown task {task!r} (available: {listing}); see `lavin tasks`")
        if model.trained_tasks is not None and task not in model.trained_tasks and not quiet:
            warn(f"{model.name} was not trained on {task} (it knows {', '.join(model.trained_tasks)}); "
                 "expect a poor answer")
        context = known[task].path
    return ctx.find_pairs(context, clips=clips)


def model_line(pipe) -> str:
    from lavin_cli.runtime.device import dtype_name

    return (f"model {pipe.model.name} ({pipe.model.path}) on {pipe.device}, {dtype_name(pipe.dtype)}, "
            f"attention {pipe.attention}, offload {pipe.offload.name}")


def run(
    query: list[str] = typer.Option(..., "--query", "-i", help="Query image(s): files, folders, globs ('photos/*.jpg'), or - for stdin.",
                                    metavar="PATH"),
    output: str = typer.Option(..., "--output", "-o", help="Output file (one query), folder (several), or - for stdout.",
                               metavar="PATH"),
    context: Optional[Path] = options.CONTEXT,
    task: Optional[str] = options.TASK,
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    pairs: int = options.PAIRS,
    select: str = options.SELECT,
    size: Optional[str] = options.SIZE,
    fit: str = options.FIT,
    steps: int = options.STEPS,
    cfg: float = options.CFG,
    seed: int = options.SEED,
    solver: str = options.SOLVER,
    batch_size: int = options.BATCH,
    max_pixels: int = options.MAX_PIXELS,
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    attention: str = options.ATTENTION,
    offload: str = options.OFFLOAD,
    compile: bool = options.COMPILE,
    ext: str = typer.Option("png", "--ext", help="Image format of outputs written into a folder (or to stdout)."),
    grid: bool = typer.Option(False, "--grid", help="Also save <output>_grid.png: context pairs, query, prediction."),
    overwrite: bool = options.OVERWRITE,
    as_json: bool = options.JSON_OUT,
    record: Optional[Path] = options.RECORD,
    quiet: bool = options.QUIET,
) -> None:
    """Predict each query's target from example pairs (in-context, no training).

    [dim]lavin run --context pairs/ --query img.jpg -o out.png[/]
    [dim]lavin run --task depth_estimation --query 'photos/*.jpg' -o preds/ --pairs 6 --seed 7 --json[/]
    """
    from lavin_cli.inference.engine import MemoryPlan
    from lavin_cli.inference.options import LoadOptions, RunOptions
    from lavin_cli.inference.pipeline import Pipeline
    from lavin_cli.store import folders

    run_options = RunOptions(pairs=pairs, select=select, size=size, fit=fit, steps=steps, cfg=cfg, seed=seed,
                             solver=solver, batch_size=batch_size, max_pixels=max_pixels)
    load = LoadOptions(device, dtype, attention, offload, compile)
    queries = expand_queries(query)
    outputs = plan_outputs(queries, output, ext)
    if output == STDIO and (as_json or grid):
        raise UsageError("-o - uses stdout for the image: drop --json (use --record FILE) and --grid")
    folder = folders.resolve(model, home)
    found = resolve_context(context, task, folder, quiet=quiet)
    grids = [str(Path(o).with_name(Path(o).stem + "_grid.png")) for o in outputs] if grid else []
    preflight(outputs, overwrite, grids + ([str(record)] if record else []))

    pipe = Pipeline.load(folder, load, MemoryPlan(run_options.working_size(folder.size), pairs, batch_size))
    if not quiet:
        log(model_line(pipe))
    results = Results(record, as_json, overwrite, quiet)
    with Progress(not quiet) as progress:
        stream = pipe.stream(found, queries, run_options, callback=relay(progress))
        results.header = stream.header
        show_warnings(stream.warnings, quiet)
        consume(stream, results, _writer(outputs, grids, overwrite, ext), lambda: {"context_s": round(stream.context_seconds, 4)})


def relay(progress: Progress):
    """The library's progress callback, drawn by the CLI's progress display."""
    return lambda p: progress.update(p.stage, LABELS.get(p.stage, p.stage), p.done, p.total)


def show_warnings(warnings: list[str], quiet: bool) -> None:
    if not quiet:
        for text in warnings:
            warn(render(text, flag_style))


def consume(stream, results: Results, write, timings, noun: str = "prediction(s)") -> None:
    """Write every prediction of `stream` as it arrives. When the run stops early (SIGINT,
    SIGTERM, or an error that concerns every query), what is written stays, the record says so,
    and the exit code is the interrupt's (130 / 143) or the error's."""
    start = time.perf_counter()
    try:
        for prediction in stream:
            results.add(prediction, write)
    except (KeyboardInterrupt, LavinError) as stop:
        results.finish({**timings(), "run_s": round(time.perf_counter() - start, 4)}, stopped=stop, noun=noun)
        raise
    results.finish({**timings(), "run_s": round(time.perf_counter() - start, 4)}, noun=noun)


def _writer(outputs: list[str], grids: list[str], overwrite: bool, ext: str):
    from lavin_cli.io import images as image_io

    def write(pred, entry: dict) -> None:
        dest = outputs[pred.index]
        if dest == STDIO:
            sys.stdout.buffer.write(image_io.encode_image(pred.image, ext))
            sys.stdout.buffer.flush()
        else:
            image_io.write_image(Path(dest), pred.image, overwrite)
            entry["output"] = dest
        if grids:
            row = [im for pair in pred.context for im in pair] + [pred.working, image_io.fit(pred.image, pred.working.shape[:2])[0]]
            image_io.write_image(Path(grids[pred.index]), image_io.grid([row]), overwrite)
            entry["grid"] = grids[pred.index]

    return write


def tasks(
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the task folders usable with --task (the model's own and those in examples/), and
    whether the model was trained on each (? where its model.json does not say)."""
    from rich.table import Table

    from lavin_cli.inference import context as ctx
    from lavin_cli.store import folders

    try:
        folder = folders.resolve(model, home)
    except LavinError:
        if model or os.environ.get("LAVIN_MODEL"):
            raise
        folder = None  # no model at all: still list the shipped examples
    trained = folder.trained_tasks if folder else None
    rows = []
    for task in folders.tasks(folder).values():
        try:
            count = len(ctx.find_pairs(task.path).pairs)
        except LavinError:
            count = 0
        rows.append({"task": task.name, "source": task.source, "pairs": count, "path": str(task.path),
                     "trained": None if trained is None else task.name in trained})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"tasks ({folder.name if folder else 'no model'})")
    for column in ("task", "trained", "source", "pairs", "path"):
        table.add_column(column)
    for row in rows:
        mark = {True: "yes", False: "no", None: "?"}[row["trained"]]
        table.add_row(row["task"], mark, row["source"], str(row["pairs"]), row["path"])
    out.print(table)
