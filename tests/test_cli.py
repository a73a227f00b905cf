"""The `lavin` command as a user runs it: a real process, real files, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lavin_cli import __version__
from lavin_cli.store import weights

PARITY = Path(__file__).resolve().parent.parent.parent / "shared" / "parity"
needs_parity = pytest.mark.skipif(not (PARITY / "manifest.json").is_file(), reason="no ../shared/parity")


def lavin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lavin_cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120", **(env or {})}, timeout=120)


def test_version_and_help():
    res = lavin("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"lavin {__version__}"
    res = lavin("--help")
    assert res.returncode == 0 and "info" in res.stdout and "convert" in res.stdout


def test_info_json_reports_cpu_choices_and_presets():
    res = lavin("info", "--json", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["environment"]["device"] == "cpu"
    assert data["environment"]["attention"] == "sdpa"
    from importlib.metadata import version

    from lavin_cli.io.video import available

    video = data["environment"]["video_files"]  # what reads and writes video files: imageio-ffmpeg first
    if available("ffmpeg"):
        assert video == f"imageio-ffmpeg {version('imageio-ffmpeg')}"
    elif available("pyav"):
        assert video == f"av {version('av')}"
    else:  # the GPU image
        assert video.startswith("none: GIFs and frame folders only")
    if available("pyav"):
        res = lavin("info", "--json", env={"LAVIN_VIDEO_BACKEND": "pyav"})
        assert json.loads(res.stdout)["environment"]["video_files"] == f"av {version('av')}"
    counts = {p["name"]: p["parameters"] for p in data["dit_presets"]}
    assert counts["tiny"] == 617_632 and counts["3.4B"] == 3_398_976_064


def test_cuda_requested_without_cuda_is_a_clean_device_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = lavin("info", "--device", "cuda")
    assert res.returncode == 5
    assert "Traceback" not in res.stderr and "no CUDA GPU" in res.stderr
    res = lavin("info", "--attention", "xformers")
    assert res.returncode == 5 and "needs a CUDA device" in res.stderr


@needs_parity
def test_convert_official_to_lavin_and_back(tmp_path):
    out = tmp_path / "ours"
    res = lavin("convert", "--dit", str(PARITY / "lavin_dit_tiny.safetensors"), "--vae", str(PARITY / "stvae_tiny.pt"),
                "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["dit.safetensors", "vae.safetensors"]
    assert "617,632 parameters" in res.stderr

    back = tmp_path / "official"
    res = lavin("convert", "--dit", str(out / "dit.safetensors"), "--vae", str(out / "vae.safetensors"),
                "--to", "official", "-o", str(back))
    assert res.returncode == 0, res.stderr
    from safetensors.torch import load_file

    original, exported = load_file(str(PARITY / "lavin_dit_tiny.safetensors")), load_file(str(back / "lavin_dit.safetensors"))
    assert original.keys() == exported.keys() and all(torch.equal(original[k], exported[k]) for k in original)
    vae_a = torch.load(PARITY / "stvae_tiny.pt", weights_only=True)["state_dict"]
    vae_b = torch.load(back / "stvae.pt", weights_only=True)["state_dict"]
    assert vae_a.keys() == vae_b.keys() and all(torch.equal(vae_a[k], vae_b[k]) for k in vae_a)

    # existing outputs are not replaced without --overwrite
    res = lavin("convert", "--dit", str(out / "dit.safetensors"), "-o", str(out))
    assert res.returncode == 6 and "--overwrite" in res.stderr and "Traceback" not in res.stderr
    assert lavin("convert", "--dit", str(out / "dit.safetensors"), "-o", str(out), "--overwrite").returncode == 0


def test_convert_errors_are_one_line_with_exit_codes(tmp_path):
    res = lavin("convert", "--dit", str(tmp_path / "absent.safetensors"), "-o", str(tmp_path / "o"))
    assert res.returncode == 4 and "not found" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = lavin("convert", "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and "nothing to convert" in res.stderr  # a usage error
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "f": print}, evil)
    res = lavin("convert", "--vae", str(evil), "-o", str(tmp_path / "o"))
    assert res.returncode == 4 and "refused" in res.stderr
    assert not (tmp_path / "o" / "vae.safetensors").exists()


def test_convert_writes_atomically(tmp_path):
    from lavin_cli.config import DiTConfig

    model = weights.build(DiTConfig(hidden_size=48, depth=1, num_heads=2))
    weights.save(model, tmp_path / "a.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]  # no .partial left behind


def test_convert_to_half_precision(tmp_path):
    from lavin_cli.config import DiTConfig

    model = weights.build(DiTConfig(hidden_size=48, depth=1, num_heads=2))
    weights.save(model, tmp_path / "dit.safetensors")
    res = lavin("convert", "--dit", str(tmp_path / "dit.safetensors"), "--dtype", "float16", "-o", str(tmp_path / "half"))
    assert res.returncode == 0, res.stderr
    half = weights.load_dit(tmp_path / "half" / "dit.safetensors", dtype=None)
    assert all(p.dtype == torch.float16 for p in half.parameters())
    assert (tmp_path / "half" / "dit.safetensors").stat().st_size < 0.6 * (tmp_path / "dit.safetensors").stat().st_size
    assert lavin("convert", "--dit", str(tmp_path / "dit.safetensors"), "--dtype", "int8", "-o", str(tmp_path / "x")).returncode == 2


def test_piped_progress_never_shows_an_unmeasured_rate(capfd):
    """Off a terminal a bar is a plain line: no '(0.00/s)' before a rate is measured, a finished
    bar said once as done."""
    from lavin_cli.cli.progress import Progress

    with Progress(True, interval=0.0) as progress:
        progress.update("context", "encoding context", 3, 3)
        progress.update("steps", "sampling", 0, 4)
        progress.update("steps", "sampling", 2, 4)
    lines = capfd.readouterr().err.splitlines()
    assert lines[0] == "encoding context 3/3 done"
    assert lines[1] == "sampling 0/4" and lines[2].startswith("sampling 2/4 (") and lines[2].endswith("/s)")
    assert "0.00/s" not in "\n".join(lines)


def test_piped_tables_keep_whole_names():
    """`lavin tasks | grep ...` at 80 columns: every task name and path whole, no ellipsis."""
    env = {**os.environ, "COLUMNS": "80"}
    for command in (["tasks"], ["models"]):
        done = subprocess.run([sys.executable, "-m", "lavin_cli", *command], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "…" not in done.stdout, done.stdout
    tasks = subprocess.run([sys.executable, "-m", "lavin_cli", "tasks"], capture_output=True, text=True, env=env,
                           timeout=120).stdout
    assert "foreground_segmentation" in tasks and "weights/bundled/tasks/foreground_segmentation" in tasks


def test_progress_json_stream_for_wrappers(cli, tiny_model, pairs_dir, queries, tmp_path):
    """`lavin --progress-json FILE run ...`: start, progress per stage (also with -q), each
    output written or failed, the end with the exit code."""
    stream = tmp_path / "progress.jsonl"
    code, _, err = cli("--progress-json", stream, "run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0],
                       "-i", tmp_path / "missing.png", "-o", f"{tmp_path / 'out'}/", "--steps", "3", "-q")
    assert code == 7, err
    events = [json.loads(line) for line in stream.read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["command"] == "run"
    assert events[-1] == {"event": "end", "exit_code": 7, "t": events[-1]["t"]}
    stages = {e["stage"] for e in events if e["event"] == "progress"}
    assert {"context", "sample"} <= stages
    done = {e["event"]: e for e in events if e["event"] in ("written", "failed")}
    assert done["written"]["output"].endswith(".png") and "missing.png" in done["failed"]["error"]
    assert all(b["t"] >= a["t"] for a, b in zip(events, events[1:]))
    code, _, err = cli("--progress-json", tmp_path / "no" / "dir" / "p.jsonl", "tasks")
    assert code == 2 and "--progress-json" in err and "cannot write there" in err, err


def test_tasks_marks_a_task_that_run_would_refuse(cli, tiny_model, tmp_path):
    import shutil

    from conftest import make_pairs

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    make_pairs(model / "tasks" / "broken", count=2)
    (model / "tasks" / "broken" / "task.json").write_text("{")
    code, stdout, err = cli("tasks", "-m", model, "--json")
    assert code == 0, err
    row = next(r for r in json.loads(stdout) if r["task"] == "broken")
    assert row["usable"] is False and "task.json" in row["problem"]
    code, _, err = cli("run", "-m", model, "-t", "broken", "-i", model / "tasks" / "broken" / "000_input.png",
                       "-o", tmp_path / "o.png")
    assert code == 3 and "task.json" in err, err
    code, stdout, err = cli("tasks", "-m", model)
    assert "unusable" in stdout and "task broken cannot be used" in err
