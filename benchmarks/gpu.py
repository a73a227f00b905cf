"""Seconds per prediction and peak memory of the LaVin-DiT pipeline, against the FLOP floor.

    python benchmarks/gpu.py                                  # 3.4B + official VAE, random weights, CUDA
    python benchmarks/gpu.py --preset tiny --vae tiny --device cpu --sizes 64 --pairs 4   # proves it works anywhere
    python benchmarks/gpu.py --int8 --offload none,sequential --attention sdpa   # int8 blocks beside bf16

For each configuration (working size, context pairs; 20 steps, cfg 1.5, one query), attention
backend and offload mode: the median seconds of a whole prediction (context encoding,
sampling, decoding) after warm-up (CUDA events on a GPU), the peak GPU memory, and the floor:
the run's matrix-multiply and convolution FLOPs (torch's FlopCounterMode) divided by the card's
measured bf16 (CPU: float32) matmul rate; "x floor" is our time over that floor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from lavin_cli.config import dit_preset, vae_preset
from lavin_cli.inference.engine import Engine
from lavin_cli.inference.pipeline import Pipeline
from lavin_cli.runtime import attention as attention_policy
from lavin_cli.runtime import device as devices
from lavin_cli.store import weights


def random_models(dit_name: str, vae_name: str, dtype: torch.dtype, device="cpu"):
    """Built on meta, materialised on `device` with small random weights (no download, no slow init)."""
    models = []
    for cfg in (dit_preset(dit_name), vae_preset(vae_name)):
        model = weights.build(cfg, init=False).to_empty(device=device)
        gen = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(generator=gen).mul_(0.02 if p.dim() > 1 else 0.1).add_(1.0 if p.dim() == 1 else 0.0)
        models.append(model.to(dtype).eval().requires_grad_(False))
    return models


def model_arguments(parser) -> None:
    """The options the one-configuration GPU scripts share: which random models, where, how large."""
    parser.add_argument("--preset", default="3.4B")
    parser.add_argument("--vae", default="official")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)


def int8_copy(dit, dtype: torch.dtype):
    """The DiT with its blocks' matrices in int8 (as lavin run --quantize int8 loads it), on the CPU."""
    return weights.build_int8(dit.cfg, {k: v.cpu() for k, v in dit.state_dict().items()}, dtype, "int8 copy")


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Sustained FLOP/s of a large square matmul."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 20 if device.type == "cuda" else 5
    seconds = _timed(lambda: [a @ b for _ in range(reps)], device)
    return 2 * n**3 * reps / seconds


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def inputs(size: int, pairs: int):
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 255, (size, size, 3), dtype=np.uint8)  # noqa: E731
    return [(img(), img()) for _ in range(pairs)], [img()]


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """q @ k^T and p @ v for grouped-query shapes (b, heads, tokens, dim); torch before 2.12 rejects
    fewer key/value heads than query heads."""
    b, heads, q_len, dim = query_shape
    kv_len, v_dim = key_shape[2], value_shape[3]
    return 2 * b * heads * q_len * kv_len * (dim + v_dim)


def count_flops(pipe: Pipeline, context, query, size: int, pairs: int, steps: int, cfg: float) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    kernels = [getattr(aten, n) for n in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                                          "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu")
               if hasattr(aten, n)]
    counter = FlopCounterMode(display=False, custom_mapping={k: _attention_flops for k in kernels})
    with counter:
        pipe(context, query, pairs=pairs, size=size, steps=steps, cfg=cfg)
    return counter.get_total_flops()


def measure(pipe: Pipeline, context, query, size, pairs, steps, cfg, repeats, device) -> tuple[float, int]:
    run = lambda: pipe(context, query, pairs=pairs, size=size, steps=steps, cfg=cfg)  # noqa: E731
    run()  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [_timed(run, device) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return statistics.median(times), peak


def compiled_row(dit, vae, device, dtype, backend, context, query, size, pairs, args) -> tuple[float, int]:
    """Like the offload-none row with the blocks compiled (compiled in the warm-up run), then eager again."""
    pipe = Pipeline(Engine(dit, vae, device, dtype, backend, "none", compile=True))
    try:
        return measure(pipe, context, query, size, pairs, args.steps, args.cfg, args.repeats, device)
    finally:
        pipe.engine.offload.release(vae, dit)
        for block in dit.blocks:
            block._compiled_call_impl = None  # nn.Module.compile's wrapper: back to eager for later rows


def official_row(dit, vae, context, query, size: int, pairs: int, steps: int, cfg: float, repeats: int,
                 device: torch.device) -> tuple[float, int]:
    """The official code's numerics on the same weights: its model and VAE classes, bf16 weights under
    autocast, two passes for guidance (as its inference.py runs, without torch.compile)."""
    import official

    o = official.modules()
    dit_o, vae_o = official.official_dit(o, dit).to(device), official.official_vae(o, vae).to(device)
    images = [img for pair in context for img in pair] + query
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)[:, :, None].float().div(127.5).sub(1).to(device)
    h = size // 8
    post_noise = torch.randn(len(images), dit.cfg.in_channels, 1, h, h)
    noise = torch.randn(1, dit.cfg.in_channels, 1, h, h, device=device)
    sample_fn = official.sampler(o, steps)
    run = lambda: official.predict(dit_o, vae_o, sample_fn, pixels, post_noise, noise, cfg)  # noqa: E731
    run()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [_timed(run, device) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="3.4B")
    parser.add_argument("--vae", default="official")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="512,256", help="working sizes, paired with --pairs")
    parser.add_argument("--pairs", default="4,8")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--attention", default="auto", help="comma list of backends, or auto: every one that works here")
    parser.add_argument("--offload", default="none,model,sequential")
    parser.add_argument("--compile", action="store_true", help="also time --compile (first backend, offload none)")
    parser.add_argument("--int8", action="store_true",
                        help="also time int8 blocks (--quantize int8; first backend, each --offload mode)")
    parser.add_argument("--official", action="store_true",
                        help="also time the official code's numerics (needs $LAVIN_OFFICIAL_DIR: benchmarks/official.py)")
    args = parser.parse_args()

    device = devices.pick_device(args.device)
    dtype = devices.pick_dtype("auto", device)
    backends = ["sdpa"] + (["xformers"] if device.type == "cuda" and attention_policy.xformers_status(device.index or 0)[0] else []) \
        if args.attention == "auto" else args.attention.split(",")
    rate = matmul_rate(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {str(dtype).replace('torch.', '')} matmul rate "
          f"{rate / 1e12:.1f} TFLOP/s; J-DiT {args.preset} + VAE {args.vae}, random weights; {args.steps} steps, "
          f"cfg {args.cfg}, one query")
    print("| size | pairs | code | attention | offload | s / prediction | peak GPU GB | TFLOP | floor s | x floor |")
    print("| ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    dit, vae = random_models(args.preset, args.vae, dtype, device)
    dit, vae = dit.cpu(), vae.cpu()  # each mode places the weights itself
    for size, pairs in zip(map(int, args.sizes.split(",")), map(int, args.pairs.split(","))):
        context, query = inputs(size, pairs)
        flops = None
        for backend in backends:
            for mode in args.offload.split(","):
                pipe = Pipeline(Engine(dit, vae, device, dtype, backend, mode))
                if flops is None:
                    flops = count_flops(pipe, context, query, size, pairs, args.steps, args.cfg)
                seconds, peak = measure(pipe, context, query, size, pairs, args.steps, args.cfg, args.repeats, device)
                print(_row(size, pairs, "lavin", backend, mode, seconds, peak, flops, rate), flush=True)
                pipe.engine.offload.release(vae, dit)
        if args.int8:
            small = int8_copy(dit, dtype)
            for mode in args.offload.split(","):
                pipe = Pipeline(Engine(small, vae, device, dtype, backends[0], mode))
                seconds, peak = measure(pipe, context, query, size, pairs, args.steps, args.cfg, args.repeats, device)
                print(_row(size, pairs, "lavin --quantize int8", backends[0], mode, seconds, peak, flops, rate), flush=True)
                pipe.engine.offload.release(vae, small)
            if args.compile:
                seconds, peak = compiled_row(small, vae, device, dtype, backends[0], context, query, size, pairs, args)
                print(_row(size, pairs, "lavin --quantize int8 --compile", backends[0], "none", seconds, peak, flops,
                           rate), flush=True)
            del small
        if args.compile:
            seconds, peak = compiled_row(dit, vae, device, dtype, backends[0], context, query, size, pairs, args)
            print(_row(size, pairs, "lavin --compile", backends[0], "none", seconds, peak, flops, rate), flush=True)
        if args.official:
            seconds, peak = official_row(dit, vae, context, query, size, pairs, args.steps, args.cfg, args.repeats, device)
            print(_row(size, pairs, "official numerics", "SDPA (for flash-attn)", "none", seconds, peak, flops, rate),
                  flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


def _row(size, pairs, code, backend, mode, seconds, peak, flops, rate) -> str:
    floor = flops / rate
    return (f"| {size} | {pairs} | {code} | {backend} | {mode} | {seconds:.3f} | {peak / 2**30:.2f} | "
            f"{flops / 1e12:.2f} | {floor:.3f} | {seconds / floor:.2f} |")


if __name__ == "__main__":
    main()
