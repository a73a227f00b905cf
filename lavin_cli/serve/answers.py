"""What the server sends back: predictions as PNG, 16-bit PNG, .npy or JSON, and errors as an
HTTP status per exit class with the library's own one-line message.

    400 a bad option (exit 2)        404 an unknown task or context   413 too large (pixels, bytes)
    422 an unreadable input (exit 3) 401 a missing or wrong token     403 a path outside --allow-dir
    503 the queue is full (Retry-After) or the server is draining     504 the request ran out of time
    500 a model, device or output problem, or a bug (with the id of its report on the server)
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np

from lavin_cli.errors import (CheckpointError, DeviceError, InputError, LavinError, OutputError, TooLarge, UnknownTask,
                              UsageError)
from lavin_cli.io import images as image_io
from lavin_cli.serve.contexts import Forbidden
from lavin_cli.serve.service import Draining, QueueFull

FORMATS = ("png", "png16", "npy", "json")
CLIP_FORMATS = ("video", "png16", "npy", "json")  # video: the uint8 frames
MEDIA = {"png": "image/png", "png16": "image/png", "npy": "application/x-npy", "json": "application/json"}
RETRY_AFTER_S = 2


def status_of(error: BaseException) -> int:
    """The HTTP status for an error, by its kind (the CLI's exit class)."""
    for kind, status in ((Forbidden, 403), (UnknownTask, 404), (TooLarge, 413), (QueueFull, 503), (Draining, 503),
                         (UsageError, 400), (InputError, 422), (CheckpointError, 500), (DeviceError, 500),
                         (OutputError, 500)):
        if isinstance(error, kind):
            return status
    return 500


def error_body(error: BaseException, report_id: str | None = None) -> dict:
    """{"error": the message (options named as fields), "template": the same with its
    {{option}} marks (the CLI renders them as flags), "exit_code", "option", "report_id"}."""
    if isinstance(error, LavinError):
        template = str(error.args[0]) if error.args else ""
        return {"error": str(error), "template": template, "exit_code": error.exit_code,
                "kind": type(error).__name__, "option": error.option, "report_id": None}
    return {"error": f"internal error ({type(error).__name__}); report {report_id} on the server", "template": None,
            "exit_code": 1, "kind": "InternalError", "option": None, "report_id": report_id}


def headers_for(error: BaseException) -> dict:
    return {"Retry-After": str(RETRY_AFTER_S)} if isinstance(error, (QueueFull, Draining)) else {}


def encode(prediction, fmt: str) -> bytes:
    """One image prediction's bytes in `fmt` (png: the 8-bit picture; png16 and npy: the float
    values, as `lavin run --format` writes them)."""
    if fmt == "png16":
        return image_io.encode_gray16(prediction.raw)
    if fmt == "npy":
        return image_io.encode_npy(prediction.raw)
    return image_io.encode_image(prediction.image, "png")


def encode_clip(prediction, raw: bool) -> bytes:
    """A clip prediction as .npy: its uint8 frames (F, H, W, 3); with `raw` an .npz of `frames`
    and `raw` (its float32 values), so that the client writes every output format itself, byte
    for byte as a local run (no pickle either way)."""
    buf = io.BytesIO()
    if raw:
        np.savez(buf, frames=prediction.clip.frames, raw=prediction.raw.astype(np.float32))
    else:
        np.save(buf, prediction.clip.frames, allow_pickle=False)
    return buf.getvalue()


def header_json(value: dict) -> str:
    """A JSON value for an HTTP header: ASCII, one line."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


def entry_of(prediction) -> dict:
    return {"index": prediction.index, **prediction.entry}


def as_json(job, fmt: str, clips: bool = False) -> dict:
    """Every prediction of a job, each with its record entry and (not failed) its bytes in base64:
    `data` in the format asked (PNG for json), and with raw values asked for (option raw) also
    `raw`, the float32 values as .npy; `warnings` are the run's, with their {{option}} marks."""
    queries = []
    for prediction in job.predictions:
        item = entry_of(prediction)
        if not prediction.error:
            data = encode_clip(prediction, fmt in ("npy", "png16")) if clips else encode(prediction, fmt)
            item.update(format="npy" if clips else fmt, data=base64.b64encode(data).decode())
            if prediction.raw is not None and not clips:
                item["raw"] = base64.b64encode(image_io.encode_npy(prediction.raw)).decode()
        else:
            exception = getattr(prediction, "exception", None)
            item.update(exit_code=prediction.code, template=str(exception.args[0]) if exception and exception.args else None)
        queries.append(item)
    return {"header": job.header, "warnings": job.warnings, "queries": queries}
