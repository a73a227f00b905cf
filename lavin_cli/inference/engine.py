"""The engine: the loaded models on their device, and the three things a run asks of them.

    encode(frames, generators)      uint8 pixels -> normalised latents (posterior sample and mean)
    generate(cond, frames, ...)     a condition -> target latents (flow sampling with guidance)
    decode(latents)                 normalised latents -> uint8 pixels

Weight placement (offload), the VAE tiling policy, the memory plan and the out-of-memory advice
live here and nowhere else; the image runner and the video runner are peers that call it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lavin_cli.errors import CheckpointError, DeviceError, OptionError
from lavin_cli.inference import codec, sampling
from lavin_cli.inference.options import LoadOptions, SamplingOptions
from lavin_cli.io.files import human_bytes
from lavin_cli.models import int8
from lavin_cli.runtime import attention as attention_policy
from lavin_cli.runtime import device as devices
from lavin_cli.runtime import memory
from lavin_cli.runtime import offload as offload_mod
from lavin_cli.store import weights
from lavin_cli.store.folders import ModelFolder

StepProgress = Optional[Callable[[int, int], None]]  # (solver steps done, total)


@dataclass(frozen=True)
class MemoryPlan:
    """What one model call will hold, for choosing an offload mode before loading."""

    size: tuple[int, int]
    pairs: int = 4
    batch: int = 1
    frames: int = 1


LATENT_LIMIT = 100.0  # normalised latents are about N(0, 1); beyond this the sample has exploded


def check_latents(z: torch.Tensor, options: SamplingOptions) -> None:
    """Refuse sampled latents that are not finite or have exploded, naming the likely cause,
    before they are decoded into a black or saturated picture."""
    finite = bool(torch.isfinite(z).all())
    peak = float(z.abs().max()) if finite else float("inf")
    if finite and peak <= LATENT_LIMIT:
        return
    what = "non-finite values" if not finite else f"values up to {peak:.3g}"
    if abs(options.cfg) > 10:
        raise OptionError("cfg", f"{options.cfg:g} is too strong: the sampled latents hold {what} (typical guidance: 1 to 5)")
    raise CheckpointError(f"the model produced {what} in its sampled latents (normal is about 1): its weights or "
                          "precision are at fault; try {{dtype=float32}}, or download or convert the model again")


class WithKernel:
    """The DiT as sampling calls it, with the attention kernel this engine chose passed on every
    call (the model holds no device policy)."""

    def __init__(self, dit, attention: str):
        self.dit, self.attention = dit, attention

    def __call__(self, x, t, cond):
        return self.dit(x, t, cond, attention=self.attention)

    def forward_multi(self, x, t, conds, cache=None):
        return self.dit.forward_multi(x, t, conds, cache, attention=self.attention)

    def new_cond_cache(self):
        return self.dit.new_cond_cache()


def compile_blocks(dit, backend: str = "inductor") -> None:
    """Regional compilation: torch.compile each repeated block (nearly all the work), not the
    whole model. The blocks share their code and pass each other's guards, so one graph serves
    them all and compiling costs one block's time. The first layout (batch, sequence lengths)
    gets a graph specialised to its sizes; a size that then changes is made symbolic (torch's
    automatic dynamic shapes), so a server meeting ever new layouts settles on a few graphs
    instead of one per layout, which after torch's 8 per block ran every later layout eagerly
    (tests/test_engine.py counts the graphs)."""
    for block in dit.blocks:
        block.compile(backend=backend, dynamic=None)


class Engine:
    def __init__(self, dit, vae, device: torch.device, dtype: torch.dtype, attention: str = "auto",
                 offload: str = "none", compile: bool = False, vae_tile: int | None = None):
        self.dit, self.vae = dit, vae
        self.device, self.dtype = device, dtype
        self.attention = attention_policy.resolve_backend(attention, device)
        self.offload = offload_mod.make(offload, device)
        self.offload.place(vae, dit)
        self.vae_tile = vae_tile  # None: tile inputs larger than 768 px in 512 px tiles
        self.quantize = "int8" if int8.is_quantized(dit) else "none"
        self.load_seconds = 0.0
        if compile:
            compile_blocks(self.dit)

    @classmethod
    def load(cls, folder: ModelFolder, options: LoadOptions, plan: MemoryPlan | None = None) -> "Engine":
        """Read a model folder's weights onto the device the options ask for. `offload='auto'`
        picks the fastest mode whose estimated peak memory for `plan` fits the free GPU memory."""
        start = time.perf_counter()
        dev = devices.pick_device(options.device)
        dt = devices.pick_dtype(options.dtype, dev)
        attention_policy.resolve_backend(options.attention, dev)  # refuse an impossible backend before reading weights
        offload = options.offload
        if offload == "auto":
            offload = cls._auto_offload(folder, dev, dt, plan or MemoryPlan((folder.size, folder.size)),
                                        options.quantize == "int8" or weights.saved_int8(folder.dit))
        load_to = dev if offload == "none" and options.quantize == "none" else torch.device("cpu")
        dit = weights.load_dit(folder.dit, device=load_to, dtype=dt, quantize=options.quantize == "int8")
        vae = weights.load_vae(folder.vae, device=load_to, dtype=dt)
        engine = cls(dit, vae, dev, dt, options.attention, offload, options.compile)
        engine.load_seconds = time.perf_counter() - start
        return engine

    @staticmethod
    def _auto_offload(folder: ModelFolder, dev: torch.device, dt: torch.dtype, plan: MemoryPlan, int8: bool) -> str:
        if dev.type != "cuda":
            return "none"  # weights live in main memory anyway
        dit_cfg, vae_cfg = weights.peek_configs(folder.dit, folder.vae)
        needs = offload_mod.estimate(dit_cfg, vae_cfg, dt, plan.size, plan.pairs, plan.batch, plan.frames, int8)
        free = torch.cuda.mem_get_info(dev)[0]
        return offload_mod.choose(needs, free) or "sequential"

    # ------------------------------------------------------------------ memory

    def memory_estimate(self, size: tuple[int, int], pairs: int, batch: int = 1, frames: int = 1,
                        int8: bool | None = None) -> dict[str, int]:
        """Peak bytes per offload mode; `int8`: as if the DiT blocks were int8 (default: as they are)."""
        return offload_mod.estimate(self.dit.cfg, self.vae.cfg, self.dtype, size, pairs, batch, frames,
                                    self.quantize == "int8" if int8 is None else int8)

    def free_memory(self) -> int:
        return torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else memory.available()

    @contextmanager
    def oom_advice(self, size: tuple[int, int], pairs: int, batch: int = 1, frames: int = 1):
        """Turn a CUDA out-of-memory error into advice: the offload mode (or smaller run) that fits."""
        free = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else 0
        try:
            yield
        except torch.OutOfMemoryError:
            needs = self.memory_estimate(size, pairs, batch, frames)
            int8 = None if self.quantize == "int8" else self.memory_estimate(size, pairs, batch, frames, int8=True)
            raise DeviceError(offload_mod.explain_oom(needs, free, self.offload.name, int8)) from None

    def check_fits(self, tokens: int, size: tuple[int, int], pairs: int, frames: int, batch: int = 1) -> None:
        """Fail before any work when one DiT call of this length cannot fit the device (GPU
        memory, or main memory on a CPU)."""
        need = self.memory_estimate(size, pairs, batch, frames)[self.offload.name]
        free = self.free_memory()
        if need > 0.9 * free:
            raise DeviceError(f"a {tokens}-token sequence needs about {human_bytes(need)} with "
                              f"{{{{offload={self.offload.name}}}}}, {human_bytes(free)} is free: try "
                              "{{offload=sequential}}, a smaller {{size}} or fewer {{pairs}}")

    # ------------------------------------------------------------------ the three operations

    def tile(self, hw: Sequence[int]) -> int | None:
        """VAE tile size for an image of `hw` pixels: None (whole image) up to 768 px."""
        if self.vae_tile:
            return self.vae_tile if max(hw) > self.vae_tile else None
        return 512 if max(hw) > 768 else None

    def encode(self, frames: np.ndarray, generators: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips (B, F, H, W, 3) uint8 at the working size (images: F = 1) -> normalised latents
        (posterior sample, posterior mean), each (B, C, T, h, w). Each item goes through the VAE on
        its own and draws its posterior noise from generators[i] (CPU): an item's latents do not
        depend on the batch it came in (convolution kernels pick their algorithm by batch size)."""
        samples, means = [], []
        with torch.no_grad(), self.offload.using(self.vae):
            for clip, generator in zip(frames, generators):
                x = torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).contiguous()[None]
                x = codec.uint8_to_unit(x).to(self.device)
                sample, mean = codec.encode(self.vae, x, generators=[generator], tile=self.tile(x.shape[-2:]))
                samples.append(sample)
                means.append(mean)
        return torch.cat(samples), torch.cat(means)

    def generate(self, cond: torch.Tensor, target_frames: int, generators: Sequence[torch.Generator],
                 options: SamplingOptions, query_frames: int = 1, progress: StepProgress = None,
                 known: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised target latents (B, C, target_frames, h, w) sampled for conditions (B, C, T_c, h, w)
        whose last `query_frames` frames are the query; sample i's noise comes from generators[i].
        `known` (B, C, k, h, w): normalised latents of the first k target frames, held there while
        the rest is sampled (sampling.pinned)."""
        shape = (1, cond.shape[1], target_frames, *cond.shape[-2:])
        noise = torch.cat([torch.randn(shape, generator=g) for g in generators]).to(self.device)
        cond = cond.to(self.device, self.dtype)
        with torch.no_grad(), self.offload.using(self.dit):
            velocity = sampling.guided(WithKernel(self.dit, self.attention), cond, options.cfg,
                                       codec.null_condition(cond, query_frames),
                                       interval=options.cfg_interval, refresh=options.cond_refresh)
            if known is not None:
                velocity = sampling.pinned(velocity, known.to(self.device), noise)
            z = sampling.sample(velocity, noise, options.steps, options.solver, callback=progress)
        check_latents(z, options)
        return z

    def decode(self, z: torch.Tensor, raw: bool = False):
        """Normalised latents (B, C, T, h, w) -> uint8 frames (B, F, H, W, 3), each item on its own;
        with `raw`, also the float32 frames in [0, 1] they were truncated from."""
        tile = self.tile(tuple(8 * n for n in z.shape[-2:]))
        pixels, floats = [], []
        with torch.no_grad(), self.offload.using(self.vae):
            for item in z.to(self.dtype):
                image = codec.unit_to_float(codec.decode_latents(self.vae, item[None], tile))
                pixels.append(codec.float_to_uint8(image).permute(0, 2, 3, 4, 1).cpu().numpy())
                if raw:
                    floats.append(image.permute(0, 2, 3, 4, 1).cpu().numpy())
        return (np.concatenate(pixels), np.concatenate(floats)) if raw else np.concatenate(pixels)
