"""Where `lavin run` and `lavin video` get their predictions: a model loaded in this process, or
a lavin server (--server URL, $LAVIN_SERVER). Either way the command plans, checks and writes
the same files; only where the predictions are computed differs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from lavin_cli.cli import distributed
from lavin_cli.errors import UsageError


LOCAL_ONLY = ("device", "dtype", "attention", "offload", "compile", "quantize")  # how a model loads here


def source_for(server: Optional[str], token: Optional[str], model: Optional[str], home: Optional[Path],
               typed: list[tuple[str, str]] = ()):
    """The local model, or the server (--server, else $LAVIN_SERVER); `typed`: the command's typed
    options (cli/options.typed), of which those that load a model here are refused with a server."""
    server = server or os.environ.get("LAVIN_SERVER") or None
    if server is None:
        return LocalSource(model, home)
    if model or home:
        raise UsageError("--model and --home choose a model here; with --server the server's model runs (drop them)")
    local = [flag for name, flag in typed if name in LOCAL_ONLY]
    if local:
        raise UsageError(f"{local[0]} sets how a model loads here; with --server the server's model runs as the "
                         "server loaded it (drop it, or give it to lavin serve)")
    return ServerSource(server, token or os.environ.get("LAVIN_SERVE_TOKEN") or None)


class LocalSource:
    remote = False

    def __init__(self, model: Optional[str], home: Optional[Path]):
        from lavin_cli.store import folders

        self.folder = folders.resolve(model, home)
        self.default_pairs, self.size = self.folder.default_pairs, self.folder.size
        self.pipe = None

    def context(self, context: Optional[Path], task: Optional[str], clips: bool, quiet: bool):
        """The context pairs (a Context; its target kind decides the default format)."""
        from lavin_cli.cli.drive import resolve_context

        return resolve_context(context, task, self.folder, clips=clips, quiet=quiet)

    def start(self, ranks, load, size, pairs: int, batch: int = 1, frames: int = 1) -> str:
        """Load the model (its memory planned for that size, pairs, batch and frames); the line
        that says what runs where."""
        from lavin_cli.cli.drive import model_line
        from lavin_cli.inference.engine import MemoryPlan  # torch: imported once the options hold
        from lavin_cli.inference.options import LoadOptions
        from lavin_cli.inference.pipeline import Pipeline

        here = dataclasses.replace(load, device=distributed.device(ranks, load.device))
        self.pipe = Pipeline.load(self.folder, here, MemoryPlan(size, pairs, batch, frames))
        return model_line(self.pipe)

    def stream(self, found, queries, options, callback, indices, skip, clips: bool, views: bool = False):
        """The run (image or clip queries, as `clips` says) over this process's queries."""
        start = self.pipe.video_stream if clips else self.pipe.stream
        return start(found, queries, options, callback, indices=indices, skip=skip)


class ServerSource:
    remote = True

    def __init__(self, url: str, token: Optional[str]):
        from lavin_cli.serve.client import Remote

        self.remote_api = Remote(url, token)
        self.info = self.remote_api.model()
        model = self.info["models"][0]
        self.default_pairs, self.size = model["default_pairs"], model["size"]
        self.task: Optional[str] = None

    def context(self, context: Optional[Path], task: Optional[str], clips: bool, quiet: bool):
        """A local context folder (uploaded once by the run), or the server's task: then a stand-in
        holding only its target kind, the pairs stay on the server."""
        from lavin_cli.errors import UnknownTask
        from lavin_cli.inference import context as ctx

        if (context is None) == (task is None):
            raise UsageError("give exactly one of --context FOLDER or --task NAME")
        if context is not None:
            return ctx.find_pairs(context, clips=clips)
        tasks = {t["task"]: t for t in self.remote_api.call("GET", "/v1/tasks")["tasks"]}
        if task not in tasks:
            raise UnknownTask(f"unknown task {task!r} on the server (available: {', '.join(sorted(tasks)) or 'none'}); "
                              "see `lavin tasks` there")
        self.task = task
        return ctx.Context([], [], f"{self.remote_api.url}/v1/tasks/{task}", tasks[task].get("target"))

    def start(self, ranks, load, size, pairs: int, batch: int = 1, frames: int = 1) -> str:
        if ranks is not None:
            raise UsageError("--server computes on the server: run one lavin process, not torchrun ranks")
        return (f"server {self.remote_api.url}: model {self.info['models'][0]['name']} on {self.info['device']}, "
                f"{self.info['dtype']}, attention {self.info['attention']}, offload {self.info['offload']}")

    def _context(self, found):
        return None if self.task is not None else found

    def stream(self, found, queries, options, callback, indices, skip, clips: bool, views: bool = False):
        if not clips:
            return self.remote_api.stream(self._context(found), queries, options, callback, indices, skip, self.task,
                                          views)
        from lavin_cli.serve.remote_video import RemoteVideoRun

        return RemoteVideoRun(self.remote_api, self._context(found), queries, options, callback, indices, skip, self.task)
