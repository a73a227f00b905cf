"""ST-VAE: the causal 3D convolutional VAE of LaVin-DiT (layout B C F H W, pixels in [-1, 1]).

Space is compressed 8x (three stride-2 steps), time 4x (two pooling steps in the first two down
blocks). The first frame is coded alone: F = 4k+1 frames give k+1 latent frames, an image is a
1-frame video. Other frame counts follow the same rule step by step (`latent_frames`).

Convolutions and temporal pooling are causal (padding repeats the first frame at the front).
The official model's GroupNorms take their statistics over all frames of a clip, so there a
later frame does shift the latents of earlier ones; with `VAEConfig.causal_norm` the statistics
of frame f cover frames 0..f only and the whole VAE is strictly causal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lavin_cli.config import VAEConfig


def _halve_frames(frames: int) -> int:
    """One temporal pooling step: odd counts keep the first frame and pool the rest in pairs."""
    return 1 + (frames - 1) // 2 if frames % 2 else frames // 2


def latent_frames(frames: int, temporal_levels: int = 2) -> int:
    """Latent frames the encoder produces for `frames` input frames (1->1, 5->2, 8->2, 9->3)."""
    for _ in range(temporal_levels):
        frames = _halve_frames(frames)
    return frames


def decoded_frames(latents: int, temporal_levels: int = 2) -> int:
    """Frames the decoder produces for `latents` latent frames: T -> 2T-1 per level (3 -> 9)."""
    for _ in range(temporal_levels):
        latents = 2 * latents - 1 if latents > 1 else 1
    return latents


class GroupNorm3d(nn.GroupNorm):
    """GroupNorm over (channels of a group, frames, H, W); `causal` limits frames to 0..f."""

    def __init__(self, groups: int, channels: int, causal: bool = False):
        super().__init__(groups, channels, eps=1e-6)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.causal or x.shape[2] == 1:
            return super().forward(x)
        b, c, f, h, w = x.shape
        xg = x.float().reshape(b, self.num_groups, c // self.num_groups, f, h * w)
        count = torch.arange(1, f + 1, device=x.device, dtype=torch.float32) * (c // self.num_groups) * h * w
        mean = xg.sum(dim=(2, 4)).cumsum(dim=-1) / count  # (b, g, f)
        var = (xg.square().sum(dim=(2, 4)).cumsum(dim=-1) / count - mean.square()).clamp_min(0)
        y = (xg - mean[:, :, None, :, None]) * torch.rsqrt(var[:, :, None, :, None] + self.eps)
        y = y.reshape(b, c, f, h, w) * self.weight[:, None, None, None] + self.bias[:, None, None, None]
        return y.to(x.dtype)


class CausalConv3d(nn.Conv3d):
    """k x k x k conv; time padded at the front by repeating the first frame, space by zeros."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__(cin, cout, kernel_size=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        if k > 1 and x.shape[2] == 1:
            # one frame: the padded clip is k copies of it, so the temporal taps simply add up
            y = F.conv2d(x[:, :, 0], self.weight.sum(dim=2), self.bias, padding=k // 2)
            return y[:, :, None]
        if k > 1:
            x = torch.cat([x[:, :, :1]] * (k - 1) + [x], dim=2)
            x = F.pad(x, (k // 2, k // 2, k // 2, k // 2))
        return super().forward(x)


def _per_frame(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    y = conv._conv_forward(rearrange(x, "b c f h w -> (b f) c h w"), conv.weight, conv.bias)
    return rearrange(y, "(b f) c h w -> b c f h w", b=b)


class Downsample(nn.Conv2d):
    """Optional temporal pooling, then zero-pad right/bottom and a stride-2 3x3 conv per frame."""

    def __init__(self, channels: int, compress_time: bool):
        super().__init__(channels, channels, kernel_size=3, stride=2)
        self.compress_time = compress_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compress_time and x.shape[2] > 1:
            if x.shape[2] % 2:
                rest = x[:, :, 1:]
                pooled = (rest[:, :, 0::2] + rest[:, :, 1::2]) / 2
                x = torch.cat([x[:, :, :1], pooled], dim=2)
            else:
                x = (x[:, :, 0::2] + x[:, :, 1::2]) / 2
        return _per_frame(self, F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Conv2d):
    """Nearest x2 in space (and in time for all frames but the first), then a 3x3 conv per frame."""

    def __init__(self, channels: int, compress_time: bool):
        super().__init__(channels, channels, kernel_size=3, padding=1)
        self.compress_time = compress_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = F.interpolate(x[:, :, 0], scale_factor=2.0)[:, :, None]
        if self.compress_time and x.shape[2] > 1:
            x = torch.cat([first, F.interpolate(x[:, :, 1:], scale_factor=2.0)], dim=2)
        elif x.shape[2] == 1:
            x = first
        else:
            x = rearrange(F.interpolate(rearrange(x, "b c f h w -> b (c f) h w"), scale_factor=2.0),
                          "b (c f) h w -> b c f h w", f=x.shape[2])
        return _per_frame(self, x)


class SpatialNorm(nn.Module):
    """Decoder norm: GroupNorm(32) of the features, scaled and shifted by the resized latent."""

    def __init__(self, channels: int, latent_channels: int, causal: bool = False):
        super().__init__()
        self.norm = GroupNorm3d(32, channels, causal)
        self.to_scale = nn.Conv3d(latent_channels, channels, kernel_size=1)
        self.to_shift = nn.Conv3d(latent_channels, channels, kernel_size=1)

    def forward(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        frames = f.shape[2]
        if frames > 1 and frames % 2:
            # the first latent frame maps onto the first feature frame, the rest onto the rest
            z = torch.cat([
                F.interpolate(z[:, :, :1], size=(1, *f.shape[-2:])),
                F.interpolate(z[:, :, 1:], size=(frames - 1, *f.shape[-2:])),
            ], dim=2)
        else:
            z = F.interpolate(z, size=f.shape[-3:])
        return self.norm(f) * self.to_scale(z) + self.to_shift(z)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cfg: VAEConfig, spatial_norm: bool = False):
        super().__init__()
        if spatial_norm:
            self.norm1 = SpatialNorm(cin, cfg.latent_channels, cfg.causal_norm)
            self.norm2 = SpatialNorm(cout, cfg.latent_channels, cfg.causal_norm)
        else:
            self.norm1 = GroupNorm3d(cfg.norm_num_groups, cin, cfg.causal_norm)
            self.norm2 = GroupNorm3d(cfg.norm_num_groups, cout, cfg.causal_norm)
        self.conv1 = CausalConv3d(cin, cout)
        self.conv2 = CausalConv3d(cout, cout)
        self.shortcut = nn.Conv3d(cin, cout, kernel_size=1) if cin != cout else None

    def _norm(self, norm: nn.Module, h: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return norm(h) if z is None else norm(h, z)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self._norm(self.norm1, x, z)))
        h = self.conv2(F.silu(self._norm(self.norm2, h, z)))
        return (x if self.shortcut is None else self.shortcut(x)) + h


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cfg: VAEConfig, downsample: bool, compress_time: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(cin if i == 0 else cout, cout, cfg) for i in range(cfg.layers_per_block)
        )
        self.downsample = Downsample(cout, compress_time) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsample is None else self.downsample(x)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cfg: VAEConfig, upsample: bool, compress_time: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(cin if i == 0 else cout, cout, cfg, spatial_norm=True)
            for i in range(cfg.layers_per_block + 1)
        )
        self.upsample = Upsample(cout, compress_time) if upsample else None

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x, z)
        return x if self.upsample is None else self.upsample(x)


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = cfg.block_out_channels
        self.conv_in = CausalConv3d(cfg.in_channels, ch[0])
        self.down = nn.ModuleList(
            DownBlock(ch[max(i - 1, 0)], ch[i], cfg, i < len(ch) - 1, i < cfg.temporal_levels)
            for i in range(len(ch))
        )
        self.mid = nn.ModuleList(ResnetBlock(ch[-1], ch[-1], cfg) for _ in range(2))
        self.norm_out = GroupNorm3d(cfg.norm_num_groups, ch[-1], cfg.causal_norm)
        self.conv_out = CausalConv3d(ch[-1], 2 * cfg.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.down:
            h = block(h)
        for resnet in self.mid:
            h = resnet(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = list(reversed(cfg.block_out_channels))
        zc = cfg.latent_channels
        self.conv_in = CausalConv3d(zc, ch[0])
        self.mid = nn.ModuleList(ResnetBlock(ch[0], ch[0], cfg, spatial_norm=True) for _ in range(2))
        self.up = nn.ModuleList(
            UpBlock(ch[max(i - 1, 0)], ch[i], cfg, i < len(ch) - 1, i < cfg.temporal_levels)
            for i in range(len(ch))
        )
        self.norm_out = SpatialNorm(ch[-1], zc, cfg.causal_norm)
        self.conv_out = CausalConv3d(ch[-1], cfg.in_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for resnet in self.mid:
            h = resnet(h, z)
        for block in self.up:
            h = block(h, z)
        return self.conv_out(F.silu(self.norm_out(h, z)))


@dataclass
class Posterior:
    """Diagonal Gaussian over latents; `moments` = [mean | logvar] along channels."""

    moments: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.moments.chunk(2, dim=1)[0]

    @property
    def logvar(self) -> torch.Tensor:
        return self.moments.chunk(2, dim=1)[1].clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * noise; noise drawn on the CPU from `generator` unless given."""
        if noise is None:
            noise = torch.randn(self.mean.shape, generator=generator, dtype=torch.float32)
        return self.mean + self.std * noise.to(self.moments.device, self.moments.dtype)

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), summed over all but the batch axis."""
        var = self.logvar.exp()
        return 0.5 * (self.mean.pow(2) + var - 1.0 - self.logvar).flatten(1).sum(dim=1)


class STVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> Posterior:
        """Pixels (B, 3, F, H, W) in [-1, 1], H and W multiples of 8 -> posterior over latents."""
        return Posterior(self.encoder(x.to(self.encoder.conv_in.weight.dtype)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, T, h, w) -> pixels (B, 3, decoded_frames(T), 8h, 8w), roughly [-1, 1]."""
        return self.decoder(z.to(self.decoder.conv_in.weight.dtype))
