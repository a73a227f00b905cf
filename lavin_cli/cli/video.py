"""`lavin video`: in-context video tasks and frame prediction; the clip sibling of `lavin run`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.drive import Files, execute
from lavin_cli.cli.plan import grid_path
from lavin_cli.cli.results import auxiliary
from lavin_cli.cli.source import source_for


def video(
    ctx: typer.Context,
    query: Optional[list[str]] = typer.Option(None, "--query", "-i", metavar="PATH", rich_help_panel=options.INPUTS,
                                              help="Query clip(s): video files, folders of frames, folders of videos, globs."),
    output: str = typer.Option(..., "--output", "-o", metavar="PATH", rich_help_panel=options.OUTPUTS,
                               help="A .mp4/.webm/.gif/.mov/.mkv/.avi file or a frames folder (one query), a folder "
                                    "(several: the queries' tree)."),
    context: Optional[Path] = options.CONTEXT,
    task: Optional[str] = options.TASK,
    files_from: Optional[str] = options.FILES_FROM,
    nul: bool = options.NUL,
    recursive: bool = options.RECURSIVE,
    root: Optional[str] = options.ROOT,
    frames: Optional[int] = typer.Option(None, "--frames", metavar="N", rich_help_panel=options.SAMPLING, help="Prediction tasks: how many new frames to produce (default 12, the paper's; at most 4096; a clip task warns that it makes none)."),
    mode: str = typer.Option("auto", "--mode", metavar="MODE", rich_help_panel=options.SAMPLING,
                             help="auto (told by the context), clip (a target frame per input frame) or predict."),
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
    max_pixels: int = options.MAX_PIXELS,
    fps: Optional[float] = typer.Option(None, "--fps", metavar="FPS", rich_help_panel=options.OUTPUTS, help="Output frame rate (default: the query's)."),
    keep: str = options.VIDEO_KEEP,
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    attention: str = options.ATTENTION,
    offload: str = options.OFFLOAD,
    compile: bool = options.COMPILE,
    quantize: str = options.QUANTIZE,
    fmt: Optional[str] = typer.Option(None, "--format", metavar="FMT", rich_help_panel=options.OUTPUTS,
                                      help="video (a file or 8-bit frames, see --ext), png16 (a folder of 16-bit gray "
                                           "frames) or npy (float32 F x H x W x 3 in [0, 1])."),
    grid: bool = typer.Option(False, "--grid", rich_help_panel=options.OUTPUTS, help="Also save <output>_grid.png: a row of frames per context pair "
                                                   "used (input, then target), and the query's frames, then the prediction's."),
    ext: Optional[str] = typer.Option(None, "--ext", metavar="EXT", rich_help_panel=options.OUTPUTS, help="Format of --format video outputs in a folder (mp4, webm, gif, ... or frames; default mp4; refused for a single output, whose name decides)."),
    skip_existing: bool = options.SKIP_EXISTING,
    shard: Optional[str] = options.SHARD,
    overwrite: bool = options.OVERWRITE,
    as_json: bool = options.JSON_OUT,
    record: Optional[Path] = options.RECORD,
    quiet: bool = options.QUIET,
    server: Optional[str] = options.SERVER,
    token: Optional[str] = options.TOKEN,
) -> None:
    """Predict each query clip's target from example clip pairs: clip-to-clip or frame prediction.

    [dim]lavin video --context clips/ --query clip.mp4 --frames 12 -o pred.mp4[/]
    [dim]lavin video --context depth_clips/ --query frames_dir/ -o depth.mp4[/]
    """
    from lavin_cli.inference.options import LoadOptions, VideoOptions

    files = Files(query=query or [], output=output, files_from=files_from, nul=nul, recursive=recursive, root=root,
                  fmt=fmt, ext=ext, skip_existing=skip_existing, shard=shard, overwrite=overwrite, record=record,
                  as_json=as_json, quiet=quiet)
    video_options = VideoOptions(pairs=pairs, select=select, size=size, fit=fit, steps=steps, cfg=cfg, seed=seed,
                                 solver=solver, frames=frames, mode=mode, fps=fps, max_pixels=max_pixels, keep=keep,
                                 cfg_interval=cfg_interval, cond_refresh=cond_refresh)
    load = LoadOptions(device, dtype, attention, offload, compile, quantize)  # names checked before anything else happens
    execute(files, video_options, load, source_for(server, token, model, home, options.typed(ctx)), context, task, clips=True, grid=grid,
            batch_size=1, writer=lambda the_plan, found: _writer(the_plan, overwrite, found if grid else None, max_pixels))


def _writer(the_plan, overwrite: bool, grid_context=None, max_pixels: int = 0):
    from lavin_cli.io import images as image_io
    from lavin_cli.io.files import write_atomic
    from lavin_cli.io.video import read_video, write_frames, write_video

    pairs = {pair.id: pair for pair in grid_context.pairs} if grid_context is not None else {}
    pair_rows: dict[str, list] = {}  # pair id -> its grid row, decoded once for the whole run

    def pair_row(pair_id: str) -> list:
        if pair_id not in pair_rows:
            pair = pairs[pair_id]
            pair_rows[pair_id] = [*read_video(pair.input, max_pixels=max_pixels).frames,
                                  *read_video(pair.target, max_pixels=max_pixels).frames]
        return pair_rows[pair_id]

    def write(pred, entry: dict) -> None:
        dest = Path(the_plan.outputs[pred.index])
        overwrite_this = overwrite or pred.index in the_plan.redo
        if the_plan.fmt == "npy":
            write_atomic(dest, image_io.encode_npy(pred.raw), overwrite_this)
        elif the_plan.fmt == "png16":
            write_frames(dest, [image_io.encode_gray16(f) for f in pred.raw], overwrite_this)
        else:
            write_video(dest, pred.clip, overwrite_this)
        entry["output"] = str(dest)
        if grid_context is not None:
            grid_rows = [pair_row(i) for i in pred.pairs]
            predicted = pred.clip.frames if pred.clip is not None else image_io.to_uint8(pred.raw)
            grid_rows.append([*read_video(the_plan.queries[pred.index], max_pixels=max_pixels).frames, *predicted])
            where = Path(grid_path(str(dest)))
            auxiliary(entry, "grid", where,
                      lambda: image_io.write_image(where, image_io.grid(grid_rows, cell=96), overwrite))

    return write
