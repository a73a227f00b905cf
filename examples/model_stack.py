"""The LaVin-DiT model stack end to end, through lavin's library: in-context prediction of one image.

    python examples/model_stack.py                       # tiny random models: shows the mechanics
    python examples/model_stack.py --dit lavin_dit.safetensors --vae stvae.pt \
        --context template/depth_estimation --query photo.jpg --size 512 --out depth.png

The context folder holds pairs `<id>_input.png` / `<id>_target.png` (the official template
layout). With random weights the prediction is noise; with the official weights it is the
query's answer. `lavin run` will wrap all of this (and much more) in one command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lavin_cli.config import dit_preset, vae_preset
from lavin_cli.inference import codec, sampling
from lavin_cli.runtime import device as devices
from lavin_cli.store import weights


def load_image(path: Path, size: int) -> torch.Tensor:
    """RGB image -> (3, size, size) float in [-1, 1]."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    return codec.uint8_to_unit(torch.from_numpy(np.array(image)).permute(2, 0, 1))


def context_pairs(folder: Path, count: int) -> list[tuple[Path, Path]]:
    """The first `count` (<id>_input, <id>_target) pairs of a template folder."""
    pairs = []
    for inp in sorted(folder.glob("*_input.*")):
        targets = sorted(folder.glob(inp.name.rsplit("_input", 1)[0] + "_target.*"))
        if targets:
            pairs.append((inp, targets[0]))
    return pairs[:count]


def random_inputs(pairs: int, size: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=g) * 2 - 1 for _ in range(2 * pairs + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dit", type=Path, help="DiT checkpoint (official or lavin format)")
    parser.add_argument("--vae", type=Path, help="VAE checkpoint (official stvae.pt or lavin format)")
    parser.add_argument("--context", type=Path, help="folder of <id>_input/<id>_target pairs")
    parser.add_argument("--query", type=Path, help="query image")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="working resolution, a multiple of 16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("prediction.png"))
    args = parser.parse_args()

    device = devices.pick_device("auto")
    dtype = devices.pick_dtype("auto", device)
    torch.manual_seed(args.seed)
    dit = weights.load_dit(args.dit, device=device, dtype=dtype) if args.dit else weights.build(dit_preset("tiny"), device, dtype)
    vae = weights.load_vae(args.vae, device=device, dtype=dtype) if args.vae else weights.build(vae_preset("tiny"), device, dtype)

    if args.context and args.query:
        pairs = context_pairs(args.context, args.pairs)
        if not pairs:
            parser.error(f"no <id>_input/<id>_target pairs in {args.context}")
        frames = [load_image(p, args.size) for pair in pairs for p in pair] + [load_image(args.query, args.size)]
    else:
        frames = random_inputs(args.pairs, args.size)
    pairs = (len(frames) - 1) // 2

    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        posterior = vae.encode(torch.stack(frames).to(device)[:, :, None])  # each image a 1-frame clip
        latents = codec.sample(posterior, vae.cfg, generator=generator)  # (2k+1, C, 1, h, w), normalised
        cond = codec.condition(list(zip(latents[:-1:2], latents[1:-1:2])), latents[-1])[None]  # (1, C, 2k+1, h, w)
        noise = torch.randn(1, cond.shape[1], 1, *cond.shape[-2:], generator=generator).to(device)
        z = sampling.sample(sampling.guided(dit, cond, args.cfg, codec.null_condition(cond)), noise, args.steps)
        image = codec.float_to_uint8(codec.unit_to_float(codec.decode_latents(vae, z)))[0, :, 0]
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(args.out)
    print(f"{pairs} pairs + query at {args.size}px, {args.steps} steps, cfg {args.cfg} on {device} -> {args.out}")


if __name__ == "__main__":
    main()
