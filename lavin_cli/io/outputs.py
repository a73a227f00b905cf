"""Is an existing output a finished one? lavin publishes its outputs atomically, so one of its
own is whole; but a file in its place may come from elsewhere (another tool, a copy cut short by
a full disk, an empty file from `touch`). A resumed run (--skip-existing) keeps an output only
when its header says it is a file of the expected format, and computes it again otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lavin_cli.io.images import is_image_path

# the first bytes of each video container lavin writes
_VIDEO_MAGIC = {".mp4": (4, b"ftyp"), ".mov": (4, b"ftyp"), ".mkv": (0, b"\x1a\x45\xdf\xa3"),
                ".webm": (0, b"\x1a\x45\xdf\xa3"), ".gif": (0, b"GIF8"), ".avi": (8, b"AVI ")}
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                  ".tiff": "TIFF"}


def unfinished(path: Path, fmt: str) -> str | None:
    """Why the existing output `path` does not count as finished for format `fmt` (png, png16,
    npy, video), or None when its header is that of a whole file of the format."""
    path = Path(path)
    if path.is_dir():
        return _frames_problem(path, fmt)
    if not path.is_file():
        return "not a regular file"
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes)"
    suffix = path.suffix.lower()
    if fmt == "npy" or suffix == ".npy":
        return _npy_problem(path)
    if suffix in _VIDEO_MAGIC:
        offset, magic = _VIDEO_MAGIC[suffix]
        with open(path, "rb") as f:
            head = f.read(offset + len(magic))
        return None if head[offset:] == magic else f"it is not a {suffix[1:]} file"
    return _image_problem(path, "I;16" if fmt == "png16" else None)


def _image_problem(path: Path, mode: str | None) -> str | None:
    expected = _IMAGE_FORMATS.get(path.suffix.lower())
    try:
        with Image.open(path) as image:
            found, found_mode, size = image.format, image.mode, image.size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return "its header is not that of an image"
    if expected and found != expected:
        return f"it holds {found}, not {expected}"
    if mode and not found_mode.startswith("I;16") and found_mode != "I":
        return f"it is a {found_mode} image, not a 16-bit one"
    if 0 in size:
        return "it has no pixels"
    return None


def _npy_problem(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            start = f.tell()
    except (OSError, ValueError):
        return "its header is not that of a .npy file"
    need = start + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if path.stat().st_size < need:
        return f"it is cut short ({path.stat().st_size} of {need} bytes)"
    return None


def _frames_problem(folder: Path, fmt: str) -> str | None:
    frames = sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
    if not frames:
        return "the folder holds no frames"
    for frame in frames:
        problem = _image_problem(frame, "I;16" if fmt == "png16" else None) if frame.stat().st_size else "it is empty"
        if problem:
            return f"frame {frame.name}: {problem}"
    return None
