"""Where one guided sampling step spends its time: a torch.profiler table (and trace) of lavin's DiT.

    python benchmarks/gpu_profile.py --out prof                 # 3.4B, 512 px, 4 pairs, CUDA
    python benchmarks/gpu_profile.py --preset tiny --device cpu --size 64 --out prof

One packed guided velocity (condition and null branch in one pass, as the sampler calls it) after
two warm-up calls; prints the operators by self device time and writes `--out`.txt (the table)
and `--out`.json.gz (a Chrome trace, open it in https://ui.perfetto.dev).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil

import torch
from gpu import random_models
from torch.profiler import ProfilerActivity, profile

from lavin_cli.inference import codec, sampling
from lavin_cli.inference.engine import Engine, WithKernel
from lavin_cli.runtime import device as devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="3.4B")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--attention", default="auto")
    parser.add_argument("--offload", default="none")
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--out", default="profile")
    args = parser.parse_args()
    device = devices.pick_device(args.device)
    dtype = devices.pick_dtype("auto", device)
    dit, vae = random_models(args.preset, "tiny", dtype, device)  # the VAE is not profiled
    engine = Engine(dit, vae, device, dtype, args.attention, args.offload)
    h = args.size // 8
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(1, dit.cfg.in_channels, 2 * args.pairs + 1, h, h, generator=gen).to(device, dtype)
    x = torch.randn(1, dit.cfg.in_channels, 1, h, h, generator=gen).to(device)
    t = torch.full((1,), 0.37, device=device)
    velocity = sampling.guided(WithKernel(engine.dit, engine.attention), cond, 1.5, codec.null_condition(cond))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.no_grad(), engine.offload.using(engine.dit):
        for _ in range(2):
            velocity(x, t)
        with profile(activities=activities, record_shapes=True) as prof:
            velocity(x, t)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=args.rows, max_name_column_width=60)
    header = f"{args.preset}, {args.size} px, {args.pairs} pairs, {devices.dtype_name(dtype)}, attention {engine.attention}, " \
             f"offload {args.offload}: one packed guided velocity\n"
    print(header + table)
    with open(f"{args.out}.txt", "w") as f:
        f.write(header + table)
    prof.export_chrome_trace(f"{args.out}.json")
    with open(f"{args.out}.json", "rb") as src, gzip.open(f"{args.out}.json.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(f"{args.out}.json")


if __name__ == "__main__":
    main()
