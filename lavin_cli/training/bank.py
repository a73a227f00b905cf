"""A bank of VAE-encoded (input, target) pairs per task, refreshed a few slots at a time.

Rendering and encoding every frame of every training sample would cost more than the DiT
step on a CPU, so training draws pairs from a bank of `slots` encoded pairs per task. Slot j is
regenerated every `period` steps (staggered across slots), from a seed that is a pure function
of (seed, task, slot, generation): the bank at any step can be rebuilt exactly, which keeps
resumed runs identical to uninterrupted ones.

A task whose pairs share a setting within a sample (Source.draw_setting: low-light's darkening)
keeps its slots in groups of `group` (the most pairs a sample draws: context pairs + query): the
members of a group share one setting and are regenerated together, and a sample draws its pairs
from one group.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from lavin_cli.inference import codec
from lavin_cli.models.vae import STVAE
from lavin_cli.training.data import Source


class LatentBank:
    def __init__(self, source: Source, vae: STVAE, slots: int, size: int, seed: int, period: int = 400,
                 group: int = 1):
        self.source, self.vae, self.slots, self.size, self.seed = source, vae, slots, size, seed
        self.period, self.group = period, max(1, group)
        self.tasks = list(source.task_names)
        self.grouped = {t for t in self.tasks if source.draw_setting(t, np.random.default_rng(0)) is not None}
        # moments[task][slot] = (input moments, target moments), each (2C, F', h, w) float16
        self.moments: dict[str, list] = {t: [None] * slots for t in self.tasks}

    def _first(self, task: str, slot: int) -> int:
        """The first slot of `slot`'s group (itself where the task's pairs are independent)."""
        return slot - slot % self.group if task in self.grouped else slot

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

    def _setting(self, task: str, slot: int, generation: int):
        """The setting `slot`'s group shares at `generation`, as its member (None for independent pairs)."""
        if task not in self.grouped:
            return None
        group_seed = self._seed(self.tasks.index(task), self.slots + slot // self.group, generation)
        return self.source.member(self.source.draw_setting(task, np.random.default_rng(group_seed)), slot % self.group)

    def _fill(self, wanted: list[tuple[str, int, int]]) -> None:
        frames = []
        for task, slot, generation in wanted:
            rng = np.random.default_rng(self._seed(self.tasks.index(task), slot, generation))
            frames += list(self.source.pair(task, rng, self.size, self._setting(task, slot, generation)))
        encoded = self.encode(frames)
        for n, (task, slot, _) in enumerate(wanted):
            self.moments[task][slot] = (encoded[2 * n], encoded[2 * n + 1])

    def build(self, step: int, progress: Optional[Callable[[int, int], None]] = None) -> None:
        """Fill every slot as it stands at `step`; `progress(done, total)` after each group."""
        wanted = [(t, j, self._generation(self._first(t, j), step)) for t in self.tasks for j in range(self.slots)]
        for n in range(0, len(wanted), 64):
            self._fill(wanted[n:n + 64])
            if progress:
                progress(min(n + 64, len(wanted)), len(wanted))

    def advance(self, step: int) -> None:
        """Regenerate the slots whose generation changes at `step`."""
        wanted = [(t, j, self._generation(self._first(t, j), step)) for t in self.tasks for j in range(self.slots)
                  if step > 0 and self._generation(self._first(t, j), step) != self._generation(self._first(t, j), step - 1)]
        if wanted:
            self._fill(wanted)

    def draw(self, task: str, rng: np.random.Generator, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`count` distinct pairs of `task` (of one group where its pairs share a setting)."""
        if task not in self.grouped:
            picks = rng.choice(self.slots, size=count, replace=False)
        else:
            first = self.group * int(rng.integers(max(1, self.slots // self.group)))
            picks = first + rng.choice(min(self.group, self.slots - first), size=count, replace=False)
        return [self.moments[task][int(j)] for j in picks]


def _same_shape_groups(frames: list[np.ndarray]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(f.shape, []).append(i)
    return list(groups.values())
