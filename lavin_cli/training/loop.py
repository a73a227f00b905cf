"""Pieces shared by the trainers: EMA weights, resumable checkpoints, the training log."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Optional

import torch
from torch import nn

from lavin_cli.errors import CheckpointError, OutputError, UsageError
from lavin_cli.io.files import atomic_path, describe_os_error
from lavin_cli.store import weights


class EMA:
    """Exponential moving average of a model's parameters (kept in float32).

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so that early
    checkpoints are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, updates: int) -> None:
        decay = min(self.decay, (1 + updates) / (10 + updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.float(), 1 - decay)
            else:
                self.shadow[k].copy_(v)

    def averaged(self, config) -> nn.Module:
        """A model of `config` holding the averaged weights (built on meta, the shadow assigned)."""
        model = weights.build(config, init=False)
        model.load_state_dict(self.shadow, assign=True)
        return model.eval()


@dataclass
class StepInfo:
    step: int
    total: int
    loss: float
    steps_per_s: float
    extra: dict


Callback = Optional[Callable[[StepInfo], None]]
StageCallback = Optional[Callable[[str, int, int], None]]  # (label, done, total) of work before the steps
Guard = Callable[[], ContextManager]  # wraps one optimizer step (the CLI: signals deferred)


def learning_rate(base: float, step: int, total: int, warmup: int, final: float = 1.0) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from `base` down to `final` x `base` at
    step `total` (final = 1: constant). A pure function of the step, so resuming is exact."""
    if step < warmup:
        return base * (step + 1) / max(warmup, 1)
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return base * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The data seed of one step: a pure function of (seed, step, rank), so resuming is exact."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def save_state(path: Path, model: nn.Module, ema: EMA, optimizer, step: int, meta: dict) -> None:
    """Everything needed to resume, written atomically; read back with weights_only=True."""
    state = {"model": model.state_dict(), "ema": ema.shadow, "optimizer": optimizer.state_dict(),
             "step": step, "meta": json.dumps(meta), "rng": torch.get_rng_state()}
    with atomic_path(path, errors=(RuntimeError,)) as tmp:  # torch.save reports a full disk as RuntimeError
        torch.save(state, tmp)


def load_state(path: Path, model: nn.Module, ema: EMA, optimizer) -> int:
    """Resume from a state file; one that is not a state of this model is refused naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        ema.shadow = {k: v.float() for k, v in state["ema"].items()}
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        return int(state["step"])
    except (OSError, EOFError, RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"{path}: not a training state of this run ({type(exc).__name__}: {reason}); "
                              "start again with --overwrite, or resume from a good copy") from None
    except Exception as exc:  # torch's UnpicklingError and other reader failures
        if type(exc).__name__ != "UnpicklingError":
            raise
        raise CheckpointError(f"{path}: not a training state (it does not unpickle as one); start again with "
                              "--overwrite") from None


def prepare_folder(out: Path, state: str, product: str, resume: bool, overwrite: bool) -> None:
    """The run folder's rules, as every output's: a file there is refused; --resume needs its
    state; a folder holding a run is replaced only with `overwrite`."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; --out names the run folder to write")
    if resume and not (out / state).is_file():
        raise UsageError(f"{out / state}: nothing to resume (no training state there); drop --resume to start a "
                         "new run")
    held = [name for name in (product, state) if (out / name).exists()]
    if not resume and held and not overwrite:
        raise OutputError(f"{out}: holds a run ({held[0]}); add --resume to continue it or --overwrite to start again")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot make the run folder ({describe_os_error(exc)})") from None


class Log:
    """Append-only JSON lines: the training curve."""

    def __init__(self, path: Path):
        self.path = path
        self.start = time.perf_counter()
        self.last_t, self.last_step = self.start, None

    def write(self, step: int, **values) -> float:
        now = time.perf_counter()
        rate = 0.0 if self.last_step is None else (step - self.last_step) / max(now - self.last_t, 1e-9)
        self.last_t, self.last_step = now, step
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, "time": round(time.time(), 1), **values}) + "\n")
        except OSError as exc:
            raise OutputError(f"{self.path}: could not be written ({describe_os_error(exc)})") from None
        return rate
