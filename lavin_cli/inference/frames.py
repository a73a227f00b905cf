"""Frame bookkeeping for video tasks: the ST-VAE's 4k+1 structure made explicit. Pure functions.

The VAE codes the first frame of a clip alone and then every 4 frames together, so a clip of
4k + 1 frames becomes k + 1 latent frames and decodes back to 4k + 1 frames; other lengths do
not round-trip (8 frames -> 2 latents -> 5 frames). lavin therefore:

- clip-to-clip tasks (the target has one frame per input frame, e.g. video depth): pads a query
  of F frames to the next 4k + 1 by repeating its last frame, and trims the prediction back to
  F frames; a query longer than the context's clips is cut into chunks of that length sharing
  one frame (the shared frame is predicted twice and written once), so motion stays continuous;
- prediction tasks (the target continues the input; its first frame repeats the last input
  frame, as in the context pairs): N new frames need ceil(N / 4) + 1 target latents; the
  decoded anchor frame is dropped and the first N frames are kept. When N is more than one
  context target holds, frames are generated chunk by chunk, each chunk conditioned on the
  latest frames (the previous chunk's output), so the continuation stays continuous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lavin_cli.errors import InputError, OptionError


def padded_length(frames: int) -> int:
    """The smallest 4k + 1 >= frames."""
    if frames < 1:
        raise InputError("a clip needs at least one frame")
    return 4 * math.ceil((frames - 1) / 4) + 1


def latents_for(frames: int) -> int:
    """Latent frames of a 4k + 1 clip."""
    return (padded_length(frames) - 1) // 4 + 1


def pad(frames: np.ndarray, length: int) -> np.ndarray:
    """(F, ...) -> (length, ...) by repeating the last frame."""
    if len(frames) >= length:
        return frames[:length]
    return np.concatenate([frames, np.repeat(frames[-1:], length - len(frames), axis=0)])


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at most `size` frames covering `total`, consecutive ranges sharing
    one frame; the last range is as long as `size` allows (it may start earlier to do so)."""
    if total <= size:
        return [(0, total)]
    out, start = [], 0
    while start + size < total:
        out.append((start, start + size))
        start += size - 1
    out.append((max(total - size, 0), total))
    return out


@dataclass(frozen=True)
class PredictionPlan:
    new_frames: int  # N requested
    chunk_latents: int  # target latent frames generated per chunk (anchor included)
    chunk_new_frames: int  # new frames one chunk yields: 4 * (chunk_latents - 1)
    chunks: int

    @property
    def generated_frames(self) -> int:
        return self.chunks * self.chunk_new_frames

    def describe(self) -> str:
        return (f"{self.new_frames} new frame(s): {self.chunks} chunk(s) of {self.chunk_latents} target latents "
                f"({self.chunk_new_frames} new frames each), {self.generated_frames - self.new_frames} trimmed")


def plan_prediction(new_frames: int, context_target_frames: int) -> PredictionPlan:
    """How to produce `new_frames` continuation frames when the context's target clips have
    `context_target_frames` frames (anchor included)."""
    if new_frames < 1:
        raise OptionError("frames", f"must be at least 1, got {new_frames}")
    max_latents = latents_for(context_target_frames)
    if max_latents < 2:
        raise InputError(f"context target clips of {context_target_frames} frame(s) show no continuation; "
                         "prediction needs targets of 5 or more frames (the anchor plus 4 new ones)")
    needed = math.ceil(new_frames / 4) + 1
    per_chunk = min(needed, max_latents)
    return PredictionPlan(new_frames, per_chunk, 4 * (per_chunk - 1), math.ceil(new_frames / (4 * (per_chunk - 1))))
