"""Masks given beside the queries (RunOptions.mask, `lavin run --mask`): which pixels to fill.

Inpainting's model reads the region to fill from the query itself, painted in the mask colour
(mid-gray); a user's photo usually comes with a separate mask instead, and a photo may hold the
mask colour where nothing is missing. With a mask, a query is painted in the colour where its mask
is set before the model sees it, and the output keeps the query's own pixels exactly where it is
not (keep.py's "unmasked", with the mask taken from the file instead of from the colour).

A mask is an image: white (a mean of its channels at least 128) marks the pixels to fill, black
those to keep; one with alpha is composited over black like every image (transparent: keep). It is
given as

    masks/all.png             one mask for every query
    'masks/{stem}.png'        a pattern: {stem} is each query file's name without its extension,
    '{dir}/{stem}_mask.png'   {dir} its folder
    an array (H, W) or (H, W, 3)   from Python: every query's mask (fill: at least 128 in a
                              uint8 array, at least 0.5 in any other: True, 1, 1.0)
    a list of those           one per query, in the order of the queries given (a server
                              receives uploaded masks so)

and is scaled (nearest) to its query's size when the two have the same shape within 1%.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError, OptionError, UsageError
from lavin_cli.io import images as image_io

FIELDS = ("stem", "dir")
ASPECT_TOLERANCE = 0.01


def check(mask) -> str | np.ndarray | tuple | None:
    """RunOptions.mask validated: None, a path or pattern (str), an array, or a list of paths or
    arrays, one per query (kept as a tuple); OptionError says why."""
    if isinstance(mask, (list, tuple)):
        if not mask or any(m is None for m in mask):
            raise OptionError("mask", "a list of masks holds one file or array per query (no None, not empty)")
        return tuple(_one(m) for m in mask)
    return _one(mask)


def _one(mask) -> str | bytes | np.ndarray | None:
    if mask is None or isinstance(mask, bytes) or isinstance(mask, np.ndarray) and mask.ndim in (2, 3) and mask.size:
        return mask  # bytes: an encoded image (a server's upload), read with its query
    if isinstance(mask, np.ndarray):
        raise OptionError("mask", f"an array mask is (H, W) or (H, W, 3), got shape {mask.shape}")
    if not isinstance(mask, (str, Path)) or not str(mask):
        raise OptionError("mask", f"{mask!r} is not a mask file, a pattern such as 'masks/{{stem}}.png' or an array")
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(str(mask)) if field is not None]
    except ValueError as exc:
        raise OptionError("mask", f"{str(mask)!r}: {exc} (write {{{{ for a literal brace)") from None
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        raise OptionError("mask", f"{str(mask)!r}: unknown field {{{unknown[0]}}}; a pattern may use {{stem}} and {{dir}}")
    return str(mask)


def describe(mask) -> str | None:
    """The mask as the record names it."""
    if isinstance(mask, tuple):
        return f"{len(mask)} masks, one per query"
    if isinstance(mask, bytes):
        return getattr(mask, "name", "uploaded mask")
    return None if mask is None else "array" if isinstance(mask, np.ndarray) else mask


def per_query(mask, queries: int, indices: list[int]) -> dict:
    """{query index: its mask} for a list of masks (one per query given, in order); {} otherwise.
    UsageError where the counts differ."""
    if not isinstance(mask, tuple):
        return {}
    if len(mask) != queries:
        raise UsageError(f"{len(mask)} masks for {queries} queries: give one per query (or one for all)")
    return dict(zip(indices, mask))


def source_for(mask, query, label: str):
    """The mask of one query: the array, the path, or the pattern filled from the query's file
    name; InputError where a pattern meets a query that is not a file."""
    if isinstance(mask, (np.ndarray, bytes)) or not any(f"{{{f}}}" in mask for f in FIELDS):
        return mask
    if not isinstance(query, (str, Path)) or str(query) == "-":
        raise InputError(f"{label}: not a file, so --mask {mask!r} names no mask for it (give one mask file)")
    path = Path(query)
    return mask.format(stem=path.stem, dir=str(path.parent))


def read(mask, query, label: str, shape: tuple[int, int], max_pixels: int) -> np.ndarray:
    """(H, W) bool at the query's `shape`: True where the query is to be filled."""
    source = source_for(mask, query, label)
    name = "mask array" if isinstance(source, np.ndarray) else \
        getattr(source, "name", "uploaded mask") if isinstance(source, bytes) else str(source)
    if isinstance(source, np.ndarray):
        values = source.astype(np.float32)
        values = values.mean(-1) if values.ndim == 3 else values
        fill = values >= (128 if source.dtype == np.uint8 else 0.5)
    else:
        fill = image_io.read_image(source, f"mask {name}", max_pixels).astype(np.float32).mean(-1) >= 128
    (mh, mw), (h, w) = fill.shape, shape
    if abs(mw / mh - w / h) > ASPECT_TOLERANCE * (w / h):
        raise InputError(f"{name}: the mask is {mw}x{mh} but its query {label} is {w}x{h}; give a mask of the "
                         "query's size (or of its shape)")
    if (mh, mw) != (h, w):
        from PIL import Image

        fill = np.asarray(Image.fromarray(fill).resize((w, h), Image.NEAREST))
    return fill


def paint(query: np.ndarray, fill: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """The query (uint8 (H, W, 3)) in the mask colour where `fill` is set: what the model reads."""
    return np.where(fill[..., None], np.array(color, dtype=np.uint8), query)
