"""Where two identical runs differ: each stage of a prediction run twice, the raw float results compared.

    python benchmarks/gpu_determinism.py                        # 3.4B DiT + official VAE, random weights, 512 px, CUDA
    python benchmarks/gpu_determinism.py --deterministic        # the same under torch's deterministic algorithms
    python benchmarks/gpu_determinism.py --preset tiny --vae tiny --size 64 --device cpu

Two CUDA runs of `lavin run --format npy` gave different floats (docs/performance.md). This
script finds the stage: the VAE encoder, one guided DiT velocity per attention kernel, the whole
20-step sample, the VAE decoder; each run twice from the same inputs. `--deterministic` sets
CUBLAS_WORKSPACE_CONFIG (before CUDA starts), torch.use_deterministic_algorithms(True) and
cuDNN's deterministic flag; a kernel with no deterministic version then raises, and its row
says which. A row reads "bit-identical" or the largest difference and how many values differ.
"""

from __future__ import annotations

import argparse
import os

import torch  # importing starts no CUDA: _setup still comes before it does
from gpu import model_arguments, random_models


def _setup(deterministic: bool) -> None:
    if deterministic:  # read by cuBLAS when CUDA starts: before torch touches the device
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False


def _compare(name: str, run) -> str:
    try:
        first, second = run(), run()
    except RuntimeError as exc:  # a kernel without a deterministic version, under --deterministic
        return f"{name:<34} error: {str(exc).splitlines()[0][:90]}"
    diff = (first.float() - second.float()).abs()
    if torch.equal(first, second):
        return f"{name:<34} bit-identical ({first.numel():,} values)"
    return (f"{name:<34} max {diff.max().item():.3g}, {int((diff > 0).sum()):,} of {diff.numel():,} values differ "
            f"(values up to {first.float().abs().max().item():.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args()
    _setup(args.deterministic)

    from lavin_cli.inference import codec, sampling
    from lavin_cli.inference.engine import WithKernel
    from lavin_cli.models.ops import FUNCTIONS
    from lavin_cli.runtime import attention as attention_policy
    from lavin_cli.runtime import device as devices

    device = devices.pick_device(args.device)
    dtype = devices.pick_dtype("auto", device)
    dit, vae = random_models(args.preset, args.vae, dtype, device)
    h = args.size // 8
    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(1, 3, 1, args.size, args.size, generator=gen) * 2 - 1).to(device, dtype)
    cond = torch.randn(1, dit.cfg.in_channels, 2 * args.pairs + 1, h, h, generator=gen).to(device, dtype)
    noise = torch.randn(1, dit.cfg.in_channels, 1, h, h, generator=gen).to(device)
    t = torch.full((1,), 0.37, device=device)
    print(f"{device}, {dtype}, DiT {args.preset}, VAE {args.vae}, {args.size} px, {args.pairs} pairs, "
          f"deterministic={args.deterministic}, torch {torch.__version__}")
    kernels = [k for k in FUNCTIONS if k != "xformers" or (device.type == "cuda" and attention_policy.xformers_status(0)[0])]
    rows = []
    with torch.no_grad():
        rows.append(_compare("VAE encoder (posterior mean)", lambda: vae.encode(pixels).mean))
        for kernel in kernels:
            velocity = sampling.guided(WithKernel(dit, kernel), cond, 1.5, codec.null_condition(cond))
            rows.append(_compare(f"DiT guided velocity, {kernel}", lambda: velocity(noise, t)))
        auto = attention_policy.resolve_backend("auto", device)
        velocity = sampling.guided(WithKernel(dit, auto), cond, 1.5, codec.null_condition(cond))
        rows.append(_compare(f"{args.steps}-step sample, {auto}", lambda: sampling.sample(velocity, noise, args.steps)))
        latent = noise.to(dtype)
        rows.append(_compare("VAE decoder", lambda: vae.decode(latent)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
