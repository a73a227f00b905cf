"""`lavin run --server URL` and `lavin video --server URL`: the same runs, computed by a lavin
server, written here exactly as a local run writes them.

`Remote(url).stream(context, queries, options, ...)` mirrors `Pipeline.stream`: an iterable run
with a `header` and `warnings`, yielding `Prediction`s in query order. Each batch of queries (the
positions a local run would batch) is one request, so a query meets the neighbours it would meet
locally; two batches are in flight at a time, so the server is never idle between them. The
server answers the predictions' pixels losslessly (PNG, .npy), and the caller writes every
output format itself: the same bytes as a local run of the same seed and options.

Standard library only (http.client over TCP or a Unix socket): the core install talks to a
server without the serve extra.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import io
import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit

import numpy as np

from lavin_cli import errors
from lavin_cli.errors import LavinError, ServerError, UsageError
from lavin_cli.inference import context as ctx
from lavin_cli.inference import masks
from lavin_cli.inference.predictions import Prediction, Progress
from lavin_cli.io import images as image_io

IN_FLIGHT = 2  # batches sent before the first is answered


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body: (body, content type)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for name, filename, data in files:
        safe = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n".encode(errors="surrogateescape"))
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def rebuilt(body: dict, status: int) -> LavinError:
    """The error a server's answer describes, as the library's own type (its message template
    keeps the {{option}} marks, so the CLI names flags)."""
    kind = getattr(errors, str(body.get("kind")), None)
    template = body.get("template") or body.get("error") or f"the server answered {status}"
    if isinstance(kind, type) and issubclass(kind, LavinError) and kind is not errors.OptionError:
        error = kind(template)
    else:
        error = {2: UsageError, 3: errors.InputError, 4: errors.CheckpointError, 5: errors.DeviceError,
                 6: errors.OutputError, 8: ServerError}.get(body.get("exit_code"), ServerError)(template)
    if body.get("option"):
        error.option = body["option"]
    if status == 500 and body.get("report_id"):
        error.args = (f"{template} (the server's report {body['report_id']})",)
    return error


class Remote:
    """A lavin server: http://HOST:PORT or unix:PATH; `token` for servers that want one."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 3600.0):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        if url.startswith("unix:"):
            self.unix, self.host, self.port = url[len("unix:"):], None, None
        else:
            parts = urlsplit(url if "://" in url else f"http://{url}")
            if parts.scheme != "http" or not parts.hostname:
                raise UsageError(f"{{{{server={url}}}}} is not http://HOST:PORT or unix:PATH")
            self.unix, self.host, self.port = None, parts.hostname, parts.port or 80

    def _connection(self) -> http.client.HTTPConnection:
        if self.unix:
            return _UnixConnection(self.unix, self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, fields: dict | None = None, files: list | None = None):
        """(status, headers, body); a server that cannot be reached or breaks off is a ServerError."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = None
        if fields is not None or files:
            body, headers["Content-Type"] = multipart(fields or {}, files or [])
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (ConnectionRefusedError, FileNotFoundError, socket.gaierror) as exc:
            raise ServerError(f"cannot reach the lavin server at {self.url} ({_reason(exc)}); is `lavin serve` "
                              "running there?") from None
        except (http.client.HTTPException, OSError) as exc:
            raise ServerError(f"the lavin server at {self.url} broke off ({_reason(exc)}); nothing of this "
                              "request was written") from None
        finally:
            connection.close()

    def call(self, method: str, path: str, fields: dict | None = None, files: list | None = None) -> dict:
        """A request whose answer is JSON; an error answer raised as the library's error."""
        status, _, body = self.request(method, path, fields, files)
        try:
            value = json.loads(body) if body else {}
        except ValueError:
            raise ServerError(f"{self.url} answered {status} with something other than JSON: is it a lavin server?") \
                from None
        if status == 401:
            raise ServerError(f"the lavin server at {self.url} wants a token: give {{{{token}}}} or set LAVIN_SERVE_TOKEN")
        if status >= 400:
            raise rebuilt(value if isinstance(value, dict) else {}, status)
        return value

    # ------------------------------------------------------------------ runs

    def model(self) -> dict:
        return self.call("GET", "/v1/models")

    def context_fields(self, context: ctx.Context | None, task: Optional[str], clips: bool = False) -> dict:
        """How requests name the context: the server's task, or pairs uploaded once by this run."""
        if task is not None:
            return {"task": task}
        files = []
        for pair in context.pairs:
            files += _clip_parts("input", pair.id, pair.input) if clips else \
                [("input", f"{pair.id}_input{Path(str(pair.input)).suffix}", _bytes(pair.input))]
            files += _clip_parts("target", pair.id, pair.target) if clips else \
                [("target", f"{pair.id}_target{Path(str(pair.target)).suffix}", _bytes(pair.target))]
        answer = self.call("POST", "/v1/contexts", {"kind": "video" if clips else "image"}, files)
        return {"context_id": answer["id"]}

    def stream(self, context: ctx.Context | None, queries: list, options, callback=None, indices=None, skip=None,
               task: Optional[str] = None, views: bool = False) -> "RemoteImageRun":
        return RemoteImageRun(self, context, queries, options, callback, indices, skip, task, views)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _bytes(item) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray):
        return image_io.encode_image(image_io.array_to_rgb(item, "array"), "png")
    return Path(item).read_bytes()


def _clip_parts(role: str, pair_id: str, clip) -> list[tuple[str, str, bytes]]:
    """A context clip as multipart files: one video file, or the frames of a folder as
    PAIR_ROLE/NNNNN.ext (the server puts them back in a folder)."""
    path = Path(clip)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and image_io.is_image_path(p))
        return [(role, f"{pair_id}_{role}/{i:05d}{p.suffix.lower()}", p.read_bytes()) for i, p in enumerate(frames)]
    return [(role, f"{pair_id}_{role}{path.suffix.lower()}", path.read_bytes())]


def options_json(options) -> str:
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    fields.pop("batch_size", None)
    fields.pop("mask", None)  # read here, sent as files beside the queries (RemoteImageRun._send)
    return json.dumps(fields)


class RemoteImageRun:
    """An image run computed by a server: iterable like ImageRun. With `views`, each
    prediction also carries the query as the model saw it and the context pairs it used (for
    --grid), read here (local pairs) or fetched once from the server (its task's pairs)."""

    def __init__(self, remote: Remote, context, queries, options, callback, indices, skip, task, views=False):
        self.remote, self.context, self.task, self.queries, self.options = remote, context, task, list(queries), options
        self.indices = list(range(len(self.queries))) if indices is None else list(indices)
        self.notify, self.skip, self.views = callback or (lambda p: None), skip, views
        self.info = remote.model()
        self.working = options.working_size(self.info["models"][0]["size"])
        self.pairs = self._pairs()
        self.fields = {**remote.context_fields(context, task), "options": options_json(options), "format": "json",
                       "share": "false"}  # its batches as a local run forms them: the same bytes
        self.input_wait = self.context_seconds = 0.0
        self.warnings, self.header = run_header(remote, self.info, options, self.working, context, task, self.pairs)
        self._pair_images: dict[str, tuple] = {}

    def prepare(self) -> dict:
        return self.header

    def _pairs(self) -> list[dict]:
        """The context's pairs: [{"id", "input", "target"}] (a task's, as the server lists them)."""
        if self.task is None:
            return [{"id": p.id, "input": p.input, "target": p.target} for p in self.context.pairs]
        tasks = {t["task"]: t for t in self.remote.call("GET", "/v1/tasks")["tasks"]}
        if self.task not in tasks:
            raise errors.UnknownTask(f"unknown task {self.task!r} on the server (available: {', '.join(sorted(tasks))}); "
                                     f"see GET {self.remote.url}/v1/tasks")
        return tasks[self.task]["pairs"]

    def _batches(self) -> list[list[int]]:
        """Positions into self.queries, grouped as a local run batches them (index // batch_size)."""
        groups: dict[int, list[int]] = {}
        for n, index in enumerate(self.indices):
            groups.setdefault(index // self.options.batch_size, []).append(n)
        return list(groups.values())

    def _send(self, group: list[int]) -> tuple[dict, float, dict[int, LavinError]]:
        """One batch's request; queries that cannot be read here fail here, as in a local run
        (read by the same code), and are not sent."""
        start, files, failed = time.perf_counter(), [], {}
        for n in group:
            query, label = self.queries[n], _name(self.queries[n], self.indices[n])
            try:
                image = image_io.read_image(_bytes_of_query(query) if query == "-" else query, label,
                                            self.options.max_pixels)  # the local run's own checks and messages
                data = _bytes_of_query(query)
                fill = None if self.options.mask is None else \
                    masks.read(self.options.mask, query, label, image.shape[:2], self.options.max_pixels)
            except LavinError as error:
                failed[n] = error
                continue
            files.append(("query", label, data))
            if fill is not None:  # as read here (scaled to its query), one per query sent
                png = image_io.encode_image(fill.astype(np.uint8) * 255, "png")
                files.append(("mask", f"{Path(label).stem}_mask.png", png))
        answer = self.remote.call("POST", "/v1/run", self.fields, files) if files else {"queries": []}
        return answer, time.perf_counter() - start, failed

    def __iter__(self) -> Iterator[Prediction]:
        done = 0
        with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            pending = [(group, None if self.skip is not None and self.skip([self.indices[n] for n in group])
                        else pool.submit(self._send, group)) for group in self._batches()]
            for group, future in pending:
                if future is None:
                    predictions = [Prediction(_name(self.queries[n], self.indices[n]), index=self.indices[n], skipped=True)
                                   for n in group]
                else:
                    predictions = self._predictions(group, *future.result())
                for prediction in predictions:
                    done += 1
                    yield prediction
                self.notify(Progress("query", done, len(self.queries)))

    def _predictions(self, group: list[int], answer: dict, seconds: float, failed: dict) -> list[Prediction]:
        out, items = [], iter(answer["queries"])
        for n in group:
            label = _name(self.queries[n], self.indices[n])
            if n in failed:
                error = failed[n]
                out.append(Prediction(label, error=str(error), code=error.exit_code, index=self.indices[n], exception=error))
                continue
            item = next(items)
            if item.get("error"):
                error = rebuilt({"template": item.get("template") or item["error"], "exit_code": item.get("exit_code")}, 422)
                out.append(Prediction(label, error=str(error), code=error.exit_code, index=self.indices[n],
                                      exception=error, pairs=item.get("pairs") or []))
                continue
            image = image_io.read_image(base64.b64decode(item["data"]), label)
            raw = np.load(io.BytesIO(base64.b64decode(item["raw"])), allow_pickle=False) if item.get("raw") else None
            prediction = Prediction(label, image, item.get("pairs") or [], seconds=item.get("seconds", seconds / len(group)),
                                    index=self.indices[n], raw=raw, warnings=list(item.get("warnings") or []))
            if self.views:
                self._add_views(prediction, self.queries[n])
            out.append(prediction)
        return out

    def _add_views(self, prediction: Prediction, query) -> None:
        fit = self.options.fit
        prediction.working = image_io.fit(image_io.read_image(_bytes_of_query(query), prediction.query), self.working, fit)[0]
        by_id = {p["id"]: p for p in self.pairs}
        for pair_id in prediction.pairs:
            if pair_id not in self._pair_images:
                pair = by_id[pair_id]
                self._pair_images[pair_id] = tuple(
                    image_io.fit(image_io.read_image(self._pair_file(pair[role]), f"{pair_id} {role}"), self.working, fit)[0]
                    for role in ("input", "target"))
            prediction.context.append(self._pair_images[pair_id])

    def _pair_file(self, item):
        if self.task is None:
            return item
        status, _, body = self.remote.request("GET", f"/v1/tasks/{self.task}/files/{item}")
        if status != 200:
            raise ServerError(f"the server did not give {self.task}/{item} ({status})")
        return body


def run_header(remote: Remote, info: dict, options, working, context, task, pairs: list[dict]) -> tuple[list[str], dict]:
    """(warnings with {{option}} marks, the record's run header) as a local run makes them, with
    the server's model, device and precision, and `server`."""
    from types import SimpleNamespace

    from lavin_cli.inference import records

    model = info["models"][0]
    folder = SimpleNamespace(name=model["name"], max_pairs=model.get("max_pairs"), default_pairs=model.get("default_pairs"),
                             sizes=tuple(model["sizes"]) if model.get("sizes") else None)
    unused = context.unused if context is not None else []
    warnings = records.warnings(folder, options, working, len(pairs), unused)
    header = {"lavin": info.get("lavin"), "server": remote.url,
              "model": {k: model.get(k) for k in ("name", "path", "dit_sha256", "vae_sha256")},
              "device": info.get("device"), "dtype": info.get("dtype"), "attention": info.get("attention"),
              "offload": info.get("offload"), "quantize": info.get("quantize"),
              "size": {"height": working[0], "width": working[1]},
              **records.settings(options),
              "context": f"{remote.url}/v1/tasks/{task}" if task is not None else context.source,
              "context_pairs": len(pairs), "unpaired": [] if context is None else context.unpaired,
              "skipped": [] if context is None else context.skipped, "pairs_used": min(options.pairs, len(pairs)),
              "warnings": [errors.render(w) for w in warnings], "timings": {"load_s": 0.0}}
    return warnings, header


def _name(query, index: int) -> str:
    return "stdin" if query == "-" else str(query) if isinstance(query, (str, Path)) else f"query #{index}"


_STDIN: list[bytes] = []  # stdin is read once


def _bytes_of_query(query) -> bytes:
    """A query's file bytes; a file that cannot be read fails as read_image would say."""
    if query == "-":
        import sys

        if not _STDIN:
            _STDIN.append(sys.stdin.buffer.read())
        return _STDIN[0]
    return _bytes(query)
