"""Model configurations: frozen dataclasses and their named presets.

`DiTConfig` describes the J-DiT backbone (paper, Table 3), `VAEConfig` the ST-VAE. The presets
are the only place where sizes are written down; everything else derives from a config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any

from lavin_cli.errors import ConfigError


def _rope_split(head_dim: int) -> tuple[int, int, int]:
    """Split a head into (t, h, w) rotary chunks, each of even size.

    The official model uses three equal chunks (head_dim divisible by 6). For other head sizes
    (64 in the 0.1B and 1.0B presets) time gets the largest even third and the two spatial axes
    share the rest equally: 64 -> (20, 22, 22).
    """
    if head_dim % 6 == 0:
        third = head_dim // 3
        return (third, third, third)
    t = (head_dim // 6) * 2
    rest = head_dim - t
    if rest % 4:
        raise ConfigError(f"head_dim {head_dim} cannot be split into even RoPE chunks")
    return (t, rest // 2, rest // 2)


@dataclass(frozen=True)
class DiTConfig:
    """J-DiT backbone. `kv_group` query heads share one key/value head (GQA)."""

    hidden_size: int
    depth: int
    num_heads: int
    kv_group: int = 1
    in_channels: int = 16
    patch_size: int = 2
    time_freq_dim: int = 256
    rope_base: float = 10000.0
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hidden_size", "depth", "num_heads", "kv_group", "in_channels", "patch_size", "time_freq_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.num_heads % self.kv_group:
            raise ConfigError(f"num_heads {self.num_heads} is not a multiple of kv_group {self.kv_group}")
        _rope_split(self.head_dim)

    def same_shape(self, other: "DiTConfig") -> bool:
        """Whether the two configs make the same weights (drop_path is a training setting alone)."""
        return dataclasses.replace(self, drop_path=other.drop_path) == other

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def num_kv_heads(self) -> int:
        return self.num_heads // self.kv_group

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU width: 8/3 of the model width, rounded down to a multiple of 64."""
        return int(8 * self.hidden_size / 3 / 64) * 64

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        return _rope_split(self.head_dim)

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.in_channels


@dataclass(frozen=True)
class VAEConfig:
    """ST-VAE: 2**(len(block_out_channels)-1) spatial and `temporal_ratio` temporal compression."""

    block_out_channels: tuple[int, ...] = (128, 256, 256, 512)
    layers_per_block: int = 3
    latent_channels: int = 16
    in_channels: int = 3
    norm_num_groups: int = 32
    temporal_ratio: int = 4
    # False: GroupNorm statistics over the whole clip (official). True: over frames <= f only,
    # which makes the VAE strictly causal in time (used by the VAEs lavin trains).
    causal_norm: bool = False
    # latent normalisation applied before the DiT (official inference.py constants)
    latent_shift: float = 0.032470703125
    latent_scale: float = 1.08936170213

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(self.block_out_channels))
        if not self.block_out_channels or min(self.block_out_channels) < 1 or self.layers_per_block < 1 \
                or self.latent_channels < 1 or self.latent_scale == 0:
            raise ConfigError("a VAE needs channels, layers and latent channels of at least 1 and a non-zero latent_scale")
        if self.temporal_ratio not in (1, 2, 4, 8):
            raise ConfigError(f"temporal_ratio must be a power of two, got {self.temporal_ratio}")
        if any(c % 32 for c in self.block_out_channels):
            raise ConfigError("decoder spatial norms use 32 groups: channels must be multiples of 32")

    @property
    def spatial_ratio(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def temporal_levels(self) -> int:
        return self.temporal_ratio.bit_length() - 1


DIT_PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(hidden_size=96, depth=2, num_heads=4, kv_group=2),
    "small": DiTConfig(hidden_size=192, depth=6, num_heads=4, kv_group=2),  # the model lavin trains and ships
    "0.1B": DiTConfig(hidden_size=512, depth=12, num_heads=8),
    "1.0B": DiTConfig(hidden_size=1024, depth=28, num_heads=16, drop_path=0.1),
    "3.4B": DiTConfig(hidden_size=2304, depth=22, num_heads=32, kv_group=4, drop_path=0.1),
}

VAE_PRESETS: dict[str, VAEConfig] = {
    "tiny": VAEConfig(block_out_channels=(32, 32, 64, 64), layers_per_block=1),
    "official": VAEConfig(),
}


def dit_preset(name: str) -> DiTConfig:
    try:
        return DIT_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown DiT preset {name!r}; known: {', '.join(DIT_PRESETS)}") from None


def vae_preset(name: str) -> VAEConfig:
    try:
        return VAE_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown VAE preset {name!r}; known: {', '.join(VAE_PRESETS)}") from None


def to_json(config: DiTConfig | VAEConfig) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def from_json(cls: type[DiTConfig] | type[VAEConfig], text: str) -> Any:
    """A config from its JSON, every field checked against its declared type."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{cls.__name__} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no fields {unknown}")
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise ConfigError(f"{cls.__name__}.{name} must be {_describe(hints[name])}, got {value!r}")
    try:
        return cls(**data)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise ConfigError(f"{cls.__name__} is inconsistent ({exc})") from None


def _matches(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, (list, tuple)) and all(_matches(v, typing.get_args(kind)[0]) for v in value)
    return True


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return f"a list of {_describe(typing.get_args(kind)[0])}s"
    return {bool: "true or false", int: "a whole number", float: "a finite number"}.get(kind, str(kind))
