"""A bank of VAE-encoded (input, target) pairs per task, refreshed a few slots at a time.

Rendering and encoding every frame of every training sample would cost more than the DiT
step on a CPU, so training draws pairs from a bank of `slots` encoded pairs per task. Slot j is
regenerated every `period` steps (staggered across slots), from a seed that is a pure function
of (seed, task, slot, generation): the bank at any step can be rebuilt exactly, which keeps
resumed runs identical to uninterrupted ones.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from lavin_cli.inference import codec
from lavin_cli.models.vae import STVAE
from lavin_cli.training.data import Source


class LatentBank:
    def __init__(self, source: Source, vae: STVAE, slots: int, size: int, seed: int, period: int = 400):
        self.source, self.vae, self.slots, self.size, self.seed = source, vae, slots, size, seed
        self.period = period
        self.tasks = list(source.task_names)
        # moments[task][slot] = (input moments, target moments), each (2C, F', h, w) float16
        self.moments: dict[str, list] = {t: [None] * slots for t in self.tasks}

    def _generation(self, slot: int, step: int) -> int:
        return (step + slot * self.period // self.slots) // self.period

    def _seed(self, task_index: int, slot: int, generation: int) -> int:
        return (self.seed * 1_000_003 + task_index * 7_919_113 + slot * 104_729 + generation * 15_485_863) % (2**63 - 1)

    @torch.no_grad()
    def encode(self, frames: list[np.ndarray]) -> list[torch.Tensor]:
        """Frames (F, H, W, 3) in [0, 1] -> moments (2C, F', h, w); images (F = 1) in one batch."""
        out = []
        for group in _same_shape_groups(frames):
            x = codec.to_unit(torch.from_numpy(np.stack([frames[i] for i in group])).permute(0, 4, 1, 2, 3).float())
            m = self.vae.encode(x.to(self.vae.encoder.conv_in.weight.dtype)).moments.to(torch.float16)
            out += list(zip(group, m))
        return [m for _, m in sorted(out, key=lambda p: p[0])]

    def _fill(self, wanted: list[tuple[str, int, int]]) -> None:
        frames = []
        for task, slot, generation in wanted:
            rng = np.random.default_rng(self._seed(self.tasks.index(task), slot, generation))
            frames += list(self.source.pair(task, rng, self.size))
        encoded = self.encode(frames)
        for n, (task, slot, _) in enumerate(wanted):
            self.moments[task][slot] = (encoded[2 * n], encoded[2 * n + 1])

    def build(self, step: int, progress: Optional[Callable[[int, int], None]] = None) -> None:
        """Fill every slot as it stands at `step`; `progress(done, total)` after each group."""
        wanted = [(t, j, self._generation(j, step)) for t in self.tasks for j in range(self.slots)]
        for n in range(0, len(wanted), 64):
            self._fill(wanted[n:n + 64])
            if progress:
                progress(min(n + 64, len(wanted)), len(wanted))

    def advance(self, step: int) -> None:
        """Regenerate the slots whose generation changes at `step`."""
        wanted = [(t, j, self._generation(j, step)) for t in self.tasks for j in range(self.slots)
                  if step > 0 and self._generation(j, step) != self._generation(j, step - 1)]
        if wanted:
            self._fill(wanted)

    def draw(self, task: str, rng: np.random.Generator, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`count` distinct pairs of `task`."""
        picks = rng.choice(self.slots, size=count, replace=False)
        return [self.moments[task][int(j)] for j in picks]


def _same_shape_groups(frames: list[np.ndarray]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(f.shape, []).append(i)
    return list(groups.values())
