"""`lavin video --server`: clip runs computed by a server, one request per query clip. The
server answers each prediction's frames losslessly (.npy: uint8 frames, or the float values for
raw formats); the caller encodes its video files and frame folders itself, as a local run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from lavin_cli.errors import UsageError
from lavin_cli.inference.predictions import Progress, VideoPrediction
from lavin_cli.io import images as image_io
from lavin_cli.io.video import NO_CODEC, Clip, is_video_path, needs_codec
from lavin_cli.serve.client import Remote, options_json, rebuilt, run_header


def clip_files(query) -> list[tuple[str, str, bytes]]:
    """A query clip as the request's files: one video file, or a folder's frames in order."""
    path = Path(query)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and image_io.is_image_path(p))
        return [("query", f"{i:05d}{p.suffix.lower()}", p.read_bytes()) for i, p in enumerate(frames)]
    if not is_video_path(path):
        raise UsageError(f"{query}: a query clip is a video file or a folder of frames")
    return [("query", path.name, path.read_bytes())]


class RemoteVideoRun:
    def __init__(self, remote: Remote, context, queries, options, callback, indices, skip, task):
        self.remote, self.context, self.task, self.queries, self.options = remote, context, task, list(queries), options
        self.indices = list(range(len(self.queries))) if indices is None else list(indices)
        self.notify, self.skip = callback or (lambda p: None), skip
        self.info = remote.model()
        self.working = options.working_size(self.info["models"][0]["size"])
        self.fields = {**remote.context_fields(context, task, clips=True), "options": options_json(options),
                       "format": "npy" if options.raw else "video"}
        self.warnings: list[str] = []
        self.header: dict = {}
        self.context_seconds = self.input_wait = 0.0
        self._first = None

    def prepare(self) -> dict:
        """The record's header: the server's, once it has encoded the context for the first query."""
        self._check_codec()
        pairs = [{"id": p.id} for p in self.context.pairs] if self.context is not None else []
        self.warnings, self.header = run_header(self.remote, self.info, self.options, self.working, self.context,
                                                self.task, pairs or self._task_pairs())
        if self.queries and not (self.skip is not None and self.skip([self.indices[0]])):
            self._first = self._send(0)
            server = self._first[1].get("X-Lavin-Header") or self._first[1].get("x-lavin-header")
            if server:
                found = json.loads(server)
                self.header.update({k: found[k] for k in ("mode", "new_frames", "context_clip_frames", "sequence_tokens",
                                                          "pairs_used", "context_pairs") if k in found})
        self.header.setdefault("context_clip_frames", {"input": None, "target": None})
        self.header.setdefault("mode", "?")
        return self.header

    def _check_codec(self) -> None:
        """A server that decodes no video files (its /v1/models "video_files") is told no video file
        to decode: refused before anything is sent, naming the first such clip."""
        reads = self.info.get("video_files", "")
        if not reads.startswith(NO_CODEC):
            return
        pairs = self.context.pairs if self.context is not None else []
        for clip in [*self.queries, *(p for pair in pairs for p in (pair.input, pair.target))]:
            if isinstance(clip, (str, Path)) and needs_codec(clip):
                raise UsageError(f"{clip}: the lavin server at {self.remote.url} reads no video files but GIFs "
                                 f"(video_files: {reads}); send GIFs or folders of frames, or install imageio-ffmpeg "
                                 f"(or av) there")

    def _task_pairs(self) -> list[dict]:
        tasks = {t["task"]: t for t in self.remote.call("GET", "/v1/tasks")["tasks"]}
        if self.task not in tasks:
            from lavin_cli.errors import UnknownTask

            raise UnknownTask(f"unknown task {self.task!r} on the server (available: {', '.join(sorted(tasks))})")
        return tasks[self.task]["pairs"]

    def _send(self, n: int):
        return self.remote.request("POST", "/v1/video", self.fields, clip_files(self.queries[n]))

    def __iter__(self) -> Iterator[VideoPrediction]:
        for n, index in enumerate(self.indices):
            label = str(self.queries[n])
            if self.skip is not None and self.skip([index]):
                yield VideoPrediction(label, index=index, skipped=True)
            else:
                answer, self._first = (self._first if n == 0 and self._first is not None else self._send(n)), None
                yield self._prediction(label, index, *answer)
            self.notify(Progress("query", n + 1, len(self.queries)))

    def _prediction(self, label: str, index: int, status: int, headers: dict, body: bytes) -> VideoPrediction:
        if status == 401:
            from lavin_cli.errors import ServerError

            raise ServerError(f"the lavin server at {self.remote.url} wants a token: give --token or set LAVIN_SERVE_TOKEN")
        if status >= 400:
            try:
                error = rebuilt(json.loads(body), status)
            except ValueError:
                error = rebuilt({}, status)
            if status in (422, 413):
                return VideoPrediction(label, error=str(error), code=error.exit_code, index=index, exception=error)
            raise error
        entry = json.loads(headers.get("X-Lavin-Entry") or headers.get("x-lavin-entry") or "{}")
        values = np.load(io.BytesIO(body), allow_pickle=False)
        frames, raw = (values["frames"], values["raw"]) if isinstance(values, np.lib.npyio.NpzFile) else (values, None)
        return VideoPrediction(label, Clip(frames, float(entry.get("fps") or 10.0)), entry.get("pairs") or [],
                               seconds=entry.get("seconds", 0.0), index=index, raw=raw)
