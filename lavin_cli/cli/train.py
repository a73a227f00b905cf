"""`lavin train`: train the ST-VAE (and, next, the J-DiT) on generated tasks or on task folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import distributed, options, signals
from lavin_cli.cli.console import log, warn
from lavin_cli.cli.progress import Progress

app = typer.Typer(help="Train lavin's own models (the ST-VAE first, then the J-DiT), and write example task folders.",
                  no_args_is_help=True,
                  cls=options.Group)

SIZE = typer.Option(64, "--size", help="Training resolution (multiple of 16).")
SEED = typer.Option(0, "--seed", help="Seed: the same seed, data and machine give the same weights, also across --resume.")
THREADS = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
LR_FINAL = typer.Option(1.0, "--lr-final", help="Learning rate at the last step as a fraction of --lr (cosine "
                                                 "decay after the warm-up; 1 keeps it constant).")
DATA = typer.Option("generator", "--data", metavar="SOURCE", help="'generator' (built-in procedural tasks), 'generator:task1,task2', "
                                                "'photos:DIR[,DIR]' (the tasks that follow from a photo, on crops "
                                                "of real photos), 'generator+photos:DIR' (half of those from photos) "
                                                "or a folder of task folders in the `lavin run` "
                                                "context format.")

TASK_WEIGHTS = typer.Option("", "--task-weights", metavar="TASK=W,...",
                            help="Draw some tasks more often, e.g. 'edge_detection=4' (others weigh 1; image and video "
                                 "tasks are weighed within their own share).")


def _source(data: str, same_photo: float = 0.0, same_photo_tasks: tuple[tuple[str, float], ...] = ()):
    from lavin_cli.errors import UsageError
    from lavin_cli.training.data import Folders, Generator

    photos = data.startswith(("photos:", "generator+photos:"))
    if (same_photo or same_photo_tasks) and not photos:
        raise UsageError(f"--same-photo: --data {data} has no photos; it applies to photos:DIR or generator+photos:DIR")
    if data == "generator" or data.startswith("generator:"):
        names = data.split(":", 1)[1].split(",") if ":" in data else None
        return Generator(names)
    if photos:
        from lavin_cli.training.photos import Photos, WithPhotos

        source = Photos([Path(p) for p in data.split(":", 1)[1].split(",") if p], same_photo=same_photo,
                        same_photo_tasks=dict(same_photo_tasks))
        return WithPhotos(Generator(), source) if data.startswith("generator+") else source
    return Folders(Path(data))


def _same_photo(text: str) -> tuple[float, tuple[tuple[str, float], ...]]:
    """--same-photo: '0.5' (every photo task), 'colorization=1' (that task only) or both,
    '0.2,colorization=1' -> (the share of every photo task, the tasks' own shares)."""
    from lavin_cli.errors import UsageError

    default, tasks = 0.0, []
    for item in filter(None, (part.strip() for part in text.split(","))):
        task, equals, value = (part.strip() for part in item.rpartition("="))
        try:
            share = float(value)
        except ValueError:
            raise UsageError(f"--same-photo: {item!r} is neither a share P nor TASK=P (e.g. 0.5 or colorization=0.5)") from None
        if not equals:
            default = share
        elif task:
            tasks.append((task, share))
        else:
            raise UsageError(f"--same-photo: {item!r} names no task (TASK=P, e.g. colorization=0.5)")
    return default, tuple(tasks)


def _task_weights(text: str) -> tuple[tuple[str, float], ...]:
    """'a=4,b=0.5' -> (('a', 4.0), ('b', 0.5))."""
    from lavin_cli.errors import UsageError

    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        task, _, value = (part.strip() for part in item.partition("="))
        try:
            weight = float(value)  # '' when there is no '=': refused below
        except ValueError:
            weight = None
        if not task or weight is None:
            raise UsageError(f"--task-weights: {item!r} is not TASK=WEIGHT (e.g. edge_detection=4)")
        pairs.append((task, weight))
    return tuple(pairs)


def _prepare(size: int, threads: int | None) -> None:
    import torch

    from lavin_cli.inference.options import check_size

    check_size("size", size)  # before the data is read (train examples has no config to check it)
    if threads:
        torch.set_num_threads(threads)


def _warn_emulated_bf16(bf16: bool, device_type: str) -> None:
    """bf16 on a CPU that emulates it trains several times slower than float32 (a 3D convolution
    measured 300x slower, a matrix product 6x, on an AVX2 CPU): say so before the hours go."""
    from lavin_cli.runtime.device import native_cpu_bf16

    if bf16 and device_type == "cpu" and not native_cpu_bf16():
        warn("--bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so it is emulated and trains "
             "several times slower than float32; leave out --bf16 here")


def _with_progress(quiet: bool, total: int, run) -> None:
    """Call run(callback, stage) with a progress display of the steps (loss; the bar shows the
    speed) and of the work before them (stage(label, done, total))."""
    with Progress(not quiet) as progress:
        run(lambda info: progress.update("train", "training", info.step, total, f"loss {info.loss:.4f}"),
            lambda label, done, todo: progress.update("prepare", label, done, todo))


@app.command("vae", cls=options.Command)
def vae(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Run folder: vae.safetensors (EMA weights), vae_state.pt, vae_log.jsonl."),
    data: str = DATA,
    steps: int = typer.Option(2000, "--steps", help="Total optimizer steps (with --resume: continue up to this many)."),
    batch: int = typer.Option(16, "--batch", help="Images per step (clip steps use a quarter as many 5-frame clips)."),
    lr: float = typer.Option(4e-4, "--lr", help="AdamW learning rate (warm-up over 200 steps)."),
    size: int = SIZE,
    seed: int = SEED,
    video_fraction: float = typer.Option(0.2, "--video-fraction", help="Share of steps on 5-frame clips."),
    save_every: int = typer.Option(250, "--save-every", help="Checkpoint interval in steps."),
    channels: str = typer.Option("32,32,64,64", "--channels", metavar="W,W,W,W", help="A fresh VAE's widths of the four encoder levels (the "
                                                                  "decoder mirrors them), multiples of 32."),
    layers: int = typer.Option(1, "--layers", help="A fresh VAE's residual blocks per level."),
    lr_final: float = LR_FINAL,
    task_weights: str = TASK_WEIGHTS,
    tone_weight: float = typer.Option(0.0, "--tone-weight", help="Weight of an L1 term on mu-law compressed pixels "
                                      "(errors at black count 13x, at white 0.25x), aimed at dark inputs."),
    bf16: bool = typer.Option(False, "--bf16/--no-bf16", help="bf16 autocast for the networks (the loss stays float32)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/vae_state.pt (optimizer included)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in a run folder that holds a run."),
    init: Optional[Path] = typer.Option(None, "--init", metavar="FILE", help="Start from these VAE weights (a fresh optimizer)."),
    decoder_only: bool = typer.Option(False, "--decoder-only", help="With --init: train the decoder alone; the encoder "
                                      "and its latent normalisation stay, so DiTs trained in its latents stay valid."),
    threads: Optional[int] = THREADS,
    quiet: bool = QUIET,
) -> None:
    """Train the ST-VAE: L1 + gradient (+ dark-weighted tone) reconstruction, a small KL, EMA weights, strictly causal."""
    from lavin_cli.errors import OptionError
    from lavin_cli.training.vae_trainer import VAETrainConfig, train_vae

    _prepare(size, threads)
    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise OptionError("channels", f"{channels!r} is not a comma-separated list of widths") from None
    typed = dict(options.typed(ctx))  # a shape left at its default: the --init VAE's own
    cfg = VAETrainConfig(steps=steps, batch=batch, lr=lr, size=size, seed=seed, video_fraction=video_fraction,
                         save_every=save_every, channels=widths if "channels" in typed or not init else None,
                         layers_per_block=layers if "layers" in typed or not init else None, bf16=bf16, lr_final=lr_final,
                         task_weights=_task_weights(task_weights), tone_weight=tone_weight, decoder_only=decoder_only)
    _warn_emulated_bf16(bf16, "cpu")
    _with_progress(quiet, steps, lambda cb, _: train_vae(out, _source(data), cfg, resume=resume, init=init,
                                                         callback=cb, guard=signals.deferred, overwrite=overwrite))
    log(f"wrote {out / 'vae.safetensors'}")


@app.command("dit", cls=options.Command)
def dit(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Run folder, usable as a model folder: dit.safetensors (EMA), "
                                                      "vae.safetensors, model.json, tasks/, dit_state.pt, dit_log.jsonl."),
    vae: Optional[Path] = typer.Option(None, "--vae", metavar="FILE", help="The (frozen) VAE to train in, e.g. from `lavin train vae`."),
    init: Optional[str] = typer.Option(None, "--init", metavar="NAME|DIR", help="Fine-tune this model (name or folder) instead of starting fresh."),
    data: str = DATA,
    preset: str = typer.Option("small", "--preset", metavar="NAME", help="J-DiT preset of a fresh model (tiny, small, 0.1B, ...)."),
    depth: Optional[int] = typer.Option(None, "--depth", metavar="N", help="J-DiT blocks (default: the preset's). With "
                                        "--init: grow its model to N blocks, the new ones between the old and starting as "
                                        "identities, so training goes on from what it computes."),
    steps: int = typer.Option(2000, "--steps", help="Total optimizer steps (with --resume: continue up to this many)."),
    batch: int = typer.Option(32, "--batch", help="Samples per step (per process under torchrun)."),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate (paper: 1e-4; warm-up over --warmup steps)."),
    warmup: int = typer.Option(200, "--warmup", help="Linear learning-rate warm-up steps."),
    lr_final: float = LR_FINAL,
    ema: float = typer.Option(0.9999, "--ema", help="EMA decay of the saved weights (paper: 0.9999)."),
    max_pairs: int = typer.Option(3, "--max-pairs", help="Context pairs per sample are drawn from 1..this."),
    size: int = SIZE,
    seed: int = SEED,
    video_fraction: float = typer.Option(0.15, "--video-fraction", help="Share of batches made of video tasks."),
    save_every: int = typer.Option(200, "--save-every", help="Checkpoint interval in steps."),
    bank_slots: int = typer.Option(256, "--bank-slots", help="Encoded pairs kept per task (refreshed continuously)."),
    task_weights: str = TASK_WEIGHTS,
    same_photo: str = typer.Option("0", "--same-photo", metavar="P|TASK=P,...", help="With photos in --data: the share "
                                   "of samples whose context pairs and query are all cropped from one photo, so that the "
                                   "examples tell the query's palette (0: each pair from a photo of its own); for every "
                                   "photo task, or per task (e.g. 'colorization=0.5')."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: on for CUDA, off for CPU)."),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (under torchrun: each rank's own GPU)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/dit_state.pt (optimizer included)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in a run folder that holds a run."),
    threads: Optional[int] = THREADS,
    quiet: bool = QUIET,
) -> None:
    """Train the J-DiT by conditional flow matching on in-context task samples (works under torchrun)."""
    from lavin_cli.runtime import device as devices
    from lavin_cli.training.dit_trainer import DiTTrainConfig, train_dit

    _prepare(size, threads)
    ranks = distributed.start()
    main_rank = ranks is None or ranks.main
    try:
        dev = devices.pick_device(distributed.device(ranks, device))
        share, task_shares = _same_photo(same_photo)
        cfg = DiTTrainConfig(steps=steps, batch=batch, lr=lr, warmup=warmup, ema=ema, max_pairs=max_pairs, size=size,
                             seed=seed, video_fraction=video_fraction, save_every=save_every,
                             preset=preset if "preset" in dict(options.typed(ctx)) or not init else None,
                             bank_slots=bank_slots, bf16=dev.type == "cuda" if bf16 is None else bf16,
                             lr_final=lr_final, task_weights=_task_weights(task_weights), depth=depth,
                             same_photo=share, same_photo_tasks=task_shares)
        if main_rank:
            _warn_emulated_bf16(cfg.bf16, dev.type)
        _with_progress(quiet or not main_rank, steps, lambda cb, stage: train_dit(
            out, _source(data, cfg.same_photo, cfg.same_photo_tasks), cfg, vae_path=vae, init=Path(init) if init else None,
            resume=resume, callback=cb, device=str(dev), guard=signals.deferred, stage=stage, overwrite=overwrite))
    finally:
        distributed.stop(ranks)
    if main_rank:
        log(f"wrote model folder {out}")


@app.command("examples", cls=options.Command)
def examples(
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Folder of task folders to write (e.g. examples/)."),
    data: str = DATA,
    pairs: int = typer.Option(6, "--pairs", metavar="N", help="Context pairs per task."),
    queries: int = typer.Option(2, "--queries", metavar="N", help="Query inputs per task, under <task>/queries/."),
    size: int = SIZE,
    seed: int = typer.Option(20_000_000, "--seed", metavar="N",
                             help="Pair i of the k-th task comes from seed + 1000 k + i (training never draws these)."),
    overwrite: bool = options.OVERWRITE,
) -> None:
    """Write task folders of example pairs and queries from the generator: PNG pairs for image
    tasks, MP4 clip pairs for video tasks, each with its task.json (ready for --task / --context)."""
    from lavin_cli.training.examples import write_task_folders

    from lavin_cli.errors import UsageError
    from lavin_cli.inference.options import check_int

    _prepare(size, None)
    check_int("pairs", pairs, 1, 1024)
    if not 0 <= queries <= 1024:  # (an OptionError "queries" would name run's --query)
        raise UsageError(f"--queries must be {'at least 0' if queries < 0 else 'at most 1024'}, got {queries}")
    check_int("seed", seed, 0, 2**62)
    source = _source(data)
    written = write_task_folders(out, source, size, pairs=pairs, seed=seed, queries=queries, replace=overwrite)
    skipped = len(source.task_names) - len(written)
    log(f"wrote {len(written)} task folder(s) into {out}" + (f"; {skipped} kept (--overwrite replaces them)" if skipped else ""))
