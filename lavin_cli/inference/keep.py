"""What of the query a prediction keeps exactly (RunOptions.keep, a task folder's task.json "keep").

The model sees a query at its working size through the VAE, so everything it returns is as soft
as that; where the task says part of the answer is the query itself, that part is taken from the
query at its own resolution instead:

    none                  the prediction as the model made it
    luma                  the query's luminance (ITU-R 601) with the prediction's colour
                          (colorization: the answer is the gray query, coloured)
    unmasked[:R,G,B]      the query's pixels wherever they are not the mask colour (default
                          128,128,128, mid-gray), the prediction's inside the mask (inpainting)
    auto                  what the context's task.json says, else none

and for a video prediction (lavin video, VideoOptions.keep):

    last                  each new frame is the query's last frame as the query has it plus the
                          model's change from its own copy of that frame (carry): what stands
                          still stays as sharp as the query, what moves moves as the model says
    none                  the model's frames
    auto                  the task.json's "keep", else last for a prediction, none for a clip task

A pixel belongs to the mask where every channel is within MASK_TOLERANCE of the colour (a query
saved as JPEG blurs the box's edge); a pixel of the photo that happens to have the colour takes
the prediction's value there, which is the model's copy of the same pixel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MODES = ("auto", "none", "luma", "unmasked")
VIDEO_MODES = ("auto", "none", "last")
DEFAULT_MASK = (128, 128, 128)
MASK_TOLERANCE = 6  # of 255, per channel
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Keep:
    mode: str  # one of MODES
    color: tuple[int, int, int] = DEFAULT_MASK  # the mask colour of "unmasked"

    def __str__(self) -> str:
        return f"unmasked:{','.join(map(str, self.color))}" if self.mode == "unmasked" else self.mode


def parse(spec) -> Keep:
    """'none' | 'luma' | 'unmasked' | 'unmasked:R,G,B' | 'auto' -> Keep; ValueError says why."""
    if not isinstance(spec, str):
        raise ValueError(f"{spec!r} is not one of {', '.join(MODES)} (or unmasked:R,G,B)")
    match = re.fullmatch(r"unmasked:(\d{1,3}),(\d{1,3}),(\d{1,3})", spec.strip())
    if match:
        color = tuple(int(v) for v in match.groups())
        if max(color) > 255:
            raise ValueError(f"{spec!r}: mask colour channels are 0 to 255")
        return Keep("unmasked", color)
    if spec.strip() not in MODES:
        raise ValueError(f"{spec!r} is not one of {', '.join(MODES)} (or unmasked:R,G,B, e.g. unmasked:0,0,0)")
    return Keep(spec.strip())


def parse_video(spec) -> str:
    """A video run's rule: 'auto' | 'none' | 'last'; ValueError says why."""
    if spec not in VIDEO_MODES:
        raise ValueError(f"{spec!r} is not one of {', '.join(VIDEO_MODES)} (for videos)")
    return spec


def check_any(spec) -> None:
    """A rule of either kind (lavin eval's --keep, which applies each to the tasks of its kind,
    evaluation.evaluate.task_keep); ValueError says why."""
    if spec in VIDEO_MODES:
        return
    try:
        parse(spec)
    except ValueError:
        raise ValueError(f"{spec!r} is not one of {', '.join(dict.fromkeys(MODES + VIDEO_MODES))} "
                         "(or unmasked:R,G,B)") from None


def resolve_video(spec: str, task_keep: str | None, predict: bool) -> str:
    """A video run's rule once its kind is known: `spec`, where 'auto' takes the task's, else
    'last' for a prediction and 'none' for a clip task; 'last' does nothing for a clip task."""
    rule = spec if spec != "auto" else (task_keep or ("last" if predict else "none"))
    return rule if predict else "none"


def carry(base: np.ndarray, model_base: np.ndarray, model_frames: np.ndarray) -> np.ndarray:
    """`base` (H, W, 3) plus the change of each of `model_frames` (F, H, W, 3) from `model_base`,
    clipped to [0, 1]: the model's motion carried onto the frame it started from, as the query
    has it. All float in [0, 1]."""
    return np.clip(base[None] + (model_frames - model_base[None]), 0.0, 1.0).astype(np.float32)


def resolve(spec: str, task_keep: str | None) -> Keep:
    """The run's rule: `spec` (RunOptions.keep), where 'auto' takes the task's (else none)."""
    keep = parse(spec)
    if keep.mode != "auto":
        return keep
    return parse(task_keep) if task_keep else Keep("none")


def mask_of(query: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """(H, W) bool: the query's pixels of the mask colour; `query` uint8 (H, W, 3)."""
    diff = np.abs(query.astype(np.int16) - np.array(color, dtype=np.int16))
    return (diff <= MASK_TOLERANCE).all(-1)


def mask_for(keep: Keep, query: np.ndarray, given: np.ndarray | None = None) -> np.ndarray | None:
    """The query's mask where `keep` is unmasked, else None: `given` (a mask read beside the query,
    inference/masks.py) or the pixels of the mask colour (mask_of); computed once per query for
    apply and warning."""
    if keep.mode != "unmasked":
        return None
    return given if given is not None else mask_of(query, keep.color)


def with_mask(spec: str, task_keep: str | None) -> tuple[Keep, tuple[int, int, int]]:
    """A run given masks beside its queries: its rule (`spec` resolved against the task's; 'auto'
    keeps the unmasked pixels whatever the task says, an explicit 'none' keeps nothing) and the
    colour the masked pixels are painted (the task's unmasked colour, else mid-gray). UsageError
    for luma."""
    from lavin_cli.errors import UsageError

    keep = resolve(spec, task_keep)
    color = parse(task_keep).color if task_keep and parse(task_keep).mode == "unmasked" else DEFAULT_MASK
    if keep.mode == "luma":
        raise UsageError(f"{{{{mask}}}} marks pixels to fill, but this run keeps {keep} (colorization's rule): "
                         "use a mask with an inpainting context, or drop it")
    if keep.mode == "unmasked":
        return keep, keep.color
    return (keep, color) if spec == "none" else (Keep("unmasked", color), color)


def warning(keep: Keep, mask: np.ndarray | None, given: bool = False) -> str | None:
    """Why keeping makes this query's output odd, or None: a query without a pixel to fill (`mask`,
    from mask_for: its `given` mask is all black, or no pixel has the mask colour) comes back unchanged."""
    if keep.mode == "unmasked" and not mask.any():
        if given:
            return ("its mask marks no pixel to fill (white = fill): the output is the query unchanged "
                    "(--keep none gives the model's output)")
        return (f"no pixel of the mask colour {','.join(map(str, keep.color))}: --keep {keep} returns the query "
                "unchanged (--keep unmasked:R,G,B names the mask's colour; --mask FILE gives the mask as an image; "
                "--keep none gives the model's output)")
    return None


def apply(keep: Keep, prediction: np.ndarray, query: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """`prediction` with what `keep` takes from `query`, both (H, W, 3) at the query's size:
    uint8 in, uint8 out, or float in [0, 1] in, float32 out (a raw prediction); `mask`: the
    query's mask_for(keep), computed here when not given."""
    if keep.mode in ("none", "auto"):
        return prediction
    as_float = prediction.dtype != np.uint8
    pred = prediction.astype(np.float32) / (1.0 if as_float else 255.0)
    q = query.astype(np.float32) / 255.0
    if keep.mode == "luma":
        out = pred + (q @ LUMA - pred @ LUMA)[..., None]  # shifting every channel moves luma alone
    else:
        out = np.where((mask_for(keep, query) if mask is None else mask)[..., None], pred, q)
    out = np.clip(out, 0.0, 1.0)
    return out.astype(np.float32) if as_float else np.round(out * 255).astype(np.uint8)
