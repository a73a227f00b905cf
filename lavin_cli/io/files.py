"""Files on disk: atomic publishing (a reader never sees half a file) and sha256 hashing.

Every file lavin writes (predictions, records, checkpoints, model folders) goes through
`write_atomic` or `publish`: the data lands in a temporary file beside the destination and is
renamed into place, so an interrupt, a full disk or a crash leaves either the old file, the new
one, or nothing, never a truncated one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.errors import OutputError

WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # failures that only writing meets
HashProgress = Optional[Callable[[int, int], None]]  # (bytes done, bytes total)


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} bytes"


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError: 'disk full', 'permission denied', ..."""
    known = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
             errno.EPERM: "permission denied", errno.EROFS: "read-only file system", errno.ENOENT: "folder vanished",
             errno.ENOTDIR: "a parent is not a folder", errno.EISDIR: "is a folder", errno.EIO: "I/O error"}
    return known.get(exc.errno, exc.strerror or exc.__class__.__name__)


def temporary_beside(path: Path, suffix: str = "") -> Path:
    """A new, empty temporary file in `path`'s folder (created with its parents); its name starts
    with a dot and holds .partial, so that it never passes for a finished output (`suffix` is
    appended for writers that tell the format from the name)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial" + suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write here ({describe_os_error(exc)})") from None
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path, overwrite: bool = True) -> None:
    """Give a finished temporary file the user's usual mode (mkstemp and safetensors make 0600)
    and move it into place atomically; without `overwrite` an existing `path` is refused."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(tmp, 0o666 & ~mask)
        if not overwrite and path.exists():
            raise OutputError(f"{path} exists; pass {{{{overwrite}}}} to replace it")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: could not be written ({describe_os_error(exc)})") from None


@contextmanager
def atomic_path(path: Path, overwrite: bool = True, suffix: str = "", errors: tuple = ()):
    """A temporary file name beside `path` for writers that take a name (safetensors, torch.save,
    ffmpeg): published as `path` when the block ends, removed on any failure. OSError (and the
    writer's own `errors`) become one OutputError naming `path`."""
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputError(f"{path} exists; pass {{{{overwrite}}}} to replace it")
    tmp = temporary_beside(path, suffix)
    try:
        yield tmp
        publish(tmp, path, overwrite)
    except (OSError, *errors) as exc:
        reason = describe_os_error(exc) if isinstance(exc, OSError) else (str(exc).splitlines() or [""])[0][:120]
        raise OutputError(f"{path}: could not be written ({reason})") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write `data` to `path` through a temporary file; on any failure no file is left behind."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass {{{{overwrite}}}} to replace it")
    tmp = temporary_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
        publish(tmp, path, overwrite)
    except OSError as exc:
        raise OutputError(f"{path}: could not be written ({describe_os_error(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_json_file(path: Path, error: type[Exception]):
    """A JSON file's value, or None where the file is absent; unreadable or invalid JSON raises
    `error` naming the file (callers check the value's fields)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"{path}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def sha256(path: Path, progress: HashProgress = None, cache: Path | None = None) -> str:
    """sha256 of a file. With `cache` (a JSON file), the digest is remembered by (path, size,
    mtime), so that big checkpoints are hashed once; a cache that cannot be read or written only
    costs time."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known = _read_cache(cache) if cache else {}
    if key in known:
        return known[key]
    digest, done = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, stat.st_size)
    if cache:
        known[key] = digest.hexdigest()
        _write_cache(cache, known)
    return digest.hexdigest()


def _read_cache(cache: Path) -> dict:
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_cache(cache: Path, known: dict) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(cache)
    except OSError:
        pass
