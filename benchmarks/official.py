"""The official LaVin-DiT code beside lavin, on the same weights and inputs (for the GPU scripts).

The official source is never part of this project: fetch DerrickWang005/LaVin-DiT into a folder
git ignores and name it with $LAVIN_OFFICIAL_DIR; its GPU-only imports (apex, flash-attn) are
stood in for by ../shared/official/shims.py (torch norms, SDPA), or by $LAVIN_OFFICIAL_SHIMS.
`predict` follows the official inference.py `generate()` line by line, except that the random
numbers (posterior noise, initial noise) are given, so that lavin can be fed the same ones.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch

from lavin_cli.store import checkpoints as ck

ROOT = Path(__file__).resolve().parent.parent
SHIFT, SCALE = 0.032470703125, 1.08936170213  # official inference.py


def missing() -> str | None:
    """Why the official code cannot run here, or None."""
    source = os.environ.get("LAVIN_OFFICIAL_DIR")
    if not source or not Path(source, "lib", "model", "dit.py").is_file():
        return "set LAVIN_OFFICIAL_DIR to a copy of DerrickWang005/LaVin-DiT (lib/model/dit.py)"
    if not (_shims_dir() / "shims.py").is_file():
        return f"no shims.py in {_shims_dir()} (set LAVIN_OFFICIAL_SHIMS)"
    return None


def _shims_dir() -> Path:
    return Path(os.environ.get("LAVIN_OFFICIAL_SHIMS") or ROOT.parent / "shared" / "official")


def modules():
    """The official modules (dit, vae3d, transport), imported through the shims."""
    sys.path.insert(0, str(_shims_dir()))
    import shims

    return shims.import_official()


@contextlib.contextmanager
def no_init():
    """Build modules without their (slow, about to be overwritten) random initialisation."""
    names = ("kaiming_uniform_", "uniform_", "normal_", "xavier_uniform_", "constant_", "zeros_", "ones_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for n in names:
        setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)


def official_dit(o, dit) -> torch.nn.Module:
    """The official LaVinDiT holding lavin `dit`'s weights (same device and dtype)."""
    cfg = dit.cfg
    with no_init():
        model = o.dit.LaVinDiT(patch_size=[cfg.patch_size, cfg.patch_size], in_channels=cfg.in_channels,
                               hidden_size=cfg.hidden_size, depth=cfg.depth, num_heads=cfg.num_heads,
                               kv_group=cfg.kv_group)
    return _load(model, ck.to_official(dit.state_dict(), ck.dit_plan(cfg)), dit)


def official_vae(o, vae) -> torch.nn.Module:
    cfg = vae.cfg
    with no_init():
        model = o.vae3d.AutoencoderKLSTVAE(block_out_channels=tuple(cfg.block_out_channels),
                                           latent_channels=cfg.latent_channels, layers_per_block=cfg.layers_per_block,
                                           norm_num_groups=cfg.norm_num_groups,
                                           temporal_compression_ratio=cfg.temporal_ratio,
                                           tile_sample_min_size=512, tile_sample_min_size_t=129)
    return _load(model, ck.to_official(vae.state_dict(), ck.vae_plan(cfg)), vae)


def _load(model: torch.nn.Module, state: dict, like: torch.nn.Module) -> torch.nn.Module:
    p = next(like.parameters())
    model = model.to_empty(device=p.device)
    missing_keys, unexpected = model.load_state_dict(state, strict=False)
    assert not missing_keys and not unexpected, (missing_keys[:5], unexpected[:5])
    return model.to(p.dtype).eval().requires_grad_(False)


def sampler(o, steps: int):
    import shims  # its Transport asks for a CUDA generator (used only in training): a CPU one where none

    with shims.cpu_generators():
        transport = o.transport.create_transport(path_type="Linear", prediction="velocity", loss_weight="velocity",
                                                 train_eps=0.2, sample_eps=0.1, snr_type="lognorm")
    return o.transport.Sampler(transport).sample_ode(sampling_method="euler", num_steps=steps, atol=1e-6,
                                                     rtol=1e-3, reverse=False)


def predict(dit, vae, sample_fn, frames: torch.Tensor, posterior_noise: torch.Tensor, noise: torch.Tensor,
            cfg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """inference.py generate(): frames (T, 3, 1, H, W) in [-1, 1] (pairs then the query) ->
    (final latent (1, C, 1, h, w) float32, uint8 image (1, 3, 1, H, W)). posterior_noise:
    (T, C, 1, h, w); noise: (1, C, 1, h, w)."""
    vae_dtype, dit_dtype = next(vae.parameters()).dtype, next(dit.parameters()).dtype
    with torch.no_grad():
        posterior = vae.encode(frames.to(vae_dtype))
        latent = posterior.mean + posterior.std * posterior_noise.to(posterior.mean)  # posterior.sample()
        latent = latent.sub_(SHIFT).mul_(SCALE)
        cond = latent.permute(2, 1, 0, 3, 4)  # (1, C, T, h, w)
        null = torch.cat([torch.zeros_like(cond[:, :, :1]), cond[:, :, -1:]], dim=2)
        x = noise.repeat(2, 1, 1, 1, 1).to(noise.device, dit_dtype)
        with torch.autocast(noise.device.type, dtype=torch.bfloat16, enabled=dit_dtype == torch.bfloat16):
            z = sample_fn(x, dit.forward_with_cfg, conds=(cond, null), cfg_scale=cfg)[-1][:1]
        image = vae.decode(z.to(vae_dtype).div(SCALE).add(SHIFT))
        image = ((image / 2 + 0.5).clamp(0, 1).float() * 255.0).to(torch.uint8)
    return z.float(), image
