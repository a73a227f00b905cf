"""Tiled and frame-chunked VAE encoding/decoding for inputs too large to process at once.

This is the official ST-VAE tiling algorithm (AutoencoderKLSTVAE.tiled_encode/tiled_decode):
- time: clips are cut into chunks of `tile_frames` frames that share one boundary frame
  (latent chunks of (tile_frames - 1) // 4 + 1 latents sharing one latent); every chunk after
  the first drops its first output frame, so chunk outputs butt together;
- space: tiles of `tile` pixels (tile // 8 latents) with a stride of 3/4 of a tile; each tile is
  blended into its upper and left neighbours with a linear ramp over 1/4 of a tile, then
  cropped to 3/4 of a tile.
An input that fits in one tile and one chunk goes through the plain encoder/decoder unchanged.
"""

from __future__ import annotations

import torch

from lavin_cli.models.vae import STVAE, Posterior

OVERLAP = 0.25


def frame_chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of length <= size, consecutive ranges sharing one frame."""
    starts = list(range(0, total, size - 1))
    if len(starts) == 1:
        return [(0, total)]
    chunks = [(starts[i], starts[i + 1] + 1) for i in range(len(starts) - 1)]
    if chunks[-1][1] > total:
        chunks[-1] = (chunks[-1][0], total)
    elif chunks[-1][1] < total:
        chunks.append((starts[-1], total))
    return chunks


def _blend(prev: torch.Tensor, cur: torch.Tensor, extent: int, dim: int) -> torch.Tensor:
    """Fade the last `extent` rows (dim 3) or columns (dim 4) of `prev` into the first of `cur`."""
    extent = min(prev.shape[dim], cur.shape[dim], extent)
    if extent == 0:
        return cur
    ramp = torch.arange(extent, device=cur.device, dtype=cur.dtype) / extent
    shape = [1] * cur.dim()
    shape[dim] = extent
    ramp = ramp.reshape(shape)
    head = prev.narrow(dim, prev.shape[dim] - extent, extent) * (1 - ramp) + cur.narrow(dim, 0, extent) * ramp
    return torch.cat([head, cur.narrow(dim, extent, cur.shape[dim] - extent)], dim=dim)


def _tiled_2d(fn, x: torch.Tensor, tile_in: int, tile_out: int) -> torch.Tensor:
    """Apply `fn` to overlapping spatial tiles of x and blend the results (official scheme)."""
    stride = int(tile_in * (1 - OVERLAP))
    extent = int(tile_out * OVERLAP)
    keep = tile_out - extent
    rows = [[fn(x[:, :, :, i:i + tile_in, j:j + tile_in]) for j in range(0, x.shape[4], stride)]
            for i in range(0, x.shape[3], stride)]
    out_rows = []
    for i, row in enumerate(rows):
        out_row = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = _blend(rows[i - 1][j], tile, extent, dim=3)
            if j > 0:
                tile = _blend(row[j - 1], tile, extent, dim=4)
            row[j] = tile  # later neighbours blend with the blended tile, as the official code does
            out_row.append(tile[:, :, :, :keep, :keep])
        out_rows.append(torch.cat(out_row, dim=4))
    return torch.cat(out_rows, dim=3)


def tiled_encode(vae: STVAE, x: torch.Tensor, tile: int = 320, tile_frames: int = 81) -> Posterior:
    """Encode (B, 3, F, H, W) in tiles of `tile` pixels and chunks of `tile_frames` frames."""
    if x.shape[-1] <= tile and x.shape[-2] <= tile and x.shape[2] <= tile_frames:
        return vae.encode(x)
    ratio = vae.cfg.spatial_ratio
    moments = []
    for n, (start, end) in enumerate(frame_chunks(x.shape[2], tile_frames)):
        m = _tiled_2d(lambda t: vae.encode(t).moments, x[:, :, start:end], tile, tile // ratio)
        moments.append(m if n == 0 else m[:, :, 1:])
    return Posterior(torch.cat(moments, dim=2))


def tiled_decode(vae: STVAE, z: torch.Tensor, tile: int = 320, tile_frames: int = 81) -> torch.Tensor:
    """Decode (B, C, T, h, w) in tiles of `tile` // 8 latents and chunks of the matching latents."""
    ratio = vae.cfg.spatial_ratio
    tile_z = tile // ratio
    tile_zt = (tile_frames - 1) // vae.cfg.temporal_ratio + 1
    if z.shape[-1] <= tile_z and z.shape[-2] <= tile_z and z.shape[2] <= tile_zt:
        return vae.decode(z)
    frames = []
    for n, (start, end) in enumerate(frame_chunks(z.shape[2], tile_zt)):
        d = _tiled_2d(vae.decode, z[:, :, start:end], tile_z, tile)
        frames.append(d if n == 0 else d[:, :, 1:])
    return torch.cat(frames, dim=2)
