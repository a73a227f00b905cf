"""Seconds per prediction on this CPU: the official code itself against lavin's default and its
fastest setting, on the same random weights; and the quality of each setting on the bundled model.

    python benchmarks/cpu_speed.py                      # tiny and mid-size DiT at 64, 128 and 256 px
    python benchmarks/cpu_speed.py --models mid --sizes 256 --repeats 2
    python benchmarks/cpu_speed.py --quality-only       # the bundled model's eval table per setting

The official code runs through ../shared/official (stand-ins for apex and flash-attn); its source
is fetched from github DerrickWang005/LaVin-DiT into a folder git ignores and named by
$LAVIN_OFFICIAL_DIR (see ../shared/official/README.md). Without it that column says so.
One query, 4 context pairs, cfg 1.5, float32 unless a setting says otherwise; the official
numerics are Euler on its 20-point grid with two passes for guidance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHIMS = ROOT.parent / "shared" / "official"
# mid: hidden 576, not 512: the official RoPE splits a head in three equal parts, which a
# 512-wide model's 64-dim heads cannot; 576 / 8 heads = 72, the official 3.4B model's head size,
# and 4 query heads per key/value head, as there
MODELS = {"tiny": dict(hidden_size=96, depth=2, num_heads=4, kv_group=2),
          "mid": dict(hidden_size=576, depth=8, num_heads=8, kv_group=4)}
TINY_VAE = dict(block_out_channels=[32, 32, 64, 64], latent_channels=16, layers_per_block=1, norm_num_groups=32,
                temporal_compression_ratio=4)


def settings() -> dict[str, dict]:
    """name -> Pipeline keyword arguments (load: dtype; call: sampling)."""
    from lavin_cli.inference.options import SamplingOptions

    default = SamplingOptions()
    return {
        "lavin default": {"dtype": "auto", "steps": default.steps, "solver": default.solver,
                          "cfg_interval": default.cfg_interval},
        # auto precision: bf16 where the CPU has it natively, float32 where bf16 would be emulated
        # (forcing bfloat16 on an AVX2 CPU made this row 10x slower than the default, 2026-12-04)
        "lavin fastest measured": {"dtype": "auto", "steps": 7, "solver": "adams", "cfg_interval": (0.0, 1.0)},
        "float32, 20 Euler steps (the official numerics)": {"dtype": "float32", "steps": 20, "solver": "euler",
                                                            "cfg_interval": (0.0, 1.0)},
    }


def matmul_rate(dtype: torch.dtype) -> float:
    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    a @ b
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        a @ b
        n += 1
    return n * 2 * 1024**3 / (time.perf_counter() - start)


def make_models(name: str, folder: Path) -> tuple[Path, Path]:
    """Random weights (fixed seed) as a lavin model folder and as the official files."""
    from lavin_cli.config import DiTConfig, VAEConfig
    from lavin_cli.store import weights

    torch.manual_seed(0)
    dit = weights.build(DiTConfig(**MODELS[name]))
    for p in dit.parameters():  # the training init zeroes the output: give every layer signal
        p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.02)
    vae = weights.build(VAEConfig(block_out_channels=(32, 32, 64, 64), layers_per_block=1))
    lavin = weights.save_model_folder(folder / "lavin", dit, vae, name=f"random-{name}", size=64)
    official = folder / "official"
    official.mkdir()
    weights.export_official(dit, official / "lavin_dit.safetensors")
    weights.export_official(vae, official / "stvae.pt")
    return lavin, official


def make_inputs(folder: Path, size: int, pairs: int = 4) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ctx = folder / "ctx"
    ctx.mkdir(exist_ok=True)
    for i in range(pairs):
        for kind in ("input", "target"):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(ctx / f"{i:03d}_{kind}.png")
    query = folder / "query.png"
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(query)
    return ctx, query


def time_official(official: Path, name: str, ctx: Path, query: Path, size: int, repeats: int) -> float | None:
    source = os.environ.get("LAVIN_OFFICIAL_DIR")
    if not source or not Path(source, "lib", "model", "dit.py").is_file() or not (SHIMS / "official_pipeline.py").is_file():
        return None
    config = {**MODELS[name], "patch_size": [2, 2], "in_channels": 16}
    res = subprocess.run([sys.executable, str(SHIMS / "official_pipeline.py"), "--dit", str(official / "lavin_dit.safetensors"),
                          "--vae", str(official / "stvae.pt"), "--dit-config", json.dumps(config),
                          "--vae-config", json.dumps(TINY_VAE), "--context", str(ctx), "--query", str(query),
                          "--size", str(size), "--pairs", "4", "--steps", "20", "--cfg", "1.5",
                          "--repeat", str(repeats)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"the official code failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["median_s"]


def time_lavin(folder: Path, ctx: Path, query: Path, size: int, setting: dict, repeats: int) -> tuple[float, float]:
    """(median seconds per prediction, FLOPs of one prediction)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lavin_cli import Pipeline

    pipe = Pipeline.from_pretrained(str(folder), dtype=setting["dtype"])
    call = lambda: pipe(ctx, [str(query)], pairs=4, size=size, steps=setting["steps"], solver=setting["solver"],  # noqa: E731
                        cfg_interval=setting["cfg_interval"], cfg=1.5)
    counter = FlopCounterMode(display=False)
    with counter:
        call()  # (also the warm-up)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), counter.get_total_flops()


def speed_table(models: list[str], sizes: list[int], repeats: int) -> None:
    from lavin_cli.runtime.device import pick_dtype

    rates = {"float32": matmul_rate(torch.float32), "bfloat16": matmul_rate(torch.bfloat16)}
    official_dir = os.environ.get("LAVIN_OFFICIAL_DIR")
    print(f"{torch.get_num_threads()} threads; matmul rate float32 {rates['float32'] / 1e9:.0f} GFLOP/s, "
          f"bfloat16 {rates['bfloat16'] / 1e9:.0f} GFLOP/s; official code: {official_dir or 'absent (set LAVIN_OFFICIAL_DIR)'}")
    print("| model | size | official s | setting | lavin s | x official | share of matmul rate |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for name in models:
        with tempfile.TemporaryDirectory() as tmp:
            lavin, official = make_models(name, Path(tmp))
            for size in sizes:
                ctx, query = make_inputs(Path(tmp), size)
                base = time_official(official, name, ctx, query, size, repeats)
                for label, setting in settings().items():
                    seconds, flops = time_lavin(lavin, ctx, query, size, setting, repeats)
                    dtype = str(pick_dtype(setting["dtype"], torch.device("cpu"))).replace("torch.", "")
                    ratio = f"{base / seconds:.2f}x" if base else "-"
                    print(f"| {name} | {size} | {base if base else 'n/a':} | {label} | {seconds:.3f} | {ratio} | "
                          f"{100 * flops / seconds / rates[dtype]:.0f}% |", flush=True)


def quality_table(queries: int, seeds: list[int]) -> None:
    from lavin_cli import Pipeline
    from lavin_cli.evaluation.evaluate import evaluate

    print(f"bundled model, lavin eval: {queries} queries per task, 3 pairs, seeds {seeds}")
    for label, setting in settings().items():
        pipe = Pipeline.from_pretrained(dtype=setting["dtype"])
        for seed in seeds:
            start = time.perf_counter()
            report = evaluate(pipe, seed=seed, queries=queries, pairs=3, steps=setting["steps"],
                              solver=setting["solver"], cfg_interval=setting["cfg_interval"])
            cells = [f"{task} {metric} {value:.4g}" for task, r in report["tasks"].items() for metric, value in r["metrics"].items()]
            print(f"| {label} | seed {seed} | {time.perf_counter() - start:.0f} s | switch {report['task_switch_accuracy']} | "
                  + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,mid")
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    if not args.quality_only:
        speed_table(args.models.split(","), [int(s) for s in args.sizes.split(",")], args.repeats)
    if not args.speed_only:
        quality_table(args.queries, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
