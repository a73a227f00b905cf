"""From command-line arguments to concrete files: which queries, which outputs, checked up front."""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from pathlib import Path

from lavin_cli.errors import InputError, OutputError, UsageError
from lavin_cli.io.images import IMAGE_EXTENSIONS, is_image_path
from lavin_cli.io.video import is_video_path

STDIO = "-"


def _folder_items(path: Path, spec: str, clips: bool) -> list[str]:
    """What a query folder stands for: its images; for clips, its videos, or itself as frames."""
    if clips:
        videos = sorted(str(p) for p in path.iterdir() if p.is_file() and is_video_path(p))
        if not videos and not any(is_image_path(p) for p in path.iterdir()):
            raise InputError(f"{spec}: folder holds neither videos nor frame images")
        return videos or [str(path)]
    images = sorted(str(p) for p in path.iterdir() if p.is_file() and is_image_path(p))
    if not images:
        raise InputError(f"{spec}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def expand_queries(specs: list[str], clips: bool = False) -> list[str]:
    """Files, folders and glob patterns -> query paths, in order (images, or with `clips` videos
    and frame folders). A path that does not exist is kept, so that it is reported as a failed
    query of the batch."""
    if STDIO in specs:
        if clips or len(specs) > 1:
            raise UsageError("--query - (stdin) takes one image, alone")
        return [STDIO]
    wanted = (lambda p: is_video_path(p) or p.is_dir()) if clips else is_image_path
    out: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            out += _folder_items(path, spec, clips)
        elif not path.exists() and glob.has_magic(spec):
            matches = sorted(m for m in glob.glob(os.path.expanduser(spec)) if wanted(Path(m)))
            if not matches:
                raise InputError(f"{spec}: no {'video' if clips else 'image'} matches this pattern")
            out += matches
        else:
            out.append(str(path))
    return out


def plan_outputs(queries: list[str], output: str, ext: str) -> list[str]:
    """One output per query: a file for a single query, files named after the queries in a folder
    for several, or stdout ('-') for one."""
    ext = "." + ext.lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS:
        raise UsageError(f"--ext {ext}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    if output == STDIO:
        if len(queries) != 1:
            raise UsageError(f"-o - writes one image to stdout, but there are {len(queries)} queries; give a folder")
        if sys.stdout.isatty():
            raise UsageError("-o - would write image bytes to the terminal; redirect stdout (> out.png) or give a file")
        return [STDIO]
    out = Path(output).expanduser()
    if len(queries) == 1 and is_image_path(out) and not out.is_dir():
        return [str(out)]
    if is_image_path(out) and not out.is_dir():
        raise UsageError(f"-o {output}: {len(queries)} queries need an output folder, not a file name")
    if out.suffix and not out.is_dir() and not output.endswith(("/", os.sep)):
        raise UsageError(f"-o {output}: {out.suffix} is not an image format lavin writes ({', '.join(IMAGE_EXTENSIONS)}); "
                         "for a folder of outputs, end the name with /")
    names, seen = [], {}
    for q in queries:
        stem = "stdin" if q == STDIO else Path(q).stem
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        names.append(str(out / (f"{stem}{ext}" if n == 0 else f"{stem}-{n}{ext}")))
    return names


def preflight(outputs: list[str], overwrite: bool, extra: list[str] = (), folders_ok: bool = False) -> None:
    """Refuse existing outputs (unless --overwrite), outputs that are folders (files expected:
    `extra` always, `outputs` unless `folders_ok`) and unwritable folders, before any work."""
    files = [Path(o) for o in list(outputs) + list(extra) if o != STDIO]
    must_be_files = [Path(o) for o in (list(extra) + ([] if folders_ok else list(outputs))) if o != STDIO]
    folders = [str(f) for f in must_be_files if f.is_dir()]
    if folders:
        raise OutputError(f"{folders[0]} is a folder, where a file is to be written; give a file name")
    existing = [str(f) for f in files if f.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputError(f"{existing[0]}{more} exists; pass --overwrite to replace it")
    for folder in sorted({f.parent for f in files}):
        _probe_writable(folder)


def _probe_writable(folder: Path) -> None:
    """Create the folder and a scratch file in it: the only test that holds for root too."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{folder}: cannot be an output folder, {existing} is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".lavin-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None
