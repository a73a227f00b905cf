"""Image files: reading anything Pillow reads, fitting to the working size and back, writing
(atomically, through lavin_cli.io.files) and side-by-side grids.

Every image becomes RGB uint8 (H, W, 3): grayscale is replicated, RGBA / LA are composited over
black, palette and CMYK are converted, 16-bit grayscale is scaled to 8 bits (v / 257), EXIF
orientation is applied.
"""

from __future__ import annotations

import io
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lavin_cli.errors import InputError, OutputError, TooLarge
from lavin_cli.io.files import check_readable_file, describe_os_error, write_atomic

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
FITS = ("squash", "pad", "crop")
ImageLike = Union[str, Path, Image.Image, np.ndarray]

DEFAULT_MAX_PIXELS = 64_000_000  # a 8000 x 8000 picture; bigger inputs are refused before decoding
_PIL_LIMIT = threading.Lock()


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        arr = np.clip(arr / 257.0 if arr.max() > 255 or image.mode.startswith("I;16") else arr, 0, 255)
        image = Image.fromarray(arr.round().astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).round().astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return np.array(image.convert("RGB"))


def array_to_rgb(arr: np.ndarray, label: str) -> np.ndarray:
    """An array as an image: uint8 as is, uint16 scaled down (v / 257), other integers in
    0..255, floats in [0, 1] (or in 0..255 where some value is above 1), bools as black and white.
    Anything else (no pixels, NaN or infinite values, values out of range, 5 channels) is
    refused naming the array, never clipped into a picture silently."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"{label}: array of shape {arr.shape} is not an image (H, W[, 1|3|4])")
    if arr.size == 0:
        raise InputError(f"{label}: array of shape {arr.shape} has no pixels")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 257.0).round()
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{label}: array holds NaN or infinite values")
        low, high = float(arr.min()), float(arr.max())
        if low < 0 or high > 255:
            raise InputError(f"{label}: float values {low:g}..{high:g} are outside [0, 1] (and 0..255)")
        arr = (arr * 255.0 if high <= 1.0 else arr).round()
    elif np.issubdtype(arr.dtype, np.integer):
        low, high = int(arr.min()), int(arr.max())
        if arr.dtype != np.uint8 and (low < 0 or high > 255):
            raise InputError(f"{label}: {arr.dtype} values {low}..{high} are outside 0..255 (uint16 is read as 16-bit)")
    else:
        raise InputError(f"{label}: an array of {arr.dtype} is not an image")
    arr = arr.astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:].astype(np.float64) / 255.0
        arr = (arr[:, :, :3] * alpha).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def read_image(source: ImageLike, label: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Path, bytes-on-stdin ('-'), PIL image or array -> RGB uint8 (H, W, 3). Files larger than
    `max_pixels` are refused from their header, before any decoding; animated images too (a clip
    is not a picture)."""
    if isinstance(source, np.ndarray):
        return array_to_rgb(source, label or "array")
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    if isinstance(source, (bytes, bytearray, memoryview)):  # an encoded file's bytes
        label = label or "image bytes"
        try:
            with _open(io.BytesIO(bytes(source))) as image:
                _check(image, label, max_pixels)
                return _to_rgb(image)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", (str(exc).splitlines() or [type(exc).__name__])[0])
            raise InputError(f"{label}: not a readable image ({reason[:120]})") from None
    if not isinstance(source, (str, Path)):
        raise InputError(f"{label or 'query'}: a {type(source).__name__} is not an image; give a path, the bytes of an "
                         "image file, a PIL image or an array")
    label = label or str(source)
    try:
        if str(source) == "-":
            data = sys.stdin.buffer.read()
            if not data:
                raise InputError("stdin: no image data (pipe an image into {{queries=-}})")
            source = io.BytesIO(data)
        else:
            check_readable_file(Path(source), label)
        with _open(source) as image:
            _check(image, label, max_pixels)
            return _to_rgb(image)
    except FileNotFoundError:
        raise InputError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a folder, not an image") from None
    except PermissionError:
        raise InputError(f"{label}: permission denied") from None
    except OSError as exc:
        if exc.errno is not None and not isinstance(exc, UnidentifiedImageError):  # the disk, not the format
            raise InputError(f"{label}: cannot be read ({describe_os_error(exc)})") from None
        raise InputError(f"{label}: not a readable image ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") from None
    except (ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"{label}: not a readable image ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") from None


def _open(source) -> Image.Image:
    """Image.open without Pillow's own decompression-bomb guard (a process-wide setting): the
    caller checks the size against its own limit before decoding."""
    with _PIL_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check(image: Image.Image, label: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise TooLarge(f"{label}: {width}x{height} is {width * height / 1e6:.3g} MP, above the limit of "
                         f"{max_pixels / 1e6:.3g} MP; pass a larger {{{{max_pixels}}}} to read it")
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{label}: an animated image ({frames} frames) is a clip, not a picture: use `lavin video`, "
                         "or save one frame")


@dataclass(frozen=True)
class Placement:
    """How an image of `original` (H, W) was fitted into the working size, so it can be undone."""

    original: tuple[int, int]
    working: tuple[int, int]
    fit: str
    box: tuple[int, int, int, int]  # (top, left, height, width): where content lies (pad: in the
    # working frame; crop: in the original frame)


def _resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[:2] == tuple(hw):
        return arr
    return np.array(Image.fromarray(arr).resize((hw[1], hw[0]), Image.BICUBIC))


def fit(arr: np.ndarray, working: tuple[int, int], mode: str = "squash") -> tuple[np.ndarray, Placement]:
    """Bring an RGB image to the working size.

    squash: resize, ignoring the aspect ratio (as the official tool; undone on the way back).
    pad:    resize to fit inside, preserving the aspect ratio, and pad with black.
    crop:   cut the largest centred box of the working aspect ratio, then resize.
    """
    h, w = arr.shape[:2]
    wh, ww = working
    if mode == "squash":
        return _resize(arr, working), Placement((h, w), working, mode, (0, 0, wh, ww))
    if mode == "pad":
        scale = min(wh / h, ww / w)
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
        top, left = (wh - ch) // 2, (ww - cw) // 2
        canvas = np.zeros((wh, ww, 3), np.uint8)
        canvas[top:top + ch, left:left + cw] = _resize(arr, (ch, cw))
        return canvas, Placement((h, w), working, mode, (top, left, ch, cw))
    if mode == "crop":
        scale = max(wh / h, ww / w)
        ch, cw = min(h, round(wh / scale)), min(w, round(ww / scale))
        top, left = (h - ch) // 2, (w - cw) // 2
        return _resize(arr[top:top + ch, left:left + cw], working), Placement((h, w), working, mode, (top, left, ch, cw))
    raise ValueError(f"unknown fit mode {mode!r}")  # options are validated before they get here


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] (clipped) -> uint8, rounded to the nearest level."""
    return (np.clip(values, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def unfit(pred: np.ndarray, placement: Placement) -> np.ndarray:
    """A prediction at the working size -> the query's original size: uint8 RGB, or float32
    (H, W, 3) resized channel by channel in float (bicubic, clipped to [0, 1]).

    crop: the prediction covers the cropped box; outside it the output is black.
    """
    resize = _resize if pred.dtype == np.uint8 else _resize_float
    top, left, ch, cw = placement.box
    if placement.fit == "squash":
        return resize(pred, placement.original)
    if placement.fit == "pad":
        return resize(pred[top:top + ch, left:left + cw], placement.original)
    out = np.zeros((*placement.original, 3), pred.dtype)
    out[top:top + ch, left:left + cw] = resize(pred, (ch, cw))
    return out


def _resize_float(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[:2] == tuple(hw):
        return arr.astype(np.float32)
    channels = [np.asarray(Image.fromarray(arr[:, :, c].astype(np.float32), "F").resize((hw[1], hw[0]), Image.BICUBIC))
                for c in range(arr.shape[2])]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def encode_gray16(values: np.ndarray) -> bytes:
    """Float (H, W, 3) in [0, 1] -> a 16-bit single-channel PNG of the mean of the channels
    (values rounded to the nearest of 65536 levels)."""
    gray = np.clip(values.astype(np.float64).mean(axis=-1), 0.0, 1.0)
    buf = io.BytesIO()
    Image.fromarray(np.round(gray * 65535).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def encode_npy(values: np.ndarray) -> bytes:
    """Float32 array -> the bytes of a .npy file."""
    buf = io.BytesIO()
    np.save(buf, values.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def encode_image(arr: np.ndarray, fmt: str) -> bytes:
    """RGB uint8 -> bytes in the format named by an extension ('png', 'jpg', ...)."""
    fmt = fmt.lower().lstrip(".")
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "tiff": "TIFF"}.get(fmt, fmt.upper())
    if f".{fmt}" not in IMAGE_EXTENSIONS:
        raise OutputError(f"cannot write .{fmt} images; use one of {', '.join(IMAGE_EXTENSIONS)}")
    buf = io.BytesIO()
    options = {"quality": 95} if pil_format in ("JPEG", "WEBP") else {}
    Image.fromarray(arr).save(buf, format=pil_format, **options)
    return buf.getvalue()


def write_image(path: Path, arr: np.ndarray, overwrite: bool = False) -> None:
    write_atomic(path, encode_image(arr, path.suffix or ".png"), overwrite)


def grid(rows: list[list[np.ndarray]], cell: int = 256, gap: int = 4) -> np.ndarray:
    """A white-separated grid of images, each scaled to `cell` pixels high."""
    scaled = [[_resize(im, (cell, max(1, round(im.shape[1] * cell / im.shape[0])))) for im in row] for row in rows]
    width = max(sum(im.shape[1] for im in row) + gap * (len(row) - 1) for row in scaled)
    out = np.full((cell * len(rows) + gap * (len(rows) - 1), width, 3), 255, np.uint8)
    for r, row in enumerate(scaled):
        x = 0
        for im in row:
            out[r * (cell + gap):r * (cell + gap) + cell, x:x + im.shape[1]] = im
            x += im.shape[1] + gap
    return out
