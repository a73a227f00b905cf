"""`lavin eval` on a user's folders: queries matched to their truths, predictions read back from
the files `lavin run` wrote, scored by a protocol (protocols.py), summed up.

Queries and truths match by relative path without the extension (queries relative to the folder
holding them all, or --root; truths relative to the truth folder), else by file stem where that
is unique on both sides. What does not match is listed, not dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lavin_cli.errors import InputError, UsageError
from lavin_cli.evaluation import protocols
from lavin_cli.evaluation.protocols import Protocol
from lavin_cli.io import images as image_io
from lavin_cli.io import listing
from lavin_cli.training.tasks import TASKS

TRUTH_EXTENSIONS = (".npy", *image_io.IMAGE_EXTENSIONS)
# the protocols of the tasks lavin knows (their generator entries); a task folder's task.json
# "metric" names one for others
TASK_FAMILIES = {name: task.metric for name, task in TASKS.items() if task.metric in protocols.FAMILIES}


@dataclass
class Matched:
    pairs: list[tuple[int, Path]]  # (position in the query list, its truth file)
    unmatched_queries: list[str] = field(default_factory=list)
    unmatched_truths: list[str] = field(default_factory=list)


def _key(rel: Path) -> str:
    return rel.with_suffix("").as_posix()


def match(queries: list[str], truth: Path, root: str | None = None) -> Matched:
    if not truth.is_dir():
        raise InputError(f"{truth}: truth folder not found" if not truth.exists() else f"{truth}: --truth must be a folder")
    files = sorted(p for p in truth.rglob("*") if p.is_file() and p.suffix.lower() in TRUTH_EXTENSIONS
                   and not p.name.startswith("."))
    by_key = {_key(p.relative_to(truth)): p for p in files}
    stems: dict[str, list[Path]] = {}
    for p in files:
        stems.setdefault(p.stem, []).append(p)
    rels = listing.relative_names(queries, root)
    query_stems: dict[str, int] = {}
    for rel in rels:
        query_stems[rel.stem] = query_stems.get(rel.stem, 0) + 1
    out, used = Matched([]), set()
    for i, rel in enumerate(rels):
        found = by_key.get(_key(rel))
        if found is None and len(stems.get(rel.stem, [])) == 1 and query_stems[rel.stem] == 1:
            found = stems[rel.stem][0]
        if found is None or found in used:
            out.unmatched_queries.append(queries[i])
            continue
        used.add(found)
        out.pairs.append((i, found))
    out.unmatched_truths = [str(p.relative_to(truth)) for p in files if p not in used]
    return out


def family_for(task: str | None, meta: dict, metric: str | None) -> str:
    """--metric, else the task folder's task.json "metric", else the known task's, else refused."""
    family = metric or meta.get("metric") or TASK_FAMILIES.get(task or "")
    if family is None:
        raise UsageError("which metric? give --metric (" + ", ".join(protocols.FAMILIES) + ") or a task.json "
                         "with \"metric\" in the context folder")
    if family not in protocols.FAMILIES:
        raise UsageError(f"metric {family!r} is not one of {', '.join(protocols.FAMILIES)}")
    return family


def _image_values(path: Path) -> np.ndarray:
    """An image file's values in [0, 1] (16-bit ones at their full precision), (H, W) or (H, W, 3)."""
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(image, dtype=np.float64) / 65535.0
            if image.mode in ("L", "1"):
                return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    return image_io.read_image(path).astype(np.float64) / 255.0


def _raw_values(path: Path) -> np.ndarray:
    """A truth's numbers as stored: .npy as is, images as their integer levels."""
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float64)


def read_truth(path: Path, family: str, scale: float = 1.0) -> np.ndarray:
    """depth: metres (stored values / `scale`, e.g. 256 for KITTI's 16-bit PNGs, 1000 for NYU's
    millimetres; 0 is no measurement); normals: unit vectors (.npy, or RGB = (n + 1) / 2, black
    for none); masks and edges: [0, 1] maps; restorations: RGB in [0, 1]."""
    if family == "depth":
        values = _raw_values(path)
        values = values.mean(-1) if values.ndim == 3 else values
        return np.where(values > 0, values / scale, np.nan)
    if family == "normals":
        if path.suffix.lower() == ".npy":
            return _raw_values(path)
        values = _image_values(path)
        none = (values == 0).all(-1, keepdims=True)
        return np.where(none, 0.0, values * 2 - 1)
    values = _raw_values(path) if path.suffix.lower() == ".npy" else _image_values(path)
    if family in ("mask", "edges"):
        return values.mean(-1) if values.ndim == 3 else values
    return np.repeat(values[..., None], 3, -1) if values.ndim == 2 else values[..., :3]


def read_prediction(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A prediction file `lavin run` wrote (png, png16, npy) as float (H, W, 3) in [0, 1], resized
    to the truth's size where it differs."""
    if path.suffix.lower() == ".npy":
        values = np.load(path, allow_pickle=False).astype(np.float32)
    else:
        values = _image_values(path).astype(np.float32)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, -1)
    if values.shape[:2] != tuple(shape):
        values = np.stack([np.asarray(Image.fromarray(values[..., c], "F").resize((shape[1], shape[0]), Image.BICUBIC))
                           for c in range(3)], -1).clip(0, 1)
    return values


@dataclass
class Scored:
    rows: list[dict]  # per query: query, truth, prediction, metrics or error
    summary: dict  # mean of each metric over the scored queries (and ODS for edges)
    family: str


def score_all(items: list[tuple[str, Path, Path]], protocol: Protocol, scale: float = 1.0, mask=None) -> Scored:
    """(query, truth file, prediction file) -> per-query metrics and their summary. `mask`: the
    run's --mask (a file or a pattern, inference/masks.py), whose filled pixels are scored apart."""
    from lavin_cli.inference import masks

    rows, counts = [], []
    for query, truth_path, pred_path in items:
        row = {"query": query, "truth": str(truth_path), "prediction": str(pred_path)}
        try:
            if not pred_path.is_file():
                raise InputError(f"{pred_path}: no prediction (its run failed)")
            truth = read_truth(truth_path, protocol.family, scale)
            fill = None if mask is None else masks.read(mask, query, str(query), truth.shape[:2], image_io.DEFAULT_MAX_PIXELS)
            metrics = protocols.score(read_prediction(pred_path, truth.shape[:2]), truth, protocol, fill)
        except (InputError, ValueError) as exc:
            row["error"] = str(exc)
        else:
            counts += [metrics.pop("_counts")] if "_counts" in metrics else []
            row["metrics"] = {k: round(v, 6) for k, v in metrics.items()}
        rows.append(row)
    ok = [r["metrics"] for r in rows if "metrics" in r]
    names = dict.fromkeys(k for m in ok for k in m)  # a hole metric is missing where a mask was empty
    summary = {k: round(float(np.mean([m[k] for m in ok if k in m])), 6) for k in names}
    if counts:
        summary.update(protocols.dataset_edges(counts))
    return Scored(rows, {"queries": len(rows), "scored": len(ok), **summary}, protocol.family)
