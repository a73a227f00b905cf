"""Build models from checkpoint files, in either format, without a second copy in memory.

Models are constructed on the meta device (no allocation, no random init), the checkpoint's
tensors are read one by one straight onto the target device and dtype, and handed to the
model with `load_state_dict(assign=True)`: the loaded tensors become the parameters.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lavin_cli.config import DiTConfig, VAEConfig
from lavin_cli.errors import CheckpointError, UsageError
from lavin_cli.io.files import atomic_path, file_kind
from lavin_cli.models import int8
from lavin_cli.models.dit import JDiT
from lavin_cli.models.vae import STVAE
from lavin_cli.store import checkpoints as ck


def build(config: DiTConfig | VAEConfig, device="cpu", dtype=torch.float32, init: bool = True):
    """A fresh model; `init=False` leaves it on the meta device, unallocated."""
    cls = JDiT if isinstance(config, DiTConfig) else STVAE
    if not init:
        with torch.device("meta"):
            return cls(config)
    model = cls(config)
    if isinstance(model, JDiT):
        model.init_weights()
    return model.to(device=device, dtype=dtype)


def parameter_count(config: DiTConfig | VAEConfig) -> int:
    return sum(p.numel() for p in build(config, init=False).parameters())


def check_finite(state, label: str) -> None:
    """Refuse weights holding NaN or infinity (a corrupt file predicts black images otherwise)."""
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(f"{label}: {len(bad)} weight tensor(s) hold NaN or infinite values ({shown}); "
                              "the file is corrupt: download or convert it again")


def assign(model, state, label: str):
    """Put `state` into a model built on the meta device: shapes and finiteness checked (errors
    name `label`), tensors assigned without a copy, the model returned in eval mode, frozen."""
    ck.check_shapes(model, state, label)
    check_finite(state, label)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _lavin_metadata(path: Path) -> dict | None:
    """The metadata of one of our safetensors files (read once), None for any other file."""
    if path.suffix != ".safetensors":
        return None
    meta = ck.read_metadata(path)
    return meta if meta.get("format") == ck.FORMAT else None


def saved_int8(dit_path) -> bool:
    """Whether a DiT file was saved with int8 blocks (lavin convert --quantize int8)."""
    path = Path(dit_path)
    meta = _lavin_metadata(path) if path.is_file() else None
    return bool(meta and meta.get("quantization"))


def peek_configs(dit_path, vae_path) -> tuple[DiTConfig, VAEConfig]:
    """The configs of two checkpoint files without loading their tensors (for memory planning)."""
    dit_path, vae_path = Path(dit_path), Path(vae_path)
    if (dit_meta := _lavin_metadata(dit_path)) is not None:
        dit_cfg = ck.config_from_metadata(dit_meta, dit_path)
    else:
        shapes, _ = ck.safetensors_reader(dit_path, torch.device("cpu"), None)
        dit_cfg = ck.infer_dit_config(shapes, dit_path)
    if (vae_meta := _lavin_metadata(vae_path)) is not None:
        vae_cfg = ck.config_from_metadata(vae_meta, vae_path)
    else:
        raw = ck.load_torch_state_dict(vae_path)  # memory-mapped where the file allows it
        vae_cfg = ck.infer_vae_config({k: tuple(v.shape) for k, v in raw.items()}, vae_path)
    return dit_cfg, vae_cfg


def load_dit(path, config: DiTConfig | None = None, device="cpu", dtype=torch.float32, quantize: bool = False) -> JDiT:
    """A J-DiT from our safetensors or from the official `lavin_dit.safetensors`.

    Official files carry no config: pass `config`, or it is inferred by matching the presets.
    Ours carry theirs: a `config` of another shape is refused, not ignored. `quantize`: the
    blocks' matrices in int8 (models/int8.py) as they are read; a file saved quantized loads
    quantized whatever is asked.
    """
    path = Path(path)
    if not path.is_file():
        kind = file_kind(path)
        raise CheckpointError(f"{path}: " + (f"is {kind}, not a DiT checkpoint" if kind else "DiT checkpoint not found"))
    meta = _lavin_metadata(path)
    scheme = meta.get("quantization") if meta is not None else None
    shapes, get = ck.safetensors_reader(path, torch.device(device), None if quantize or scheme else dtype)
    if meta is not None:
        cfg = ck.config_from_metadata(meta, path)
        if not isinstance(cfg, DiTConfig):
            raise CheckpointError(f"{path}: holds a {type(cfg).__name__}, not a DiT")
        if config is not None and not config.same_shape(cfg):
            raise UsageError(f"{path}: a lavin file, whose own config (hidden {cfg.hidden_size}, depth {cfg.depth}) is "
                             f"not the one given (hidden {config.hidden_size}, depth {config.depth}); a preset is "
                             "for official files, which carry none: leave it out")
        if scheme:
            return _load_quantized(path, scheme, cfg, shapes, get, dtype)
        state = {k: get(k) for k in shapes}
    else:
        cfg = config or ck.infer_dit_config(shapes, path)
        state = ck.from_official(get, set(shapes), ck.dit_plan(cfg), str(path))
    if quantize:  # from the stored values, so that every load of a file quantizes it alike
        return build_int8(cfg, state, dtype, str(path))
    return assign(build(cfg, init=False), state, str(path))


def build_int8(cfg: DiTConfig, state: dict, dtype, label: str) -> JDiT:
    """A DiT with int8 blocks from a float state dict as stored (emptied as it is quantized)."""
    model = int8.quantize_blocks(build(cfg, init=False))
    return assign(model, int8.quantize_state(model, state, dtype), label)


def _load_quantized(path: Path, scheme: str, cfg: DiTConfig, shapes, get, dtype) -> JDiT:
    """A DiT saved with int8 blocks (`get` reads as stored): int8 weights and float32 scales as
    they are, the rest in `dtype`."""
    if scheme != int8.SCHEME:
        raise CheckpointError(f"{path}: quantized as {scheme!r}, which this lavin does not read (it reads "
                              f"{int8.SCHEME!r}); convert the original weights again with lavin convert --quantize")
    model = int8.quantize_blocks(build(cfg, init=False))
    kept = int8.int8_keys(model)
    state = {k: get(k) if k in kept else get(k).to(dtype) for k in shapes}
    return assign(model, state, str(path))


def load_vae(path, config: VAEConfig | None = None, device="cpu", dtype=torch.float32) -> STVAE:
    """An ST-VAE from our safetensors or the official `stvae.pt` (weights_only pickle)."""
    path = Path(path)
    if not path.is_file():
        kind = file_kind(path)
        raise CheckpointError(f"{path}: " + (f"is {kind}, not a VAE checkpoint" if kind else "VAE checkpoint not found"))
    if (meta := _lavin_metadata(path)) is not None:
        cfg = ck.config_from_metadata(meta, path)
        if not isinstance(cfg, VAEConfig):
            raise CheckpointError(f"{path}: holds a {type(cfg).__name__}, not a VAE")
        shapes, get = ck.safetensors_reader(path, torch.device(device), dtype)
        state = {k: get(k) for k in shapes}
    else:
        if path.suffix == ".safetensors":  # official layout saved as safetensors
            shapes, get = ck.safetensors_reader(path, torch.device(device), dtype)
        else:
            raw = ck.load_torch_state_dict(path)
            shapes = {k: tuple(v.shape) for k, v in raw.items()}
            get = lambda k: raw[k].to(device=device, dtype=dtype)  # noqa: E731
        cfg = config or ck.infer_vae_config(shapes, path)
        state = ck.from_official(get, set(shapes), ck.vae_plan(cfg), str(path))
    return assign(build(cfg, init=False), state, str(path))


def save(model: JDiT | STVAE, path, extra: dict[str, str] | None = None) -> None:
    """Our format: safetensors with the config in its metadata (and the int8 scheme, if any)."""
    if int8.is_quantized(model):
        extra = {**(extra or {}), "quantization": int8.SCHEME}
    ck.save_lavin(Path(path), model.state_dict(), model.cfg, extra)


def export_official(model: JDiT | STVAE, path) -> None:
    """Write the official layout: DiT as safetensors, VAE as a torch pickle {"state_dict": ...}."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    if int8.is_quantized(model):
        raise UsageError("the official layout has no int8 weights: export the original (unquantized) weights")
    with atomic_path(Path(path), errors=(SafetensorError, RuntimeError)) as tmp:
        if isinstance(model, JDiT):
            save_file(ck.to_official(model.state_dict(), ck.dit_plan(model.cfg)), str(tmp))
        else:
            torch.save({"state_dict": ck.to_official(model.state_dict(), ck.vae_plan(model.cfg))}, str(tmp))


def save_model_folder(folder, dit: JDiT, vae: STVAE, name: str, size: int, description: str = "", **extra) -> Path:
    """Write a lavin model folder: dit.safetensors, vae.safetensors and model.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save(dit, folder / "dit.safetensors")
    save(vae, folder / "vae.safetensors")
    from lavin_cli.store.folders import write_model_json

    write_model_json(folder, {"name": name, "size": size, "description": description, **extra})
    return folder
