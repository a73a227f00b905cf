"""`Pipeline`: context pairs + queries in, predictions and a record of the run out.

    pipe = Pipeline.from_pretrained("path/to/model", device="auto")
    result = pipe("pairs/", ["a.jpg", "b.jpg"], pairs=4, seed=7)
    result.predictions[0].image        # RGB uint8 at the query's original size
    result.record                      # what ran: model, hashes, seed, pairs used, timings

The context is encoded by the VAE once per call and reused for every query; queries run in
batches. The randomness of each query (its VAE posterior sample and its initial noise) comes
from a generator seeded with `seed` alone, so a query's result does not depend on which other
queries share its call or its batch.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from lavin_cli import __version__, context as ctx, devices, media, offload as offload_mod, sampling, sequence, store, weights
from lavin_cli.errors import DeviceError, LavinError, UsageError
from lavin_cli.models import ops


@dataclass(frozen=True)
class Progress:
    stage: str  # "context", "sample", "query"
    done: int
    total: int


@dataclass
class Prediction:
    query: str
    image: Optional[np.ndarray] = None  # RGB uint8 at the query's original size
    pairs: list[str] = field(default_factory=list)
    error: Optional[str] = None
    code: int = 0  # exit code of the error, 0 when it succeeded
    seconds: float = 0.0
    working: Optional[np.ndarray] = None  # the query as the model saw it
    context: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass
class RunResult:
    predictions: list[Prediction]
    record: dict

    @property
    def failed(self) -> list[Prediction]:
        return [p for p in self.predictions if p.error]


def parse_size(size: int | str | tuple[int, int] | None, default: int) -> tuple[int, int]:
    """512 | '512' | '512x384' (width x height) | (h, w) -> (height, width), multiples of 16."""
    if size is None:
        size = default
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            size = (int(parts[1]), int(parts[0])) if len(parts) == 2 else int(parts[0])
        except (ValueError, IndexError):
            raise UsageError(f"--size {size!r} is not N or WIDTHxHEIGHT") from None
    h, w = (size, size) if isinstance(size, int) else size
    if h < 16 or w < 16 or h % 16 or w % 16:
        raise UsageError(f"--size {w}x{h}: width and height must be positive multiples of 16 (e.g. 256, 512)")
    return h, w


class Pipeline:
    def __init__(self, dit, vae, model: store.ModelFolder | None, device: torch.device,
                 dtype: torch.dtype, attention: str, offload: str = "none", compile: bool = False,
                 vae_tile: int | None = None):
        self.dit, self.vae, self.model = dit, vae, model
        self.device, self.dtype = device, dtype
        self.dit.attention_backend = self.attention = ops.resolve_backend(attention, device)
        self.offload = offload_mod.make(offload, device)
        self.offload.place(vae, dit)
        self.vae_tile = vae_tile  # None: tile inputs larger than 768 px in 512 px tiles
        self.load_seconds = 0.0
        if compile:
            for block in self.dit.blocks:  # the blocks hold nearly all the work; one graph serves them all
                block.compile(dynamic=False)

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto", dtype: str = "auto",
                        attention: str = "auto", offload: str = "none", home=None, compile: bool = False,
                        plan: dict | None = None) -> "Pipeline":
        """Load a model by name or folder (else $LAVIN_MODEL, else the bundled model).

        offload="auto" picks the fastest mode whose estimated peak memory fits the free GPU memory
        for `plan` = {"size": (h, w) or N, "pairs": 4, "batch": 1, "frames": 1}, before loading.
        """
        start = time.perf_counter()
        folder = store.resolve(name_or_path, home)
        dev = devices.pick_device(device)
        dt = devices.pick_dtype(dtype, dev)
        if offload == "auto":
            offload = cls._auto_offload(folder, dev, dt, plan or {})
        load_to = dev if offload == "none" else torch.device("cpu")
        dit = weights.load_dit(folder.dit, device=load_to, dtype=dt)
        vae = weights.load_vae(folder.vae, device=load_to, dtype=dt)
        pipe = cls(dit, vae, folder, dev, dt, attention, offload, compile)
        pipe.load_seconds = time.perf_counter() - start
        return pipe

    @staticmethod
    def _auto_offload(folder: store.ModelFolder, dev: torch.device, dt: torch.dtype, plan: dict) -> str:
        if dev.type != "cuda":
            return "none"  # weights live in main memory anyway
        dit_cfg, vae_cfg = weights.peek_configs(folder.dit, folder.vae)
        needs = offload_mod.estimate(dit_cfg, vae_cfg, dt, parse_size(plan.get("size"), folder.size),
                                     plan.get("pairs", 4), plan.get("batch", 1), plan.get("frames", 1))
        free = torch.cuda.mem_get_info(dev)[0]
        return offload_mod.choose(needs, free) or "sequential"

    def memory_estimate(self, size, pairs: int, batch: int = 1, frames: int = 1) -> dict[str, int]:
        return offload_mod.estimate(self.dit.cfg, self.vae.cfg, self.dtype, parse_size(size, self.default_size),
                                    pairs, batch, frames)

    @property
    def default_size(self) -> int:
        return self.model.size if self.model else store.OFFICIAL_SIZE

    # ------------------------------------------------------------------ encoding

    def _encode(self, frames: list[np.ndarray], generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB uint8 working-size images -> (normalised posterior samples, normalised means).

        Frame i's posterior noise is drawn from generators[i] (CPU), so batching changes nothing.
        """
        x = torch.stack([torch.from_numpy(f).permute(2, 0, 1) for f in frames])
        x = sequence.uint8_to_unit(x).to(self.device)
        with torch.no_grad(), self.offload.using(self.vae):
            sample, mean = sequence.encode(self.vae, x[:, :, None], generators=generators, tile=self._tile(x.shape[-2:]))
        return sample[:, :, 0], mean[:, :, 0]

    def encode_clip(self, frames: np.ndarray, generator: torch.Generator, with_mean: bool = False):
        """One clip (F, H, W, 3) uint8 at the working size -> normalised latents (C, T, h, w), a posterior
        sample drawn from `generator` (and the posterior mean, with `with_mean`). F = 4k + 1 gives
        k + 1 latent frames."""
        x = sequence.uint8_to_unit(torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2))[None].to(self.device)
        with torch.no_grad(), self.offload.using(self.vae):
            sample, mean = sequence.encode(self.vae, x, generators=[generator], tile=self._tile(x.shape[-2:]))
        return (sample[0], mean[0]) if with_mean else sample[0]

    def video(self, context, queries, **options) -> RunResult:
        """In-context video tasks (clip-to-clip or prediction, told by the context); see video_pipeline."""
        from lavin_cli.video_pipeline import run_video

        with self._oom_advice(options.get("size"), options.get("pairs", 4), 1, frames=5):
            return run_video(self, context, queries, **options)

    @contextmanager
    def _oom_advice(self, size, pairs: int, batch: int, frames: int = 1):
        """Turn a CUDA out-of-memory error into advice: the offload mode (or smaller run) that fits."""
        free = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else 0
        try:
            yield
        except torch.OutOfMemoryError:
            needs = self.memory_estimate(size, pairs, batch, frames)
            raise DeviceError(offload_mod.explain_oom(needs, free, self.offload.name)) from None

    def _tile(self, hw) -> int | None:
        """VAE tile size for an image of `hw` pixels: None (whole image) up to 768 px."""
        if self.vae_tile:
            return self.vae_tile if max(hw) > self.vae_tile else None
        return 512 if max(hw) > 768 else None

    def _encode_context(self, context: ctx.Context, indices: list[int], working, fit: str, seed: int, notify):
        """Read, fit and encode the given pairs once: latents (P, 2, C, h, w), means, images."""
        images, generator = [], torch.Generator().manual_seed(seed)
        for i in indices:
            pair = context.pairs[i]
            images.append((media.fit(media.read_image(pair.input), working, fit)[0],
                           media.fit(media.read_image(pair.target), working, fit)[0]))
        latents, means = [], []
        for n in range(0, len(images), 4):  # a few pairs per VAE call bounds memory
            chunk = [im for pair in images[n:n + 4] for im in pair]
            s, m = self._encode(chunk, [generator] * len(chunk))
            latents.append(s.reshape(-1, 2, *s.shape[1:]))
            means.append(m.reshape(-1, 2, *m.shape[1:]))
            notify(Progress("context", min(n + 4, len(images)), len(images)))
        return torch.cat(latents), torch.cat(means), images

    # ------------------------------------------------------------------ the call

    def __call__(self, context, queries: Sequence | str, *, pairs: int = 4, select: str = "first",
                 size=None, fit: str = "squash", steps: int = 20, cfg: float = 1.5, seed: int = 0,
                 solver: str = "euler", batch_size: int = 4,
                 callback: Optional[Callable[[Progress], None]] = None) -> RunResult:
        """Predict the target of every query, in-context. `context`: a folder or (input, target) pairs."""
        with self._oom_advice(size, pairs, batch_size):
            return self._run(context, queries, pairs, select, size, fit, steps, cfg, seed, solver, batch_size, callback)

    def _run(self, context, queries, pairs, select, size, fit, steps, cfg, seed, solver, batch_size, callback) -> RunResult:
        notify = callback or (lambda _p: None)
        self._check(steps, cfg, solver, batch_size, fit)
        working = parse_size(size, self.default_size)
        context = ctx.find_pairs(context) if isinstance(context, (str, bytes)) or hasattr(context, "is_dir") else ctx.from_pairs(list(context))
        queries = [queries] if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence) else list(queries)
        ctx.select(pairs, len(context.pairs), select, seed, torch.zeros(len(context.pairs)))  # validate early
        t0 = time.perf_counter()
        candidates = list(range(len(context.pairs))) if select == "nearest" else ctx.select(pairs, len(context.pairs), select, seed)
        lat, means, images = self._encode_context(context, candidates, working, fit, seed, notify)
        context_seconds = time.perf_counter() - t0
        predictions: list[Prediction] = []
        settings = dict(pairs=pairs, select=select, steps=steps, cfg=cfg, seed=seed, solver=solver, fit=fit)
        for start in range(0, len(queries), batch_size):
            batch = queries[start:start + batch_size]
            predictions += self._run_batch(batch, start, context, candidates, lat, means, images, working, settings, notify)
            notify(Progress("query", len(predictions), len(queries)))
        record = self._record(context, working, settings, predictions, context_seconds, batch_size)
        return RunResult(predictions, record)

    def _check(self, steps: int, cfg: float, solver: str, batch_size: int, fit: str) -> None:
        if steps < 2:
            raise UsageError(f"--steps must be at least 2 (time points, as the official tool counts), got {steps}")
        if solver not in sampling.SOLVERS:
            raise UsageError(f"unknown --solver {solver!r}; choose one of {', '.join(sampling.SOLVERS)}")
        if batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
        if not np.isfinite(cfg):
            raise UsageError("--cfg must be a finite number")
        if fit not in media.FITS:
            raise UsageError(f"unknown --fit {fit!r}; choose one of {', '.join(media.FITS)}")

    def _load_query(self, query, index: int, working, fit: str):
        label = str(query) if isinstance(query, (str, bytes)) or hasattr(query, "is_file") else f"query #{index}"
        arr = media.read_image(query, label)
        fitted, placement = media.fit(arr, working, fit)
        return label, fitted, placement

    def _run_batch(self, batch, offset, context, candidates, lat, means, images, working, s, notify) -> list[Prediction]:
        t0 = time.perf_counter()
        loaded, out = [], []
        for i, q in enumerate(batch):
            try:
                loaded.append((len(out), *self._load_query(q, offset + i, working, s["fit"])))
                out.append(None)
            except LavinError as err:
                label = str(q) if not isinstance(q, np.ndarray) else f"query #{offset + i}"
                out.append(Prediction(label, error=str(err), code=err.exit_code))
        if loaded:
            for slot, pred in zip((l[0] for l in loaded), self._predict(loaded, context, candidates, lat, means, images, s, notify)):
                pred.seconds = (time.perf_counter() - t0) / len(loaded)
                out[slot] = pred
        return out

    def _predict(self, loaded, context, candidates, lat, means, images, s, notify) -> list[Prediction]:
        gens = [torch.Generator().manual_seed(s["seed"]) for _ in loaded]
        q_lat, q_mean = self._encode([fitted for _, _, fitted, _ in loaded], gens)
        chosen = []
        for m in q_mean[:, None]:
            sim = ctx.similarity(m[0], means[:, 0]) if s["select"] == "nearest" else None
            chosen.append(ctx.select(s["pairs"], len(candidates), s["select"], s["seed"], sim) if sim is not None
                          else list(range(len(candidates))))
        cond = torch.cat([sequence.condition(lat[idx], q[None]) for idx, q in zip(chosen, q_lat)])
        pixels = self.decode(self.generate(cond, 1, gens, s, notify))[:, 0]
        preds = []
        for (slot, label, fitted, placement), idx, px in zip(loaded, chosen, pixels):
            ids = [context.pairs[candidates[i]].id for i in idx]
            preds.append(Prediction(label, media.unfit(px, placement), ids, working=fitted,
                                    context=[images[i] for i in idx]))
        return preds

    def generate(self, cond: torch.Tensor, target_frames: int, gens: list[torch.Generator], s: dict, notify,
                 query_frames: int = 1) -> torch.Tensor:
        """Normalised target latents (B, C, target_frames, h, w) sampled for conditions (B, C, T_c, h, w)
        whose last `query_frames` frames are the query; sample i's noise comes from gens[i]."""
        shape = (1, cond.shape[1], target_frames, *cond.shape[-2:])
        noise = torch.cat([torch.randn(shape, generator=g) for g in gens]).to(self.device)
        cond = cond.to(self.device, self.dtype)
        with torch.no_grad(), self.offload.using(self.dit):
            velocity = sampling.guided(self.dit, cond, s["cfg"], sampling.null_condition(cond, query_frames))
            return sampling.sample(velocity, noise, s["steps"], s["solver"],
                                   callback=lambda d, t: notify(Progress("sample", d, t)))

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Normalised latents (B, C, T, h, w) -> uint8 frames (B, F, H, W, 3)."""
        with torch.no_grad(), self.offload.using(self.vae):
            decoded = sequence.decode_latents(self.vae, z.to(self.dtype), self._tile(tuple(8 * n for n in z.shape[-2:])))
        return sequence.float_to_uint8(sequence.unit_to_float(decoded)).permute(0, 2, 3, 4, 1).cpu().numpy()

    def _record(self, context, working, s, predictions, context_seconds, batch_size) -> dict:
        model = self.model
        return {
            "lavin": __version__,
            "model": {"name": model.name if model else "in-memory", "path": str(model.path) if model else None,
                      "dit_sha256": store.file_sha256(model.dit) if model else None,
                      "vae_sha256": store.file_sha256(model.vae) if model else None},
            "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "attention": self.attention, "offload": self.offload.name,
            "context": context.source, "context_pairs": len(context.pairs), "unpaired": context.unpaired,
            "size": {"height": working[0], "width": working[1]}, "batch_size": batch_size, **s,
            "timings": {"load_s": round(self.load_seconds, 4), "context_s": round(context_seconds, 4)},
            "queries": [{"query": p.query, "pairs": p.pairs, "seconds": round(p.seconds, 4), "error": p.error}
                        for p in predictions],
        }
