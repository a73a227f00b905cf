"""The video runner: context clip pairs + query clips -> predicted clips, streamed one query at a time.

Two kinds of task, told apart by the context alone (see lavin_cli/inference/frames.py for the
frame rules):
    clip     every input frame has a target frame (video depth, normals, segmentation...)
    predict  the target continues the input; its first frame repeats the last input frame (the
             anchor: known, so held while the new frames are sampled)
A context pair whose target starts with (nearly) its input's last frame is a prediction pair.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from lavin_cli.errors import InputError, LavinError, render
from lavin_cli.inference import codec, records
from lavin_cli.inference import keep as keep_rules
from lavin_cli.inference import context as ctx
from lavin_cli.inference import frames as frame_rules
from lavin_cli.inference.images import Progress, ProgressCallback, SkipBatch
from lavin_cli.inference.predictions import VideoPrediction
from lavin_cli.inference.options import VideoOptions
from lavin_cli.inference.prefetch import prefetch
from lavin_cli.io import images as image_io
from lavin_cli.io.video import Clip, read_video
from lavin_cli.runtime import memory

ANCHOR_TOLERANCE = 0.04  # mean |target[0] - input[-1]| (of 1) below which a pair is a prediction pair


@dataclass
class ContextClips:
    ids: list[str]
    latents: list[tuple[torch.Tensor, torch.Tensor]]  # per pair: (input, target) latents (C, T, h, w)
    keys: list[torch.Tensor]  # per pair: posterior mean of the input's first latent frame (for nearest)
    mode: str
    input_frames: int  # 4k + 1 frames per query chunk
    target_frames: int


def fit_frames(frames: np.ndarray, working, fit: str) -> tuple[np.ndarray, image_io.Placement]:
    fitted = [image_io.fit(f, working, fit) for f in frames]
    return np.stack([f for f, _ in fitted]), fitted[0][1]


def detect_mode(pairs: list[tuple[Clip, Clip]], requested: str) -> str:
    anchored = [np.abs(t.frames[0].astype(float) - i.frames[-1]).mean() / 255 < ANCHOR_TOLERANCE for i, t in pairs]
    if requested != "auto":
        return requested
    if all(anchored):
        return "predict"
    if not any(anchored):
        return "clip"
    raise InputError("the context mixes prediction pairs (target starts with the input's last frame) and "
                     "clip-to-clip pairs; give {{mode=clip}} or {{mode=predict}}")


def _check_pairs(found: ctx.Context, chosen: list[int], clips: list[tuple[Clip, Clip]], mode: str) -> None:
    for i, (inp, tgt) in zip(chosen, clips):
        if mode == "clip" and inp.frames.shape[1:] != tgt.frames.shape[1:]:
            raise InputError(f"pair {found.pairs[i].id}: input and target frames differ in size")
        if mode == "clip" and len(inp.frames) != len(tgt.frames):
            raise InputError(f"pair {found.pairs[i].id}: input has {len(inp.frames)} frames, target {len(tgt.frames)}; "
                             "a clip-to-clip pair needs one target frame per input frame")


def read_clip(path, options: VideoOptions) -> Clip:
    """A clip within the options' pixel limit and a quarter of the memory available now."""
    return read_video(path, max_pixels=options.max_pixels, max_bytes=memory.available() // 4)


def encode_context(engine, found: ctx.Context, working, options: VideoOptions) -> ContextClips:
    """Read, check and encode the context clips (all of them for select='nearest', which picks per query)."""
    o = options
    chosen = ctx.candidates(found, o.pairs, o.select, o.seed)
    clips = [(read_clip(found.pairs[i].input, o), read_clip(found.pairs[i].target, o)) for i in chosen]
    if o.mode == "clip":
        _check_pairs(found, chosen, clips, "clip")
    mode = detect_mode(clips, o.mode)
    _check_pairs(found, chosen, clips, mode)
    n_in = frame_rules.padded_length(min(len(i.frames) for i, _ in clips))
    n_tg = n_in if mode == "clip" else frame_rules.padded_length(min(len(t.frames) for _, t in clips))
    gen = torch.Generator().manual_seed(o.seed)
    latents, keys = [], []
    for inp, tgt in clips:
        a, mean = engine.encode(frame_rules.pad(fit_frames(inp.frames, working, o.fit)[0], n_in)[None], [gen])
        b, _ = engine.encode(frame_rules.pad(fit_frames(tgt.frames, working, o.fit)[0], n_tg)[None], [gen])
        latents.append((a[0], b[0]))
        keys.append(mean[0, :, 0])
    return ContextClips([found.pairs[i].id for i in chosen], latents, keys, mode, n_in, n_tg)


def for_query(context: ContextClips, key: torch.Tensor, count: int, select: str, seed: int) -> ContextClips:
    """The pairs this query sees: all loaded ones, or (nearest) the `count` whose input clips start
    closest to `key` (the query's first latent frame, posterior mean), the closest next to the query."""
    if select != "nearest":
        return context
    idx = ctx.select(count, len(context.latents), "nearest", seed, ctx.similarity(key, torch.stack(context.keys)))
    return dataclasses.replace(context, ids=[context.ids[i] for i in idx], latents=[context.latents[i] for i in idx],
                               keys=[context.keys[i] for i in idx])


class VideoRun:
    def __init__(self, engine, model, context: ctx.Context, queries: Sequence, options: VideoOptions,
                 progress: ProgressCallback = None, indices: Sequence[int] | None = None, skip: SkipBatch = None):
        """`skip([position])`, asked before each query is computed: True leaves it out."""
        self.engine, self.found, self.queries, self.options = engine, context, list(queries), options
        self.skip = skip
        self.indices = list(range(len(self.queries))) if indices is None else list(indices)
        self.notify = progress or (lambda _p: None)
        self.working = options.working_size(model.size if model else 512)
        self.model = model
        self.context: ContextClips | None = None
        self.context_seconds = self.input_wait = 0.0
        self.tokens = 0
        self.warnings: list[str] = []
        self.header: dict = {}

    def prepare(self) -> dict:
        """Encode the context clips, check that one DiT call fits; returns the record header
        (once: a second call returns the same)."""
        if self.context is None:
            with self.engine.oom_advice(self.working, self.options.pairs, 1, frames=5):
                self.header = self._prepare()
        return self.header

    def _prepare(self) -> dict:
        t0 = time.perf_counter()
        self.context = c = encode_context(self.engine, self.found, self.working, self.options)
        self.context_seconds = time.perf_counter() - t0
        q_latents = frame_rules.latents_for(c.input_frames)
        t_latents = q_latents if c.mode == "clip" else \
            frame_rules.plan_prediction(self.options.new_frames, c.target_frames).chunk_latents
        seen = c.latents[:self.options.pairs]
        self.tokens = (sum(a.shape[1] + b.shape[1] for a, b in seen) + q_latents + t_latents) * \
            (self.working[0] // 16) * (self.working[1] // 16)
        self.engine.check_fits(self.tokens, self.working, len(c.latents), max(c.input_frames, c.target_frames))
        self.notify(Progress("tokens", self.tokens, self.tokens))
        self.warnings = records.warnings(self.model, self.options, self.working, len(self.found.pairs),
                                         self.found.unused)
        self.keep = keep_rules.resolve_video(self.options.keep, self.found.keep, c.mode == "predict")
        if c.mode == "clip" and self.options.keep == "last":
            self.warnings.append("{{keep=last}} is for prediction tasks; this context maps each query frame to a "
                                 "target frame (clip mode), so the model's frames are kept as they are")
        if c.mode == "clip" and self.options.frames is not None:
            self.warnings.append(f"{{{{frames={self.options.frames}}}}} is for prediction tasks; this context maps "
                                 "each query frame to a target frame (clip mode), so no new frames are made")
        return records.header(self.engine, self.model, self.options, self.working, {
            "context": self.found.source, "context_pairs": len(c.ids), "unpaired": self.found.unpaired,
            "skipped": self.found.skipped,
            "pairs_used": min(self.options.pairs, len(c.ids)), "keep": self.keep,
            "warnings": [render(w) for w in self.warnings],
            "mode": c.mode, "new_frames": self.options.new_frames if c.mode == "predict" else None,
            "context_clip_frames": {"input": c.input_frames, "target": c.target_frames},
            "sequence_tokens": self.tokens})

    def _load(self, item):
        index, query = item
        try:
            clip = read_clip(query, self.options)
            fitted, placement = fit_frames(clip.frames, self.working, self.options.fit)
        except LavinError as err:
            return index, str(query), err
        return index, str(query), (clip, fitted, placement)

    def __iter__(self) -> Iterator[VideoPrediction]:
        self.prepare()
        with self.engine.oom_advice(self.working, self.options.pairs, 1, frames=5):
            yield from self._run()

    def _run(self) -> Iterator[VideoPrediction]:
        for n, (index, label, loaded) in enumerate(prefetch(zip(self.indices, self.queries), self._load)):
            start = time.perf_counter()
            if self.skip is not None and self.skip([index]):
                yield VideoPrediction(label, index=index, skipped=True)
                self.notify(Progress("query", n + 1, len(self.queries)))
                continue
            try:
                if isinstance(loaded, LavinError):
                    raise loaded
                clip, fitted, placement = loaded
                if self.context.mode == "clip":
                    restored, raw, used = self._clip_to_clip(fitted, placement)
                else:
                    restored, raw, used = self._predict(fitted, clip.frames[-1], placement)
                pred = VideoPrediction(label, Clip(restored, self.options.fps or clip.fps or 10.0), used,
                                       seconds=time.perf_counter() - start, tokens=self.tokens, index=index, raw=raw)
            except LavinError as err:
                pred = VideoPrediction(label, error=str(err), code=err.exit_code, index=index, exception=err)
            yield pred
            self.notify(Progress("query", n + 1, len(self.queries)))

    def generate(self, window: np.ndarray, target_latents: int, noise_seed: int, first: np.ndarray | None = None):
        """Encode a query window, choose its pairs, sample `target_latents` latents; (latents, ids).
        `first` (H, W, 3 uint8): the target's first frame where it is known (a prediction's
        anchor: the window's last frame): its latent, the frame coded alone
        as a causal VAE codes a clip's first frame, is held while the rest is sampled."""
        o = self.options
        q, mean = self.engine.encode(window[None], [torch.Generator().manual_seed(o.seed)])
        known = None if first is None else \
            self.engine.encode(first[None, None], [torch.Generator().manual_seed(o.seed)])[1]
        seen = for_query(self.context, mean[0, :, 0], o.pairs, o.select, o.seed)
        cond = codec.condition(seen.latents, q[0])[None]
        z = self.engine.generate(cond, target_latents, [torch.Generator().manual_seed(noise_seed)], o.sampling,
                                 query_frames=q.shape[2], progress=lambda d, t: self.notify(Progress("sample", d, t)),
                                 known=known)
        return z, seen.ids

    def _decode(self, z: torch.Tensor, raw: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """One clip's latents -> (uint8 frames, float32 frames with options.raw or `raw`, else None)."""
        if self.options.raw or raw:
            pixels, floats = self.engine.decode(z, raw=True)
            return pixels[0], floats[0]
        return self.engine.decode(z)[0], None

    def _restore(self, frames: np.ndarray, floats: np.ndarray | None, placement):
        """Working-size frames (uint8, float32 or None) -> the query's size."""
        out = np.stack([image_io.unfit(f, placement) for f in frames])
        return out, None if floats is None else np.stack([image_io.unfit(f, placement) for f in floats])

    def _clip_to_clip(self, frames: np.ndarray, placement):
        """Chunks of the context's clip length sharing one frame; each frame predicted once kept.
        The shared frame is not held as a prediction's anchor is: on lavin-small's video depth
        (13-frame clips, tuning seeds 5 / 6) that smoothed the boundaries (frame to frame 27.7 /
        23.7 -> 34.6 / 31.0 dB) but carried each chunk's error into the next (AbsRel 0.043 / 0.073
        -> 0.046 / 0.080).
        Returns the frames at the query's size (uint8, and float32 with options.raw) and the ids of
        the pairs used (by the first chunk)."""
        c = self.context
        out = np.zeros_like(frames)
        out_f = np.zeros(frames.shape, np.float32) if self.options.raw else None
        done, used = 0, []
        for start, end in frame_rules.chunks(len(frames), c.input_frames):
            chunk = frame_rules.pad(frames[start:end], c.input_frames)
            z, ids = self.generate(chunk, frame_rules.latents_for(c.input_frames), self.options.seed + start)
            used = used or ids
            pixels, floats = self._decode(z)
            keep = slice(max(start, done) - start, end - start)
            out[max(start, done):end] = pixels[keep]
            if out_f is not None:
                out_f[max(start, done):end] = floats[keep]
            done = end
            self.notify(Progress("frames", done, len(frames)))
        return (*self._restore(out, out_f, placement), used)

    def _predict(self, frames: np.ndarray, last: np.ndarray, placement):
        """`frames` new frames, chunk by chunk, each chunk seeing the latest frames; returned at the
        query's size (uint8, and float32 with options.raw) with the ids of the pairs used (by the
        first chunk). With keep "last", a chunk's new frames are its anchor as the query has it
        (`last`, the query's last frame at its own size, then the previous chunk's last) plus the
        model's change from its own decoding of the anchor (keep.carry), at both sizes."""
        c = self.context
        plan = frame_rules.plan_prediction(self.options.new_frames, c.target_frames)
        carry = self.keep == "last"
        history = list(frames)
        base = last.astype(np.float32) / 255  # the anchor at the query's size
        produced: list[np.ndarray] = []  # uint8 frames; carrying: float32 frames at the query's size
        produced_f: list[np.ndarray] = []  # without carrying, with options.raw: the float32 frames
        for n in range(plan.chunks):
            window = np.stack(history[-c.input_frames:])
            if len(window) < c.input_frames:  # a short query: repeat its first frame in front
                window = np.concatenate([np.repeat(window[:1], c.input_frames - len(window), 0), window])
            z, ids = self.generate(window, plan.chunk_latents, self.options.seed + n, first=window[-1])
            used = ids if n == 0 else used
            pixels, floats = self._decode(z, raw=carry)
            fresh = slice(1, 1 + plan.chunk_new_frames)  # frame 0 is the anchor
            if carry:
                history += list(image_io.to_uint8(keep_rules.carry(window[-1].astype(np.float32) / 255, floats[0], floats[fresh])))
                up = np.stack([image_io.unfit(f, placement) for f in floats[:1 + plan.chunk_new_frames]])
                produced += list(keep_rules.carry(base, up[0], up[1:]))
                base = produced[-1]
            else:
                history += list(pixels[fresh])
                produced += list(pixels[fresh])
                if floats is not None:
                    produced_f += list(floats[fresh])
            self.notify(Progress("frames", min(len(produced), self.options.new_frames), self.options.new_frames))
        n = self.options.new_frames
        if carry:
            out = np.stack(produced[:n])
            return image_io.to_uint8(out), out if self.options.raw else None, used
        floats = np.stack(produced_f[:n]) if produced_f else None
        return (*self._restore(np.stack(produced[:n]), floats, placement), used)

