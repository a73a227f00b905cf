"""The outputs that must not change when the code around the model changes.

Every command of README's quick start, `examples/run_all.sh` and two `lavin video` runs on the
generator's clips, with the bundled model. `python tests/golden_cases.py record` runs them as
separate `lavin` processes and writes the sha256 of every output file to golden_hashes.json;
tests/test_golden.py runs them again and compares. The hashes belong to one bundled model folder
(one sha256 over all its files, DiT, VAE, task pairs and model.json, is stored with them): a new
bundled model, or a new VAE or task folder alone, means recording them again.
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


def machine() -> dict[str, str]:
    """What the recorded bytes depend on besides the code: torch and the device and dtype that
    `auto` picks here (CPU bf16 where native, CUDA where present: other kernels, other bytes)."""
    import torch

    from lavin_cli.runtime import device as devices

    dev = devices.pick_device("auto")
    return {"torch": torch.__version__, "device": dev.type,
            "dtype": devices.dtype_name(devices.pick_dtype("auto", dev))}


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


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        found = run_all(Path(tmp) / "out", Path(tmp) / "clips")
    HASHES.write_text(json.dumps({"bundled_sha256": bundled_sha256(), "machine": machine(), "files": found},
                                 indent=1) + "\n")
    print(f"{len(found)} output files recorded in {HASHES}")
