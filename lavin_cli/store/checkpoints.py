"""Checkpoint files: official <-> lavin key mapping, safe loading, our safetensors format.

Official files (as published in DerrickWang005/LaVin-DiT):
    lavin_dit.safetensors   plain state dict, official key names
    stvae.pt                torch pickle {"state_dict": ...}; read only with weights_only=True
Our files: safetensors whose metadata holds {"format": "lavin/1", "component": "dit"|"vae",
"config": <json>}; keys are our module names (q/k/v and gate/up projections fused).

A key plan lists, for every tensor of our model, the official tensors it is made of (one, or
several concatenated along dim 0). The same plan converts in both directions.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lavin_cli.config import DIT_PRESETS, DiTConfig, VAEConfig, from_json, to_json
from lavin_cli.errors import CheckpointError, ConfigError
from lavin_cli.io.files import atomic_path

FORMAT = "lavin/1"


@dataclasses.dataclass(frozen=True)
class Entry:
    ours: str
    official: tuple[str, ...]
    sizes: tuple[int, ...]  # rows each official part contributes (dim 0)


def _dit_block_plan(i: int, cfg: DiTConfig) -> list[Entry]:
    d, q, kv, f = cfg.hidden_size, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim, cfg.mlp_hidden
    out: list[Entry] = []
    for ours, off in (("cond", "cond"), ("target", "x")):
        a, b = f"blocks.{i}.{ours}", f"blocks.{i}"
        att = f"{b}.joint_attn.{off}"
        out += [
            Entry(f"{a}.qkv.weight", (f"{att}_q.weight", f"{att}_k.weight", f"{att}_v.weight"), (q, kv, kv)),
            Entry(f"{a}.q_norm", (f"{att}_qnorm.weight",), (q,)),
            Entry(f"{a}.k_norm", (f"{att}_knorm.weight",), (kv,)),
            Entry(f"{a}.out.weight", (f"{att}_proj.weight",), (d,)),
            Entry(f"{a}.mlp.gate_up.weight", (f"{b}.{off}_mlp.gate_proj.weight", f"{b}.{off}_mlp.up_proj.weight"), (f, f)),
            Entry(f"{a}.mlp.down.weight", (f"{b}.{off}_mlp.down_proj.weight",), (d,)),
            Entry(f"{a}.mod.weight", (f"{b}.{off}_modulation.1.weight",), (4 * d,)),
            Entry(f"{a}.mod.bias", (f"{b}.{off}_modulation.1.bias",), (4 * d,)),
        ]
    return out


def dit_plan(cfg: DiTConfig) -> list[Entry]:
    d, p = cfg.hidden_size, cfg.patch_dim
    renames = [
        ("cond_embed.proj.weight", "cond_embedder.0.weight", d), ("cond_embed.proj.bias", "cond_embedder.0.bias", d),
        ("cond_embed.norm.weight", "cond_embedder.1.weight", d), ("cond_embed.norm.bias", "cond_embedder.1.bias", d),
        ("target_embed.proj.weight", "x_embedder.0.weight", d), ("target_embed.proj.bias", "x_embedder.0.bias", d),
        ("target_embed.norm.weight", "x_embedder.1.weight", d), ("target_embed.norm.bias", "x_embedder.1.bias", d),
        ("cond_type", "prompt_embed", 1), ("target_type", "answer_embed", 1),
        ("time_embed.fc1.weight", "t_embedder.mlp.0.weight", d), ("time_embed.fc1.bias", "t_embedder.mlp.0.bias", d),
        ("time_embed.fc2.weight", "t_embedder.mlp.2.weight", d), ("time_embed.fc2.bias", "t_embedder.mlp.2.bias", d),
        ("final.mod.weight", "final_layer.adaLN_modulation.1.weight", d),
        ("final.mod.bias", "final_layer.adaLN_modulation.1.bias", d),
        ("final.proj.weight", "final_layer.linear.weight", p), ("final.proj.bias", "final_layer.linear.bias", p),
    ]
    plan = [Entry(o, (f,), (n,)) for o, f, n in renames]
    for i in range(cfg.depth):
        plan += _dit_block_plan(i, cfg)
    return plan


# official VAE name -> ours, applied in order; each is a plain substring rule so it can be inverted
_VAE_RULES = [
    (".down_blocks.", ".down."), (".up_blocks.", ".up."), (".mid_block.resnets.", ".mid."),
    (".downsamplers.0.conv.", ".downsample."), (".upsamplers.0.conv.", ".upsample."),
    (".conv_shortcut.", ".shortcut."), (".norm_layer.", ".norm."),
    (".conv_y.conv.", ".to_scale."), (".conv_b.conv.", ".to_shift."),
]
_CAUSAL_OURS = re.compile(r"\.(conv_in|conv_out|conv1|conv2)\.(weight|bias)$")


def vae_ours_to_official(key: str) -> str:
    key = _CAUSAL_OURS.sub(r".\1.conv.\2", key)
    for old, new in reversed(_VAE_RULES):
        key = key.replace(new, old)
    return key


def vae_plan(cfg: VAEConfig) -> list[Entry]:
    from lavin_cli.models.vae import STVAE

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in STVAE(cfg).state_dict().items()}
    return [Entry(k, (vae_ours_to_official(k),), (s[0],)) for k, s in shapes.items()]


def to_official(state: Mapping[str, torch.Tensor], plan: list[Entry]) -> dict[str, torch.Tensor]:
    """Our state dict -> official key names (fused tensors split back into their parts)."""
    out: dict[str, torch.Tensor] = {}
    for e in plan:
        for name, part in zip(e.official, state[e.ours].split(list(e.sizes), dim=0)):
            out[name] = part.contiguous()
    return out


def from_official(get, names: set[str], plan: list[Entry], label: str) -> dict[str, torch.Tensor]:
    """Official tensors (fetched one by one through `get(name)`) -> our key names.

    Missing and unexpected names are an error that lists them (the official loader ignores them).
    """
    wanted = {n for e in plan for n in e.official}
    missing, unexpected = sorted(wanted - names), sorted(names - wanted)
    if missing or unexpected:
        raise CheckpointError(f"{label}: {_describe(missing, 'missing')}{_describe(unexpected, 'unexpected')}".rstrip("; "))
    return {e.ours: get(e.official[0]) if len(e.official) == 1 else torch.cat([get(n) for n in e.official])
            for e in plan}


def _describe(keys: list[str], what: str) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return f"{len(keys)} {what} key(s): {shown}; "


def check_shapes(model: torch.nn.Module, state: Mapping[str, torch.Tensor], label: str) -> None:
    """Compare against the model built on the meta device; name every mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
           for k in sorted(set(expected) & set(state)) if state[k].shape != expected[k].shape]
    if missing or unexpected or bad:
        msg = _describe(missing, "missing") + _describe(unexpected, "unexpected") + _describe(bad, "mis-shaped")
        raise CheckpointError(f"{label}: {msg.rstrip('; ')}")


# ---------------------------------------------------------------- reading files


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def safetensors_reader(path: Path, device: torch.device, dtype: torch.dtype | None):
    """(shapes, get) for a safetensors file; `get` reads one tensor onto `device` in `dtype`."""
    try:
        handle = safe_open(str(path), framework="pt", device=str(device))
        shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None

    def get(name: str) -> torch.Tensor:
        try:
            t = handle.get_tensor(name)
        except (OSError, SafetensorError) as exc:
            raise CheckpointError(f"{path}: tensor {name} could not be read ({(str(exc).splitlines() or [''])[0][:120]}); "
                                  "the file is damaged or unreadable") from None
        return t if dtype is None else t.to(dtype)

    return shapes, get


def load_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The official stvae.pt: a torch pickle {"state_dict": {name: tensor}}.

    Read with weights_only=True (no arbitrary code can run); anything but a dict of tensors is
    refused.
    """
    import warnings

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the error below says what matters
            warnings.simplefilter("ignore")
            try:
                obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "Weights only load failed" in first:
            raise CheckpointError(f"{path}: refused: it holds code or objects, not only tensors (read with "
                                  "weights_only, nothing in it ran)") from None
        raise CheckpointError(f"{path}: unreadable torch checkpoint ({first[:200]})") from None
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict with a 'state_dict' entry, as the official stvae.pt")
    odd = [k for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if odd:
        raise CheckpointError(f"{path}: state_dict holds non-tensor entries: {odd[:5]}")
    return state


def infer_dit_config(shapes: Mapping[str, tuple[int, ...]], path: Path | str = "DiT file") -> DiTConfig:
    """Pick the preset whose shapes match an official DiT file (heads cannot be read off shapes);
    none matching is refused naming the closest preset and what differs."""
    closest = None
    for name, cfg in DIT_PRESETS.items():
        want = {n for e in dit_plan(cfg) for n in e.official}
        missing, extra = sorted(want - set(shapes)), sorted(set(shapes) - want)
        if not missing and not extra and shapes["cond_embedder.0.weight"] == (cfg.hidden_size, cfg.patch_dim) \
                and shapes["blocks.0.joint_attn.cond_k.weight"][0] == cfg.num_kv_heads * cfg.head_dim:
            return cfg
        if closest is None or len(missing) + len(extra) < len(closest[1]) + len(closest[2]):
            closest = (name, missing, extra)
    name, missing, extra = closest
    detail = "; ".join(part for part in (f"{len(missing)} keys missing, e.g. {missing[0]}" if missing else "",
                                         f"{len(extra)} not expected, e.g. {extra[0]}" if extra else "") if part) \
        or "the key names match, the widths do not"
    raise CheckpointError(f"{path}: matches no DiT preset (closest {name}: {detail}); if it is a J-DiT, give --preset "
                          f"NAME ({', '.join(DIT_PRESETS)})")


def infer_vae_config(shapes: Mapping[str, tuple[int, ...]], path: Path | str = "VAE file") -> VAEConfig:
    """Read block widths, depth and latent size off an official VAE state dict."""
    try:
        blocks = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("encoder.down_blocks.")})
        channels = tuple(shapes[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"][0] for i in blocks)
        layers = len({k.split(".")[4] for k in shapes if k.startswith("encoder.down_blocks.0.resnets.")})
        latent = shapes["decoder.conv_in.conv.weight"][1]
        cin = shapes["encoder.conv_in.conv.weight"][1]
    except (KeyError, IndexError, ValueError) as exc:
        key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
        what = f"it lacks {key}" if key else "its encoder blocks cannot be read"
        raise CheckpointError(f"{path}: not the official ST-VAE layout ({what}; {len(shapes)} tensors)") from None
    return VAEConfig(block_out_channels=channels, layers_per_block=layers, latent_channels=latent, in_channels=cin)


def save_lavin(path: Path, state: Mapping[str, torch.Tensor], config: DiTConfig | VAEConfig, extra=None) -> None:
    """Write our format (config in the metadata) atomically."""
    component = "dit" if isinstance(config, DiTConfig) else "vae"
    meta = {"format": FORMAT, "component": component, "config": to_json(config), **(extra or {})}
    with atomic_path(path, errors=(SafetensorError,)) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)


def config_from_metadata(meta: Mapping[str, str], path: Path) -> DiTConfig | VAEConfig:
    cls = {"dit": DiTConfig, "vae": VAEConfig}.get(meta.get("component", ""))
    if cls is None or "config" not in meta:
        raise CheckpointError(f"{path}: lavin metadata without a component config")
    try:
        return from_json(cls, meta["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: bad config in the file's metadata: {exc}") from None
