"""What the bad-input tables (tests/test_bad_inputs.py) are made of: the world a case points at,
the case itself, and faults injected at the deepest I/O lavin calls (file writes, renames, image
and weight reads, the encoder, the network) with monkeypatch; everything else runs for real."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from conftest import random_image
from PIL import Image

from lavin_cli.io.video import Clip, write_video
from lavin_cli.training import tasks


@dataclass
class World:
    """Everything a case may point at; `args` of a case are formatted with these fields."""

    tmp: Path
    model: Path
    pairs: Path
    query: Path
    query2: Path
    out: Path
    clips: Path
    clip_query: Path
    monkeypatch: pytest.MonkeyPatch
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.extra[key] if key in self.extra else getattr(self, key)


@dataclass
class Case:
    name: str
    args: list
    code: int
    needle: str
    setup: Optional[Callable[[World], None]] = None
    check: Optional[Callable[[World], None]] = None  # what must (not) have been written
    stdin: Optional[bytes] = None
    err_check: Optional[Callable[[str], None]] = None  # what stderr must say, beyond the needle


# ------------------------------------------------------------------ fault injection


def oserror(code: int, path="") -> OSError:
    return OSError(code, os.strerror(code), str(path))


def write_fault(code: int, when: Callable[[str, int], bool]):
    """Make lavin's file writes (io/files.py, the record) fail with `code` for the n-th write
    matching `when(path, n)`."""
    def setup(w: World) -> None:
        from lavin_cli.cli import results
        from lavin_cli.io import files

        count = [0]

        def fake_open(path, mode="r", *args, **kwargs):
            if "w" in mode or "a" in mode:
                count[0] += 1
                if when(str(path), count[0]):
                    raise oserror(code, path)
            return open(path, mode, *args, **kwargs)

        w.monkeypatch.setattr(files, "open", fake_open, raising=False)
        w.monkeypatch.setattr(results, "open", fake_open, raising=False)
    return setup


def record_line_fault(code: int, after: int):
    """The record's `after`-th line cannot be written: half of it reaches the disk, then it is full."""
    def setup(w: World) -> None:
        from lavin_cli.cli import results

        class Filling(io.TextIOWrapper):
            lines = 0

            def write(self, text):
                Filling.lines += 1
                if Filling.lines == after:
                    super().write(text[: len(text) // 2])
                    raise oserror(code, self.name)
                return super().write(text)

        w.monkeypatch.setattr(results, "open", lambda path, mode: Filling(open(path, mode + "b")), raising=False)
    return setup


def read_fault(code: int, match: str):
    """Make image reads of paths containing `match` fail with `code`."""
    def setup(w: World) -> None:
        from PIL import Image

        real = Image.open
        w.monkeypatch.setattr(Image, "open", lambda src, *a, **k: (_ for _ in ()).throw(oserror(code, src))
                              if match in str(src) else real(src, *a, **k))
    return setup


def weights_fault(w: World) -> None:
    """Every tensor read from a safetensors file fails with EIO."""
    from lavin_cli.store import checkpoints

    real = checkpoints.safe_open

    class Broken:
        def __init__(self, *a, **k):
            self.inner = real(*a, **k)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def get_tensor(self, name):
            raise oserror(errno.EIO)

    w.monkeypatch.setattr(checkpoints, "safe_open", Broken)


def encoder_fault(w: World) -> None:
    import imageio.v3 as iio

    w.monkeypatch.setattr(iio, "imwrite", lambda *a, **k: (_ for _ in ()).throw(oserror(errno.ENOSPC)))


def signal_after(sig: int, writes: int):
    """Send `sig` to this process right after the n-th output file is written."""
    def setup(w: World) -> None:
        from lavin_cli.io import files

        real, count = files.write_atomic, [0]

        def write(path, data, overwrite=False):
            real(path, data, overwrite)
            count[0] += 1
            if count[0] == writes:
                os.kill(os.getpid(), sig)

        w.monkeypatch.setattr(files, "write_atomic", write)
    return setup


def bug(w: World) -> None:
    from lavin_cli.inference.images import ImageRun

    w.monkeypatch.setattr(ImageRun, "prepare", lambda self: {}["a bug"])


def env(**values):
    def setup(w: World) -> None:
        for key, value in values.items():
            w.monkeypatch.setenv(key, str(value).format_map(w))
    return setup


def chain(*setups):
    def setup(w: World) -> None:
        for s in setups:
            s(w)
    return setup


# ------------------------------------------------------------------ files and model folders


def file_with(name: str, data: bytes):
    def setup(w: World) -> None:
        (w.tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (w.tmp / name).write_bytes(data)
    return setup


def big_png(w: World) -> None:
    Image.new("L", (20000, 20000)).save(w.tmp / "big.png")  # 400 MP in a few hundred KB


def animated_gif(w: World) -> None:
    frames = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(w.tmp / "anim.gif", save_all=True, append_images=frames[1:])


def truncated_png(w: World) -> None:
    data = w.query.read_bytes()
    (w.tmp / "cut.png").write_bytes(data[: len(data) // 2])


def model_copy(edit: Callable[[Path], None]):
    """A copy of the tiny model folder (at tmp/m), changed by `edit`."""
    def setup(w: World) -> None:
        shutil.copytree(w.model, w.tmp / "m")
        edit(w.tmp / "m")
    return setup


def model_json(text: str):
    return model_copy(lambda m: (m / "model.json").write_text(text))


def dit_tensors(change: Callable[[dict], None], metadata: Optional[dict] = None):
    def edit(m: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(m / "dit.safetensors"), "pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata()
        change(state)
        save_file(state, str(m / "dit.safetensors"), metadata={**meta, **(metadata or {})})
    return model_copy(edit)


def first_tensor(value: float):
    def change(state: dict) -> None:
        name = next(iter(sorted(state)))
        state[name] = torch.full_like(state[name], value)
    return change


def overflowing(state: dict) -> None:
    for name in state:
        if name.startswith("final.proj"):
            state[name] = torch.full_like(state[name], 1e30)


def truncate_dit(m: Path) -> None:
    data = (m / "dit.safetensors").read_bytes()
    (m / "dit.safetensors").write_bytes(data[: len(data) // 3])


def odd_clip(w: World) -> None:
    frames = tasks.to_uint8(tasks.pair("frame_prediction", 5, 32)[0])[:, :31, :29]
    write_video(w.tmp / "odd.gif", Clip(frames, 8))


def mixed_frames(w: World) -> None:
    random_image(w.tmp / "mixed" / "0.png", hw=(32, 32))
    random_image(w.tmp / "mixed" / "1.png", hw=(32, 40))


def mixed_context(w: World) -> None:
    shutil.copytree(w.clips, w.tmp / "mix")
    a, b = tasks.pair("video_depth", 3, 32)
    write_video(w.tmp / "mix" / "9_input", Clip(tasks.to_uint8(a), 8))
    write_video(w.tmp / "mix" / "9_target", Clip(tasks.to_uint8(b), 8))


def short_targets(w: World) -> None:
    a, b = tasks.pair("frame_prediction", 3, 32)
    write_video(w.tmp / "short" / "0_input", Clip(tasks.to_uint8(a), 8))
    write_video(w.tmp / "short" / "0_target", Clip(tasks.to_uint8(b)[:1], 8))


def no_cuda(w: World) -> None:
    """A torch that sees no GPU (already so on CI; on a GPU machine its answer is taken away)."""
    import torch

    w.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def closed_port(w: World) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w.monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    w.monkeypatch.setenv("LAVIN_HOME", str(w.tmp / "home"))
    w.monkeypatch.setenv("HF_HUB_CACHE", str(w.tmp / "hf"))
    w.monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    entry = {"name": "remote", "source": {"type": "hf", "repo": "o/r", "files": [{"path": "dit.safetensors"}]},
             "preset": "tiny", "size": 32}
    (w.tmp / "home").mkdir()
    (w.tmp / "home" / "registry.json").write_text(json.dumps({"format": "lavin-registry/1", "models": [entry]}))


def installed_model(w: World) -> None:
    """A model installed in a store, with its manifest (for verify)."""
    from lavin_cli.io.files import sha256

    folder = w.tmp / "home" / "models" / "inst"
    shutil.copytree(w.model, folder)
    files = {p.name: {"sha256": sha256(p), "size": p.stat().st_size} for p in folder.iterdir() if p.is_file()}
    (folder / "manifest.json").write_text(json.dumps({"name": "inst", "files": files, "status": "ready"}))
    w.monkeypatch.setenv("LAVIN_HOME", str(w.tmp / "home"))


def no_files_written(w: World) -> None:
    assert not w.out.exists() or not any(w.out.rglob("*")), sorted(w.out.rglob("*"))


def outputs(*names: str):
    """Exactly these files were written under the output folder (by name; the queries' tree is
    mirrored there)."""
    def check(w: World) -> None:
        assert sorted(p.name for p in w.out.rglob("*") if p.is_file()) == sorted(names)
    return check


def remove_folder_after_first_write(w: World) -> None:
    from lavin_cli.io import files

    real = files.write_atomic

    def write(path, arr, overwrite=False):
        real(path, arr, overwrite)
        if path.name == "q0.png":
            kept = w.tmp / "kept.png"
            shutil.move(str(path), kept)
            shutil.rmtree(path.parent)  # the output folder vanishes under the run
            path.parent.mkdir()
            shutil.move(str(kept), path)

    w.monkeypatch.setattr(files, "write_atomic", write)


def unchanged(path: Path, seed: int) -> None:
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(random_image(path.with_name("ref.png"), seed=seed))))


def video_frames(path: Path, count: int) -> None:
    from lavin_cli.io.video import read_video

    assert read_video(path).frames.shape[0] == count


# ------------------------------------------------------------------ this wave's audit (issue 33)


def fifo(name: str):
    """A FIFO (named pipe) at tmp/name: opening it for reading waits for a writer forever."""
    def setup(w: World) -> None:
        (w.tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(w.tmp / name)
    return setup


def query_named(key: str, name: str):
    """A copy of the first query at tmp/name, reachable in args as {key}."""
    def setup(w: World) -> None:
        target = w.tmp / "named" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(w.query, target)
        w.extra[key] = str(target)
    return setup


def output_holding(name: str, data: bytes):
    """A file at out/name that is not a whole output (an empty one, another format, a cut one)."""
    def setup(w: World) -> None:
        (w.out / name).parent.mkdir(parents=True, exist_ok=True)
        (w.out / name).write_bytes(data)
    return setup


def context_copy(edit: Callable[[Path], None]):
    """A copy of the context pairs at tmp/ctx, changed by `edit`."""
    def setup(w: World) -> None:
        shutil.copytree(w.pairs, w.tmp / "ctx")
        edit(w.tmp / "ctx")
    return setup


def stdout_closed(w: World) -> None:
    """lavin started with stdout closed (`>&-`): Python gives sys.stdout = None."""
    w.monkeypatch.setattr("sys.stdout", None)


def appears_during_run(name: str):
    """Another process writes out/name while the run works: right after lavin's first output."""
    def setup(w: World) -> None:
        from lavin_cli.io import files

        real = files.write_atomic

        def write(path, data, overwrite=False):
            real(path, data, overwrite)
            if not (w.out / name).exists():
                (w.out / name).write_bytes(Path(path).read_bytes())

        w.monkeypatch.setattr(files, "write_atomic", write)
    return setup


def unwritable_folder(part: str):
    """Creating files in folders whose path holds `part` fails with EACCES (as for a non-root
    user in a read-only folder)."""
    def setup(w: World) -> None:
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and part in str(dir):
                raise oserror(errno.EACCES, dir)
            return real(*args, dir=dir, **kwargs)

        w.monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return setup


def files_at(*names: str):
    """Exactly these files (paths relative to the output folder) were written."""
    def check(w: World) -> None:
        assert sorted(str(p.relative_to(w.out)) for p in w.out.rglob("*") if p.is_file()) == sorted(names)
    return check


def whole_output(name: str, fmt: str):
    """out/name is now a whole output of `fmt` (a resumed run computed it again)."""
    def check(w: World) -> None:
        from lavin_cli.io.outputs import unfinished

        assert unfinished(w.out / name, fmt) is None
    return check


def error_first(err: str) -> None:
    """What stopped the run is the first line on stderr."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), err


def nothing_created(*paths: str):
    def check(w: World) -> None:
        assert not [p for p in paths if os.path.lexists(str(p).format_map(w))], paths
    return check
