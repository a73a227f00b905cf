"""`Pipeline`: the library's entry point. A loaded model; context pairs + queries in, predictions
and a record of the run out, streamed or collected.

    pipe = Pipeline.from_pretrained("path/to/model", device="auto")
    result = pipe("pairs/", ["a.jpg", "b.jpg"], pairs=4, seed=7)     # collected
    result.predictions[0].image        # RGB uint8 at the query's original size
    result.record                      # what ran: model, hashes, seed, pairs used, timings

    run = pipe.stream("pairs/", paths, options=RunOptions(pairs=4))  # streamed
    run.header                         # the record's header, before any work
    for prediction in run:             # each as its batch finishes, in query order
        save(prediction.image); log(prediction.entry)

Videos: `pipe.video(...)` and `pipe.video_stream(...)`, the same with VideoOptions.
Options are validated when the call is made, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lavin_cli.inference import context as ctx
from lavin_cli.inference import options as opts
from lavin_cli.inference.cache import ContextCache
from lavin_cli.inference.clips import VideoPrediction, VideoRun
from lavin_cli.inference.engine import Engine, MemoryPlan
from lavin_cli.inference.images import ImageRun, Prediction, Progress, ProgressCallback, SkipBatch
from lavin_cli.inference.options import LoadOptions, RunOptions, VideoOptions
from lavin_cli.store import folders

__all__ = ["Pipeline", "RunResult", "Prediction", "VideoPrediction", "Progress", "RunOptions", "VideoOptions",
           "LoadOptions"]


@dataclass
class RunResult:
    predictions: list
    record: dict

    @property
    def failed(self) -> list:
        return [p for p in self.predictions if p.error]


def as_context(context, clips: bool = False) -> ctx.Context:
    """A context folder (str or Path), an already found `Context`, or in-memory (input, target) pairs."""
    if isinstance(context, ctx.Context):
        return context
    if isinstance(context, (str, bytes, Path)):
        return ctx.find_pairs(context, clips=clips)
    return ctx.from_pairs(list(context))


def as_queries(queries) -> list:
    """One query (a path, an image, an array) or a sequence of them."""
    if isinstance(queries, (str, bytes, Path)) or not isinstance(queries, Sequence):
        return [queries]
    return list(queries)


class Pipeline:
    def __init__(self, engine: Engine, model: folders.ModelFolder | None = None):
        self.engine, self.model = engine, model
        self.context_cache = ContextCache(entries=1)  # the last encoded context, reused by calls on the same pairs

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | folders.ModelFolder | None = None, device: str = "auto",
                        dtype: str = "auto", attention: str = "auto", offload: str = "none", home=None,
                        compile: bool = False, plan: MemoryPlan | dict | None = None,
                        quantize: str = "none") -> "Pipeline":
        """Load a model by name or folder (else $LAVIN_MODEL, else the bundled model).

        offload="auto" picks the fastest mode whose estimated peak memory fits the free GPU memory
        for `plan` (a MemoryPlan, or {"size": (h, w) or N, "pairs": N, "batch": 1, "frames": 1}; pairs
        default to the model's). quantize="int8": the DiT blocks' weights in one byte each
        (models/int8.py), quantized as they load.
        """
        load = LoadOptions(device, dtype, attention, offload, compile, quantize)
        folder = name_or_path if isinstance(name_or_path, folders.ModelFolder) else \
            folders.resolve(str(name_or_path) if name_or_path else None, home)
        if isinstance(plan, dict):
            size = opts.parse_size(plan.get("size")) or (folder.size, folder.size)
            plan = MemoryPlan(size, plan.get("pairs", folder.default_pairs), plan.get("batch", 1), plan.get("frames", 1))
        return cls.load(folder, load, plan)

    @classmethod
    def load(cls, folder: folders.ModelFolder, options: LoadOptions, plan: MemoryPlan | None = None) -> "Pipeline":
        """A resolved model folder, loaded as validated `options` say."""
        return cls(Engine.load(folder, options, plan), folder)

    # the engine's state, for callers that inspect a pipeline
    dit = property(lambda self: self.engine.dit)
    vae = property(lambda self: self.engine.vae)
    device = property(lambda self: self.engine.device)
    dtype = property(lambda self: self.engine.dtype)
    attention = property(lambda self: self.engine.attention)
    offload = property(lambda self: self.engine.offload)
    quantize = property(lambda self: self.engine.quantize)  # "int8" where the DiT blocks hold int8 weights

    @property
    def default_size(self) -> int:
        return self.model.size if self.model else folders.OFFICIAL_SIZE

    @property
    def default_pairs(self) -> int:
        return self.model.default_pairs if self.model else folders.DEFAULT_PAIRS

    def memory_estimate(self, size, pairs: int, batch: int = 1, frames: int = 1) -> dict[str, int]:
        working = opts.parse_size(size) or (self.default_size, self.default_size)
        return self.engine.memory_estimate(working, pairs, batch, frames)

    # ------------------------------------------------------------------ images

    def stream(self, context, queries, options: RunOptions | None = None, callback: ProgressCallback = None,
               indices: Sequence[int] | None = None, skip: SkipBatch = None, **keywords) -> ImageRun:
        """An iterable run: predictions as their batch finishes, in query order (see ImageRun).
        `indices`: the queries' positions in a larger list (a shard), which fix their batches;
        `skip(positions)`: True leaves a batch out (its predictions come back `skipped`)."""
        options = opts.build(RunOptions, options, **keywords).for_model(self.default_pairs)
        return ImageRun(self.engine, self.model, as_context(context), as_queries(queries), options, callback, indices,
                        self.context_cache, skip)

    def __call__(self, context, queries, *, options: RunOptions | None = None, callback: ProgressCallback = None,
                 **keywords) -> RunResult:
        """Predict the target of every query, in-context; every prediction and the whole record.
        `context`: a folder, or (input, target) pairs (paths, PIL images or arrays); keywords are
        RunOptions fields (pairs, select, size, fit, steps, cfg, seed, solver, batch_size, keep, mask)."""
        run = self.stream(context, queries, options, callback, **keywords)
        header = run.prepare()
        predictions = list(run)
        return RunResult(predictions, _collect(header, run.context_seconds, predictions))

    # ------------------------------------------------------------------ video

    def video_stream(self, context, queries, options: VideoOptions | None = None, callback: ProgressCallback = None,
                     indices: Sequence[int] | None = None, skip: SkipBatch = None, **keywords) -> VideoRun:
        """An iterable clip run; `run.prepare()` encodes the context and returns the record header."""
        options = opts.build(VideoOptions, options, **keywords).for_model(self.default_pairs)
        return VideoRun(self.engine, self.model, as_context(context, clips=True), as_queries(queries), options, callback,
                        indices, skip)

    def video(self, context, queries, *, options: VideoOptions | None = None, callback: ProgressCallback = None,
              **keywords) -> RunResult:
        """In-context video tasks (clip-to-clip or prediction, told by the context); keywords are
        VideoOptions fields (frames, mode, fps and those of images but batch_size)."""
        run = self.video_stream(context, queries, options, callback, **keywords)
        header = run.prepare()
        predictions = list(run)
        return RunResult(predictions, _collect(header, run.context_seconds, predictions))


def _collect(header: dict, context_seconds: float, predictions: list) -> dict:
    record = dict(header)
    record["timings"] = {**header["timings"], "context_s": round(context_seconds, 4)}
    record["queries"] = [p.entry for p in predictions]
    return record
