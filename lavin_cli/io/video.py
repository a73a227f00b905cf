"""Video files and frame folders: reading any clip imageio + ffmpeg reads, writing atomically."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError, OutputError, TooLarge
from lavin_cli.io.files import atomic_path, check_readable_file, describe_os_error, human_bytes, temporary_beside
from lavin_cli.io.images import DEFAULT_MAX_PIXELS, array_to_rgb, encode_image, is_image_path, read_image

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
_CODECS = {".webm": "libvpx-vp9", ".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    fps: float


def read_video(source: Path | str, label: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int | None = None) -> Clip:
    """A video file (mp4, webm, mov, mkv, avi, gif) or a folder of frame images (sorted by name).
    Frames above `max_pixels`, or a clip whose decoded frames would exceed `max_bytes`, are
    refused from the file's header, before decoding."""
    import imageio.v3 as iio

    path = Path(source)
    label = label or str(path)
    if path.is_dir():
        return _read_frames(path, label, max_pixels, max_bytes)
    if not path.exists():
        raise InputError(f"{label}: file not found")
    check_readable_file(path, label)
    if not is_video_path(path):
        raise InputError(f"{label}: not a video ({', '.join(VIDEO_EXTENSIONS)}) or a folder of frames")
    try:
        _check_size(path, label, max_pixels, max_bytes)
        frames = iio.imread(path, index=None)
        meta = iio.immeta(path)
    except InputError:
        raise
    except Exception as exc:  # imageio raises many kinds for broken or unsupported files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"{label}: unreadable, truncated or unsupported video ({first[:120]})") from None
    frames = np.asarray(frames)
    if frames.ndim == 3:  # a single frame, or grayscale frames
        frames = frames[None] if frames.shape[-1] in (3, 4) else frames[..., None]
    if frames.shape[0] == 0:
        raise InputError(f"{label}: the clip has no frames")
    frames = np.stack([array_to_rgb(f, label) for f in frames])
    fps = float(meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else 0.0))
    return Clip(frames, fps)


def probe_video(path: Path, label: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Check a clip without decoding it: a video file's header (size, frame count), or a frames
    folder's first frame; InputError naming the file where it cannot be read."""
    import imageio.v3 as iio  # noqa: F401  (the plugins read the header)

    path = Path(path)
    label = label or str(path)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p))
        if not frames:
            raise InputError(f"{label}: folder holds no frame images")
        read_image(frames[0], max_pixels=max_pixels)
        return
    if not path.exists():
        raise InputError(f"{label}: file not found")
    check_readable_file(path, label)
    try:
        _check_size(path, label, max_pixels, None)
    except InputError:
        raise
    except Exception as exc:  # imageio raises many kinds for broken or unsupported files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"{label}: unreadable, truncated or unsupported video ({first[:120]})") from None


def _check_size(path: Path, label: str, max_pixels: int, max_bytes: int | None) -> None:
    import imageio.v3 as iio

    props = iio.improps(path)
    height, width = props.shape[1:3]
    count = props.n_images
    if not np.isfinite(count):  # ffmpeg streams: the duration tells
        meta = iio.immeta(path)
        count = int(np.ceil(float(meta.get("duration") or 0) * float(meta.get("fps") or 0))) or 1
    _limit(label, width, height, int(count), max_pixels, max_bytes)


def _limit(label: str, width: int, height: int, count: int, max_pixels: int, max_bytes: int | None) -> None:
    if width * height > max_pixels:
        raise TooLarge(f"{label}: frames of {width}x{height} are {width * height / 1e6:.3g} MP, above the limit of "
                         f"{max_pixels / 1e6:.3g} MP; pass a larger {{{{max_pixels}}}} to read it")
    need = count * width * height * 3
    if max_bytes is not None and need > max_bytes:
        raise TooLarge(f"{label}: {count} frames of {width}x{height} need {human_bytes(need)} decoded, more than the "
                         f"{human_bytes(max_bytes)} this machine can spare; cut the clip into shorter parts")


def _read_frames(folder: Path, label: str, max_pixels: int, max_bytes: int | None) -> Clip:
    frames = sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
    if not frames:
        raise InputError(f"{label}: folder holds no frame images")
    first = read_image(frames[0], max_pixels=max_pixels)
    _limit(label, first.shape[1], first.shape[0], len(frames), max_pixels, max_bytes)
    arrays = [first] + [read_image(p, max_pixels=max_pixels) for p in frames[1:]]
    if len({a.shape for a in arrays}) > 1:
        raise InputError(f"{label}: frames differ in size")
    return Clip(np.stack(arrays), 0.0)


EVEN_SIDES = {".mp4", ".mov", ".mkv"}  # H.264 in 4:2:0 needs even width and height


def even_sides(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) -> odd H or W padded by repeating the last row / column."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not pad_h and not pad_w:
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_video(path: Path, clip: Clip, overwrite: bool = False) -> None:
    """A video file (format from the extension, fps kept) or, for a path without a video
    extension, a folder of numbered PNG frames; written atomically either way. A video file is
    read back before it is published: a wrong frame count or size fails the write (encoders can
    fail silently). For H.264 (mp4, mov, mkv) odd sides are padded by one repeated row/column."""
    import imageio.v3 as iio

    fps = clip.fps or 10.0
    if not is_video_path(path):
        _write_frames(path, clip, overwrite)
        return
    suffix = path.suffix.lower()
    frames = even_sides(clip.frames) if suffix in EVEN_SIDES else clip.frames
    options = {"duration": 1000.0 / fps, "loop": 0} if suffix == ".gif" else \
        {"fps": fps, "codec": _CODECS[suffix], "macro_block_size": 1, "ffmpeg_log_level": "error"}
    if suffix == ".webm":
        options["output_params"] = ["-crf", "30", "-b:v", "0"]  # constant quality (VP9 has no default)
    with atomic_path(path, overwrite, suffix=path.suffix) as tmp:
        try:
            iio.imwrite(tmp, frames, **options)
            back = iio.imread(tmp, index=None)
        except OSError:
            raise
        except Exception as exc:  # imageio and ffmpeg raise many kinds
            reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:120]
            raise OutputError(f"{path}: could not encode the video ({reason})") from None
        if back.shape[:3] != frames.shape[:3] and not (back.ndim == 3 and len(frames) == 1):
            raise OutputError(f"{path}: the encoder wrote {back.shape[:3]} (frames, height, width) instead of "
                              f"{frames.shape[:3]}")


def _write_frames(folder: Path, clip: Clip, overwrite: bool) -> None:
    write_frames(folder, [encode_image(frame, "png") for frame in clip.frames], overwrite)


def write_frames(folder: Path, frames: list[bytes], overwrite: bool) -> None:
    """Numbered image files (encoded bytes, PNG), gathered in a hidden folder beside `folder` and
    renamed into place: the folder appears whole or not at all."""
    if folder.exists() and not overwrite:
        raise OutputError(f"{folder} exists; pass {{{{overwrite}}}} to replace it")
    staging = temporary_beside(folder)
    staging.unlink()
    try:
        staging.mkdir()
        for i, data in enumerate(frames):
            (staging / f"{i:05d}.png").write_bytes(data)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif os.path.lexists(folder):  # a file (or link) where the frames folder goes: replaced
            folder.unlink()
        os.replace(staging, folder)
    except OSError as exc:
        raise OutputError(f"{folder}: could not be written ({describe_os_error(exc)})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
