"""What `lavin run` and `lavin video` share once their options are checked (`execute`): find the
context, plan the files, refuse what would fail before anything loads, load the model, stream the
predictions into files and the record, and end with one exit code (across torchrun's ranks too).
The two commands differ only in their options and in how a prediction becomes files (`writer`)."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.cli import distributed, plan
from lavin_cli.cli.console import flag_style, log, warn
from lavin_cli.cli.progress import Progress
from lavin_cli.cli.results import Results
from lavin_cli.errors import LavinError, OutputError, UnknownTask, UsageError, render
from lavin_cli.inference import shards
from lavin_cli.inference.predictions import Run

LABELS = {"context": "encoding context", "sample": "sampling", "query": "queries", "frames": "frames"}


@dataclass(kw_only=True)
class Files:
    """The command's file arguments, as given (by name: fourteen of them)."""

    query: list[str]
    output: str
    files_from: Optional[str]
    nul: bool
    recursive: bool
    root: Optional[str]
    fmt: Optional[str]
    ext: Optional[str]
    skip_existing: bool
    shard: Optional[str]
    overwrite: bool
    record: Optional[Path]
    as_json: bool
    quiet: bool


def execute(files: Files, options, load, source, context: Optional[Path], task: Optional[str], *, clips: bool,
            grid: bool, batch_size: int, writer: Callable) -> None:
    """Run the command: `options` (RunOptions or VideoOptions) and `load` checked, `source` the
    local model or the server; `writer(the_plan, found)` makes the function that writes one
    prediction (and its grid) and fills its record entry."""
    options = options.for_model(source.default_pairs)
    found = source.context(context, task, clips=clips, quiet=files.quiet)
    the_plan = make_plan(files, batch_size, not clips and found.target == "gray", clips)
    plan.check_queries(the_plan, clips=clips)
    if clips:
        plan.check_fps(the_plan, options.fps)
        plan.check_codecs(the_plan, source.remote)
    if the_plan.fmt != plan.plain_format(clips):
        options = dataclasses.replace(options, raw=True)
    if grid and clips and source.remote and not found.pairs:
        raise UsageError("--grid with --server shows the context clips, which stay on the server for --task: "
                         "give them with --context")
    outputs = [the_plan.outputs[i] for i in the_plan.todo if i not in the_plan.finished]
    grids = [plan.grid_path(o) for o in outputs] if grid else []
    record = [str(files.record)] if files.record else []
    plan.not_over_inputs(outputs + grids + record,
                         the_plan.queries + [p for pair in found.pairs for p in (pair.input, pair.target)])
    plan.preflight(outputs, files.overwrite, grids + ([] if files.skip_existing else record), folders_ok=clips,
                   replace=redone(the_plan, files.quiet))
    if nothing_to_do(files, the_plan):
        return
    check_context(found, options, clips=clips)

    ranks = distributed.start()
    main = ranks is None or ranks.main
    try:
        line = source.start(ranks, load, options.working_size(source.size), options.pairs, batch=batch_size,
                            frames=5 if clips else 1)
        if not files.quiet and main:
            log(line)
            warn_if_emulated(None if source.remote else source.pipe)

        def start_stream(callback):
            stream = source.stream(found, [the_plan.queries[i] for i in the_plan.todo], options, callback,
                                   the_plan.todo, already_written(the_plan, files.overwrite), clips=clips, views=grid)
            header = stream.prepare()
            show_warnings(stream.warnings, files.quiet)
            if clips and not files.quiet and main:
                frames = header["context_clip_frames"]
                log(f"task kind: {header['mode']}; context clips of {frames['input']} input and {frames['target']} "
                    "target frames")
            return stream, header

        drive(files, the_plan, ranks, start_stream, writer(the_plan, found), "prediction(s)")
    finally:
        distributed.stop(ranks)


def resolve_context(context: Optional[Path], task: Optional[str], model, clips: bool = False, quiet: bool = False):
    """--context PATH or --task NAME (a task folder of the model or of examples/) -> its pairs."""
    from lavin_cli.inference import context as ctx
    from lavin_cli.store import folders

    if (context is None) == (task is None):
        raise UsageError("give exactly one of --context FOLDER or --task NAME")
    if context is not None and not str(context).strip():
        raise UsageError("--context is empty; give a folder of example pairs")
    if context is None:
        known = folders.tasks(model)
        if task not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise UnknownTask(f"unknown task {task!r} (available: {listing}); see `lavin tasks`")
        if model.trained_tasks is not None and task not in model.trained_tasks and not quiet:
            warn(f"{model.name} was not trained on {task} (it knows {', '.join(model.trained_tasks)}); "
                 "expect a poor answer")
        context = known[task].path
    return ctx.find_pairs(context, clips=clips)


def check_context(found, options, clips: bool) -> None:
    """The context pairs this run reads, read before the model loads (an unreadable one is the
    run's one error line), and a mask's rule against the context's (refused before loading too)."""
    from lavin_cli.inference import context as ctx
    from lavin_cli.inference import keep as keep_rules

    if not clips and options.mask is not None:
        keep_rules.with_mask(options.keep, found.keep)
    chosen = ctx.candidates(found, options.pairs, options.select, options.seed)
    ctx.check_readable(found, chosen, clips, options.max_pixels)


def make_plan(files: Files, batch_size: int, gray_target: bool, clips: bool) -> plan.Plan:
    shard = plan.shard_of(files.shard)  # a bad K/N fails before any file is listed
    if files.skip_existing and files.overwrite:
        raise UsageError("--skip-existing keeps the outputs that exist, --overwrite replaces them: give one")
    for flag, value in (("--query", q) for q in files.query):
        if not value.strip():
            raise UsageError(f"{flag} is empty; give a file, a folder, a glob or - for stdin")
    for flag, value in (("--files-from", files.files_from), ("--root", files.root), ("--record", files.record)):
        if value is not None and not str(value).strip():
            raise UsageError(f"{flag} is empty; give a path")
    if files.as_json and plan.stdout_closed():
        raise OutputError("--json prints the record on stdout, which is closed; use --record FILE")
    queries = plan.gather(files.query, files.files_from, files.nul, files.recursive, clips)
    fmt = plan.output_format(files.fmt, files.output, gray_target, clips)
    the_plan = plan.Plan(queries, plan.output_names(queries, files.output, fmt, files.ext, files.root, clips), fmt)
    plan.schedule(the_plan, batch_size, shard, files.skip_existing)
    return the_plan


def redone(the_plan: plan.Plan, quiet: bool) -> frozenset[str]:
    """Say which files in the place of outputs a resumed run computes again (not whole ones of
    their format); their paths, which the run may write over."""
    for i, why in sorted(the_plan.redo.items()):
        if not quiet:
            warn(f"{the_plan.outputs[i]} exists but {why}: computing it again")
    return frozenset(the_plan.outputs[i] for i in the_plan.redo)


def already_written(the_plan: plan.Plan, overwrite: bool):
    """The runner's `skip`: leave out a batch whose outputs all exist by the time it comes up
    (another lavin run on the same folder wrote them meanwhile), unless they are to be replaced;
    its predictions are then kept (--skip-existing) or failed as existing, never computed twice."""
    if overwrite:
        return None

    def skip(indices: list[int]) -> bool:
        return all(i not in the_plan.redo and os.path.lexists(the_plan.outputs[i]) for i in indices
                   if the_plan.outputs[i] != plan.STDIO) and plan.STDIO not in [the_plan.outputs[i] for i in indices]

    return skip


def nothing_to_do(files: Files, the_plan: plan.Plan) -> bool:
    """Every output of this process exists already (a finished run resumed): say so, write the
    record (--record, --json) of what was kept, load nothing. (Never under torchrun: every rank
    must reach the end together.)"""
    if (the_plan.todo and set(the_plan.todo) != the_plan.finished) or shards.from_torchrun() is not None:
        return False
    if not files.quiet:
        log(f"nothing to do: the {len(the_plan.here)} output(s) of this run exist already")
    if files.record is not None or files.as_json:
        append = files.record is not None and files.record.exists()
        results = Results(files.record, files.as_json, quiet=True, append=append, outputs=the_plan.outputs)
        results.start({"queries_total": len(the_plan.queries), "queries_here": len(the_plan.here),
                       **({"shard": files.shard} if files.shard else {})})
        for i in the_plan.here:
            results.kept(i, the_plan.queries[i])
        results.finish({"run_s": 0.0})
    return True


def model_line(pipe) -> str:
    from lavin_cli.runtime.device import dtype_name

    return (f"model {pipe.model.name} ({pipe.model.path}) on {pipe.device}, {dtype_name(pipe.dtype)}, "
            f"attention {pipe.attention}, offload {pipe.offload.name}" + (", int8 weights" if pipe.quantize == "int8" else ""))


def warn_if_emulated(pipe) -> None:
    """A precision the user asked for that this CPU only emulates (runtime/device.py)."""
    from lavin_cli.runtime.device import EMULATED_BF16, emulated_precision

    if pipe is not None and emulated_precision(pipe.device, pipe.dtype):
        warn(EMULATED_BF16)


def show_warnings(warnings: list[str], quiet: bool) -> None:
    if not quiet:
        for text in warnings:
            warn(render(text, flag_style))


def relay(progress: Progress, quiet_tokens: bool = True):
    """The library's progress callback, drawn by the CLI's progress display."""
    def callback(p) -> None:
        if p.stage == "tokens":
            if not quiet_tokens:
                log(f"DiT sequence: {p.total} tokens per call")
            return
        progress.update(p.stage, LABELS.get(p.stage, p.stage), p.done, p.total)
    return callback


def drive(files: Files, the_plan: plan.Plan, ranks, start_stream: Callable, write, noun: str) -> None:
    """Stream predictions into files and the record; exit with the worst code of all ranks."""
    record = ranks.part(files.record) if ranks and files.record else files.record
    append = files.skip_existing and files.record is not None and files.record.exists() and ranks is None
    results = Results(record, files.as_json and (ranks is None or ranks.main), files.quiet,
                      append=append, skip=frozenset(the_plan.finished), outputs=the_plan.outputs,
                      keep_existing=files.skip_existing)
    with Progress(not files.quiet and (ranks is None or ranks.main)) as progress:
        stream, header = start_stream(relay(progress, quiet_tokens=files.quiet))
        header = {**header, "queries_total": len(the_plan.queries), "queries_here": len(the_plan.todo),
                  **({"rank": ranks.rank, "world": ranks.world} if ranks else {}),
                  **({"shard": files.shard} if files.shard else {})}
        results.start(header)
        code = consume(stream, results, write, noun)
    code = distributed.worst(ranks, code)
    distributed.join_records(ranks, files.record, files.skip_existing)
    if code:
        raise SystemExit(code)


def consume(stream: Run, results: Results, write, noun: str) -> int:
    """Write every prediction of `stream` as it arrives; the exit code. When the run stops early
    (SIGINT, SIGTERM, or an error that concerns every query), what is written stays, the record
    says so, and the interrupt or error goes on up (exit 130 / 143, or the error's)."""
    start = time.perf_counter()

    def timings() -> dict:
        extra = {"context_s": round(stream.context_seconds, 4), "input_wait_s": round(stream.input_wait, 4)}
        return {**extra, "run_s": round(time.perf_counter() - start, 4)}

    try:
        for prediction in stream:
            results.add(prediction, write)
    except (KeyboardInterrupt, LavinError) as stop:
        results.finish(timings(), stopped=stop, noun=noun)
        raise
    return results.finish(timings(), noun=noun)
