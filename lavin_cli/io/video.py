"""Video files and frame folders: reading any clip imageio + ffmpeg reads, writing atomically.

Two codec backends, the same files: imageio-ffmpeg (the ffmpeg binary its wheel ships, a core
dependency) and PyAV (ffmpeg's libraries in a smaller wheel, `pip install av`), used where
imageio-ffmpeg or its binary is missing, or chosen with LAVIN_VIDEO_BACKEND=pyav. GIFs go through
Pillow and frame folders through the image readers: neither needs a codec backend.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError, OutputError, TooLarge, UsageError
from lavin_cli.io.files import atomic_path, check_readable_file, describe_os_error, human_bytes, temporary_beside
from lavin_cli.io.images import DEFAULT_MAX_PIXELS, array_to_rgb, encode_image, is_image_path, read_image

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
_CODECS = {".webm": "libvpx-vp9", ".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}
BACKEND_ENV = "LAVIN_VIDEO_BACKEND"  # ffmpeg | pyav: which backend reads and writes video files
BACKENDS = {"ffmpeg": "FFMPEG", "pyav": "pyav"}  # our name -> imageio's plugin
PACKAGES = {"ffmpeg": "imageio-ffmpeg", "pyav": "av"}  # each backend's package, as pip names it
NO_CODEC = "none: GIFs and frame folders only"  # describe_backend() where neither backend is installed


def video_backend() -> str | None:
    """'ffmpeg' (imageio-ffmpeg with its binary), else 'pyav' (PyAV importable), else None;
    LAVIN_VIDEO_BACKEND names one of them instead (UsageError where it is unknown or missing)."""
    asked = os.environ.get(BACKEND_ENV, "").strip().lower()
    if asked and asked not in BACKENDS:
        raise UsageError(f"{BACKEND_ENV}={asked!r}: use one of {', '.join(BACKENDS)}")
    for name in [asked] if asked else list(BACKENDS):
        if available(name):
            return name
    if asked:
        raise UsageError(f"{BACKEND_ENV}={asked}: {PACKAGES[asked]} is not installed (or its ffmpeg is missing)")
    return None


def available(name: str) -> bool:
    """Whether backend `name` can run here: its package importable (imageio-ffmpeg: with its binary)."""
    try:
        if name == "pyav":
            import av  # noqa: F401
        else:
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()  # RuntimeError where the package has no binary
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def describe_backend() -> str:
    """What reads and writes video files here, for `lavin info`."""
    from importlib.metadata import version

    try:
        backend = video_backend()
    except UsageError as exc:
        return str(exc)
    if backend is None:
        return f"{NO_CODEC} (pip install imageio-ffmpeg, or av)"
    return f"{PACKAGES[backend]} {version(PACKAGES[backend])}"


def needs_codec(path) -> bool:
    """A video file that only a codec backend reads (GIFs go through Pillow)."""
    path = Path(path)
    return is_video_path(path) and path.suffix.lower() != ".gif"


def require_backend(paths) -> None:
    """UsageError, naming the first video file among `paths` that needs a codec, where no codec
    backend is installed: a run refuses before its model loads."""
    for path in filter(needs_codec, paths):
        _plugin(Path(path), str(path))
        return


def _plugin(path: Path, label: str) -> str | None:
    """The imageio plugin for a video file (None: imageio's own choice, Pillow for GIFs)."""
    if not needs_codec(path):
        return None
    backend = video_backend()
    if backend is None:
        raise UsageError(f"{label}: {path.suffix} files need ffmpeg: pip install imageio-ffmpeg (or av); "
                         f"GIFs and folders of frame images need neither")
    return BACKENDS[backend]


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
    plugin = _plugin(path, label)
    try:
        _check_size(path, label, max_pixels, max_bytes, plugin)
        frames = iio.imread(path, index=None, plugin=plugin)
        meta = iio.immeta(path, plugin=plugin)
    except (InputError, UsageError):
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
    plugin = _plugin(path, label) if is_video_path(path) else None
    try:
        _check_size(path, label, max_pixels, None, plugin)
    except (InputError, UsageError):
        raise
    except Exception as exc:  # imageio raises many kinds for broken or unsupported files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"{label}: unreadable, truncated or unsupported video ({first[:120]})") from None


def _check_size(path: Path, label: str, max_pixels: int, max_bytes: int | None, plugin: str | None) -> None:
    import imageio.v3 as iio

    props = iio.improps(path, plugin=plugin)
    height, width = props.shape[1:3]
    count = props.n_images
    if not np.isfinite(count) or count <= 0:  # streams (ffmpeg: inf; PyAV in webm, mkv: 0): the duration tells
        meta = iio.immeta(path, plugin=plugin)
        seconds = meta.get("duration") or (_container_seconds(path) if plugin == "pyav" else 0)
        count = int(np.ceil(float(seconds or 0) * float(meta.get("fps") or 0))) or 1
    _limit(label, width, height, int(count), max_pixels, max_bytes)


def _container_seconds(path: Path) -> float:
    """A Matroska / WebM file's length as its container states it (PyAV's metadata leaves it out)."""
    import av

    with av.open(str(path)) as container:
        return (container.duration or 0) / av.time_base


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
    plugin = _plugin(path, str(path))
    with atomic_path(path, overwrite, suffix=path.suffix) as tmp:
        try:
            if plugin == "pyav":
                _encode_pyav(tmp, frames, fps, suffix)
            else:
                iio.imwrite(tmp, frames, plugin=plugin, **_imageio_options(suffix, fps))
            back = iio.imread(tmp, index=None, plugin=plugin)
        except OSError:
            raise
        except Exception as exc:  # imageio and ffmpeg raise many kinds
            reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:120]
            raise OutputError(f"{path}: could not encode the video ({reason})") from None
        if back.shape[:3] != frames.shape[:3] and not (back.ndim == 3 and len(frames) == 1):
            raise OutputError(f"{path}: the encoder wrote {back.shape[:3]} (frames, height, width) instead of "
                              f"{frames.shape[:3]}")


def _imageio_options(suffix: str, fps: float) -> dict:
    """imwrite's options for Pillow (GIF) and imageio-ffmpeg."""
    if suffix == ".gif":
        return {"duration": 1000.0 / fps, "loop": 0}
    options = {"fps": fps, "codec": _CODECS[suffix], "macro_block_size": 1, "ffmpeg_log_level": "error"}
    if suffix == ".webm":
        options["output_params"] = ["-crf", "30", "-b:v", "0"]  # constant quality (VP9 has no default)
    return options


# the quality imageio-ffmpeg asks for by default (its quality 5: H.264 crf 25, MPEG-4 qscale 16; VP9 as above)
_PYAV_QUALITY = {"libx264": {"crf": "25"}, "mpeg4": {"flags": "+qscale", "global_quality": str(118 * 16)},
                 "libvpx-vp9": {"crf": "30", "b": "0"}}


def _encode_pyav(path: Path, frames: np.ndarray, fps: float, suffix: str) -> None:
    """(F, H, W, 3) uint8 -> a video file through PyAV, with the codecs and settings of the ffmpeg path."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(_CODECS[suffix], rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = _PYAV_QUALITY[_CODECS[suffix]]
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())  # what the encoder still holds


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
