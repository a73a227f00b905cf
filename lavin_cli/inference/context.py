"""Context pairs: finding them in a folder, validating them, choosing which go into the prompt.

A context folder holds pairs in one of two layouts:
    <id>_input.<ext> / <id>_target.<ext>      (the official template layout)
    input/<stem>.<ext> / target/<stem>.<ext>  (matched by file stem)
"""

from __future__ import annotations

import random
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from lavin_cli.errors import InputError
from lavin_cli.inference import keep as keep_rules
from lavin_cli.io.files import file_kind, read_json_file
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
    skipped: list[str] = field(default_factory=list)  # named as pair members but unusable: "name (why)"
    keep: str | None = None  # task.json "keep": what of the query a prediction keeps (inference/keep.py)

    @property
    def unused(self) -> list[str]:
        """Every entry of the folder that looks like a pair member and is not used, with why."""
        def why(name: str) -> str:
            return "no partner" if _member_stem(Path(name)) else "not named <id>_input or <id>_target"

        return [f"{name} ({why(name)})" for name in self.unpaired] + list(self.skipped)


TARGETS = ("gray", "rgb")


def read_task_json(folder: Path, clips: bool = False) -> dict:
    """A task folder's optional task.json: {"target": "gray" | "rgb", "kind": "image" | "video",
    "keep": "luma" | "unmasked[:R,G,B]" | "none" (images), "last" | "none" (clips)}. Gray targets
    (depth, masks, edges) are written as 16-bit PNGs by default; "keep" is the task's default
    RunOptions.keep / VideoOptions.keep (`clips`: the folder holds clip pairs)."""
    path = folder / "task.json"
    meta = read_json_file(path, InputError)
    if meta is None:
        return {}
    if not isinstance(meta, dict) or meta.get("target", "rgb") not in TARGETS:
        raise InputError(f"{path}: 'target' must be one of {', '.join(TARGETS)}")
    if meta.get("kind", "image") not in ("image", "video"):
        raise InputError(f"{path}: 'kind' must be image or video")
    if "keep" in meta:
        video = clips or meta.get("kind") == "video"
        try:
            rule = keep_rules.parse_video(meta["keep"]) if video else keep_rules.parse(meta["keep"]).mode
            if rule == "auto":
                raise ValueError("'auto' means the task's own rule; name one (" +
                                 ("last, none" if video else "luma, unmasked, none") + ")")
        except ValueError as exc:
            raise InputError(f"{path}: 'keep': {exc}") from None
    return meta


def _is_image(path: Path) -> bool:
    return path.is_file() and is_image_path(path)


def _is_clip(path: Path) -> bool:
    """A video file, or a folder of frame images."""
    if path.is_file():
        return is_video_path(path)
    return path.is_dir() and any(is_image_path(p) for p in path.iterdir())


def why_unusable(path: Path, clips: bool) -> str:
    """Why an entry named as a pair member cannot be one: 'a folder', 'a broken link', ..."""
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as exc:
            return "a link loop" if exc.errno == errno.ELOOP else "a broken link"
    kind = file_kind(path)
    if kind:
        return kind
    if path.is_dir():
        return "a folder without frame images" if clips else "a folder, not an image"
    return f"not {'a video' if clips else 'an image'} lavin reads"


def _member_stem(path: Path) -> str | None:
    """'001' for 001_input.png, 001_target (a frames folder); None for other names."""
    for stem in (path.name, Path(path.name).stem):
        if stem.endswith(("_input", "_target")):
            return stem
    return None


def _by_suffix(folder: Path, accept, clips: bool = False) -> tuple[dict[str, Path], dict[str, Path], list[str], list[str]]:
    inputs, targets, other, skipped = {}, {}, [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not accept(path):
            if _member_stem(path) and path.name != "task.json":
                skipped.append(f"{path.name} ({why_unusable(path, clips)})")
            continue
        stem = path.stem if path.is_file() else path.name
        if stem.endswith("_input"):
            inputs.setdefault(stem[: -len("_input")], path)
        elif stem.endswith("_target"):
            targets.setdefault(stem[: -len("_target")], path)
        else:
            other.append(path.name)
    return inputs, targets, other, skipped


def _by_subfolder(folder: Path, accept, clips: bool = False) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    skipped: list[str] = []

    def index(sub: Path) -> dict[str, Path]:
        found = {}
        for p in sorted(sub.iterdir()):
            if p.name.startswith("."):
                continue
            if accept(p):
                found[p.stem if p.is_file() else p.name] = p
            else:
                skipped.append(f"{sub.name}/{p.name} ({why_unusable(p, clips)})")
        return found

    return index(folder / "input"), index(folder / "target"), skipped


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
        inputs, targets, skipped = _by_subfolder(folder, accept, clips)
        stray: list[str] = []
        prefix_in, prefix_tg = "input/", "target/"
    else:
        inputs, targets, stray, skipped = _by_suffix(folder, accept, clips)
        prefix_in = prefix_tg = ""
    ids = sorted(set(inputs) & set(targets))
    unpaired = [prefix_in + inputs[i].name for i in sorted(set(inputs) - set(targets))]
    unpaired += [prefix_tg + targets[i].name for i in sorted(set(targets) - set(inputs))]
    unpaired += stray
    if not ids:
        unused = Context([], unpaired, str(folder), None, skipped).unused
        detail = f" (not used: {', '.join(unused[:5])})" if unused else ""
        what = "clip" if clips else ""
        raise InputError(f"{folder}: no complete <id>_input/<id>_target {what + ' ' if what else ''}pair{detail}")
    meta = read_task_json(folder, clips)
    return Context([Pair(i, inputs[i], targets[i]) for i in ids], unpaired, str(folder), meta.get("target"), skipped,
                   meta.get("keep"))


def from_pairs(pairs: list[tuple[ImageLike, ImageLike]]) -> Context:
    """A context from in-memory (input, target) pairs: paths, PIL images or arrays."""
    if not pairs:
        raise InputError("no context pairs given")
    return Context([Pair(f"pair{i}", a, b) for i, (a, b) in enumerate(pairs)], [], "python")


def select(count: int, available: int, mode: str, seed: int, similarity=None) -> list[int]:
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
    import torch

    best = torch.argsort(similarity, descending=True, stable=True)[:count]
    return [int(i) for i in reversed(best)]


def candidates(context: Context, pairs: int, mode: str, seed: int) -> list[int]:
    """The pairs a run reads: all of them for `nearest` (which picks per query), else the
    selected ones."""
    return list(range(len(context.pairs))) if mode == "nearest" else select(pairs, len(context.pairs), mode, seed)


def check_readable(context: Context, indices: list[int], clips: bool, max_pixels: int) -> None:
    """Read the pairs a run will use (images decoded, videos' headers), so that an unreadable
    or truncated one is refused before any model loads, naming the file."""
    from lavin_cli.io.images import read_image
    from lavin_cli.io.video import probe_video

    for i in indices:
        for path in (context.pairs[i].input, context.pairs[i].target):
            if not isinstance(path, (str, Path)):
                continue
            if clips:
                probe_video(Path(path), max_pixels=max_pixels)
            else:
                read_image(path, max_pixels=max_pixels)


def similarity(query, candidates):
    """Cosine similarity of one latent (C, h, w) to each of N latents (N, C, h, w)."""
    import torch

    q = query.flatten().float()
    c = candidates.flatten(1).float()
    return torch.nn.functional.cosine_similarity(c, q[None], dim=1)
