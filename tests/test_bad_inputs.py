"""Every bad input, fault and limit: one clear line (two at most), the documented exit code, no
traceback, and nothing partial left behind.

One table, run through the real CLI in-process on the tiny random model. Faults are injected at
the deepest I/O lavin calls (file writes, renames, image and weight reads, the encoder, the
network) with monkeypatch; everything else runs for real.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from conftest import TINY_SIZE, make_pairs, random_image
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


# ------------------------------------------------------------------ fault injection


def _oserror(code: int, path="") -> OSError:
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
                    raise _oserror(code, path)
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
                    raise _oserror(code, self.name)
                return super().write(text)

        w.monkeypatch.setattr(results, "open", lambda path, mode: Filling(open(path, mode + "b")), raising=False)
    return setup


def read_fault(code: int, match: str):
    """Make image reads of paths containing `match` fail with `code`."""
    def setup(w: World) -> None:
        from lavin_cli.io import images

        real = images._open
        w.monkeypatch.setattr(images, "_open", lambda src: (_ for _ in ()).throw(_oserror(code, src))
                              if match in str(src) else real(src))
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
            raise _oserror(errno.EIO)

    w.monkeypatch.setattr(checkpoints, "safe_open", Broken)


def encoder_fault(w: World) -> None:
    import imageio.v3 as iio

    w.monkeypatch.setattr(iio, "imwrite", lambda *a, **k: (_ for _ in ()).throw(_oserror(errno.ENOSPC)))


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

    w.monkeypatch.setattr(ImageRun, "_encode_context", lambda self: {}["a bug"])


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


RUN = ["run", "-m", "{model}", "-c", "{pairs}", "--steps", "2", "-q"]
VIDEO = ["video", "-m", "{model}", "-c", "{clips}", "--steps", "2", "-q"]
ONE = ["-i", "{query}", "-o", "{out}/o.png"]
BOTH = ["-i", "{query}", "-i", "{query2}", "-o", "{out}/"]

CASES = [
    # ---- option values: exit 2, before anything loads
    Case("steps-0", RUN + ONE + ["--steps", "0"], 2, "--steps must be at least 2"),
    Case("steps-text", RUN + ONE + ["--steps", "abc"], 2, "Invalid value for '--steps'"),
    Case("cfg-nan", RUN + ONE + ["--cfg", "nan"], 2, "--cfg must be a finite number"),
    Case("cfg-huge", RUN + ONE + ["--cfg", "1e30"], 2, "--cfg must be between"),
    Case("seed-negative", RUN + ONE + ["--seed", "-1"], 2, "--seed must be at least 0"),
    Case("seed-overflow", RUN + ONE + ["--seed", "18446744073709551616"], 2, "--seed must be at most"),
    Case("size-odd", RUN + ONE + ["--size", "100"], 2, "--size 100x100"),
    Case("size-text", RUN + ONE + ["--size", "big"], 2, "--size 'big' is not N or WIDTHxHEIGHT"),
    Case("size-enormous", RUN + ONE + ["--size", "100000"], 2, "sides above 8192 are refused"),
    Case("batch-0", RUN + ONE + ["--batch-size", "0"], 2, "--batch-size must be at least 1"),
    Case("pairs-0", RUN + ONE + ["--pairs", "0"], 2, "--pairs must be at least 1"),
    Case("select", RUN + ONE + ["--select", "best"], 2, "--select 'best' is not one of"),
    Case("fit", RUN + ONE + ["--fit", "stretch"], 2, "--fit 'stretch' is not one of"),
    Case("solver", RUN + ONE + ["--solver", "rk4"], 2, "--solver 'rk4' is not one of"),
    Case("device", RUN + ONE + ["--device", "tpu"], 2, "--device 'tpu' is not a device"),
    Case("dtype", RUN + ONE + ["--dtype", "int8"], 2, "--dtype 'int8' is not one of"),
    Case("attention", RUN + ONE + ["--attention", "flash9"], 2, "--attention 'flash9' is not one of"),
    Case("offload", RUN + ONE + ["--offload", "disk"], 2, "--offload 'disk' is not one of"),
    Case("max-pixels-0", RUN + ONE + ["--max-pixels", "0"], 2, "--max-pixels must be at least 1"),
    Case("ext", RUN + BOTH + ["--ext", "wav"], 2, "--ext .wav"),
    Case("unknown-option", RUN + ONE + ["--stepz", "3"], 2, "No such option: --stepz"),
    Case("missing-query", RUN + ["-o", "{out}/o.png"], 2, "no queries: give --query (-i) or --files-from"),
    Case("context-and-task", RUN + ONE + ["--task", "x"], 2, "exactly one of --context FOLDER or --task NAME"),
    Case("unknown-task", ["run", "-m", "{model}", "--task", "nope"] + ONE, 2, "unknown task 'nope'"),
    Case("gif-output", RUN + ONE[:2] + ["-o", "{out}/o.gif"], 2, ".gif is not an image format"),
    Case("stdout-and-json", RUN + ["-i", "{query}", "-o", "-", "--json"], 2, "drop --json"),
    Case("stdout-two", RUN + BOTH[:4] + ["-o", "-"], 2, "writes one image to stdout"),
    Case("video-frames-0", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--frames", "0"], 2,
         "--frames must be at least 1"),
    Case("video-mode", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--mode", "both"], 2, "--mode 'both'"),
    Case("video-fps", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--fps", "0"], 2, "--fps must be"),
    Case("video-png-output", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.png"], 2, ".png is an image format"),
    Case("eval-task", ["eval", "-m", "{model}", "-t", "no_such_task"], 2, "unknown task(s) no_such_task"),
    Case("eval-queries", ["eval", "-m", "{model}", "--queries", "0"], 2, "--queries must be at least 1"),
    Case("train-size", ["train", "vae", "-o", "{out}", "--size", "100", "--steps", "1"], 2, "multiple of 16"),
    Case("train-channels", ["train", "vae", "-o", "{out}", "--channels", "a,b", "--steps", "1"], 2,
         "--channels 'a,b' is not"),
    Case("info-device", ["info", "--device", "tpu"], 2, "--device 'tpu' is not a device"),
    Case("train-dit-no-vae", ["train", "dit", "-o", "{out}", "--steps", "1", "-q"], 2, "give --vae"),
    # ---- input files and folders: exit 3 (7 when some items of a batch worked)
    Case("video-query-missing", VIDEO + ["-i", "{tmp}/none.mp4", "-o", "{out}/v.mp4"], 3, "none.mp4: file not found"),
    Case("convert-nothing", ["convert", "-o", "{out}"], 3, "nothing to convert"),
    Case("query-missing", RUN + ["-i", "{tmp}/nope.png", "-o", "{out}/o.png"], 3, "nope.png: file not found"),
    Case("query-not-image", RUN + ["-i", "{tmp}/notes.png", "-o", "{out}/o.png"], 3, "not a readable image",
         setup=file_with("notes.png", b"just text")),
    Case("query-truncated", RUN + ["-i", "{tmp}/cut.png", "-o", "{out}/o.png"], 3, "cut.png: not a readable image",
         setup=truncated_png),
    Case("query-animated", RUN + ["-i", "{tmp}/anim.gif", "-o", "{out}/o.png"], 3, "an animated image (3 frames)",
         setup=animated_gif),
    Case("query-400mp", RUN + ["-i", "{tmp}/big.png", "-o", "{out}/o.png"], 3,
         "is 400 MP, above the limit of 64 MP; pass a larger --max-pixels", setup=big_png),
    Case("query-unreadable", RUN + ONE, 3, "I/O error", setup=read_fault(errno.EIO, "q0")),
    Case("one-bad-of-two", RUN + ["-i", "{query}", "-i", "{tmp}/nope.png", "-o", "{out}/"], 7, "1 of 2 queries failed",
         check=outputs("q0.png")),
    Case("context-missing", ["run", "-m", "{model}", "-c", "{tmp}/none", "-q"] + ONE, 3, "context folder not found"),
    Case("context-empty", ["run", "-m", "{model}", "-c", "{tmp}/empty", "-q"] + ONE, 3, "no complete",
         setup=lambda w: (w.tmp / "empty").mkdir()),
    Case("context-is-file", ["run", "-m", "{model}", "-c", "{query}", "-q"] + ONE, 3, "must be a folder"),
    Case("stdin-empty", RUN + ["-i", "-", "-o", "{out}/o.png"], 3, "stdin: no image data", stdin=b""),
    Case("glob-nothing", RUN + ["-i", "{tmp}/*.webp", "-o", "{out}/"], 3, "no image matches this pattern"),
    Case("video-broken", VIDEO + ["-i", "{tmp}/bad.mp4", "-o", "{out}/v.mp4"], 3, "unreadable, truncated",
         setup=file_with("bad.mp4", b"\x00\x00\x00\x18ftypmp42 not really")),
    Case("video-mixed-frames", VIDEO + ["-i", "{tmp}/mixed", "-o", "{out}/v.mp4"], 3, "frames differ in size",
         setup=mixed_frames),
    Case("video-mixed-context", ["video", "-m", "{model}", "-c", "{tmp}/mix", "--steps", "2", "-q", "-i", "{clip_query}",
                                 "-o", "{out}/v.mp4"], 3, "mixes prediction pairs", setup=mixed_context),
    Case("video-short-targets", ["video", "-m", "{model}", "-c", "{tmp}/short", "--steps", "2", "-q", "-i",
                                 "{clip_query}", "-o", "{out}/v.mp4"], 3, "show no continuation", setup=short_targets),
    # ---- model folders and weights: exit 4
    Case("model-missing", ["run", "-m", "{tmp}/nomodel", "-c", "{pairs}", "-q"] + ONE, 4, "model folder not found"),
    Case("model-empty-folder", ["run", "-m", "{tmp}/empty", "-c", "{pairs}", "-q"] + ONE, 4, "not a model folder",
         setup=lambda w: (w.tmp / "empty").mkdir()),
    Case("model-json-not-json", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "model.json: not valid JSON",
         setup=model_json("{oops")),
    Case("model-json-size", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "'size' must be a positive",
         setup=model_json('{"size": "abc"}')),
    Case("model-json-escape", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "must be a path inside",
         setup=model_json('{"dit": "../x.safetensors", "vae": "vae.safetensors"}')),
    Case("model-json-half", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "give both 'dit' and 'vae'",
         setup=model_json('{"dit": "dit.safetensors"}')),
    Case("config-not-json", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "bad config in the file's metadata",
         setup=dit_tensors(lambda s: None, {"config": "{not json"})),
    Case("config-bad-field", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "hidden_size must be a whole number",
         setup=dit_tensors(lambda s: None, {"config": json.dumps({"hidden_size": "abc", "depth": 2, "num_heads": 4})})),
    Case("weights-truncated", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "dit.safetensors",
         setup=model_copy(truncate_dit)),
    Case("weights-nan", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "hold NaN or infinite values",
         setup=dit_tensors(first_tensor(float("nan")))),
    Case("weights-overflow", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "non-finite values",
         setup=dit_tensors(overflowing)),
    Case("weights-unreadable", RUN + ONE, 4, "could not be read", setup=weights_fault),
    # ---- environment and devices
    Case("lavin-model-bogus", ["tasks"], 4, "unknown model 'bogus'", setup=env(LAVIN_MODEL="bogus")),
    Case("lavin-home-file", ["download", "lavin-dit-3.4b", "--offline"], 2, "is a file; point it to a folder",
         setup=chain(file_with("afile", b""), env(LAVIN_HOME="{tmp}/afile"))),
    Case("home-option-file", ["models", "--home", "{query}"], 2, "--home"),
    Case("verify-not-installed", ["verify", "ghost"], 4, "no manifest", setup=env(LAVIN_HOME="{tmp}/home")),
    Case("registry-broken", ["models"], 4, "unreadable registry",
         setup=chain(file_with("home/registry.json", b"{"), env(LAVIN_HOME="{tmp}/home"))),
    Case("cuda-absent", RUN + ONE + ["--device", "cuda"], 5, "sees no CUDA GPU", setup=no_cuda),
    # ---- network
    Case("no-network", ["download", "remote"], 4, "check the network", setup=closed_port),
    Case("unknown-model-download", ["download", "no-such-model"], 4, "unknown model 'no-such-model'"),
    # ---- memory
    # main memory: on a large GPU the tiny model streamed with offload may really fit 8192 px
    Case("size-beyond-memory", RUN + ONE + ["--size", "8192", "--device", "cpu"], 5, "token sequence needs about"),
    # ---- disk and outputs: exit 6, or 7 when other items were written
    Case("output-exists", RUN + ONE, 6, "exists; pass --overwrite", setup=lambda w: random_image(w.out / "o.png", seed=42),
         check=lambda w: _unchanged(w.out / "o.png", seed=42)),
    Case("record-is-folder", RUN + ONE + ["--record", "{out}", "--overwrite"], 6, "is a folder, where a file",
         setup=lambda w: w.out.mkdir()),
    Case("disk-full-2nd-of-3", RUN + ["-i", "{query}", "-i", "{query2}", "-i", "{tmp}/q3.png", "-o", "{out}/"], 7,
         "1 of 3 queries failed", setup=chain(lambda w: random_image(w.tmp / "q3.png", seed=3),
                                              write_fault(errno.ENOSPC, lambda p, n: n == 2)),
         check=outputs("q0.png", "q3.png")),
    Case("permission-denied", RUN + ONE, 6, "permission denied", setup=write_fault(errno.EACCES, lambda p, n: True)),
    Case("record-cannot-open", RUN + ONE + ["--record", "{tmp}/run.jsonl"], 6, "run.jsonl: could not be written (disk full)",
         setup=write_fault(errno.ENOSPC, lambda p, n: "run.jsonl" in p)),
    Case("record-disk-full", RUN + ONE + ["--record", "{tmp}/run.jsonl"], 6, "run.jsonl: could not be written (disk full)",
         setup=record_line_fault(errno.ENOSPC, after=2), check=outputs("o.png")),
    Case("folder-vanishes", RUN + BOTH, 0, "", setup=lambda w: _remove_folder_after_first_write(w),
         check=outputs("q0.png", "q1.png")),
    Case("video-encoder-full", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4"], 6, "disk full", setup=encoder_fault),
    Case("video-odd-size", VIDEO + ["-i", "{tmp}/odd.gif", "-o", "{out}/v.mp4", "--frames", "4"], 0, "",
         setup=odd_clip, check=lambda w: _video_frames(w.out / "v.mp4", 4)),
    Case("convert-disk-full", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}"], 6, "could not be written",
         setup=lambda w: w.monkeypatch.setattr("lavin_cli.store.checkpoints.save_file",
                                               lambda *a, **k: (_ for _ in ()).throw(_oserror(errno.ENOSPC)))),
    Case("convert-unreadable", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}"], 4, "could not be read",
         setup=weights_fault),
    Case("train-disk-full", ["train", "vae", "-o", "{out}", "--steps", "1", "--batch", "2", "--size", "32", "-q"], 6,
         "could not be written", setup=lambda w: w.monkeypatch.setattr(
             torch, "save", lambda *a, **k: (_ for _ in ()).throw(_oserror(errno.ENOSPC))),
         check=lambda w: not {"vae.safetensors", "vae_state.pt"} & {p.name for p in w.out.iterdir()} or pytest.fail("saved")),
    Case("train-dit-vae-unreadable", ["train", "dit", "-o", "{out}", "--vae", "{model}/vae.safetensors", "--steps", "1",
                                      "--preset", "tiny", "--size", "32", "-q"], 4, "could not be read",
         setup=weights_fault),
    Case("eval-weights-unreadable", ["eval", "-m", "{model}", "-t", "denoising", "--queries", "1"], 4,
         "could not be read", setup=weights_fault),
    Case("verify-unreadable", ["verify", "inst"], 4, "unreadable (I/O error)",
         setup=chain(installed_model, write_fault(errno.EIO, lambda p, n: False),
                     lambda w: w.monkeypatch.setattr("lavin_cli.io.files.open",
                                                     lambda p, m="r", *a, **k: (_ for _ in ()).throw(_oserror(errno.EIO, p))
                                                     if "rb" in m else open(p, m, *a, **k), raising=False))),
    # ---- signals: the finished outputs stay, exit 130 / 143
    Case("sigint", RUN + ["-i", "{query}", "-i", "{query2}", "-i", "{tmp}/q3.png", "-o", "{out}/", "-b", "1"], 130,
         "interrupted", setup=chain(lambda w: random_image(w.tmp / "q3.png", seed=3), signal_after(signal.SIGINT, 1)),
         check=outputs("q0.png")),
    Case("sigterm", RUN + ["-i", "{query}", "-i", "{query2}", "-i", "{tmp}/q3.png", "-o", "{out}/", "-b", "1"], 143,
         "terminated", setup=chain(lambda w: random_image(w.tmp / "q3.png", seed=3), signal_after(signal.SIGTERM, 2)),
         check=outputs("q0.png", "q1.png")),
    # ---- a bug: one line naming the report
    Case("internal-error", RUN + ONE, 1, "internal error (KeyError: 'a bug'); details in", setup=bug),
]


def _remove_folder_after_first_write(w: World) -> None:
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


def _unchanged(path: Path, seed: int) -> None:
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(random_image(path.with_name("ref.png"), seed=seed))))


def _video_frames(path: Path, count: int) -> None:
    from lavin_cli.io.video import read_video

    assert read_video(path).frames.shape[0] == count


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i in range(2):
        a, b = tasks.pair("frame_prediction", i, TINY_SIZE)
        write_video(root / "ctx" / f"{i}_input", Clip(tasks.to_uint8(a), 8))
        write_video(root / "ctx" / f"{i}_target", Clip(tasks.to_uint8(b), 8))
    q, _ = tasks.pair("frame_prediction", 9, TINY_SIZE)
    write_video(root / "q.gif", Clip(tasks.to_uint8(q), 8))
    return root


def test_the_table_covers_at_least_ninety_cases():  # README says so
    assert len(CASES) >= 90 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, cli, tiny_model, pairs_dir, queries, clips, tmp_path, monkeypatch):
    monkeypatch.delenv("LAVIN_MODEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # bug reports land here
    world = World(tmp_path, tiny_model, pairs_dir, queries[0], queries[1], tmp_path / "out", clips / "ctx",
                  clips / "q.gif", monkeypatch)
    if case.setup:
        case.setup(world)
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case.stdin)))
    args = [a.format_map(world) if isinstance(a, str) else str(a) for a in case.args]
    code, _, err = cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, err
    assert case.needle in err, err
    assert "Traceback" not in err and len(lines) <= 2, err
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name], "a partial file was left"
    (case.check or (no_files_written if case.code not in (0, 7, 130, 143) else (lambda w: None)))(world)
    _ = make_pairs  # (the shared fixtures build the pairs)


def test_messages_are_never_wrapped_and_progress_is_plain_off_a_terminal(cli, tiny_model, pairs_dir, queries,
                                                                         tmp_path, monkeypatch):
    from lavin_cli.cli import progress

    monkeypatch.setenv("COLUMNS", "60")
    long_name = tmp_path / ("a-rather-long-folder-name-" * 4) / "missing-query.png"
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", long_name, "-o", tmp_path / "o.png", "-q")
    assert code == 3 and len(err.strip().splitlines()) == 1 and len(err.strip()) > 60  # one long line
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0].parent, "-o", tmp_path / "out",
                       "--steps", "2", "-b", "1")
    assert code == 0 and "queries 3/3" in err and "\x1b[" not in err  # plain lines, no bars or colour codes
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0].parent, "-o", tmp_path / "out2",
                       "--steps", "2", "-b", "1", "-q")
    assert code == 0 and err == ""
