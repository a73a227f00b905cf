"""The routes that run the model: a request becomes a job (its options checked by the same
code as `lavin run`'s, its context found), waits its turn on the worker, and is answered with
its predictions. A client that goes away has its job dropped if it has not started; a job that
runs past --request-timeout is answered 504."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from lavin_cli.errors import LavinError, OptionError, TooLarge, UsageError
from lavin_cli.inference import options as opts
from lavin_cli.inference.options import RunOptions, VideoOptions
from lavin_cli.serve import answers
from lavin_cli.serve.state import State, state
from lavin_cli.serve.contexts import content_key
from lavin_cli.serve.service import Job

router = APIRouter()

OPTIONS_HELP = "JSON object of RunOptions fields (pairs, select, size, fit, steps, cfg, seed, solver, cfg_interval, " \
               "cond_refresh, max_pixels; images: keep; video: frames, mode, fps)"


class Timeout(LavinError):
    exit_code = 5


class Upload(bytes):
    """An uploaded file's bytes, with its name for messages and the record."""

    def __new__(cls, data: bytes, name: str):
        made = super().__new__(cls, data)
        made.name = name
        return made


def _fields(text: str) -> dict:
    try:
        fields = json.loads(text or "{}")
    except ValueError as exc:
        raise UsageError(f"options: not a JSON object ({exc})") from None
    if not isinstance(fields, dict):
        raise UsageError("options: give a JSON object of option fields, e.g. {\"steps\": 20, \"seed\": 7}")
    fields.pop("batch_size", None)  # the worker's business
    if fields.pop("mask", None) is not None:
        raise UsageError("options: a server reads no mask files named in options; upload the masks as files in "
                         "the form's mask field (one for every query, or one per query in their order)")
    if isinstance(fields.get("size"), list):
        fields["size"] = tuple(fields["size"])
    if isinstance(fields.get("cfg_interval"), list):
        fields["cfg_interval"] = tuple(fields["cfg_interval"])
    return fields


async def _pairs(inputs: list[UploadFile] | None, targets: list[UploadFile] | None) -> tuple[list, list[str]]:
    inputs, targets = inputs or [], targets or []
    if len(inputs) != len(targets):
        raise UsageError(f"{len(inputs)} input(s) and {len(targets)} target(s) uploaded: send one of each per pair")
    pairs = [(await a.read(), await b.read()) for a, b in zip(inputs, targets)]
    names = [Path(a.filename or f"pair{i}").stem.removesuffix("_input") for i, a in enumerate(inputs)]
    return pairs, names


async def _context(s: State, clips: bool, task, folder, context_id, inputs, targets):
    given = [x for x in (task, folder, context_id) if x] + (["pairs"] if inputs or targets else [])
    if len(given) != 1:
        raise UsageError("give exactly one context: task, context (a folder the server allows), context_id, or "
                         "uploaded input and target files")
    if task:
        found = s.contexts.task(task, clips)
    elif folder:
        found = s.contexts.folder(folder, clips)
    elif context_id:
        found = s.contexts.uploaded(context_id)
    else:
        pairs, names = await _pairs(inputs, targets)
        found = s.contexts.upload(pairs, names)[1]
    return found, content_key(found)


def _limited(s: State, options, fmt: str):
    """The options with the server's limits and batch settings applied."""
    changes = {"max_pixels": min(options.max_pixels, s.limits.max_pixels), "raw": options.raw or fmt in ("png16", "npy")}
    if isinstance(options, RunOptions):
        changes["batch_size"] = 1  # the worker batches; one value so that jobs can share a call
    elif options.new_frames > s.limits.max_frames:
        raise TooLarge(f"{{{{frames={options.new_frames}}}}} is above this server's limit of {s.limits.max_frames}")
    return dataclasses.replace(options, **changes).for_model(s.pipe.default_pairs)


def _format(fmt: Optional[str], found, clips: bool) -> str:
    if fmt is None:
        return "video" if clips else ("png16" if found.target == "gray" else "png")
    formats = answers.CLIP_FORMATS if clips else answers.FORMATS
    if fmt not in formats:
        raise OptionError("format", f"{fmt!r} is not one of {', '.join(formats)}")
    return fmt


async def _masks(mask: list[UploadFile] | None, queries: int):
    """Uploaded masks as RunOptions.mask: None, one for every query, or one per query (each read
    with its query, so that a bad one fails that query alone)."""
    if not mask:
        return None
    if len(mask) not in (1, queries):
        raise UsageError(f"{len(mask)} masks for {queries} queries: upload one for every query, or one per query")
    uploads = tuple([Upload(await m.read(), m.filename or f"#{i}") for i, m in enumerate(mask)])
    return uploads[0] if len(uploads) == 1 else uploads


async def _image_job(request: Request, query, options: str, task, context, context_id, inputs, targets, fmt,
                     share: bool = True, mask=None) -> Job:
    s = state(request)
    if len(query) > s.limits.max_queries:
        raise TooLarge(f"{len(query)} queries in one request, above this server's limit of {s.limits.max_queries}")
    built = opts.build(RunOptions, **_fields(options))  # the same checks, the same messages as lavin run
    masks = await _masks(mask, len(query))
    if masks is not None:  # a masked job runs alone: masks are not part of what lets jobs share a model call
        built, share = dataclasses.replace(built, mask=masks), False
    found, key = await _context(s, False, task, context, context_id, inputs, targets)
    fmt = _format(fmt, found, clips=False)
    labels = [q.filename or f"query #{i}" for i, q in enumerate(query)]
    job = Job("image", found, key, _limited(s, built, fmt), [Upload(await q.read(), name) for q, name in zip(query, labels)],
              labels)
    job.fmt, job.share = fmt, share
    return s.service.submit(_counted(s, job))


def _counted(s: State, job: Job) -> Job:
    job.on_finish = lambda j: s.metrics.predicted(sum(1 for p in j.predictions if not p.error))
    return job


async def _answered(request: Request, job: Job) -> Job | None:
    """Wait for the job: None when the client went away (the job is dropped if not started)."""
    s = state(request)
    deadline = job.created + s.limits.request_timeout
    while not job.event.is_set():
        if await request.is_disconnected():
            s.service.cancel(job)
            return None
        if time.monotonic() > deadline:
            s.service.cancel(job)
            raise Timeout(f"the run took longer than this server's {s.limits.request_timeout:g} s (--request-timeout)")
        await asyncio.sleep(0.02)
    return job


def _answer(job: Job, clips: bool = False) -> Response:
    if job.state == "failed":
        raise job.error
    fmt = job.fmt
    if len(job.predictions) == 1 and (fmt != "json" or clips):
        prediction = job.predictions[0]
        if prediction.error:
            error = prediction.exception or UsageError(prediction.error)
            return JSONResponse(answers.error_body(error), answers.status_of(error))
        body = answers.encode_clip(prediction, fmt in ("npy", "png16")) if clips else answers.encode(prediction, fmt)
        headers = {"X-Lavin-Entry": answers.header_json(answers.entry_of(prediction)),
                   "X-Lavin-Header": answers.header_json(job.header)}
        return Response(body, media_type="application/x-npy" if clips else answers.MEDIA[fmt], headers=headers)
    return JSONResponse(answers.as_json(job, fmt, clips))


QUERY = File(..., description="Query image(s), repeatable")
OPTIONS = Form("{}", description=OPTIONS_HELP)
TASK = Form(None, description="A task folder of the model or of examples/ (GET /v1/tasks)")
FOLDER = Form(None, description="A context folder inside one of the server's --allow-dir folders")
CONTEXT_ID = Form(None, description="The id POST /v1/contexts gave")
INPUTS = File(None, alias="input", description="Context pair inputs, in pair order")
TARGETS = File(None, alias="target", description="Context pair targets, in pair order")
FORMAT = Form(None, alias="format", description="png, png16, npy or json (default: png16 for gray tasks, else png)")
MASK = File(None, alias="mask", description="Inpainting: the pixels to fill (white), one image for every query or "
                                              "one per query in their order; each query keeps its pixels elsewhere")
SHARE = Form(True, description="May share a model call with other requests (true); false: this request's queries are "
                               "one batch, alone, as a local run of that batch size computes them (the same bytes)")


@router.post("/v1/run", summary="Predict each query's target from the context (answered when done)")
async def run(request: Request, query: list[UploadFile] = QUERY, options: str = OPTIONS, task: Optional[str] = TASK,
              context: Optional[str] = FOLDER, context_id: Optional[str] = CONTEXT_ID,
              inputs: Optional[list[UploadFile]] = INPUTS, targets: Optional[list[UploadFile]] = TARGETS,
              fmt: Optional[str] = FORMAT, share: bool = SHARE, mask: Optional[list[UploadFile]] = MASK):
    job = await _image_job(request, query, options, task, context, context_id, inputs, targets, fmt, share, mask)
    try:
        done = await _answered(request, job)
        return Response(status_code=499) if done is None else _answer(done)
    finally:
        state(request).service.forget(job)


@router.post("/v1/jobs", summary="The same as /v1/run, answered at once with a job id", status_code=202)
async def submit(request: Request, query: list[UploadFile] = QUERY, options: str = OPTIONS, task: Optional[str] = TASK,
                 context: Optional[str] = FOLDER, context_id: Optional[str] = CONTEXT_ID,
                 inputs: Optional[list[UploadFile]] = INPUTS, targets: Optional[list[UploadFile]] = TARGETS,
                 fmt: Optional[str] = FORMAT, share: bool = SHARE, mask: Optional[list[UploadFile]] = MASK):
    job = await _image_job(request, query, options, task, context, context_id, inputs, targets, fmt, share, mask)
    return JSONResponse({"id": job.id, **job.progress()}, 202)


def _job(request: Request, job_id: str) -> Job:
    from lavin_cli.errors import UnknownTask

    job = state(request).service.jobs.get(job_id)
    if job is None:
        raise UnknownTask(f"no job {job_id!r} (finished jobs are kept until their result is fetched)")
    return job


@router.get("/v1/jobs/{job_id}", summary="A job's progress")
async def progress(request: Request, job_id: str):
    job = _job(request, job_id)
    body = {"id": job.id, **job.progress()}
    if job.state == "failed":
        body["error"] = answers.error_body(job.error)
    return body


@router.get("/v1/jobs/{job_id}/result", summary="A finished job's answer, as /v1/run gives it")
async def result(request: Request, job_id: str):
    job = _job(request, job_id)
    if not job.event.is_set():
        return JSONResponse({"id": job.id, **job.progress()}, 202)
    state(request).service.forget(job)
    return _answer(job)


@router.post("/v1/contexts", summary="Upload context pairs once; refer to them by the id returned")
async def contexts(request: Request, inputs: list[UploadFile] = File(..., alias="input"),
                   targets: list[UploadFile] = File(..., alias="target"),
                   kind: str = Form("image", description="image, or video: clips named ID_input.EXT / ID_target.EXT, "
                                                          "or frames ID_input/NNNNN.EXT")):
    s = state(request)
    if kind == "video":
        files = [(f.filename or "", await f.read()) for f in [*inputs, *targets]]
        key, found = s.contexts.upload_clips(files)
    elif kind == "image":
        pairs, names = await _pairs(inputs, targets)
        key, found = s.contexts.upload(pairs, names)
    else:
        raise OptionError("kind", f"{kind!r} is not image or video")
    return {"id": key, "pairs": len(found.pairs)}


@router.post("/v1/video", summary="Predict each query clip's target from context clip pairs (answered when done)")
async def video(request: Request, query: list[UploadFile] = File(..., description="A video file, or the frames of "
                                                                                  "one clip in order"),
                options: str = OPTIONS, task: Optional[str] = TASK, context: Optional[str] = FOLDER,
                context_id: Optional[str] = CONTEXT_ID, fmt: Optional[str] = FORMAT):
    s = state(request)
    built = opts.build(VideoOptions, **_fields(options))
    found, key = await _context(s, True, task, context, context_id, None, None)
    fmt = _format(fmt, found, clips=True)
    folder = Path(tempfile.mkdtemp(prefix="lavin-serve-"))
    clip = await _clip(query, folder)
    job = Job("video", found, key, _limited(s, built, fmt), [str(clip)], [query[0].filename or "clip"])
    job.fmt = fmt
    _counted(s, job)
    job.on_finish = _and(job.on_finish, lambda j: shutil.rmtree(folder, ignore_errors=True))
    try:
        s.service.submit(job)
    except LavinError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        done = await _answered(request, job)
        return Response(status_code=499) if done is None else _answer(done, clips=True)
    finally:
        s.service.forget(job)


async def _clip(query: list[UploadFile], folder: Path) -> Path:
    """An uploaded clip on disk, as the video reader takes it: one video file, or a frames folder."""
    from lavin_cli.io.images import is_image_path
    from lavin_cli.io.video import is_video_path

    if len(query) == 1 and is_video_path(Path(query[0].filename or "")):
        path = folder / f"clip{Path(query[0].filename).suffix.lower()}"
        path.write_bytes(await query[0].read())
        return path
    frames = folder / "frames"
    frames.mkdir()
    for i, frame in enumerate(query):
        suffix = Path(frame.filename or "").suffix.lower()
        if not is_image_path(Path(f"x{suffix}")):
            raise UsageError(f"{frame.filename}: send one video file, or the clip's frames as images")
        (frames / f"{i:06d}{suffix}").write_bytes(await frame.read())
    return frames


def _and(first, second):
    def both(job) -> None:
        if first is not None:
            first(job)
        second(job)
    return both
