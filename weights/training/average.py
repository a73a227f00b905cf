"""Average two DiTs of one architecture, weight by weight (a "model soup": the fine-tune of a
run mixed back with the run it started from keeps part of what each learned).

    python weights/training/average.py runs/small-v26 runs/small-c2 --weight 0.5 -o runs/small-v27

A and B: model folders (their dit.safetensors) or .safetensors files; `--weight` is B's share.
The output is a copy of B's folder (VAE, tasks, model.json) with the averaged dit.safetensors,
so `lavin eval -m OUT` and `lavin convert --dit OUT/dit.safetensors` read it as any run's.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from lavin_cli.errors import CheckpointError, LavinError
from lavin_cli.store import weights

SKIP = shutil.ignore_patterns("dit_state.pt", "*.jsonl", "dit.safetensors")


def dit_file(path: Path) -> Path:
    return path / "dit.safetensors" if path.is_dir() else path


def average(a: Path, b: Path, weight: float, out: Path) -> Path:
    """Write (1 - weight) * A + weight * B into out/dit.safetensors, beside a copy of B's folder."""
    dit_a, dit_b = weights.load_dit(dit_file(a)), weights.load_dit(dit_file(b))
    if dit_a.cfg != dit_b.cfg:
        raise CheckpointError(f"{a} and {b} are different architectures ({dit_a.cfg} vs {dit_b.cfg})")
    state_a = dit_a.state_dict()
    with torch.no_grad():
        for name, tensor in dit_b.state_dict().items():
            tensor.mul_(weight).add_(state_a[name], alpha=1.0 - weight)
    if b.is_dir():
        shutil.copytree(b, out, ignore=SKIP)
    else:
        out.mkdir(parents=True)
    weights.save(dit_b, out / "dit.safetensors")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--weight", type=float, default=0.5, help="B's share, 0..1 (default 0.5)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        parser.error("--weight must be from 0 to 1")
    if args.out.exists():
        parser.error(f"{args.out} exists; choose a new folder")
    try:
        print(average(args.a, args.b, args.weight, args.out))
    except LavinError as exc:
        parser.exit(1, f"error: {exc}\n")


if __name__ == "__main__":
    main()
