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

from lavin_cli.cli.console import stdout_closed
from lavin_cli.errors import InputError, OptionError, OutputError, UsageError
from lavin_cli.inference import shards
from lavin_cli.io import listing
from lavin_cli.io.files import describe_os_error, file_kind, fitted_name, too_long
from lavin_cli.io.outputs import unfinished
from lavin_cli.io.images import IMAGE_EXTENSIONS, is_image_path
from lavin_cli.io.video import VIDEO_EXTENSIONS

STDIO = listing.STDIO
IMAGE_FORMATS = ("png", "png16", "npy")
VIDEO_FORMATS = ("video", "png16", "npy")


@dataclass
class Plan:
    queries: list[str]  # every query of the list, in order
    outputs: list[str]  # one per query
    fmt: str
    here: list[int] = field(default_factory=list)  # positions of this process's shard
    todo: list[int] = field(default_factory=list)  # among them, the positions it runs
    finished: set[int] = field(default_factory=set)  # among them, positions whose outputs exist already
    redo: dict[int, str] = field(default_factory=dict)  # resumed: outputs in the way that are not whole (why)


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
    """A single output named by -o: its extension must be one the format writes."""
    suffix = out.suffix.lower()
    wanted = {"npy": (".npy",), "png16": () if clips else (".png",),
              "video": VIDEO_EXTENSIONS, "png": IMAGE_EXTENSIONS}[fmt]
    if suffix in wanted or (clips and fmt != "npy" and not suffix):
        return
    if fmt == "png16" and clips:
        raise UsageError(f"-o {output}: --format png16 writes a folder of 16-bit frames; give a name without an "
                         "extension")
    if fmt in ("npy", "png16"):
        raise UsageError(f"-o {output}: --format {fmt} writes {wanted[0]} files; name the output {out.stem}{wanted[0]}, "
                         "or end -o with / for a folder")
    if clips:
        kind = "an image format" if is_image_path(out) else "not a video format"
        raise UsageError(f"-o {output}: {out.suffix} is {kind}; write {', '.join(VIDEO_EXTENSIONS)} files, or a folder of "
                         "frames (a name without an extension, or ending with /)")
    raise UsageError(f"-o {output}: {out.suffix} is not an image format lavin writes ({', '.join(IMAGE_EXTENSIONS)}); "
                     "for a folder of outputs, end the name with /")


def plain_format(clips: bool) -> str:
    """The format of 8-bit outputs whose file type --ext picks: png images, video clips."""
    return "video" if clips else "png"


def default_ext(clips: bool) -> str:
    """--ext when not given."""
    return "mp4" if clips else "png"


def _refuse_for_one_file(output: str, ext: Optional[str], root: Optional[str]) -> None:
    """--ext and --root shape the names of an output folder's files; -o naming one output would drop them."""
    for flag, value in (("--ext", ext), ("--root", root)):
        if value is not None:
            raise UsageError(f"{flag} {value} names the files of an output folder, and -o {output} is one output "
                             f"(its own name decides): leave {flag} out, or give -o a folder (ending with /)")


def is_output_folder(output: str, queries: int, fmt: str, clips: bool) -> bool:
    """The one rule for what -o names, whatever the format: a folder of outputs (the queries'
    tree) when it is a folder already, ends with /, names several queries, or has no extension
    and is not an existing file (except a clip's video or png16 output, whose frames folder has
    none); else the one query's output file."""
    out = Path(output).expanduser()
    if out.is_dir() or output.endswith(("/", os.sep)) or queries > 1:
        return True
    return not out.suffix and not os.path.lexists(out) and not (clips and fmt != "npy")


def output_names(queries: list[str], output: str, fmt: str, ext: Optional[str], root: Optional[str],
                 clips: bool) -> list[str]:
    """One output per query: -o FILE for a single query, stdout ('-') for a single image, else
    the queries' tree (relative to --root, or to the folder holding them all) under -o DIR.
    `ext` (None: png, mp4 for clips) names the files of a folder or stdout's format; given for a
    single output file, as --root, it is refused: the file's own name decides."""
    plain = plain_format(clips)
    if ext is not None and fmt != plain:
        raise UsageError(f"--ext {ext} picks the file type of --format {plain} outputs, and this run writes {fmt}: "
                         f"leave --ext out, or give --format {plain}")
    if output == STDIO:
        if clips:
            raise UsageError("-o -: videos are written to files or frame folders, not stdout")
        if len(queries) != 1:
            raise UsageError(f"-o - writes one image to stdout, but there are {len(queries)} queries; give a folder")
        if stdout_closed():
            raise OutputError("-o -: stdout is closed; give -o FILE")
        if stdout_is_terminal():
            raise UsageError("-o - would write image bytes to the terminal; redirect stdout (> out.png) or give a file")
        _refuse_for_one_file(output, None, root)
        return [STDIO]
    out = Path(output).expanduser()
    if not output.strip():
        raise UsageError("-o is empty; give a file, a folder or - for stdout")
    suffix = _suffix(fmt, ext or default_ext(clips), clips)  # a bad --ext is refused in any case
    if not is_output_folder(output, len(queries), fmt, clips):
        _refuse_for_one_file(output, ext, root)
        if out.suffix or not os.path.lexists(out):
            _check_file_name(out, output, fmt, clips)
        return [str(out)]
    if (out.suffix or os.path.lexists(out)) and not out.is_dir() and not output.endswith(("/", os.sep)):
        raise UsageError(f"-o {output}: {len(queries)} queries need an output folder, not a file name "
                         f"(end it with / to make a folder of that name)")
    names = [out / rel.with_suffix(suffix) if rel.suffix else out / (rel.name + suffix)
             for rel in listing.relative_names(queries, root)]
    return [str(name) for name in listing.distinct(names)]


def grid_path(output: str) -> str:
    """Where --grid saves an output's picture: <stem>_grid.png beside it (the stem cut short, and
    told apart by a hash, where the whole name would be too long for the file system)."""
    out = Path(output)
    return str(fitted_name(out.parent, out.stem if out.suffix else out.name, "_grid.png"))


def stdout_is_terminal() -> bool:
    stream = sys.stdout
    return stream is not None and stream.isatty()


def query_problem(query: str, clips: bool) -> Optional[str]:
    """Why a query surely cannot be read, from its file type alone (None: it may be readable)."""
    if query == STDIO:
        return None
    path = Path(query)
    if not path.exists():
        return f"{query}: {'broken link' if path.is_symlink() else 'file not found'}"
    kind = file_kind(path)
    if kind:
        return f"{query}: is {kind}, not a file"
    if path.is_dir() and not clips:
        return f"{query}: is a folder, not an image"
    return None


def check_fps(plan: Plan, fps: Optional[float]) -> None:
    """--fps sets a video file's frame rate: refused where no output is a video file (.npy, png16
    and frames folders store none), not ignored."""
    if fps is not None and plan.outputs and not any(Path(o).suffix.lower() in VIDEO_EXTENSIONS for o in plan.outputs):
        kind = {"npy": ".npy arrays", "png16": "png16 frame folders"}.get(plan.fmt, "frame folders")
        raise UsageError(f"--fps {fps:g} sets a video file's frame rate, and these outputs are {kind}, which store "
                         "none: leave --fps out, or write video files (-o pred.mp4, --ext mp4)")


def check_queries(plan: Plan, clips: bool) -> None:
    """Refuse the run before the model loads and before anything is created when not one of
    the queries it has to compute can be read (a missing input folder, a mistyped name); where
    some can, the others fail as items of the batch."""
    pending = [plan.queries[i] for i in plan.todo if i not in plan.finished]
    problems = []
    for query in pending:
        problem = query_problem(query, clips)
        if problem is None:
            return
        problems.append(problem)
    if problems:
        others = f" (and {len(problems) - 1} more: no query can be read)" if len(problems) > 1 else ""
        raise InputError(problems[0] + others)


def check_codecs(plan: Plan, remote: bool) -> None:
    """Where this machine has no video codec backend and the run would read a query video (a
    local model) or write an output video, refuse before the model loads (UsageError)."""
    from lavin_cli.io.video import require_backend

    pending = [i for i in plan.todo if i not in plan.finished]
    require_backend([plan.outputs[i] for i in pending] + ([] if remote else [plan.queries[i] for i in pending]))


def shard_of(text: Optional[str]) -> Optional[shards.Shard]:
    """--shard K/N, or this process's rank under torchrun (not both)."""
    ranked = shards.from_torchrun()
    if text and ranked:
        raise UsageError("--shard splits the queries between separate processes; under torchrun the ranks do it")
    return shards.parse(text) if text else ranked


def schedule(plan: Plan, batch_size: int, shard: Optional[shards.Shard], skip_existing: bool) -> None:
    """Fill `plan.todo` (this shard's positions; with `skip_existing`, the batches with a missing
    output), `plan.finished` (outputs that exist already among them) and `plan.redo` (files in
    the place of an output that are not a whole one of its format: computed again, replaced)."""
    mine = plan.here = shards.select(len(plan.queries), batch_size, shard)
    if not skip_existing:
        plan.todo, plan.finished = mine, set()
        return

    def done(i: int) -> bool:
        path = Path(plan.outputs[i])
        if not os.path.lexists(path):
            return False
        problem = unfinished(path, plan.fmt)
        if problem:
            plan.redo[i] = problem
        return problem is None

    plan.todo, plan.finished = shards.pending(mine, batch_size, done)


def not_over_inputs(outputs: list[str], inputs: list) -> None:
    """Refuse an output (or the record, a grid) that is one of the run's own inputs, a query or a
    context file: --overwrite replaces results, never what they are computed from."""
    def real(path) -> str:
        return os.path.realpath(os.path.expanduser(str(path)))

    taken = {real(p) for p in inputs if isinstance(p, (str, Path)) and p != STDIO}
    for out in outputs:
        if out != STDIO and real(out) in taken:
            raise OutputError(f"{out} is one of this run's inputs; lavin never writes over them (give another output)")


def preflight(outputs: list[str], overwrite: bool, extra: list[str] = (), folders_ok: bool = False,
              replace: frozenset[str] = frozenset()) -> None:
    """Refuse, before any work: existing outputs (unless --overwrite), outputs that are folders
    (files expected: `extra` always, `outputs` unless `folders_ok`), devices, FIFOs and sockets
    in their place (replacing them would be wrong), names too long for the file system, and
    folders that cannot be written to."""
    files = [Path(o) for o in list(outputs) + list(extra) if o != STDIO]
    must_be_files = [Path(o) for o in (list(extra) + ([] if folders_ok else list(outputs))) if o != STDIO]
    folders = [str(f) for f in must_be_files if f.is_dir()]
    if folders:
        raise OutputError(f"{folders[0]} is a folder, where a file is to be written; give a file name")
    for f in files:
        kind = file_kind(f)
        if kind:
            raise OutputError(f"{f} is {kind}; lavin writes regular files there (for stdout use -o -)")
        reason = too_long(f)
        if reason:
            raise OutputError(f"{f}: cannot be created, {reason}; give a shorter name (or --root, for the "
                              "folders of a mirrored tree)")
    existing = [str(f) for f in files if f.exists() and str(f) not in replace]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        verb = "exist" if len(existing) > 1 else "exists"
        raise OutputError(f"{existing[0]}{more} {verb}; pass --overwrite to replace, or --skip-existing to keep")
    for folder in sorted({f.parent for f in files}):
        _probe_writable(folder, [f for f in files if f.parent == folder])


def _probe_writable(folder: Path, files: list[Path]) -> None:
    """Create the folder and a scratch file in it: the only test that holds for root too. A
    failure names the file that was to be written there."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    what = f"{files[0]}" + (f" (and {len(files) - 1} more)" if len(files) > 1 else "")
    if not existing.is_dir():
        raise OutputError(f"{what}: cannot be written, {existing} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".lavin-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"{what}: cannot be written, its folder {folder} is not writable "
                          f"({describe_os_error(exc)})") from None
