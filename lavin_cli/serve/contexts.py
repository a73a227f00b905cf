"""Where a request's context pairs come from, and what the server lets it read.

    task        a task folder of the model or of examples/ (as `lavin run --task`)
    folder      a folder inside one of the server's --allow-dir folders, nothing outside them:
                the folder and every pair file in it must resolve (links followed) inside one
    uploaded    pairs sent with the request, or earlier to POST /v1/contexts (kept by the hash
                of their bytes, least recently used dropped beyond a byte budget); clips are put
                back on disk, in a folder of the server's own, as `lavin video -c` reads them
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from lavin_cli.errors import InputError, LavinError, UnknownTask
from lavin_cli.inference import context as ctx
from lavin_cli.store import folders

_CLIP_NAME = re.compile(r"[\w.-]+_(input|target)(\.\w+|/\d{1,6}\.\w+)")  # an uploaded clip's file name


class Forbidden(LavinError):
    """A path outside the folders the server allows (HTTP 403)."""

    exit_code = 2


def inside(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in roots)


def content_key(context: ctx.Context) -> str:
    """A hash of what the pairs hold (files by path, size and modification time, uploads by
    bytes) and of what the task.json says of the answers (target, keep)."""
    digest = hashlib.sha256(f"{context.target}|{context.keep}|".encode())
    for pair in context.pairs:
        for item in (pair.input, pair.target):
            if isinstance(item, (bytes, bytearray)):
                digest.update(hashlib.sha256(item).digest())
            else:
                stat = Path(item).stat()
                digest.update(f"{os.path.realpath(item)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class Contexts:
    def __init__(self, model: folders.ModelFolder, allow: list[Path], max_bytes: int = 256 * 2**20):
        self.model = model
        self.allow = [Path(os.path.realpath(p)) for p in allow]
        self.max_bytes = max_bytes
        self._uploads: OrderedDict[str, tuple[ctx.Context, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._folder: Path | None = None  # where uploaded clips are put back on disk

    def tasks(self) -> dict[str, folders.Task]:
        return folders.tasks(self.model)

    def task(self, name: str, clips: bool) -> ctx.Context:
        known = self.tasks()
        if name not in known:
            raise UnknownTask(f"unknown task {name!r} (available: {', '.join(sorted(known)) or 'none'}); see GET /v1/tasks")
        return ctx.find_pairs(known[name].path, clips=clips)

    def folder(self, path: str, clips: bool) -> ctx.Context:
        """A context folder the server allows: it and each of its pair files inside --allow-dir."""
        if not self.allow:
            raise Forbidden("this server reads no folders (start it with --allow-dir DIR); upload the pairs instead")
        folder = Path(path)
        if not folder.is_absolute() or ".." in folder.parts or not inside(folder, self.allow):
            raise Forbidden(f"{path}: not inside a folder this server allows ({', '.join(map(str, self.allow))})")
        found = ctx.find_pairs(folder, clips=clips)
        for pair in found.pairs:
            for item in (pair.input, pair.target):
                if not inside(Path(item), self.allow):
                    raise Forbidden(f"{item}: links outside the folders this server allows")
        return found

    def upload(self, pairs: list[tuple[bytes, bytes]], names: list[str]) -> tuple[str, ctx.Context]:
        """Keep uploaded pairs by the hash of their bytes; (id, context)."""
        if not pairs:
            raise InputError("no context pairs uploaded (send input and target files, one of each per pair)")
        context = ctx.Context([ctx.Pair(name, a, b) for name, (a, b) in zip(names, pairs)], [], "upload")
        key = content_key(context)
        size = sum(len(a) + len(b) for a, b in pairs)
        with self._lock:
            self._uploads.pop(key, None)
            self._uploads[key] = (context, size)
            self._trim()
        return key, context

    def upload_clips(self, files: list[tuple[str, bytes]]) -> tuple[str, ctx.Context]:
        """Context clips sent as ID_input.mp4 / ID_target.mp4 files, or as the frames of folders
        (ID_input/00000.png ...): written to a folder of the server's, read as a clip context."""
        digest = hashlib.sha256()
        for name, data in sorted(files):
            if not _CLIP_NAME.fullmatch(name) or ".." in name:
                raise InputError(f"{name}: name context clips ID_input.EXT / ID_target.EXT, or frames "
                                 "ID_input/NNNNN.EXT")
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        key = digest.hexdigest()
        folder = self._root() / key
        if not folder.is_dir():
            staging = Path(tempfile.mkdtemp(dir=self._root()))
            for name, data in files:
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(data)
            os.replace(staging, folder)
        found = ctx.find_pairs(folder, clips=True)
        found = ctx.Context(found.pairs, found.unpaired, "upload", found.target, found.skipped)
        size = sum(len(d) for _, d in files)
        with self._lock:
            self._uploads[key] = (found, size)
            self._trim()
        return key, found

    def _root(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="lavin-serve-contexts-"))
        return self._folder

    def _trim(self) -> None:
        while sum(s for _, s in self._uploads.values()) > self.max_bytes and len(self._uploads) > 1:
            key, _ = self._uploads.popitem(last=False)
            if self._folder is not None:
                shutil.rmtree(self._folder / key, ignore_errors=True)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def uploaded(self, key: str) -> ctx.Context:
        with self._lock:
            found = self._uploads.get(key)
            if found is None:
                raise UnknownTask(f"no uploaded context {key!r} here (the server forgot it, or never had it); "
                                  "upload the pairs again")
            self._uploads.move_to_end(key)
            return found[0]

    def file_of(self, task: str, name: str) -> Path:
        """One file of a task folder (the page and the client show the pairs)."""
        known = self.tasks()
        if task not in known:
            raise UnknownTask(f"unknown task {task!r}")
        path = known[task].path / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise UnknownTask(f"task {task} has no file {name!r}")
        return path
