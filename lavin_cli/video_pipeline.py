"""`Pipeline.video`: in-context video tasks, the clip counterpart of `Pipeline.__call__`.

Two kinds of task, told apart by the context alone (see lavin_cli/video.py for the frame rules):
    clip     every input frame has a target frame (video depth, normals, segmentation...)
    predict  the target continues the input; its first frame repeats the last input frame
A context pair whose target starts with (nearly) its input's last frame is a prediction pair.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from lavin_cli import context as ctx
from lavin_cli import media, offload as offload_mod, video
from lavin_cli.errors import DeviceError, InputError, LavinError, UsageError
from lavin_cli.pipeline import Progress, RunResult, parse_size

MODES = ("auto", "clip", "predict")
ANCHOR_TOLERANCE = 0.04  # mean |target[0] - input[-1]| (of 1) below which a pair is a prediction pair


@dataclass
class VideoPrediction:
    query: str
    clip: Optional[media.Clip] = None  # frames at the query's size, its fps
    pairs: list[str] = field(default_factory=list)
    error: Optional[str] = None
    code: int = 0
    seconds: float = 0.0
    tokens: int = 0  # joint sequence length of one DiT call


@dataclass
class ContextClips:
    ids: list[str]
    latents: list[tuple[torch.Tensor, torch.Tensor]]  # per pair: (input, target) latents (C, T, h, w)
    keys: list[torch.Tensor]  # per pair: posterior mean of the input's first latent frame (for nearest)
    mode: str
    input_frames: int  # 4k + 1 frames per query chunk
    target_frames: int


def _fit_frames(frames: np.ndarray, working, fit: str) -> tuple[np.ndarray, media.Placement]:
    fitted = [media.fit(f, working, fit) for f in frames]
    return np.stack([f for f, _ in fitted]), fitted[0][1]


def _detect_mode(pairs: list[tuple[media.Clip, media.Clip]], requested: str) -> str:
    anchored = [np.abs(t.frames[0].astype(float) - i.frames[-1]).mean() / 255 < ANCHOR_TOLERANCE for i, t in pairs]
    if requested != "auto":
        return requested
    if all(anchored):
        return "predict"
    if not any(anchored):
        return "clip"
    raise InputError("the context mixes prediction pairs (target starts with the input's last frame) and "
                     "clip-to-clip pairs; give --mode clip or --mode predict")


def load_context(pipe, folder, working, fit: str, mode: str, count: int, select: str, seed: int) -> ContextClips:
    """Read, check and encode the context clips (all of them for --select nearest, which picks per query)."""
    found = ctx.find_pairs(folder, clips=True)
    ctx.select(count, len(found.pairs), select, seed, torch.zeros(len(found.pairs)))  # validate the options
    chosen = list(range(len(found.pairs))) if select == "nearest" else ctx.select(count, len(found.pairs), select, seed)
    clips = [(media.read_video(found.pairs[i].input), media.read_video(found.pairs[i].target)) for i in chosen]
    for i, (inp, tgt) in zip(chosen, clips):
        if inp.frames.shape[1:] != tgt.frames.shape[1:] and mode == "clip":
            raise InputError(f"pair {found.pairs[i].id}: input and target frames differ in size")
    mode = _detect_mode(clips, mode)
    for i, (inp, tgt) in zip(chosen, clips):
        if mode == "clip" and len(inp.frames) != len(tgt.frames):
            raise InputError(f"pair {found.pairs[i].id}: input has {len(inp.frames)} frames, target {len(tgt.frames)}; "
                             "a clip-to-clip pair needs one target frame per input frame")
    n_in = video.padded_length(min(len(i.frames) for i, _ in clips))
    n_tg = n_in if mode == "clip" else video.padded_length(min(len(t.frames) for _, t in clips))
    gen = torch.Generator().manual_seed(seed)
    latents, keys = [], []
    for inp, tgt in clips:
        a, mean = pipe.encode_clip(video.pad(_fit_frames(inp.frames, working, fit)[0], n_in), gen, with_mean=True)
        b = pipe.encode_clip(video.pad(_fit_frames(tgt.frames, working, fit)[0], n_tg), gen)
        latents.append((a, b))
        keys.append(mean[:, 0])
    return ContextClips([found.pairs[i].id for i in chosen], latents, keys, mode, n_in, n_tg)


def for_query(context: ContextClips, key: torch.Tensor, count: int, select: str, seed: int) -> ContextClips:
    """The pairs this query sees: all loaded ones, or (nearest) the `count` whose input clips start
    closest to `key` (the query's first latent frame, posterior mean), the closest next to the query."""
    if select != "nearest":
        return context
    idx = ctx.select(count, len(context.latents), "nearest", seed, ctx.similarity(key, torch.stack(context.keys)))
    return dataclasses.replace(context, ids=[context.ids[i] for i in idx], latents=[context.latents[i] for i in idx],
                               keys=[context.keys[i] for i in idx])


def _condition(context: ContextClips, query: torch.Tensor) -> torch.Tensor:
    frames = [t for pair in context.latents for t in pair] + [query]
    return torch.cat(frames, dim=1)[None]  # (1, C, T_c, h, w)


def check_memory(pipe, context: ContextClips, working, tokens: int) -> None:
    """Fail before sampling when one DiT call of this length cannot fit the device."""
    needs = offload_mod.estimate(pipe.dit.cfg, pipe.vae.cfg, pipe.dtype, working, len(context.latents),
                                 frames=max(context.input_frames, context.target_frames))
    free = torch.cuda.mem_get_info(pipe.device)[0] if pipe.device.type == "cuda" else available_memory()
    if needs[pipe.offload.name] > 0.9 * free:
        raise DeviceError(f"a {tokens}-token sequence needs about {_human(needs[pipe.offload.name])} with "
                          f"--offload {pipe.offload.name}, {_human(free)} is free: try --offload sequential, "
                          "a smaller --size or fewer --pairs")


def _human(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def available_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 62


def _tokens(pipe, context: ContextClips, query_latents: int, target_latents: int, hw, pairs: int) -> int:
    cond = sum(a.shape[1] + b.shape[1] for a, b in context.latents[:pairs]) + query_latents
    return (cond + target_latents) * (hw[0] // 16) * (hw[1] // 16)


def _clip_to_clip(pipe, context: ContextClips, frames: np.ndarray, s: dict, notify) -> tuple[np.ndarray, list[str]]:
    """Chunks of the context's clip length sharing one frame; each frame predicted once kept.
    Returns the frames and the ids of the pairs used (by the first chunk)."""
    out = np.zeros_like(frames)
    done, used = 0, []
    for start, end in video.chunks(len(frames), context.input_frames):
        chunk = video.pad(frames[start:end], context.input_frames)
        q, mean = pipe.encode_clip(chunk, torch.Generator().manual_seed(s["seed"]), with_mean=True)
        gen = torch.Generator().manual_seed(s["seed"] + start)
        seen = for_query(context, mean[:, 0], s["pairs"], s["select"], s["seed"])
        used = used or seen.ids
        z = pipe.generate(_condition(seen, q), q.shape[1], [gen], s, notify, query_frames=q.shape[1])
        pred = pipe.decode(z)[0][: end - start]
        out[max(start, done):end] = pred[max(start, done) - start:]
        done = end
    return out, used


def _predict(pipe, context: ContextClips, frames: np.ndarray, new: int, s: dict, notify) -> tuple[np.ndarray, list[str]]:
    """`new` continuation frames, chunk by chunk, each chunk seeing the latest frames; and the
    ids of the pairs used (by the first chunk)."""
    plan = video.plan_prediction(new, context.target_frames)
    history = list(frames)
    produced: list[np.ndarray] = []
    used: list[str] = []
    for n in range(plan.chunks):
        window = np.stack(history[-context.input_frames:])
        if len(window) < context.input_frames:  # a short query: repeat its first frame in front
            window = np.concatenate([np.repeat(window[:1], context.input_frames - len(window), 0), window])
        q, mean = pipe.encode_clip(window, torch.Generator().manual_seed(s["seed"]), with_mean=True)
        gen = torch.Generator().manual_seed(s["seed"] + n)
        seen = for_query(context, mean[:, 0], s["pairs"], s["select"], s["seed"])
        used = used or seen.ids
        z = pipe.generate(_condition(seen, q), plan.chunk_latents, [gen], s, notify, query_frames=q.shape[1])
        fresh = list(pipe.decode(z)[0][1:1 + plan.chunk_new_frames])  # frame 0 is the anchor
        produced += fresh
        history += fresh
    return np.stack(produced[:new]), used


def run_video(pipe, context_folder, queries, *, frames: int = 12, mode: str = "auto", pairs: int = 4,
              select: str = "first", size=None, fit: str = "squash", steps: int = 20, cfg: float = 1.5, seed: int = 0,
              solver: str = "euler", fps: float | None = None, callback=None) -> RunResult:
    notify = callback or (lambda _p: None)
    pipe._check(steps, cfg, solver, 1, fit)
    if mode not in MODES:
        raise UsageError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
    working = parse_size(size, pipe.default_size)
    s = dict(pairs=pairs, select=select, steps=steps, cfg=cfg, seed=seed, solver=solver, fit=fit)
    t0 = time.perf_counter()
    context = load_context(pipe, context_folder, working, fit, mode, pairs, select, seed)
    context_seconds = time.perf_counter() - t0
    q_latents = video.latents_for(context.input_frames)
    t_latents = q_latents if context.mode == "clip" else video.plan_prediction(frames, context.target_frames).chunk_latents
    tokens = _tokens(pipe, context, q_latents, t_latents, working, pairs)
    check_memory(pipe, context, working, tokens)
    notify(Progress("tokens", tokens, tokens))
    results = []
    for n, query in enumerate(queries if isinstance(queries, (list, tuple)) else [queries]):
        start = time.perf_counter()
        try:
            clip = media.read_video(query)
            fitted, placement = _fit_frames(clip.frames, working, fit)
            out, used = _clip_to_clip(pipe, context, fitted, s, notify) if context.mode == "clip" else \
                _predict(pipe, context, fitted, frames, s, notify)
            restored = np.stack([media.unfit(f, placement) for f in out])
            results.append(VideoPrediction(str(query), media.Clip(restored, fps or clip.fps or 10.0), used,
                                           seconds=time.perf_counter() - start, tokens=tokens))
        except LavinError as err:
            results.append(VideoPrediction(str(query), error=str(err), code=err.exit_code))
        notify(Progress("query", n + 1, len(results)))
    record = pipe._record(ctx.Context([], [], str(context_folder)), working, s, [], context_seconds, 1)
    record.update({"mode": context.mode, "new_frames": frames if context.mode == "predict" else None,
                   "context_clip_frames": {"input": context.input_frames, "target": context.target_frames},
                   "context_pairs": len(context.ids), "sequence_tokens": tokens,
                   "queries": [{"query": r.query, "pairs": r.pairs, "seconds": round(r.seconds, 4), "error": r.error,
                                "frames": None if r.clip is None else len(r.clip.frames),
                                "fps": None if r.clip is None else r.clip.fps} for r in results]})
    return RunResult(results, record)
