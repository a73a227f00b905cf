"""The image runner: context pairs + queries -> predictions, streamed as each batch finishes.

    run = ImageRun(engine, model, context, queries, options)
    run.header                      # the record's header, before any work
    for prediction in run: ...      # in query order, a batch at a time

The context is encoded once (all pairs for `select="nearest"`, which picks per query, else the
selected ones); queries are read and fitted on a background thread one batch ahead of the model.
A query's randomness (its posterior sample and its initial noise) comes from generators seeded
with `seed` alone, so its result does not depend on which other queries share its run.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from lavin_cli.errors import LavinError, render
from lavin_cli.inference import codec, records
from lavin_cli.inference import keep as keep_rules
from lavin_cli.inference import masks
from lavin_cli.inference.cache import ContextCache
from lavin_cli.inference import context as ctx
from lavin_cli.inference.options import RunOptions
from lavin_cli.inference.predictions import Prediction, Progress, ProgressCallback, SkipBatch
from lavin_cli.inference.prefetch import prefetch
from lavin_cli.io import images as image_io


@dataclass
class _Loaded:
    index: int
    label: str
    fitted: Optional[np.ndarray] = None
    placement: Optional[image_io.Placement] = None
    original: Optional[np.ndarray] = None  # the query as read, for what the prediction keeps of it
    mask: Optional[np.ndarray] = None  # (H, W) bool, True to fill: the query's mask given beside it (options.mask)
    error: Optional[LavinError] = None


def _pair_label(pair, item, role: str) -> str | None:
    """A context image's name in messages: its path, or for an in-memory one its pair and role."""
    return None if isinstance(item, (str, Path)) else f"context pair {pair.id} {role}"


def _label(query, index: int) -> str:
    """A query's name in messages and the record: its path, the `name` of an in-memory one that
    has one (an upload), else its position."""
    name = getattr(query, "name", None)
    if isinstance(query, (bytes, bytearray)) and isinstance(name, str):
        return name
    return str(query) if isinstance(query, str) or hasattr(query, "is_file") else f"query #{index}"


class ImageRun:
    def __init__(self, engine, model, context: ctx.Context, queries: Sequence, options: RunOptions,
                 progress: ProgressCallback = None, indices: Sequence[int] | None = None,
                 context_cache: ContextCache | None = None, skip: SkipBatch = None):
        """`indices`: the queries' positions in a larger list (a shard, a resumed run): batches
        are formed by position (index // batch_size), so a query always meets the same batch.
        `skip(positions)`, asked before each batch is computed: True leaves the batch out (its
        predictions come back with `skipped` set), e.g. when its outputs appeared meanwhile."""
        self.engine, self.context, self.queries, self.options = engine, context, list(queries), options
        self.indices = list(range(len(self.queries))) if indices is None else list(indices)
        if len(self.indices) != len(self.queries):
            raise ValueError("one index per query")
        self.input_wait = 0.0  # seconds the model waited for queries to be read
        self.context_cache = context_cache  # the caller's: an encoded context reused across runs
        self.skip = skip
        self.notify = progress or (lambda _p: None)
        self.working = options.working_size(model.size if model else 512)
        self.candidates = ctx.candidates(context, options.pairs, options.select, options.seed)
        self.pairs_used = min(options.pairs, len(context.pairs))
        self.keep = keep_rules.resolve(options.keep, context.keep)
        self.paint_color = None  # with masks beside the queries: the colour the model sees where they are set
        self.masks = masks.per_query(options.mask, len(self.queries), self.indices)  # a list of masks, by index
        if options.mask is not None:
            self.keep, self.paint_color = keep_rules.with_mask(options.keep, context.keep)
        self.warnings = records.warnings(model, options, self.working, len(context.pairs),  # {{option}} markup
                                         context.unused)
        self.header = records.header(engine, model, options, self.working, {
            "context": context.source, "context_pairs": len(context.pairs), "unpaired": context.unpaired,
            "skipped": context.skipped,
            "pairs_used": self.pairs_used, "keep": str(self.keep), "warnings": [render(w) for w in self.warnings]})
        self.context_seconds = 0.0

    def prepare(self) -> dict:
        """The record's header (an image run's context is encoded with its first batch)."""
        return self.header

    # ------------------------------------------------------------------ context

    def _encode_context(self):
        """Read, fit and encode the candidate pairs once: latents (P, 2, C, h, w), means, images."""
        t0 = time.perf_counter()
        images, generator = [], torch.Generator().manual_seed(self.options.seed)
        fit = self.options.fit
        for i in self.candidates:
            pair = self.context.pairs[i]
            images.append(tuple(image_io.fit(image_io.read_image(p, _pair_label(pair, p, role), self.options.max_pixels),
                                             self.working, fit)[0]
                                for p, role in ((pair.input, "input"), (pair.target, "target"))))
        latents, means = [], []
        for n in range(0, len(images), 4):  # a few pairs per VAE call bounds memory
            chunk = np.stack([im for pair in images[n:n + 4] for im in pair])[:, None]
            s, m = (t[:, :, 0] for t in self.engine.encode(chunk, [generator] * len(chunk)))  # (2n, C, h, w)
            latents.append(s.reshape(-1, 2, *s.shape[1:]))
            means.append(m.reshape(-1, 2, *m.shape[1:]))
            self.notify(Progress("context", min(n + 4, len(images)), len(images)))
        self.context_seconds = time.perf_counter() - t0
        return torch.cat(latents), torch.cat(means), images

    # ------------------------------------------------------------------ queries

    def _load(self, item: tuple[int, object]) -> _Loaded:
        index, query = item
        label = _label(query, index)
        try:
            image = image_io.read_image(query, label, self.options.max_pixels)
            fill = None
            if self.options.mask is not None:
                given = self.masks[index] if self.masks else self.options.mask
                fill = masks.read(given, query, label, image.shape[:2], self.options.max_pixels)
                image = masks.paint(image, fill, self.paint_color)
            fitted, placement = image_io.fit(image, self.working, self.options.fit)
        except LavinError as err:
            return _Loaded(index, label, error=err)
        return _Loaded(index, label, fitted, placement, image if self.keep.mode != "none" else None, fill)

    def _batches(self) -> Iterator[list[_Loaded]]:
        """Loaded queries grouped by batch position, read one batch ahead."""
        size = self.options.batch_size
        batch: list[_Loaded] = []
        loaded_items = prefetch(zip(self.indices, self.queries), self._load, ahead=size)
        while True:
            t0 = time.perf_counter()
            loaded = next(loaded_items, None)
            self.input_wait += time.perf_counter() - t0
            if loaded is None:
                break
            if batch and loaded.index // size != batch[0].index // size:
                yield batch
                batch = []
            batch.append(loaded)
        if batch:
            yield batch

    def __iter__(self) -> Iterator[Prediction]:
        o = self.options
        tokens = (2 * self.pairs_used + 2) * (self.working[0] // 16) * (self.working[1] // 16)
        self.engine.check_fits(tokens, self.working, self.pairs_used, frames=1, batch=min(o.batch_size, len(self.queries)))
        with self.engine.oom_advice(self.working, self.pairs_used, o.batch_size):
            yield from self._run()

    def _context_key(self) -> tuple:
        """What the encoded context depends on: its pairs' contents, the size, fit and seed."""
        def ident(item) -> object:
            if isinstance(item, np.ndarray):
                return hashlib.sha1(np.ascontiguousarray(item).tobytes()).hexdigest(), item.shape, str(item.dtype)
            if isinstance(item, (bytes, bytearray, memoryview)):
                return hashlib.sha1(bytes(item)).hexdigest()
            if isinstance(item, (str, Path)):
                stat = Path(item).stat() if Path(item).exists() else None
                return str(item), stat and (stat.st_size, stat.st_mtime_ns)
            return id(item)

        o = self.options
        pairs = tuple((ident(self.context.pairs[i].input), ident(self.context.pairs[i].target)) for i in self.candidates)
        return pairs, self.working, o.fit, o.seed, o.max_pixels, str(self.engine.dtype)

    def _run(self) -> Iterator[Prediction]:
        key = self._context_key() if self.context_cache is not None else None
        cached = self.context_cache.get(key) if key is not None else None
        if cached is not None:
            lat, means, images = cached
        else:
            lat, means, images = self._encode_context()
            if key is not None:
                self.context_cache.put(key, (lat, means, images))
        done = 0
        for batch in self._batches():
            if self.skip is not None and self.skip([b.index for b in batch]):
                for b in batch:
                    done += 1
                    yield Prediction(b.label, index=b.index, skipped=True)
                self.notify(Progress("query", done, len(self.queries)))
                continue
            t0 = time.perf_counter()
            ok = [b for b in batch if b.error is None]
            predicted = iter(self._predict(ok, lat, means, images) if ok else [])
            for b in batch:
                if b.error is not None:
                    pred = Prediction(b.label, error=str(b.error), code=b.error.exit_code, index=b.index, exception=b.error)
                else:
                    pred = next(predicted)
                    pred.seconds = (time.perf_counter() - t0) / len(ok)
                done += 1
                yield pred
            self.notify(Progress("query", done, len(self.queries)))

    def _choose(self, query_means: torch.Tensor, means: torch.Tensor) -> list[list[int]]:
        """Per query, indices into the candidates, in prompt order."""
        o = self.options
        if o.select != "nearest":
            return [list(range(len(self.candidates)))] * len(query_means)
        return [ctx.select(o.pairs, len(self.candidates), "nearest", o.seed, ctx.similarity(m, means[:, 0]))
                for m in query_means]

    def _predict(self, loaded: list[_Loaded], lat, means, images) -> list[Prediction]:
        o = self.options
        gens = [torch.Generator().manual_seed(o.seed) for _ in loaded]
        q_lat, q_mean = self.engine.encode(np.stack([b.fitted for b in loaded])[:, None], gens)
        chosen = self._choose(q_mean[:, :, 0], means)
        cond = torch.stack([codec.condition([(lat[i, 0, :, None], lat[i, 1, :, None]) for i in idx], q)
                            for idx, q in zip(chosen, q_lat)])
        z = self.engine.generate(cond, 1, gens, o.sampling, progress=lambda d, t: self.notify(Progress("sample", d, t)))
        pixels, floats = self.engine.decode(z, raw=True) if o.raw else (self.engine.decode(z), None)
        out = []
        for n, (b, idx) in enumerate(zip(loaded, chosen)):
            ids = [self.context.pairs[self.candidates[i]].id for i in idx]
            mask = keep_rules.mask_for(self.keep, b.original, b.mask)  # once per query (None unless unmasked)
            image = keep_rules.apply(self.keep, image_io.unfit(pixels[n, 0], b.placement), b.original, mask)
            raw = None if floats is None else keep_rules.apply(self.keep, image_io.unfit(floats[n, 0], b.placement),
                                                               b.original, mask)
            note = keep_rules.warning(self.keep, mask, given=b.mask is not None)
            out.append(Prediction(b.label, image, ids, working=b.fitted, context=[images[i] for i in idx],
                                  index=b.index, raw=raw, warnings=[f"{b.label}: {note}"] if note else []))
        return out
