"""`lavin video`: in-context video tasks and frame prediction; the clip sibling of `lavin run`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.console import log
from lavin_cli.cli.paths import expand_queries, preflight
from lavin_cli.cli.progress import Progress
from lavin_cli.cli.results import Results
from lavin_cli.cli.run import consume, model_line, relay, resolve_context, show_warnings
from lavin_cli.errors import UsageError


def plan_outputs(queries: list[str], output: str, ext: str) -> list[str]:
    """A file (video extension) or frames folder for one clip; a folder of <name>.<ext> for several."""
    from lavin_cli.io.video import VIDEO_EXTENSIONS, is_video_path

    ext = "." + ext.lower().lstrip(".")
    if ext not in VIDEO_EXTENSIONS and ext != ".frames":
        raise UsageError(f"--ext {ext}: use one of {', '.join(VIDEO_EXTENSIONS)} or frames")
    from lavin_cli.io.images import is_image_path

    out = Path(output).expanduser()
    if output == "-":
        raise UsageError("-o -: videos are written to files or frame folders, not stdout")
    if out.suffix and not is_video_path(out) and not out.is_dir() and not output.endswith(("/", os.sep)):
        kind = "an image format" if is_image_path(out) else "not a video format"
        raise UsageError(f"-o {output}: {out.suffix} is {kind}; write {', '.join(VIDEO_EXTENSIONS)} files, or a folder of "
                         "frames (a name without an extension, or ending with /)")
    if len(queries) == 1:
        return [str(out)]
    if is_video_path(out):
        raise UsageError(f"-o {output}: {len(queries)} queries need an output folder")
    names = [Path(q).stem if Path(q).suffix else Path(q).name for q in queries]
    return [str(out / (n if ext == ".frames" else n + ext)) for n in names]


def video(
    query: list[str] = typer.Option(..., "--query", "-i", help="Query clip(s): video files, folders of frames, folders of videos, globs.",
                                    metavar="PATH"),
    output: str = typer.Option(..., "--output", "-o", help="A .mp4/.webm/.gif/.mov/.mkv/.avi file or a frames folder (one query), a folder (several).",
                               metavar="PATH"),
    context: Optional[Path] = options.CONTEXT,
    task: Optional[str] = options.TASK,
    frames: int = typer.Option(12, "--frames", help="Prediction tasks: how many new frames to produce (paper: 12)."),
    mode: str = typer.Option("auto", "--mode", help="auto (told by the context), clip (a target frame per input frame) or predict."),
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
    max_pixels: int = options.MAX_PIXELS,
    fps: Optional[float] = typer.Option(None, "--fps", help="Output frame rate (default: the query's)."),
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    attention: str = options.ATTENTION,
    offload: str = options.OFFLOAD,
    compile: bool = options.COMPILE,
    ext: str = typer.Option("mp4", "--ext", help="Format of outputs written into a folder (mp4, webm, gif, ... or frames)."),
    overwrite: bool = options.OVERWRITE,
    as_json: bool = options.JSON_OUT,
    record: Optional[Path] = options.RECORD,
    quiet: bool = options.QUIET,
) -> None:
    """Predict each query clip's target from example clip pairs: clip-to-clip or frame prediction.

    [dim]lavin video --context clips/ --query clip.mp4 --frames 12 -o pred.mp4[/]
    [dim]lavin video --context depth_clips/ --query frames_dir/ -o depth.mp4[/]
    """
    from lavin_cli.inference.engine import MemoryPlan
    from lavin_cli.inference.options import LoadOptions, VideoOptions
    from lavin_cli.inference.pipeline import Pipeline
    from lavin_cli.store import folders

    video_options = VideoOptions(pairs=pairs, select=select, size=size, fit=fit, steps=steps, cfg=cfg, seed=seed,
                                 solver=solver, frames=frames, mode=mode, fps=fps, max_pixels=max_pixels)
    load = LoadOptions(device, dtype, attention, offload, compile)
    queries = expand_queries(query, clips=True)
    outputs = plan_outputs(queries, output, ext)
    folder = folders.resolve(model, home)
    found = resolve_context(context, task, folder, clips=True, quiet=quiet)
    preflight(outputs, overwrite, [str(record)] if record else [], folders_ok=True)
    pipe = Pipeline.load(folder, load, MemoryPlan(video_options.working_size(folder.size), pairs, frames=5))
    if not quiet:
        log(model_line(pipe))
    results = Results(record, as_json, overwrite, quiet)
    with Progress(not quiet) as progress:
        draw = relay(progress)
        stream = pipe.video_stream(found, queries, video_options,
                                   callback=lambda p: log(f"DiT sequence: {p.total} tokens per call")
                                   if p.stage == "tokens" and not quiet else draw(p))
        results.header = stream.prepare()
        show_warnings(stream.warnings, quiet)
        if not quiet:
            head = results.header
            log(f"task kind: {head['mode']}; context clips of {head['context_clip_frames']} frames")
        consume(stream, results, _writer(outputs, overwrite), lambda: {"context_s": round(stream.context_seconds, 4)})


def _writer(outputs: list[str], overwrite: bool):
    from lavin_cli.io.video import write_video

    def write(pred, entry: dict) -> None:
        write_video(Path(outputs[pred.index]), pred.clip, overwrite)
        entry["output"] = outputs[pred.index]

    return write
