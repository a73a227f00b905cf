"""Video files and frame folders: reading any clip imageio + ffmpeg reads, writing atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError, OutputError
from lavin_cli.io.files import describe_os_error
from lavin_cli.io.images import array_to_rgb, is_image_path, read_image, write_image

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
_CODECS = {".webm": "libvpx-vp9", ".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    fps: float


def read_video(source: Path | str, label: str | None = None) -> Clip:
    """A video file (mp4, webm, mov, mkv, avi, gif) or a folder of frame images (sorted by name)."""
    import imageio.v3 as iio

    path = Path(source)
    label = label or str(path)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p))
        if not frames:
            raise InputError(f"{label}: folder holds no frame images")
        arrays = [read_image(p) for p in frames]
        if len({a.shape for a in arrays}) > 1:
            raise InputError(f"{label}: frames differ in size")
        return Clip(np.stack(arrays), 0.0)
    if not path.exists():
        raise InputError(f"{label}: file not found")
    if not is_video_path(path):
        raise InputError(f"{label}: not a video ({', '.join(VIDEO_EXTENSIONS)}) or a folder of frames")
    try:
        frames = iio.imread(path, index=None)
        meta = iio.immeta(path)
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


def write_video(path: Path, clip: Clip, overwrite: bool = False) -> None:
    """A video file (format from the extension, fps kept) or, for a path without a video
    extension, a folder of numbered PNG frames; written atomically either way."""
    import imageio.v3 as iio

    fps = clip.fps or 10.0
    if not is_video_path(path):
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists; pass {{{{overwrite}}}} to replace it")
        for i, frame in enumerate(clip.frames):
            write_image(path / f"{i:05d}.png", frame, overwrite=True)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write here ({describe_os_error(exc)})") from None
    tmp = path.with_name(f".{path.name}.partial{path.suffix}")
    options = {"duration": 1000.0 / fps, "loop": 0} if path.suffix.lower() == ".gif" else \
        {"fps": fps, "codec": _CODECS[path.suffix.lower()], "macro_block_size": 1}
    if path.suffix.lower() == ".webm":
        options["output_params"] = ["-crf", "30", "-b:v", "0"]  # constant quality (VP9 has no default)
    try:
        try:
            iio.imwrite(tmp, clip.frames, **options)
        except OSError as exc:
            raise OutputError(f"{path}: could not encode the video ({str(exc).splitlines()[0][:120]})") from None
        if path.exists() and not overwrite:
            raise OutputError(f"{path} exists; pass {{{{overwrite}}}} to replace it")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
