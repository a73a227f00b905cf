"""`lavin run`: in-context image tasks. Parses, plans files, calls `Pipeline`, writes results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.console import err, out
from lavin_cli.cli.paths import STDIO, expand_queries, plan_outputs, preflight
from lavin_cli.cli.progress import bars
from lavin_cli.errors import LavinError, PartialFailure, UsageError


def resolve_context(context: Optional[Path], task: Optional[str], model) -> Path:
    """--context PATH or --task NAME (a task folder of the model or of examples/)."""
    from lavin_cli import store

    if (context is None) == (task is None):
        raise UsageError("give exactly one of --context FOLDER or --task NAME")
    if context is not None:
        return context
    known = store.tasks(model)
    if task not in known:
        listing = ", ".join(sorted(known)) or "none"
        raise UsageError(f"unknown task {task!r} (available: {listing}); see `lavin tasks`")
    return known[task].path


def run(
    query: list[str] = typer.Option(..., "--query", "-i", help="Query image(s): files, folders, globs ('photos/*.jpg'), or - for stdin."),
    output: str = typer.Option(..., "--output", "-o", help="Output file (one query), folder (several), or - for stdout."),
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
    [dim]lavin run --task depth --query 'photos/*.jpg' -o preds/ --pairs 6 --seed 7 --json[/]
    """
    from lavin_cli import context as ctx
    from lavin_cli import store
    from lavin_cli.pipeline import Pipeline, parse_size

    queries = expand_queries(query)
    outputs = plan_outputs(queries, output, ext)
    if output == STDIO and (as_json or grid):
        raise UsageError("-o - uses stdout for the image: drop --json (use --record FILE) and --grid")
    folder = store.resolve(model, home)
    parse_size(size, folder.size)  # bad sizes fail before the model loads
    context_dir = resolve_context(context, task, folder)
    ctx.find_pairs(context_dir)  # a bad context folder fails before the model loads
    grids = [str(Path(o).with_name(Path(o).stem + "_grid.png")) for o in outputs] if grid else []
    preflight(outputs, overwrite, grids + ([str(record)] if record else []))

    pipe = Pipeline.from_pretrained(str(folder.path), device=device, dtype=dtype, attention=attention, offload=offload,
                                    compile=compile, plan={"size": size, "pairs": pairs, "batch": batch_size})
    if not quiet:
        err.print(f"model {folder.name} ({folder.path}) on {pipe.device}, {str(pipe.dtype).replace('torch.', '')}, "
                  f"attention {pipe.attention}, offload {pipe.offload.name}", highlight=False)
    with bars(not quiet) as progress:
        result = pipe(context_dir, queries, pairs=pairs, select=select, size=size, fit=fit, steps=steps, cfg=cfg,
                      seed=seed, solver=solver, batch_size=batch_size, callback=progress)
    _write(result, outputs, grids, overwrite, ext)
    _report(result, record, as_json, quiet, overwrite)


def write_each(result, outputs: list[str], write) -> None:
    """Call write(i, prediction, destination, record entry) for every successful prediction; a
    failed write marks that item failed (message and exit code) and the others go on."""
    for i, (pred, dest) in enumerate(zip(result.predictions, outputs)):
        if pred.error:
            continue
        entry = result.record["queries"][i]
        try:
            write(i, pred, dest, entry)
        except LavinError as error:
            pred.error, pred.code, entry["error"] = str(error), error.exit_code, str(error)


def _write(result, outputs: list[str], grids: list[str], overwrite: bool, ext: str) -> None:
    from lavin_cli import media

    def write(i, pred, dest, entry) -> None:
        if dest == STDIO:
            sys.stdout.buffer.write(media.encode_image(pred.image, ext))
            sys.stdout.buffer.flush()
        else:
            media.write_image(Path(dest), pred.image, overwrite)
            entry["output"] = dest
        if grids:
            row = [im for pair in pred.context for im in pair] + [pred.working, media.fit(pred.image, pred.working.shape[:2])[0]]
            media.write_image(Path(grids[i]), media.grid([row]), overwrite)
            entry["grid"] = grids[i]

    write_each(result, outputs, write)


def _report(result, record: Optional[Path], as_json: bool, quiet: bool, overwrite: bool) -> None:
    from lavin_cli import media

    text = json.dumps(result.record, indent=2)
    if record:
        media.write_atomic(record, text.encode() + b"\n", overwrite)
    if as_json:
        out.print_json(text) if out.is_terminal else print(text)
    failed = result.failed
    for pred in failed:
        err.print(f"[red]failed:[/] {pred.error}", highlight=False, markup=True)
    done = len(result.predictions) - len(failed)
    if not quiet:
        err.print(f"{done} prediction(s) written" + (f", {len(failed)} failed" if failed else ""), highlight=False)
    if failed and not done:
        raise SystemExit(failed[0].code or 1)
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(result.predictions)} queries failed")


def tasks(
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the task folders usable with --task: the model's own and those in examples/."""
    from rich.table import Table

    from lavin_cli import context as ctx
    from lavin_cli import store

    try:
        folder = store.resolve(model, home)
    except LavinError:
        if model:
            raise
        folder = None  # no model: still list the shipped examples
    rows = []
    for task in store.tasks(folder).values():
        try:
            count = len(ctx.find_pairs(task.path).pairs)
        except LavinError:
            count = 0
        rows.append({"task": task.name, "source": task.source, "pairs": count, "path": str(task.path)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"tasks ({folder.name if folder else 'no model'})")
    for column in ("task", "source", "pairs", "path"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["task"], row["source"], str(row["pairs"]), row["path"])
    out.print(table)
