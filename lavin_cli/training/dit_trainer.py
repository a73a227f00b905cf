"""`lavin train dit`: conditional flow matching for the J-DiT, as in the paper.

Per step: every sample of the batch is one task's K context pairs plus a query pair (K drawn
per batch from 1..max_pairs; images or clips); the target latent x1 is noised along the linear
path x_t = t x1 + (1 - t) x0 with logit-normal t, and the DiT regresses the velocity x1 - x0
(MSE + 0.1 L1, as the official loss). 10% of the samples of each batch see the null condition
[zeros, query] so that guidance works. AdamW (paper: lr 1e-4, betas 0.9/0.95, wd 0.01), gradient
clipping 1.0, EMA weights, bf16 autocast (default on CUDA, optional on CPU). Under torchrun the
model is wrapped in DistributedDataParallel and each rank draws its own samples.

The run folder is a model folder (`lavin run --model RUN`): dit.safetensors (EMA weights),
vae.safetensors, model.json and tasks/ with example pairs of every trained task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from lavin_cli.config import dit_preset
from lavin_cli.errors import OptionError, UsageError
from lavin_cli.inference import codec
from lavin_cli.inference.options import check_int, check_number, check_size
from lavin_cli.models.dit import JDiT
from lavin_cli.models.vae import STVAE, Posterior
from lavin_cli.store import folders, weights
from lavin_cli.training import loop
from lavin_cli.training.bank import LatentBank
from lavin_cli.training.data import Source, check_task_weights, task_probabilities
from lavin_cli.training.examples import write_task_folders


@dataclass(frozen=True)
class DiTTrainConfig:
    steps: int = 2000
    batch: int = 32
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    ema: float = 0.9999
    uncond: float = 0.1
    max_pairs: int = 3
    size: int = 64
    seed: int = 0
    video_fraction: float = 0.15
    save_every: int = 200
    warmup: int = 200
    preset: str | None = None  # None: "small" for a fresh model; with init, the init model's own
    bank_slots: int = 256
    bank_period: int = 400
    bf16: bool = False
    lr_final: float = 1.0  # learning rate at the last step, as a fraction of lr (cosine decay)
    task_weights: tuple[tuple[str, float], ...] = ()  # relative draw weight per task (others: 1)
    same_photo: float = 0.0  # photo tasks: the share of samples cropped from one photo (training/photos.py)
    same_photo_tasks: tuple[tuple[str, float], ...] = ()  # that share per task, over same_photo
    depth: int | None = None  # blocks: None keeps the preset's or the init model's; more than init's grows it

    def __post_init__(self) -> None:
        """Checked when made, as RunOptions are: a bad value never reaches torch."""
        check_int("steps", self.steps, 1)
        check_int("batch", self.batch, 1, 4096)
        check_number("lr", self.lr, 0.0, 1.0, above=True)
        check_number("ema", self.ema, 0.0, 0.999999)
        check_number("uncond", self.uncond, 0.0, 0.99)
        check_int("max_pairs", self.max_pairs, 1, 64)
        check_size("size", self.size)
        check_int("seed", self.seed, 0, 2**63 - 1)
        check_number("same_photo", self.same_photo, 0.0, 1.0)
        for task, share in self.same_photo_tasks:
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
                raise OptionError("same_photo", f"{task}={share}: a share must be a number from 0 to 1")
        check_number("video_fraction", self.video_fraction, 0.0, 1.0)
        check_int("save_every", self.save_every, 1)
        if self.depth is not None:
            check_int("depth", self.depth, 1, 1024)
        check_int("warmup", self.warmup, 0)
        check_int("bank_slots", self.bank_slots, 1, 1 << 20)
        if self.bank_slots <= self.max_pairs:
            raise OptionError("bank_slots", f"must be above --max-pairs ({self.max_pairs}): a sample draws "
                              f"{self.max_pairs} context pairs and a query pair, got {self.bank_slots}")
        check_int("bank_period", self.bank_period, 1)
        check_number("lr_final", self.lr_final, 0.0, 1.0)


@dataclass
class Batch:
    cond: torch.Tensor  # (B, C, T_c, h, w) normalised latents
    target: torch.Tensor  # (B, C, T_q, h, w)
    null: torch.Tensor  # (B_null, C, 1 + T_q, h, w) the null condition of the dropped samples
    null_target: torch.Tensor


def _latent(moments: torch.Tensor, vae: STVAE, gen: torch.Generator) -> torch.Tensor:
    """A bank entry's moments (2C, F', h, w) -> a normalised posterior sample (C, F', h, w), as
    inference draws it (lavin_cli.inference.codec)."""
    return codec.sample(Posterior(moments.float()[None]), vae.cfg, generator=gen)[0]


def make_batch(bank: LatentBank, vae: STVAE, source: Source, cfg: DiTTrainConfig, step: int, rank: int) -> Batch:
    rng = np.random.default_rng(loop.step_seed(cfg.seed, step, rank))
    gen = torch.Generator().manual_seed(loop.step_seed(cfg.seed, step, rank + 1000))
    videos = [t for t in bank.tasks if source.kind(t) == "video"]
    images = [t for t in bank.tasks if source.kind(t) == "image"]
    names = videos if videos and (not images or rng.random() < cfg.video_fraction) else images
    k = int(rng.integers(1, cfg.max_pairs + 1))
    p = task_probabilities(names, cfg.task_weights)
    conds, targets = [], []
    for _ in range(cfg.batch):
        task = str(rng.choice(names) if p is None else rng.choice(names, p=p))
        pairs = [tuple(_latent(m, vae, gen) for m in pair) for pair in bank.draw(task, rng, k + 1)]
        conds.append(codec.condition(pairs[:-1], pairs[-1][0]))  # the last pair: (query, its target)
        targets.append(pairs[-1][1])
    cond, target = torch.stack(conds), torch.stack(targets)
    n_null = int(round(cfg.uncond * cfg.batch))
    drop = torch.from_numpy(rng.permutation(cfg.batch)[:n_null])
    keep = torch.from_numpy(np.setdiff1d(np.arange(cfg.batch), drop.numpy()))
    null = codec.null_condition(cond[drop], target.shape[2])
    return Batch(cond[keep], target[keep], null, target[drop])


def flow_loss(model, cond: torch.Tensor, x1: torch.Tensor, gen: torch.Generator, bf16: bool) -> torch.Tensor:
    """Linear-path flow matching with logit-normal t: MSE + 0.1 L1 on the velocity."""
    t = torch.sigmoid(torch.randn(x1.shape[0], generator=gen))
    x0 = torch.randn(x1.shape, generator=gen)
    tt = t.view(-1, 1, 1, 1, 1)
    xt = tt * x1 + (1 - tt) * x0
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(xt.to(device), t.to(device), cond.to(device))
    v = (x1 - x0).to(device)
    return (pred.float() - v).pow(2).mean() + 0.1 * (pred.float() - v).abs().mean()


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _model_and_vae(init: Path | None, vae_path: Path | None, cfg: DiTTrainConfig, device) -> tuple[JDiT, STVAE, Path]:
    if init is not None:
        folder = folders.resolve(str(init))
        dit = weights.load_dit(folder.dit)
        if cfg.preset is not None and not dit.cfg.same_shape(dit_preset(cfg.preset)):
            raise UsageError(f"--preset {cfg.preset}: the J-DiT of --init {init} has another shape; leave --preset out "
                             "(a fine-tune keeps its model's)")
        if cfg.depth is not None and cfg.depth != dit.cfg.depth:
            dit = grow_depth(dit, cfg.depth, str(init))
        return dit.to(device), weights.load_vae(vae_path or folder.vae), Path(vae_path or folder.vae)
    if vae_path is None:
        raise UsageError("give --vae VAE.safetensors (a trained VAE, e.g. from `lavin train vae`) or --init MODEL")
    config = dit_preset(cfg.preset or "small")
    dit = weights.build(config if cfg.depth is None else dataclasses.replace(config, depth=cfg.depth)).to(device)
    return dit, weights.load_vae(vae_path), Path(vae_path)


def grow_depth(dit: JDiT, depth: int, label: str) -> JDiT:
    """A deeper J-DiT that computes what `dit` does: its blocks spread evenly over `depth`, in
    order, and fresh blocks between them whose modulations are zero (tanh gates 0: each adds
    nothing to either stream until training opens its gates, as DiT's adaLN-zero start)."""
    old = dit.cfg.depth
    if depth < old:
        raise UsageError(f"--depth {depth}: the J-DiT of --init {label} has {old} blocks; a model can grow, not shrink")
    grown = weights.build(dataclasses.replace(dit.cfg, depth=depth))
    state = {k: v for k, v in dit.state_dict().items() if not k.startswith("blocks.")}
    for i, block in enumerate(dit.blocks):  # old block i -> new position i * depth // old
        state.update({f"blocks.{i * depth // old}.{k}": v for k, v in block.state_dict().items()})
    grown.load_state_dict(state, strict=False)  # the new blocks keep build's initialisation
    return grown


def train_dit(out: Path, source: Source, cfg: DiTTrainConfig, vae_path: Path | None = None, init: Path | None = None,
              resume: bool = False, callback: loop.Callback = None, device: str = "cpu",
              guard: loop.Guard = contextlib.nullcontext, stage: loop.StageCallback = None,
              overwrite: bool = False) -> Path:
    """Train (or fine-tune, or resume) a J-DiT into the model folder `out`. `guard()` wraps each
    optimizer step (the CLI defers signals there, so an interrupt lands between steps and the
    steps done are saved); `stage(label, done, total)` reports the work before the first step
    (encoding the latent bank: minutes on a CPU)."""
    check_task_weights(cfg.task_weights, source.task_names)
    rank, world = _distributed()
    torch.manual_seed(cfg.seed)
    dit, vae, vae_file = _model_and_vae(init, vae_path, cfg, torch.device(device))  # refusals first
    if rank == 0:
        loop.prepare_folder(out, "dit_state.pt", "dit.safetensors", resume, overwrite)
    else:
        out.mkdir(parents=True, exist_ok=True)
    dit.requires_grad_(True).train()
    # the last block's cond-stream output and MLP never reach the loss: DDP must expect unused parameters
    model = torch.nn.parallel.DistributedDataParallel(dit, find_unused_parameters=True) if world > 1 else dit
    opt = torch.optim.AdamW(dit.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    ema = loop.EMA(dit, cfg.ema)
    step = 0
    if resume:
        step = loop.load_state(out / "dit_state.pt", dit, ema, opt)
    bank = LatentBank(source, vae, cfg.bank_slots, cfg.size, cfg.seed, cfg.bank_period, group=cfg.max_pairs + 1)
    bank.build(step, (lambda done, total: stage("encoding latent bank", done, total)) if stage and rank == 0 else None)
    log = loop.Log(out / "dit_log.jsonl") if rank == 0 else None
    if rank == 0:
        _write_folder_files(out, vae_file, source, cfg)
    saved = step
    try:
        while step < cfg.steps:
            bank.advance(step)
            batch = make_batch(bank, vae, source, cfg, step, rank)
            with guard():  # the step and its log line, whole
                loss = _train_step(model, dit, opt, batch, cfg, step, rank)
                ema.update(dit, step)
                step += 1
                rate = log.write(step, loss=round(loss, 5)) if rank == 0 else 0.0
            if rank == 0:
                if callback:
                    callback(loop.StepInfo(step, cfg.steps, loss, rate, {}))
                if step % cfg.save_every == 0 or step == cfg.steps:
                    _save(out, dit, ema, opt, step, cfg)
                    saved = step
    except KeyboardInterrupt:  # SIGINT / SIGTERM: the steps done are kept, --resume goes on from them
        if rank == 0 and step > saved:
            _save(out, dit, ema, opt, step, cfg)
        raise
    return out


def _train_step(model, dit: JDiT, opt, batch: Batch, cfg: DiTTrainConfig, step: int, rank: int) -> float:
    for group in opt.param_groups:
        group["lr"] = loop.learning_rate(cfg.lr, step, cfg.steps, cfg.warmup, cfg.lr_final)
    gen = torch.Generator().manual_seed(loop.step_seed(cfg.seed, step, rank + 2000))
    opt.zero_grad(set_to_none=True)
    parts = [(batch.cond, batch.target), (batch.null, batch.null_target)]
    parts = [(c, x) for c, x in parts if len(x)]
    total = 0.0
    for i, (cond, x1) in enumerate(parts):
        weight = len(x1) / cfg.batch
        sync = i == len(parts) - 1 or not hasattr(model, "no_sync")
        ctx = model.no_sync() if not sync else contextlib.nullcontext()
        with ctx:
            loss = flow_loss(model, cond, x1, gen, cfg.bf16) * weight
            loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
    opt.step()
    return total


def _write_folder_files(out: Path, vae_file: Path, source: Source, cfg: DiTTrainConfig) -> None:
    """Make the run folder a model folder: the VAE beside the DiT, model.json, example tasks."""
    if not (out / "vae.safetensors").exists() or (out / "vae.safetensors").resolve() != vae_file.resolve():
        shutil.copyfile(vae_file, out / "vae.safetensors")
    meta = {"name": out.name, "size": cfg.size, "sizes": [cfg.size], "tasks": source.task_names,
            "description": "a LaVin-DiT trained by `lavin train dit`", "training": dataclasses.asdict(cfg)}
    folders.write_model_json(out, meta)
    write_task_folders(out / "tasks", source, cfg.size, pairs=6, seed=10_000_000 + cfg.seed)


def _save(out: Path, dit: JDiT, ema: loop.EMA, opt, step: int, cfg: DiTTrainConfig) -> None:
    loop.save_state(out / "dit_state.pt", dit, ema, opt, step, dataclasses.asdict(cfg))
    weights.save(ema.averaged(dit.cfg), out / "dit.safetensors", {"step": str(step)})
