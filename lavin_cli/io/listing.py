"""Lists of queries at dataset scale: files, folders (optionally recursive), glob patterns and
lists of paths (one per line, or NUL-separated as `find -print0` writes them), and the names
their outputs take: the queries' tree, mirrored under the output folder.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from lavin_cli.errors import InputError, OptionError, UsageError
from lavin_cli.io.images import IMAGE_EXTENSIONS, is_image_path
from lavin_cli.io.video import is_video_path

STDIO = "-"


def read_list(source: str, nul: bool = False) -> list[str]:
    """Paths listed in a file, or on stdin for '-': one per line (blank lines skipped), or
    separated by NUL bytes with `nul`."""
    try:
        data = sys.stdin.buffer.read() if source == STDIO else Path(source).expanduser().read_bytes()
    except FileNotFoundError:
        raise InputError(f"{source}: list of files not found") from None
    except OSError as exc:
        raise InputError(f"{source}: list of files cannot be read ({exc.strerror})") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = data.decode(errors="surrogateescape")  # names that are not UTF-8 stay the same bytes
    if not nul and "\0" in text:
        raise UsageError(f"{'stdin' if source == STDIO else source}: the names are separated by NUL bytes (as find "
                         "-print0 writes them); add -0")
    items = text.split("\0") if nul else text.splitlines()
    return [item for item in items if item.strip()] if not nul else [item for item in items if item]


def _wanted(clips: bool):
    return (lambda p: p.is_file() and is_video_path(p)) if clips else (lambda p: p.is_file() and is_image_path(p))


def _folder(path: Path, spec: str, clips: bool, recursive: bool) -> list[str]:
    """What a query folder stands for: its images (or videos); for clips without videos, itself
    as a folder of frames. With `recursive`, every file below it."""
    walk = path.rglob("*") if recursive else path.iterdir()
    found = sorted(str(p) for p in walk if _wanted(clips)(p) and not p.name.startswith("."))
    if found:
        return found
    if clips and any(is_image_path(p) for p in path.iterdir()):
        return [str(path)]
    kinds = "neither videos nor frame images" if clips else f"no images ({', '.join(IMAGE_EXTENSIONS)})"
    raise InputError(f"{spec}: folder holds {kinds}{'' if recursive else ' (--recursive descends into sub-folders)'}")


def expand(specs: list[str], clips: bool = False, recursive: bool = False) -> list[str]:
    """Files, folders and glob patterns -> query paths, in order. A path that does not exist is
    kept, so that it is reported as a failed query of the batch."""
    if STDIO in specs:
        if clips or len(specs) > 1:
            raise UsageError("{{queries=-}} (stdin) takes one image, alone")
        return [STDIO]
    out: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            out += _folder(path, spec, clips, recursive)
        elif not path.exists() and glob.has_magic(spec):
            matches = sorted(m for m in glob.glob(os.path.expanduser(spec), recursive=recursive)
                             if _wanted(clips)(Path(m)) or (clips and Path(m).is_dir()))
            if not matches:
                raise InputError(f"{spec}: no {'video' if clips else 'image'} matches this pattern")
            out += matches
        else:
            out.append(str(path))
    return out


def relative_names(queries: list[str], root: str | Path | None = None) -> list[Path]:
    """Each query's path relative to `root` (default: the deepest folder holding them all), for
    mirroring the queries' tree under an output folder. The same path listed twice gets a -1,
    -2... suffix, so that no output is written twice."""
    if not queries:
        return []
    paths = [Path("stdin") if q == STDIO else Path(os.path.abspath(os.path.expanduser(q))) for q in queries]
    if root is not None:
        base = Path(os.path.abspath(os.path.expanduser(str(root))))
        if base.exists() and not base.is_dir():
            raise OptionError("root", f"{root} is a file; give the folder the outputs' tree starts from")
        outside = [str(p) for p, q in zip(paths, queries) if q != STDIO and not p.is_relative_to(base)]
        if outside:
            raise OptionError("root", f"{base} does not hold {outside[0]}")
    else:  # queries that cannot be read fail, and must not move where the others land
        real = [p for p, q in zip(paths, queries) if q != STDIO]
        base = _common_folder([p for p in real if p.is_file() or p.is_dir()] or real)
    names, seen = [], {}
    for p, q in zip(paths, queries):
        rel = p if q == STDIO else p.relative_to(base) if p.is_relative_to(base) and p != base else Path(p.name)
        n = seen.get(rel, 0)
        seen[rel] = n + 1
        names.append(rel if n == 0 else rel.with_name(f"{rel.stem}-{n}{rel.suffix}"))
    return names


def _common_folder(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")


def distinct(names: list[Path]) -> list[Path]:
    """Output names told apart: where two queries would write the same file (a/x.png and a/x.jpg
    both give a/x.png), the later one gets a -1, -2... suffix."""
    seen: set[Path] = set()
    out = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = name.with_name(f"{name.stem}-{n}{name.suffix}")
        seen.add(candidate)
        out.append(candidate)
    return out
