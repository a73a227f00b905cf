"""From command-line arguments to concrete files, checked up front: which queries (files, folders,
globs, lists), which output each one gets (the queries' tree mirrored under -o), which of them
this process runs (its shard; on resume, what is missing), in which format."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lavin_cli.errors import OptionError, OutputError, UsageError
from lavin_cli.inference import shards
from lavin_cli.io import listing
from lavin_cli.io.images import IMAGE_EXTENSIONS, is_image_path
from lavin_cli.io.video import VIDEO_EXTENSIONS, is_video_path

STDIO = listing.STDIO
IMAGE_FORMATS = ("png", "png16", "npy")
VIDEO_FORMATS = ("video", "png16", "npy")


@dataclass
class Plan:
    queries: list[str]  # every query of the list, in order
    outputs: list[str]  # one per query
    fmt: str
    todo: list[int] = field(default_factory=list)  # positions this process runs
    finished: set[int] = field(default_factory=set)  # among them, positions whose outputs exist already


def gather(specs: list[str], files_from: Optional[str], nul: bool, recursive: bool, clips: bool) -> list[str]:
    """-i specs (files, folders, globs) then the paths of --files-from, in order."""
    queries = listing.expand(specs, clips=clips, recursive=recursive) if specs else []
    if files_from is not None:
        if STDIO in queries:
            raise UsageError("--files-from and --query - both read stdin; give the images as files")
        queries += listing.read_list(files_from, nul)
    elif nul:
        raise UsageError("-0 reads --files-from NUL-separated; give --files-from")
    if not queries:
        raise UsageError("no queries: give --query (-i) or --files-from")
    return queries


def output_format(fmt: Optional[str], output: str, gray_target: bool, clips: bool) -> str:
    """--format, else what -o's extension says (.npy), else what suits the task (png16 for gray
    targets, task.json {"target": "gray"}), else png (a video for clips)."""
    formats = VIDEO_FORMATS if clips else IMAGE_FORMATS
    if fmt is not None:
        if fmt not in formats:
            raise OptionError("format", f"{fmt!r} is not one of {', '.join(formats)}")
        return fmt
    if output != STDIO and Path(output).suffix.lower() == ".npy":
        return "npy"
    return "png16" if gray_target else formats[0]


def _suffix(fmt: str, ext: str, clips: bool) -> str:
    if fmt == "npy":
        return ".npy"
    if fmt == "png16":
        return "" if clips else ".png"
    ext = "." + ext.lower().lstrip(".")
    if clips:
        if ext not in VIDEO_EXTENSIONS and ext != ".frames":
            raise OptionError("ext", f"{ext}: use one of {', '.join(VIDEO_EXTENSIONS)} or frames")
        return "" if ext == ".frames" else ext
    if ext not in IMAGE_EXTENSIONS:
        raise OptionError("ext", f"{ext}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    return ext


def _check_file_name(out: Path, output: str, fmt: str, clips: bool) -> None:
    suffix = out.suffix.lower()
    if fmt == "npy" and suffix != ".npy":
        raise UsageError(f"-o {output}: --format npy writes .npy files")
    if clips and fmt == "video" and suffix and not is_video_path(out):
        kind = "an image format" if is_image_path(out) else "not a video format"
        raise UsageError(f"-o {output}: {out.suffix} is {kind}; write {', '.join(VIDEO_EXTENSIONS)} files, or a folder of "
                         "frames (a name without an extension, or ending with /)")
    if not clips and fmt != "npy" and suffix and not is_image_path(out):
        raise UsageError(f"-o {output}: {out.suffix} is not an image format lavin writes ({', '.join(IMAGE_EXTENSIONS)}); "
                         "for a folder of outputs, end the name with /")


def output_names(queries: list[str], output: str, fmt: str, ext: str, root: Optional[str], clips: bool) -> list[str]:
    """One output per query: -o FILE for a single query, stdout ('-') for a single image, else
    the queries' tree (relative to --root, or to the folder holding them all) under -o DIR."""
    if output == STDIO:
        if clips:
            raise UsageError("-o -: videos are written to files or frame folders, not stdout")
        if len(queries) != 1:
            raise UsageError(f"-o - writes one image to stdout, but there are {len(queries)} queries; give a folder")
        if sys.stdout.isatty():
            raise UsageError("-o - would write image bytes to the terminal; redirect stdout (> out.png) or give a file")
        return [STDIO]
    suffix = _suffix(fmt, ext, clips)
    out = Path(output).expanduser()
    is_folder = out.is_dir() or output.endswith(("/", os.sep)) or (clips and not out.suffix and len(queries) > 1)
    if not is_folder:
        _check_file_name(out, output, fmt, clips)
        named = out.suffix or (clips and fmt != "npy")  # a clip's frames folder has no extension
        if len(queries) == 1 and named:
            return [str(out)]
        if named:
            raise UsageError(f"-o {output}: {len(queries)} queries need an output folder, not a file name")
    return [str(out / rel.with_suffix(suffix) if rel.suffix else out / (rel.name + suffix))
            for rel in listing.relative_names(queries, root)]


def shard_of(text: Optional[str]) -> Optional[shards.Shard]:
    """--shard K/N, or this process's rank under torchrun (not both)."""
    ranked = shards.from_torchrun()
    if text and ranked:
        raise UsageError("--shard splits the queries between separate processes; under torchrun the ranks do it")
    return shards.parse(text) if text else ranked


def schedule(plan: Plan, batch_size: int, shard: Optional[shards.Shard], skip_existing: bool) -> None:
    """Fill `plan.todo` (this shard's positions; with `skip_existing`, the batches with a missing
    output) and `plan.finished` (outputs that exist already among them)."""
    mine = shards.select(len(plan.queries), batch_size, shard)
    if skip_existing:
        plan.todo, plan.finished = shards.pending(mine, batch_size, lambda i: Path(plan.outputs[i]).exists())
    else:
        plan.todo, plan.finished = mine, set()


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
        raise OutputError(f"{existing[0]}{more} exists; pass --overwrite to replace it (or --skip-existing to keep it)")
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
