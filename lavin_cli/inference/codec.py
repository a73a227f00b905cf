"""Pixels <-> the DiT's latents, and how pairs and a query become its condition: one definition,
used by inference, evaluation and training alike.

Official inference.py numerics:
    pixels uint8 -> (u8 / 255 - 0.5) * 2 in [-1, 1]
    every image encoded by the VAE as its own 1-frame clip, a posterior *sample* (not the mean)
    normalised (z - shift) * scale
    condition = [input_1, target_1, ..., input_k, target_k, query]   (C, T_c, h, w)
    null condition (guidance) = [zeros, query]
    result latent -> denormalise -> decode -> clamp((x + 1) / 2, 0, 1) -> uint8 by truncation
"""

from __future__ import annotations

from typing import Sequence

import torch

from lavin_cli.config import VAEConfig
from lavin_cli.models.vae import STVAE, Posterior
from lavin_cli.models.vae_tiling import tiled_decode, tiled_encode


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] -> [-1, 1], the VAE's range."""
    return (images - 0.5) * 2


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1]."""
    return to_unit(images.float() / 255.0)


def unit_to_float(decoded: torch.Tensor) -> torch.Tensor:
    """Decoder output in [-1, 1] -> float32 in [0, 1], clamped."""
    return (decoded.float() / 2 + 0.5).clamp(0, 1)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> uint8 by truncation (as the official inference; no rounding)."""
    return (images * 255.0).to(torch.uint8)


def normalize(z: torch.Tensor, cfg: VAEConfig) -> torch.Tensor:
    """VAE latents -> the scale the DiT works in."""
    return (z - cfg.latent_shift) * cfg.latent_scale


def denormalize(z: torch.Tensor, cfg: VAEConfig) -> torch.Tensor:
    return z / cfg.latent_scale + cfg.latent_shift


def posterior_noise(shape: Sequence[int], generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Noise (B, *shape) for B posterior samples, item i drawn on the CPU from generators[i], so
    that an item's sample does not depend on the batch it is in."""
    return torch.cat([torch.randn(1, *shape, generator=g) for g in generators])


def sample(posterior: Posterior, cfg: VAEConfig, noise: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """A normalised posterior sample (float32): mean + std * noise, the noise given or drawn
    from `generator` on the CPU."""
    return normalize(posterior.sample(noise=noise, generator=generator), cfg).float()


def encode(vae: STVAE, x: torch.Tensor, generators: Sequence[torch.Generator] | None = None,
           noise: torch.Tensor | None = None, tile: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (B, 3, F, H, W) in [-1, 1] -> normalised (posterior sample, posterior mean), (B, C, T, h, w).

    The sample's noise is `noise`, or drawn per item from `generators[i]`.
    """
    posterior = tiled_encode(vae, x, tile) if tile else vae.encode(x)
    if noise is None and generators is not None:
        noise = posterior_noise(posterior.mean.shape[1:], generators)
    return sample(posterior, vae.cfg, noise), normalize(posterior.mean, vae.cfg).float()


def decode_latents(vae: STVAE, z: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """Normalised latents (B, C, T, h, w) -> decoder output (B, 3, F, H, W) in about [-1, 1]."""
    z = denormalize(z, vae.cfg)
    return tiled_decode(vae, z, tile) if tile else vae.decode(z)


def condition(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], query: torch.Tensor) -> torch.Tensor:
    """(input, target) latents of each pair and the query's, each (C, T, h, w) -> the condition
    (C, T_c, h, w): [input_1, target_1, ..., input_k, target_k, query] along time."""
    return torch.cat([t for pair in pairs for t in pair] + [query], dim=1)


def null_condition(cond: torch.Tensor, query_frames: int = 1) -> torch.Tensor:
    """The official unconditional input: one all-zero frame followed by the query (the last
    `query_frames` frames: 1 for an image, the query clip's latent frames for a video).

    cond: (B, C, T_c, H, W) -> (B, C, 1 + query_frames, H, W).
    """
    return torch.cat([torch.zeros_like(cond[:, :, :1]), cond[:, :, -query_frames:]], dim=2)
