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
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.errors import InputError, OutputError

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


NAME_MAX = 255  # bytes in one file name, where the file system does not say (Linux, macOS, Windows)


def name_limit(folder: Path) -> int:
    """The longest file name (bytes) the file system holding `folder` (or its nearest existing
    parent) takes."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def too_long(path: Path) -> str | None:
    """Why `path` cannot be created for its length ('its name is 260 bytes, ...'), or None."""
    name = os.fsencode(Path(path).name)
    limit = name_limit(Path(path).parent)
    if len(name) > limit:
        return f"its name is {len(name)} bytes, the file system takes at most {limit}"
    return None


def fitted_name(folder: Path, stem: str, tail: str) -> Path:
    """folder / (stem + tail), or where that name is longer than the file system takes, the
    stem cut short and told apart by 8 hex digits of its hash (the tail kept whole)."""
    raw, end = os.fsencode(stem), os.fsencode(tail)
    limit = name_limit(folder)
    if len(raw) + len(end) <= limit:
        return Path(folder) / (stem + tail)
    tag = b"-" + hashlib.sha1(raw).hexdigest()[:8].encode()
    cut = raw[: max(1, limit - len(end) - len(tag))]
    return Path(folder) / os.fsdecode(cut + tag + end)


def file_kind(path: Path) -> str | None:
    """'a FIFO (named pipe)', 'a character device', ... for what is not a regular file or a
    folder; None for those, and for what does not exist."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((kind for test, kind in kinds.items() if test(mode)), None)


def check_readable_file(path: Path, label: str | None = None) -> None:
    """Refuse FIFOs, devices and sockets by their file type, before an open() that would wait
    forever for a writer or read an endless stream."""
    kind = file_kind(path)
    if kind:
        raise InputError(f"{label or path}: is {kind}, not a file; give a file (or pipe one image into -i -)")


def temporary_beside(path: Path, suffix: str = "") -> Path:
    """A new, empty temporary file in `path`'s folder (created with its parents); its name starts
    with a dot and holds .partial, so that it never passes for a finished output (`suffix` is
    appended for writers that tell the format from the name). Its name is cut short where
    `path`'s own name leaves no room for the temporary parts."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = len(".partial" + suffix) + 2 + 8  # the dots and mkstemp's random part
        head = os.fsdecode(os.fsencode(path.name)[: max(1, name_limit(path.parent) - extra)]).rstrip("\udcff")
        fd, tmp = tempfile.mkstemp(prefix=f".{head}.", suffix=".partial" + suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write here ({describe_os_error(exc)})") from None
    os.close(fd)
    return Path(tmp)


def publish(tmp: Path, path: Path, overwrite: bool = True) -> None:
    """Give a finished temporary file the user's usual mode (mkstemp and safetensors make 0600)
    and move it into place atomically; without `overwrite` an existing `path` is refused, also
    one that another process creates at the same moment (the file is linked into place, which
    fails where a file exists, instead of renamed over it)."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(tmp, 0o666 & ~mask)
        if overwrite:
            os.replace(tmp, path)
        elif not _link_into_place(tmp, path):
            raise OutputError(f"{path} exists; pass {{{{overwrite}}}} to replace it")
    except OSError as exc:
        raise OutputError(f"{path}: could not be written ({describe_os_error(exc)})") from None


def _link_into_place(tmp: Path, path: Path) -> bool:
    """Put `tmp` at `path` unless something is there (False then). File systems without hard
    links fall back to a check and a rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(path):
            return False
        os.replace(tmp, path)
        return True
    os.unlink(tmp)
    return True


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
