"""`lavin train vae`: train an ST-VAE on generated (or folder) images and clips.

Loss = L1 reconstruction + 0.5 x L1 of image gradients (keeps edges and masks crisp)
       + tone_weight x L1 of mu-law compressed pixels (an error at black counts 13x, at white 0.25x;
         aimed at the detail of dark pictures, low-light inputs, that a task must recover)
       + kl_weight x KL to N(0, I) (per latent element).
Pictures are inputs and targets of the source's tasks, drawn uniformly or under `task_weights`
(more dark pictures, say: the uniform mix shows the VAE few of them).
The VAE is strictly causal (`causal_norm=True`). The checkpoint written is the EMA of the
weights; the latent normalisation (shift, scale) is measured on generated data at each save so
that normalised latents have mean 0 and unit variance, as the DiT expects.

With `decoder_only` (from --init weights) the encoder is frozen and its latent normalisation
kept: the latents do not change, so every DiT trained in them stays valid, and the decoder
learns to draw new material (real photos, say) from them; the KL term, a function of the
encoder alone, is left out.
"""

from __future__ import annotations

import contextlib

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lavin_cli.config import VAEConfig
from lavin_cli.errors import OptionError, UsageError
from lavin_cli.inference.options import check_int, check_number, check_size
from lavin_cli.models.vae import STVAE, Posterior
from lavin_cli.store import weights
from lavin_cli.training import loop
from lavin_cli.training.data import Source, check_task_weights


@dataclass(frozen=True)
class VAETrainConfig:
    steps: int = 2000
    batch: int = 16
    lr: float = 4e-4
    kl_weight: float = 1e-4
    video_fraction: float = 0.2  # share of steps that train on 5-frame clips
    size: int = 64
    seed: int = 0
    ema: float = 0.999
    save_every: int = 250
    channels: tuple[int, ...] | None = None  # None: (32, 32, 64, 64) for a fresh VAE; with init, its own
    layers_per_block: int | None = None  # None: 1 for a fresh VAE; with init, its own
    bf16: bool = False
    lr_final: float = 1.0  # learning rate at the last step, as a fraction of lr (cosine decay)
    task_weights: tuple[tuple[str, float], ...] = ()  # relative draw weight per task (others: 1)
    tone_weight: float = 0.0  # weight of the mu-law (dark-weighted) L1 term
    decoder_only: bool = False  # freeze the encoder (and the latent normalisation): DiTs stay valid

    def __post_init__(self) -> None:
        """Checked when made, as RunOptions are: a bad value never reaches torch."""
        check_int("steps", self.steps, 1)
        check_int("batch", self.batch, 1, 4096)
        check_number("lr", self.lr, 0.0, 1.0, above=True)
        check_number("kl_weight", self.kl_weight, 0.0)
        check_number("video_fraction", self.video_fraction, 0.0, 1.0)
        check_size("size", self.size)
        check_int("seed", self.seed, 0, 2**63 - 1)
        check_number("ema", self.ema, 0.0, 0.999999)
        check_int("save_every", self.save_every, 1)
        if self.channels is not None and (len(self.channels) != 4 or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 32 or c % 32 for c in self.channels)):
            raise OptionError("channels", f"must be four widths, multiples of 32, got {','.join(map(str, self.channels))}")
        if self.layers_per_block is not None:
            check_int("layers", self.layers_per_block, 1, 16)
        check_number("lr_final", self.lr_final, 0.0, 1.0)
        check_number("tone_weight", self.tone_weight, 0.0)
        if not isinstance(self.decoder_only, bool):
            raise OptionError("decoder_only", f"must be True or False, got {self.decoder_only!r}")


def _grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(a) - dx(b)).abs().mean() + (dy(a) - dy(b)).abs().mean()


MU = 50.0  # mu-law strength: slope 12.7 at black, 0.25 at white, relative to the mean slope 1


def mu_law(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] pixels -> [0, 1] mu-law compressed (dark values spread out, as the eye and a gain do)."""
    u = ((x + 1) / 2).clamp(0, 1)
    return torch.log1p(MU * u) / math.log1p(MU)


def vae_loss(vae: STVAE, x: torch.Tensor, generator: torch.Generator, kl_weight: float,
             bf16: bool = False, tone_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """x: (B, 3, F, H, W) in [-1, 1]; the networks under bf16 autocast with `bf16`, the loss in float32.
    A frozen encoder (no parameter needing a gradient) runs without autograd."""
    frozen = not any(p.requires_grad for p in vae.encoder.parameters())
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        with torch.no_grad() if frozen else contextlib.nullcontext():
            post = Posterior(vae.encoder(x).float())
            z = post.sample(generator=generator)
        rec = vae.decoder(z).float()
    l1 = (rec - x).abs().mean()
    grad = _grad_l1(rec, x)
    kl = post.kl().mean() / z[0].numel()
    loss = l1 + 0.5 * grad + (0.0 if frozen else kl_weight) * kl
    parts = {"l1": l1.item(), "grad": grad.item(), "kl": kl.item()}
    if tone_weight:
        # mu_law clamps rec to [-1, 1] as decoding does: no pull on values the output clips anyway
        tone = (mu_law(rec) - mu_law(x)).abs().mean() * 2  # x2: the same scale as l1 on [-1, 1]
        loss = loss + tone_weight * tone
        parts["tone"] = tone.item()
    return loss, parts


def _batch(source: Source, rng: np.random.Generator, cfg: VAETrainConfig, video: bool) -> torch.Tensor:
    if video:
        frames = source.clips(rng, max(1, cfg.batch // 4), cfg.size, cfg.task_weights)  # (n, 5, H, W, 3)
    else:
        frames = source.images(rng, cfg.batch, cfg.size, cfg.task_weights)[:, None]  # (n, 1, H, W, 3)
    return torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() * 2 - 1


@torch.no_grad()
def latent_stats(vae: STVAE, source: Source, size: int, seed: int = 12345, n: int = 128) -> tuple[float, float]:
    """(mean, std) of posterior samples on generated images: the DiT normalisation."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(source.images(rng, n, size)).permute(0, 3, 1, 2)[:, :, None].float() * 2 - 1
    z = vae.encode(x).sample(generator=torch.Generator().manual_seed(seed))
    return z.mean().item(), z.std().item()


def train_vae(out: Path, source: Source, cfg: VAETrainConfig, resume: bool = False, init: Path | None = None,
              callback: loop.Callback = None, guard: loop.Guard = contextlib.nullcontext, overwrite: bool = False) -> Path:
    """Train (or resume) an ST-VAE into `out`; `guard()` wraps each optimizer step (see train_dit)."""
    check_task_weights(cfg.task_weights, source.task_names)
    if cfg.decoder_only and init is None:
        raise UsageError("--decoder-only trains the decoder of a trained VAE: give its weights with --init")
    torch.manual_seed(cfg.seed)
    vae = weights.load_vae(init) if init else weights.build(
        VAEConfig(block_out_channels=cfg.channels or (32, 32, 64, 64), layers_per_block=cfg.layers_per_block or 1,
                  causal_norm=True))
    for flag, given, own in (("--channels", cfg.channels, tuple(vae.cfg.block_out_channels)),
                             ("--layers", cfg.layers_per_block, vae.cfg.layers_per_block)):
        if init and given is not None and given != own:
            text = [",".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in (given, own)]
            raise UsageError(f"{flag} {text[0]}: the VAE of --init {init} has {text[1]}; leave {flag} out (a "
                             "fine-tune keeps its VAE's shape)")
    loop.prepare_folder(out, "vae_state.pt", "vae.safetensors", resume, overwrite)
    vae.requires_grad_(True).train()
    vae.encoder.requires_grad_(not cfg.decoder_only)
    trained = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ema = loop.EMA(vae, cfg.ema)
    state_path, step = out / "vae_state.pt", 0
    if resume:
        step = loop.load_state(state_path, vae, ema, opt)
    log = loop.Log(out / "vae_log.jsonl")
    saved = step
    try:
        while step < cfg.steps:
            rng = np.random.default_rng(loop.step_seed(cfg.seed, step))
            video = rng.random() < cfg.video_fraction
            x = _batch(source, rng, cfg, video)
            for group in opt.param_groups:
                group["lr"] = loop.learning_rate(cfg.lr, step, cfg.steps, 200, cfg.lr_final)
            loss, parts = vae_loss(vae, x, torch.Generator().manual_seed(loop.step_seed(cfg.seed, step, 1)), cfg.kl_weight,
                                   cfg.bf16, cfg.tone_weight)
            with guard():  # the step and its log line, whole
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, 1.0)
                opt.step()
                ema.update(vae, step)
                step += 1
                rate = log.write(step, loss=round(loss.item(), 5), video=bool(video), **{k: round(v, 5) for k, v in parts.items()})
            if callback:
                callback(loop.StepInfo(step, cfg.steps, loss.item(), rate, parts))
            if step % cfg.save_every == 0 or step == cfg.steps:
                _save(out, vae, ema, opt, step, cfg, source)
                saved = step
    except KeyboardInterrupt:  # SIGINT / SIGTERM: the steps done are kept, --resume goes on from them
        if step > saved:
            _save(out, vae, ema, opt, step, cfg, source)
        raise
    return out / "vae.safetensors"


def _save(out: Path, vae: STVAE, ema: loop.EMA, opt, step: int, cfg: VAETrainConfig, source: Source) -> None:
    loop.save_state(out / "vae_state.pt", vae, ema, opt, step, dataclasses.asdict(cfg))
    averaged = ema.averaged(vae.cfg)
    if not cfg.decoder_only:  # a frozen encoder keeps its latents, and so their normalisation
        mean, std = latent_stats(averaged, source, cfg.size)
        averaged.cfg = dataclasses.replace(vae.cfg, latent_shift=round(mean, 6), latent_scale=round(1.0 / std, 6))
    weights.save(averaged, out / "vae.safetensors", {"step": str(step), "trained_at": time.strftime("%Y-%m-%d %H:%M")})
