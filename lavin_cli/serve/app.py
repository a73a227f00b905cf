"""The ASGI app of `lavin serve` (FastAPI on Starlette): limits, the token, errors as HTTP
statuses, and the routes that do not run the model. The run routes are in runs.py.

    GET  /                    the page (page/index.html; its assets ship in the package)
    GET  /healthz             200 while serving, 503 while draining
    GET  /metrics             Prometheus text
    GET  /v1/models           the loaded model, device, precision, limits
    GET  /v1/tasks            the task folders requests may name
    GET  /v1/tasks/{t}/files/{f}   one file of a task folder
    POST /v1/contexts         upload context pairs once, refer to them by id
    POST /v1/run, /v1/video   a run, answered when done
    POST /v1/jobs             the same, answered at once with a job id (GET /v1/jobs/{id}[/result])
    GET  /openapi.json        the API's schema
"""

from __future__ import annotations

import hmac
import time
import traceback
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from lavin_cli import __version__
from lavin_cli.errors import LavinError, TooLarge
from lavin_cli.serve import answers, runs
from lavin_cli.serve.contexts import Contexts
from lavin_cli.serve.metrics import Metrics
from lavin_cli.serve.service import Service
from lavin_cli.serve.state import Limits, State, state

PAGE = Path(__file__).resolve().parent / "page"
OPEN_ROUTES = ("/", "/healthz", "/page/", "/favicon.ico")  # no token needed: no data behind them


def create_app(pipe, service: Service, contexts: Contexts, limits: Limits) -> FastAPI:
    app = FastAPI(title="lavin", version=__version__, docs_url=None, redoc_url=None,
                  description="In-context vision tasks with LaVin-DiT: show example pairs, get the query's answer.")
    app.state.lavin = State(pipe, service, contexts, Metrics(service, pipe.device, pipe.context_cache), limits)
    _guard(app)
    _errors(app)
    _info_routes(app)
    app.include_router(runs.router)
    app.mount("/page", StaticFiles(directory=PAGE), name="page")
    return app


def _guard(app: FastAPI) -> None:
    app.add_middleware(Guard)


ROUTE_LABELS = ("/v1/run", "/v1/video", "/v1/contexts", "/v1/tasks", "/v1/models", "/healthz", "/metrics",
                "/openapi.json", "/")  # the metrics' route labels; ids and file names are folded, the rest is other


class Guard:
    """Every request, as plain ASGI (a disconnecting client stays visible to the routes): the
    token, the body limit (also for bodies without a length, counted as they arrive),
    draining, and its metrics."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        s, start = request.app.state.lavin, time.monotonic()
        route = scope["path"]
        label = route if route in ROUTE_LABELS else "/v1/jobs" if route.startswith("/v1/jobs") \
            else "/v1/tasks/files" if route.startswith("/v1/tasks/") else "other"
        status = [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        received = [0]

        async def receiving():
            message = await receive()
            received[0] += len(message.get("body", b""))
            if received[0] > s.limits.max_body:
                raise TooLarge(f"the request is above this server's limit of {s.limits.max_body / 2**20:.0f} MB "
                               "(--max-body-mb)")
            return message

        refusal = _refusal(request, s)
        try:
            if refusal is not None:
                await refusal(scope, receive, sending)
            else:
                await self.app(scope, receiving, sending)
        finally:
            s.metrics.requests.labels(label, str(status[0])).inc()
            s.metrics.latency.labels(label).observe(time.monotonic() - start)


def _refusal(request: Request, s: State) -> Response | None:
    path = request.url.path
    token = s.limits.token
    if token and not (path in OPEN_ROUTES or path.startswith("/page/")):
        given = request.headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else request.headers.get("x-lavin-token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "a token is required: send 'Authorization: Bearer TOKEN' (lavin: --token or "
                                          "LAVIN_SERVE_TOKEN)", "exit_code": 8, "kind": "Unauthorized"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > s.limits.max_body:
        error = TooLarge(f"the request is {int(length) / 2**20:.1f} MB, above this server's limit of "
                         f"{s.limits.max_body / 2**20:.0f} MB (--max-body-mb)")
        return JSONResponse(answers.error_body(error), 413)
    if s.service.draining and path != "/healthz" and request.method == "POST":
        return JSONResponse({"error": "the server is shutting down; it takes no new work", "exit_code": 5,
                             "kind": "Draining"}, 503, headers={"Retry-After": str(answers.RETRY_AFTER_S)})
    return None


def _errors(app: FastAPI) -> None:
    @app.exception_handler(LavinError)
    async def lavin_error(request: Request, error: LavinError):
        return JSONResponse(answers.error_body(error), answers.status_of(error), headers=answers.headers_for(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}", "exit_code": 2,
                             "kind": "UsageError", "template": None, "option": where or None}, 400)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):
        return JSONResponse(answers.error_body(error, report(state(request), error)), 500)


def report(s: State, error: BaseException) -> str:
    """Write a bug's traceback where the server keeps reports; its id."""
    report_id = uuid.uuid4().hex[:12]
    if s.limits.report_dir is not None:
        try:
            s.limits.report_dir.mkdir(parents=True, exist_ok=True)
            (s.limits.report_dir / f"lavin-serve-{report_id}.txt").write_text(
                f"lavin {__version__} serve\n\n{''.join(traceback.format_exception(error))}")
        except OSError:
            pass
    return report_id


def _info_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE / "index.html")

    @app.get("/healthz", summary="Serving (200) or draining (503)")
    async def healthz(request: Request):
        s = state(request)
        body = {"status": "draining" if s.service.draining else "ok", "model": s.pipe.model.name,
                "queue": s.service.depth, "busy": s.service.busy, "uptime_s": round(time.time() - s.started, 1)}
        return JSONResponse(body, 503 if s.service.draining else 200)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request):
        return Response(state(request).metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models", summary="The loaded model")
    async def models(request: Request):
        s = state(request)
        from lavin_cli.inference.records import model_info
        from lavin_cli.io.video import describe_backend
        from lavin_cli.runtime.device import dtype_name

        model = s.pipe.model
        return {"models": [{**model_info(model), "size": model.size, "default_pairs": model.default_pairs,
                            "max_pairs": model.max_pairs, "sizes": model.sizes, "trained_tasks": model.trained_tasks,
                            "description": model.description}],
                "device": str(s.pipe.device), "dtype": dtype_name(s.pipe.dtype), "attention": s.pipe.attention,
                "offload": s.pipe.offload.name, "quantize": s.pipe.quantize, "lavin": __version__,
                "video_files": describe_backend(),  # what decodes uploaded clips here (none: GIFs and frames only)
                "limits": {"max_body": s.limits.max_body, "max_pixels": s.limits.max_pixels,
                           "max_queries": s.limits.max_queries, "max_frames": s.limits.max_frames,
                           "request_timeout_s": s.limits.request_timeout, "max_batch": s.service.max_batch}}

    @app.get("/v1/tasks", summary="Task folders a request may name")
    async def tasks(request: Request):
        from lavin_cli.inference import context as ctx
        from lavin_cli.io.video import is_video_path

        s = state(request)
        rows = []
        for task in s.contexts.tasks().values():
            kind = "video" if any(is_video_path(p) for p in task.path.glob("*_input.*")) else "image"
            try:
                found = ctx.find_pairs(task.path, clips=kind == "video")
            except LavinError:
                continue
            rows.append({"task": task.name, "kind": kind, "source": task.source, "target": found.target,
                         "keep": found.keep, "trained": None if s.pipe.model.trained_tasks is None else task.name in s.pipe.model.trained_tasks,
                         "pairs": [{"id": p.id, "input": Path(p.input).name, "target": Path(p.target).name}
                                   for p in found.pairs]})
        return {"tasks": rows}

    @app.get("/v1/tasks/{task}/files/{name}", summary="One file of a task folder", response_class=FileResponse)
    async def task_file(request: Request, task: str, name: str):
        return FileResponse(state(request).contexts.file_of(task, name))
