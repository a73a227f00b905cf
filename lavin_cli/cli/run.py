"""`lavin run`: in-context image tasks. Validates options, plans files, streams predictions from
`Pipeline` and writes each one as it arrives (see cli/drive.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.console import print_table, warn
from lavin_cli.cli.drive import Files, execute
from lavin_cli.cli.plan import STDIO, default_ext, grid_path
from lavin_cli.cli.results import auxiliary
from lavin_cli.cli.source import source_for
from lavin_cli.errors import BrokenPipe, LavinError, UsageError


def run(
    ctx: typer.Context,
    query: Optional[list[str]] = typer.Option(None, "--query", "-i", metavar="PATH", rich_help_panel=options.INPUTS,
                                              help="Query image(s): files, folders, globs ('photos/*.jpg'), or - for stdin."),
    output: str = typer.Option(..., "--output", "-o", metavar="PATH", rich_help_panel=options.OUTPUTS,
                               help="Output file (one query), folder (several queries, or a name ending with /: the "
                                    "queries' tree), or - for stdout."),
    context: Optional[Path] = options.CONTEXT,
    task: Optional[str] = options.TASK,
    files_from: Optional[str] = options.FILES_FROM,
    nul: bool = options.NUL,
    recursive: bool = options.RECURSIVE,
    root: Optional[str] = options.ROOT,
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    pairs: Optional[int] = options.PAIRS,
    select: str = options.SELECT,
    size: Optional[str] = options.SIZE,
    fit: str = options.FIT,
    steps: int = options.STEPS,
    cfg: float = options.CFG,
    seed: int = options.SEED,
    solver: str = options.SOLVER,
    cfg_interval: str = options.CFG_INTERVAL,
    cond_refresh: int = options.COND_REFRESH,
    batch_size: int = options.BATCH,
    max_pixels: int = options.MAX_PIXELS,
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    attention: str = options.ATTENTION,
    offload: str = options.OFFLOAD,
    compile: bool = options.COMPILE,
    quantize: str = options.QUANTIZE,
    fmt: Optional[str] = typer.Option(None, "--format", metavar="FMT", rich_help_panel=options.OUTPUTS,
                                      help="png (8-bit RGB, see --ext), png16 (16-bit gray: the mean of the channels) "
                                           "or npy (float32 H x W x 3 in [0, 1]); default png16 for tasks whose "
                                           "task.json says gray targets, else png."),
    ext: Optional[str] = typer.Option(None, "--ext", metavar="EXT", rich_help_panel=options.OUTPUTS, help="Image format of --format png outputs in a folder or on stdout (default png; refused for a single output file, whose name decides)."),
    keep: str = options.KEEP,
    mask: Optional[str] = options.MASK,
    grid: bool = typer.Option(False, "--grid", rich_help_panel=options.OUTPUTS, help="Also save <output>_grid.png: context pairs, query, prediction."),
    skip_existing: bool = options.SKIP_EXISTING,
    shard: Optional[str] = options.SHARD,
    overwrite: bool = options.OVERWRITE,
    as_json: bool = options.JSON_OUT,
    record: Optional[Path] = options.RECORD,
    quiet: bool = options.QUIET,
    server: Optional[str] = options.SERVER,
    token: Optional[str] = options.TOKEN,
) -> None:
    """Predict each query's target from example pairs (in-context, no training).

    [dim]lavin run --context pairs/ --query img.jpg -o out.png[/]
    [dim]lavin run -t depth_estimation -i 'photos/*.jpg' -o preds/ --seed 7 --json[/]
    [dim]lavin run -t inpainting -i 'photos/*.jpg' --mask 'masks/{stem}.png' -o filled/[/]
    [dim]find data -name '*.jpg' -print0 | \\[/]
    [dim]  lavin run -t depth_estimation --files-from - -0 -o out/ --skip-existing[/]
    """
    from lavin_cli.inference.options import LoadOptions, RunOptions

    files = Files(query=query or [], output=output, files_from=files_from, nul=nul, recursive=recursive, root=root,
                  fmt=fmt, ext=ext, skip_existing=skip_existing, shard=shard, overwrite=overwrite, record=record,
                  as_json=as_json, quiet=quiet)
    run_options = RunOptions(pairs=pairs, select=select, size=size, fit=fit, steps=steps, cfg=cfg, seed=seed,
                             solver=solver, batch_size=batch_size, max_pixels=max_pixels,
                             cfg_interval=cfg_interval, cond_refresh=cond_refresh, keep=keep, mask=mask)
    load = LoadOptions(device, dtype, attention, offload, compile, quantize)  # names checked before anything else happens
    if output == STDIO and (as_json or grid):
        raise UsageError("-o - uses stdout for the image: drop --json (use --record FILE) and --grid")
    execute(files, run_options, load, source_for(server, token, model, home, options.typed(ctx)), context, task, clips=False, grid=grid,
            batch_size=batch_size, writer=lambda the_plan, found: _writer(the_plan, grid, overwrite, ext))


def _writer(the_plan, grid: bool, overwrite: bool, ext: Optional[str]):
    from lavin_cli.io import images as image_io
    from lavin_cli.io.files import write_atomic

    def write(pred, entry: dict) -> None:
        dest = the_plan.outputs[pred.index]
        data = {"npy": lambda: image_io.encode_npy(pred.raw), "png16": lambda: image_io.encode_gray16(pred.raw),
                "png": lambda: image_io.encode_image(pred.image, (ext or default_ext(clips=False)) if dest == STDIO else Path(dest).suffix)}[the_plan.fmt]()
        if dest == STDIO:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                raise BrokenPipe("stdout: the reader closed the pipe") from None
        else:
            write_atomic(Path(dest), data, overwrite or pred.index in the_plan.redo)
        entry["output"] = dest
        if grid:
            row = [im for pair in pred.context for im in pair] + [pred.working, image_io.fit(pred.image, pred.working.shape[:2])[0]]
            where = Path(grid_path(dest))
            auxiliary(entry, "grid", where, lambda: image_io.write_image(where, image_io.grid([row]), overwrite))

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
    from lavin_cli.io.video import is_video_path
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
        kind = "video" if any(is_video_path(p) for p in task.path.glob("*_input.*")) else "image"
        problem = None
        try:
            found = ctx.find_pairs(task.path, clips=kind == "video")
            count, target, keep = len(found.pairs), found.target, found.keep
        except LavinError as exc:  # what `lavin run --task` would refuse it with
            count, target, keep, problem = 0, None, None, str(exc)
        rows.append({"task": task.name, "kind": kind, "source": task.source, "pairs": count, "path": str(task.path),
                     "trained": None if trained is None else task.name in trained, "target": target,
                     "keep": keep, "usable": problem is None, **({"problem": problem} if problem else {})})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"tasks ({folder.name if folder else 'no model'})")
    for column in ("task", "kind", "trained", "target", "keep", "source", "pairs", "path"):
        table.add_column(column)
    for row in rows:
        mark = {True: "yes", False: "no", None: "?"}[row["trained"]]
        pairs = str(row["pairs"]) if row["usable"] else "unusable"
        table.add_row(row["task"], row["kind"], mark, row["target"] or "-", row["keep"] or "-", row["source"], pairs,
                      row["path"])
    print_table(table)
    for row in rows:
        if not row["usable"]:
            warn(f"task {row['task']} cannot be used: {row['problem']}")
