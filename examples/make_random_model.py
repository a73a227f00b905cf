"""Write a model folder with tiny *random* weights, to try lavin's mechanics before a trained model
is at hand (predictions are noise).

    python examples/make_random_model.py /tmp/tiny-random
    lavin run --model /tmp/tiny-random --task depth_estimation --query examples/depth_estimation/queries/q0.png -o out.png
"""

from __future__ import annotations

import sys

import torch

from lavin_cli.config import dit_preset, vae_preset
from lavin_cli.store import weights


def main(folder: str) -> None:
    torch.manual_seed(0)
    dit = weights.build(dit_preset("tiny"))
    for p in dit.parameters():  # the training init zeroes the output layer; give the random model a signal
        p.data.add_(torch.randn(p.shape) * 0.05)
    vae = weights.build(vae_preset("tiny"))
    weights.save_model_folder(folder, dit, vae, name="tiny-random", size=64,
                              description="random weights: shows the mechanics, predicts noise")
    print(folder)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tiny-random")
