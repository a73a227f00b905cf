"""The outputs that must not change when the code around the model changes.

Every command of README's quick start, `examples/run_all.sh` and two `lavin video` runs on the
generator's clips, with the bundled model. The bytes of an output depend on the kernels that
computed it as well as on the code: oneDNN and ATen pick them by instruction set (AVX2, AVX512,
AVX512-BF16, AMX), cache sizes and thread count, so one recorded hash cannot hold on every CPU.
Two checks, then:

- exact: on a machine whose kernel fingerprint (`machine()`: torch, device, dtype, CPU model and
  caches, ISA flags, ATen's capability, oneDNN's cap, threads) was recorded, every output file
  has the recorded sha256;
- within a bound everywhere else: every output decodes to pixels within BOUNDS[dtype] (mean
  absolute difference, in levels of 255) of the reference outputs of its dtype (tests/golden/).

`python tests/golden_cases.py record` runs them as separate `lavin` processes and stores this
machine's hashes in golden_hashes.json beside those of other machines; `record --reference`
also makes its outputs the reference of its dtype. The hashes and references belong to one
bundled model folder (one sha256 over all its files, DiT, VAE, task pairs and model.json, is
stored with them): a new bundled model, or a new VAE or task folder alone, means recording
them again (which drops the other machines' hashes).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HASHES = Path(__file__).resolve().parent / "golden_hashes.json"
REFERENCES = Path(__file__).resolve().parent / "golden"
# Largest mean absolute difference (levels of 255) of an output from its dtype's reference, on a
# machine with other kernels. bfloat16: README's bound for bf16 against float32 (measured here:
# AMX against AVX512-BF16 kernels 1.13, float32 AVX2 against bf16 AMX 1.78); float32: kernels
# that differ in summation order only (measured: AVX2 against AVX512, 0.0001).
BOUNDS = {"bfloat16": 2.0, "float32": 0.05}
EXAMPLES = ROOT / "examples"


def write_generator_clips(root: Path) -> dict[str, Path]:
    """Context clip pairs (frame folders) and one query per video task, from the generator."""
    from lavin_cli.io.video import Clip, write_video
    from lavin_cli.training import tasks

    made = {}
    for task in ("frame_prediction", "video_depth"):
        folder = root / task
        for j in range(3):
            inp, tgt = tasks.pair(task, 7_000 + j, 64)
            write_video(folder / f"{j:03d}_input", Clip(tasks.to_uint8(inp), 8), overwrite=True)
            write_video(folder / f"{j:03d}_target", Clip(tasks.to_uint8(tgt), 8), overwrite=True)
        inp, _ = tasks.pair(task, 7_100, 64)
        write_video(root / f"{task}_query", Clip(tasks.to_uint8(inp), 8), overwrite=True)
        made[task] = folder
    return made


def commands(out: Path, clips: Path) -> list[tuple[str, list[str], str | None]]:
    """(name, lavin arguments, stdin file) for every golden run; outputs land under `out`."""
    from lavin_cli.inference.context import read_task_json

    ex = EXAMPLES
    runs = [
        ("depth", ["run", "--task", "depth_estimation", "--query", f"{ex}/depth_estimation/queries/q0.png",
                   "-o", f"{out}/depth.png"], None),
        ("edges", ["run", "--task", "edge_detection", "--query",
                   f"{ex}/edge_detection/queries/*.png", "-o", f"{out}/edges/", "--json"], None),
        ("normals", ["run", "-c", f"{ex}/surface_normals", "-i", f"{ex}/surface_normals/queries/q1.png",
                     "-o", f"{out}/normals.png", "--grid"], None),
        ("video_predict", ["video", "--context", f"{clips}/frame_prediction", "--query",
                           f"{clips}/frame_prediction_query", "--frames", "6", "-o", f"{out}/next_frames", "--pairs", "3"],
         None),
        ("video_depth", ["video", "--context", f"{clips}/video_depth", "--query", f"{clips}/video_depth_query",
                         "-o", f"{out}/depth_frames", "--pairs", "2", "--select", "nearest"], None),
    ]
    for task in sorted(p for p in ex.iterdir() if p.is_dir() and any(p.glob("*_input.*"))):
        command = "video" if read_task_json(task).get("kind") == "video" else "run"
        runs.append((f"all_{task.name}", [command, "--context", str(task), "--query", str(task / "queries"),
                                          "-o", f"{out}/all/{task.name}", "--overwrite", "--quiet"], None))
    runs.append(("stdin", ["run", "--task", "denoising", "-i", "-", "-o", "-"], str(ex / "denoising/queries/q0.png")))
    return runs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hashes_under(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}


def bundled_sha256() -> str:
    """One sha256 over every file of the bundled model folder (names and contents)."""
    from lavin_cli.store.home import bundled_dir

    root = bundled_dir()
    listing = "".join(f"{name} {digest}\n" for name, digest in hashes_under(root).items())
    return hashlib.sha256(listing.encode()).hexdigest()


def machine() -> dict:
    """Everything besides the code that picks the kernels computing the outputs here: torch, the
    device and dtype `auto` picks, and on a CPU its model, caches, ISA flags, ATen's capability,
    oneDNN's cap and the thread count (on CUDA, the GPU and CUDA version)."""
    import torch

    from lavin_cli.runtime import device as devices

    dev = devices.pick_device("auto")
    found = {"torch": torch.__version__, "device": dev.type,
             "dtype": devices.dtype_name(devices.pick_dtype("auto", dev))}
    if dev.type == "cuda":
        return {**found, "gpu": torch.cuda.get_device_name(dev), "cuda": torch.version.cuda}
    kernel_flags = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16"}
    return {**found, "cpu": _cpu_model(), "caches": _caches(), "flags": sorted(kernel_flags & devices.cpu_flags()),
            "aten_capability": torch.backends.cpu.get_cpu_capability(), "onednn_cap": devices.onednn_isa_cap(),
            "threads": torch.get_num_threads()}


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return " ".join(fields.get(k, "?") for k in ("vendor_id", "cpu family", "model", "stepping", "model name"))


def _caches() -> list[str]:
    found = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            found.append(" ".join((index / name).read_text().strip() for name in ("level", "type", "size")))
        except OSError:
            continue
    return found


def exact_hashes(recorded: dict, here: dict) -> dict | None:
    """The hashes recorded on a machine with this one's kernel fingerprint, if any."""
    return next((entry["files"] for entry in recorded.get("machines", []) if entry["machine"] == here), None)


def decoded(path: Path):
    """An output's pixels as float levels of 255 (16-bit PNGs scaled down, videos frame by frame)."""
    import imageio.v3 as iio
    import numpy as np

    if path.suffix == ".npy":
        return np.load(path).astype(np.float64) * 255.0
    if path.suffix == ".mp4":
        from lavin_cli.io.video import read_video

        return read_video(path).frames.astype(np.float64)
    pixels = iio.imread(path)
    return pixels.astype(np.float64) / (257.0 if pixels.dtype == np.uint16 else 1.0)


def differences(out: Path, reference: Path) -> dict[str, float]:
    """Mean absolute difference (levels of 255) of each output under `out` from the file of the
    same name under `reference` (inf where the shapes differ)."""
    import numpy as np

    found = {}
    for name in hashes_under(out):
        a, b = decoded(out / name), decoded(reference / name)
        found[name] = float(np.abs(a - b).mean()) if a.shape == b.shape else float("inf")
    return found


def run_process(args: list[str], stdin: str | None, stdout_file: Path | None) -> None:
    """One `lavin` process, as a user would start it."""
    env = {**os.environ, "COLUMNS": "200"}
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin:
        res = subprocess.run([sys.executable, "-m", "lavin_cli", *args], stdin=fin, capture_output=True, env=env)
    if res.returncode:
        raise RuntimeError(f"lavin {' '.join(args)} exited {res.returncode}: {res.stderr.decode()[-500:]}")
    if stdout_file is not None:
        stdout_file.write_bytes(res.stdout)


def run_all(out: Path, clips: Path) -> dict[str, str]:
    write_generator_clips(clips)
    for name, args, stdin in commands(out, clips):
        run_process(args, stdin, out / "stdin.png" if stdin else None)
    return hashes_under(out)


def record(reference: bool) -> None:
    """Store this machine's hashes (and with `reference` its outputs as its dtype's reference)."""
    import shutil
    import tempfile

    here, bundled = machine(), bundled_sha256()
    known = json.loads(HASHES.read_text()) if HASHES.exists() else {}
    if known.get("bundled_sha256") != bundled or "machines" not in known:
        known = {"bundled_sha256": bundled, "machines": []}
    with tempfile.TemporaryDirectory() as tmp:
        found = run_all(Path(tmp) / "out", Path(tmp) / "clips")
        if reference:
            target = REFERENCES / here["dtype"]
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(Path(tmp) / "out", target)
    machines = [m for m in known["machines"] if m["machine"] != here] + [{"machine": here, "files": found}]
    HASHES.write_text(json.dumps({"bundled_sha256": bundled, "machines": machines}, indent=1) + "\n")
    print(f"{len(found)} output files recorded for this machine ({len(machines)} machine(s) in {HASHES})"
          + (f"; reference outputs for {here['dtype']} in {REFERENCES / here['dtype']}" if reference else ""))


if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    record(reference="--reference" in sys.argv[2:])
