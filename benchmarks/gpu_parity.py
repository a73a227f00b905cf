"""Parity at full size: the official LaVin-DiT code and lavin on the same random weights and inputs.

    LAVIN_OFFICIAL_DIR=... python benchmarks/gpu_parity.py          # 3.4B + official VAE, 512 px, 4 pairs, CUDA
    LAVIN_OFFICIAL_DIR=... python benchmarks/gpu_parity.py --preset tiny --vae tiny --device cpu --size 64

In float32 and then in bf16: the max |difference| between the two of one guided velocity (cfg
1.5, t = 0.37, on the same condition latents), of the final latent of a whole sample (20 Euler
steps on the official grid, the same posterior and initial noise) and of its decoded image
(uint8 levels), beside the size of what is compared. In bf16 each side is also compared with the
official float32 result: bf16's own error, the yardstick for the difference between the two.
lavin runs through its Engine (its dtype policy and attention backend); the official code as its
inference.py runs it (weights cast to bf16, sampling under autocast). `--json` writes the numbers.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import official
import torch
from einops import rearrange
from gpu import model_arguments, random_models

from lavin_cli.inference import codec, sampling
from lavin_cli.inference.engine import Engine, WithKernel
from lavin_cli.inference.options import SamplingOptions
from lavin_cli.runtime import device as devices

CFG, T = 1.5, 0.37


def inputs(size: int, pairs: int, latent: tuple[int, ...]):
    """(uint8 frames (T, 1, H, W, 3): pairs then query; the CPU generators that draw each frame's
    posterior noise; the initial noise (1, C, 1, h, w))."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2 * pairs + 1, 1, size, size, 3), dtype=np.uint8)
    gens = lambda: [torch.Generator().manual_seed(100 + i) for i in range(len(frames))]  # noqa: E731
    noise = torch.randn((1, *latent), generator=torch.Generator().manual_seed(7))
    return frames, gens, noise


def compare(a: torch.Tensor, b: torch.Tensor) -> dict:
    a, b = a.double().cpu(), b.double().cpu()
    return {"max_abs_diff": float((a - b).abs().max()), "mean_abs_diff": float((a - b).abs().mean()),
            "max_abs_value": float(b.abs().max())}


def run_dtype(dit, vae, o, args, device, dtype, reference: dict | None) -> tuple[dict, dict]:
    engine = Engine(dit, vae, device, dtype, args.attention, "none")
    dit_o, vae_o = official.official_dit(o, dit), official.official_vae(o, vae)
    h = args.size // 8
    frames, gens, noise = inputs(args.size, args.pairs, (dit.cfg.in_channels, 1, h, h))
    samples, _ = engine.encode(frames, gens())
    cond = rearrange(samples, "t c 1 h w -> 1 c t h w").to(device, dtype)
    null = codec.null_condition(cond)
    x, t = noise.to(device), torch.full((1,), T, device=device)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    with torch.no_grad():
        v_lavin = sampling.guided(WithKernel(engine.dit, engine.attention), cond, CFG, null)(x, t)
        with torch.autocast(**autocast):
            v_official = dit_o.forward_with_cfg(x.repeat(2, 1, 1, 1, 1).to(dtype), t.repeat(2), conds=(cond, null),
                                                cfg_scale=CFG)[:1]
    options = SamplingOptions(steps=args.steps, cfg=CFG, solver="euler")
    z_lavin = engine.generate(cond, 1, [torch.Generator().manual_seed(7)], options)
    image_lavin = torch.from_numpy(engine.decode(z_lavin))  # (1, F, H, W, 3)
    pixels = codec.uint8_to_unit(torch.from_numpy(frames)).permute(0, 4, 1, 2, 3).to(device)  # (T, 3, 1, H, W)
    post_noise = codec.posterior_noise((dit.cfg.in_channels, 1, h, h), gens())
    z_official, image_official = official.predict(dit_o, vae_o, official.sampler(o, args.steps), pixels, post_noise,
                                                  noise.to(device), CFG)
    image_official = rearrange(image_official.cpu(), "b c f h w -> b f h w c")
    out = {"velocity": compare(v_lavin, v_official), "sample_latent": compare(z_lavin, z_official),
           "image_uint8": compare(image_lavin, image_official), "attention": engine.attention}
    ours = {"velocity": v_official.cpu(), "sample_latent": z_official.cpu(), "image": image_official}
    if reference:  # bf16 against the official float32 results: each side's own bf16 error
        out["lavin_vs_official_f32"] = {"velocity": compare(v_lavin, reference["velocity"]),
                                        "sample_latent": compare(z_lavin, reference["sample_latent"]),
                                        "image_uint8": compare(image_lavin, reference["image"])}
        out["official_vs_official_f32"] = {"velocity": compare(v_official, reference["velocity"]),
                                           "sample_latent": compare(z_official, reference["sample_latent"]),
                                           "image_uint8": compare(image_official, reference["image"])}
    del dit_o, vae_o
    return out, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--attention", default="auto")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if reason := official.missing():
        raise SystemExit(f"the official code is needed: {reason}")
    device = devices.pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # float32 means float32
    o = official.modules()
    dit, vae = random_models(args.preset, args.vae, torch.float32, device)
    results, reference = {}, None
    for dtype in (torch.float32, torch.bfloat16):
        dit, vae = dit.to(dtype), vae.to(dtype)
        name = devices.dtype_name(dtype)
        results[name], ours = run_dtype(dit, vae, o, args, device, dtype, reference)
        reference = reference or ours
        print(json.dumps({name: results[name]}), flush=True)
    header = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU", "torch": torch.__version__,
              "preset": args.preset, "vae": args.vae, "size": args.size, "pairs": args.pairs, "steps": args.steps, "cfg": CFG}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(header | results, f, indent=1)


if __name__ == "__main__":
    main()
