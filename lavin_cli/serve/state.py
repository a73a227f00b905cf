"""What every route of the server reaches: the model, the worker, the contexts, the metrics
and the limits, kept on the app (`state(request)`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from lavin_cli.serve.contexts import Contexts
from lavin_cli.serve.metrics import Metrics
from lavin_cli.serve.service import Service


@dataclass(frozen=True)
class Limits:
    max_body: int = 64 * 2**20  # bytes of one request
    max_pixels: int = 16_000_000  # of one image or video frame
    max_queries: int = 64  # per request
    max_frames: int = 1000  # new frames a video request may ask for
    request_timeout: float = 600.0  # seconds from arrival to answer
    token: str | None = None  # required as 'Authorization: Bearer TOKEN' when set
    report_dir: Path | None = None  # where reports of bugs go


@dataclass
class State:
    pipe: object
    service: Service
    contexts: Contexts
    metrics: Metrics
    limits: Limits
    started: float = field(default_factory=time.time)


def state(request: Request) -> State:
    return request.app.state.lavin
