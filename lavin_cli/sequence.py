"""How context pairs and a query become the DiT's condition sequence, and latents become pixels.

Images (official inference.py numerics):
    pixels uint8 -> (u8 / 255 - 0.5) * 2 in [-1, 1]
    every frame encoded by the VAE as its own 1-frame clip, a posterior *sample* (not the mean)
    normalised (z - shift) * scale
    condition = [input_1, target_1, ..., input_k, target_k, query]   (B, C, 2k + 1, h, w)
    null condition (guidance) = [zeros, query]
    result latent -> denormalise -> decode -> clamp((x + 1) / 2, 0, 1) -> uint8 by truncation
"""

from __future__ import annotations

import torch
from einops import rearrange

from lavin_cli.models.vae import STVAE
from lavin_cli.models.vae_tiling import tiled_decode, tiled_encode


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1]."""
    return (images.float() / 255.0 - 0.5) * 2


def unit_to_float(decoded: torch.Tensor) -> torch.Tensor:
    """Decoder output in [-1, 1] -> float32 in [0, 1], clamped."""
    return (decoded.float() / 2 + 0.5).clamp(0, 1)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> uint8 by truncation (as the official inference; no rounding)."""
    return (images * 255.0).to(torch.uint8)


def encode(vae: STVAE, x: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
           generators: list[torch.Generator] | None = None, tile: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (B, 3, F, H, W) in [-1, 1] -> normalised (posterior sample, posterior mean), (B, C, T, h, w).

    The sample's noise is `noise`; or drawn on the CPU per item from `generators[i]` (so batching
    changes nothing); or drawn for the whole batch from `generator`.
    """
    posterior = tiled_encode(vae, x, tile) if tile else vae.encode(x)
    if noise is None and generators is not None:
        noise = torch.cat([torch.randn(1, *posterior.mean.shape[1:], generator=g) for g in generators])
    z = posterior.sample(noise=noise, generator=generator)
    return vae.normalize(z).float(), vae.normalize(posterior.mean).float()


def encode_frames(vae: STVAE, frames: torch.Tensor, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, tile: int | None = None) -> torch.Tensor:
    """Encode N images (N, 3, H, W) in [-1, 1], each as its own 1-frame clip.

    Returns normalised latents (N, C, h, w) from a posterior sample; `noise` (N, C, 1, h, w)
    injects the sample's randomness, otherwise it is drawn from `generator` on the CPU.
    """
    return encode(vae, frames[:, :, None], noise=noise, generator=generator, tile=tile)[0][:, :, 0]


def decode_latents(vae: STVAE, z: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """Normalised latents (B, C, T, h, w) -> decoder output (B, 3, F, H, W) in about [-1, 1]."""
    z = vae.denormalize(z)
    return tiled_decode(vae, z, tile) if tile else vae.decode(z)


def condition(pair_latents: torch.Tensor, query_latents: torch.Tensor) -> torch.Tensor:
    """Pairs (P, 2, C, h, w) [input, target] and queries (B, C, h, w) -> (B, C, 2P + 1, h, w).

    The same pairs prefix every query of the batch.
    """
    prefix = rearrange(pair_latents, "p two c h w -> c (p two) h w")
    prefix = prefix.unsqueeze(0).expand(query_latents.shape[0], -1, -1, -1, -1)
    return torch.cat([prefix, query_latents[:, :, None]], dim=2)
