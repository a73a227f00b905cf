"""Context pairs: finding them in a folder, validating them, choosing which go into the prompt.

A context folder holds pairs in one of two layouts:
    <id>_input.<ext> / <id>_target.<ext>      (the official template layout)
    input/<stem>.<ext> / target/<stem>.<ext>  (matched by file stem)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from lavin_cli.errors import InputError
from lavin_cli.io.files import read_json_file
from lavin_cli.io.images import ImageLike, is_image_path
from lavin_cli.io.video import is_video_path


@dataclass(frozen=True)
class Pair:
    id: str
    input: ImageLike
    target: ImageLike


@dataclass(frozen=True)
class Context:
    pairs: list[Pair]
    unpaired: list[str]  # files that have no partner (reported, not used)
    source: str
    target: str | None = None  # "gray" or "rgb" when the folder's task.json says what its targets are


TARGETS = ("gray", "rgb")


def read_task_json(folder: Path) -> dict:
    """A task folder's optional task.json: {"target": "gray" | "rgb", "kind": "image" | "video"}.
    Gray targets (depth, masks, edges) are written as 16-bit PNGs by default."""
    path = folder / "task.json"
    meta = read_json_file(path, InputError)
    if meta is None:
        return {}
    if not isinstance(meta, dict) or meta.get("target", "rgb") not in TARGETS:
        raise InputError(f"{path}: 'target' must be one of {', '.join(TARGETS)}")
    if meta.get("kind", "image") not in ("image", "video"):
        raise InputError(f"{path}: 'kind' must be image or video")
    return meta


def _is_image(path: Path) -> bool:
    return path.is_file() and is_image_path(path)


def _is_clip(path: Path) -> bool:
    """A video file, or a folder of frame images."""
    if path.is_file():
        return is_video_path(path)
    return path.is_dir() and any(is_image_path(p) for p in path.iterdir())


def _by_suffix(folder: Path, accept) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    inputs, targets, other = {}, {}, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not accept(path):
            continue
        stem = path.stem if path.is_file() else path.name
        if stem.endswith("_input"):
            inputs.setdefault(stem[: -len("_input")], path)
        elif stem.endswith("_target"):
            targets.setdefault(stem[: -len("_target")], path)
        else:
            other.append(path.name)
    return inputs, targets, other


def _by_subfolder(folder: Path, accept) -> tuple[dict[str, Path], dict[str, Path]]:
    def index(sub: Path) -> dict[str, Path]:
        return {(p.stem if p.is_file() else p.name): p for p in sorted(sub.iterdir()) if accept(p)}

    return index(folder / "input"), index(folder / "target")


def find_pairs(folder: Path | str, clips: bool = False) -> Context:
    """All complete pairs of a context folder (images, or with `clips` video files / frame
    folders); unpaired entries are listed by name."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: context folder not found")
    if not folder.is_dir():
        raise InputError(f"{folder}: {{{{context}}}} must be a folder of <id>_input/<id>_target pairs")
    accept = _is_clip if clips else _is_image
    if (folder / "input").is_dir() and (folder / "target").is_dir():
        inputs, targets = _by_subfolder(folder, accept)
        stray: list[str] = []
        prefix_in, prefix_tg = "input/", "target/"
    else:
        inputs, targets, stray = _by_suffix(folder, accept)
        prefix_in = prefix_tg = ""
    ids = sorted(set(inputs) & set(targets))
    unpaired = [prefix_in + inputs[i].name for i in sorted(set(inputs) - set(targets))]
    unpaired += [prefix_tg + targets[i].name for i in sorted(set(targets) - set(inputs))]
    unpaired += stray
    if not ids:
        detail = f" (unpaired: {', '.join(unpaired[:5])})" if unpaired else ""
        what = "clip" if clips else ""
        raise InputError(f"{folder}: no complete <id>_input/<id>_target {what + ' ' if what else ''}pair{detail}")
    return Context([Pair(i, inputs[i], targets[i]) for i in ids], unpaired, str(folder),
                   read_task_json(folder).get("target"))


def from_pairs(pairs: list[tuple[ImageLike, ImageLike]]) -> Context:
    """A context from in-memory (input, target) pairs: paths, PIL images or arrays."""
    if not pairs:
        raise InputError("no context pairs given")
    return Context([Pair(f"pair{i}", a, b) for i, (a, b) in enumerate(pairs)], [], "python")


def select(count: int, available: int, mode: str, seed: int, similarity: torch.Tensor | None = None) -> list[int]:
    """Indices of the pairs that go into one prompt, in prompt order.

    first:   the first `count` pairs (sorted by id).
    random:  `count` distinct pairs drawn with `seed`.
    nearest: the `count` pairs whose inputs are most similar to the query (`similarity`, one
             score per pair), ordered so that the most similar pair sits next to the query.
    """
    count = min(count, available)  # options are validated where they are built
    if mode == "first":
        return list(range(count))
    if mode == "random":
        return sorted(random.Random(seed).sample(range(available), count))
    if similarity is None:
        raise ValueError("nearest selection needs similarity scores")
    best = torch.argsort(similarity, descending=True, stable=True)[:count]
    return [int(i) for i in reversed(best)]


def similarity(query: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of one latent (C, h, w) to each of N latents (N, C, h, w)."""
    q = query.flatten().float()
    c = candidates.flatten(1).float()
    return torch.nn.functional.cosine_similarity(c, q[None], dim=1)
