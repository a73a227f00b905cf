"""Training data sources: the procedural generator, or a folder of task folders.

A source hands out whole (input, target) pairs of one task, and loose images/clips for the VAE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError, UsageError
from lavin_cli.inference.context import find_pairs
from lavin_cli.io import images as image_io
from lavin_cli.training import tasks as gen


class Source:
    task_names: list[str]

    def kind(self, task: str) -> str:
        raise NotImplementedError

    def pair(self, task: str, rng: np.random.Generator, size: int, setting=None) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) frames (F, H, W, 3) float32 in [0, 1]; `setting`: what the pairs of one
        sample share (draw_setting), drawn for this pair alone where None."""
        raise NotImplementedError

    def draw_setting(self, task: str, rng: np.random.Generator):
        """What every pair of one sample of `task` shares (tasks.py: low-light's darkening), or None
        where its pairs are independent."""
        return None

    def member(self, setting, index: int):
        """The setting of the `index`-th pair of a sample whose pairs share `setting`, where the
        pairs must also differ (photos.py: same-photo pairs each take their own part of the
        photo); `setting` itself by default."""
        return setting

    def images(self, rng: np.random.Generator, n: int, size: int,
               weights: tuple[tuple[str, float], ...] = ()) -> np.ndarray:
        """n single images (n, H, W, 3) drawn from inputs and targets of the image tasks (tasks
        drawn under the relative `weights`, see task_probabilities)."""
        return self._pictures("image", rng, n, size, weights)[:, 0]

    def clips(self, rng: np.random.Generator, n: int, size: int,
              weights: tuple[tuple[str, float], ...] = ()) -> np.ndarray:
        """n 5-frame clips (n, 5, H, W, 3) from the video tasks (still images repeated if none)."""
        if not any(self.kind(t) == "video" for t in self.task_names):
            return np.repeat(self.images(rng, n, size, weights)[:, None], 5, axis=1)
        return self._pictures("video", rng, n, size, weights)

    def _pictures(self, kind: str, rng: np.random.Generator, n: int, size: int,
                  weights: tuple[tuple[str, float], ...]) -> np.ndarray:
        """n inputs or targets (n, F, H, W, 3), each of a task of `kind` drawn under `weights`."""
        names = [t for t in self.task_names if self.kind(t) == kind]
        p = task_probabilities(names, weights)
        out = []
        for _ in range(n):
            inp, tgt = self.pair(str(rng.choice(names, p=p)), rng, size)
            out.append(inp if rng.random() < 0.5 else tgt)
        return np.stack(out)

def task_probabilities(names: list[str], weights: tuple[tuple[str, float], ...]) -> np.ndarray | None:
    """Draw probabilities of `names` under the relative task weights (None: uniform, as without)."""
    table = dict(weights)
    if not any(n in table for n in names):
        return None
    w = np.array([table.get(n, 1.0) for n in names], dtype=np.float64)
    return w / w.sum()


def check_task_weights(weights: tuple[tuple[str, float], ...], names: list[str]) -> None:
    """Refuse, before anything is written, weights that name a task twice or one not trained, or
    that are not a finite number above 0 (inf would turn the draw probabilities into NaN)."""
    seen = [task for task, _ in weights]
    for task, w in weights:
        if seen.count(task) > 1:
            raise UsageError(f"--task-weights names {task} {seen.count(task)} times: give each task once")
        if task not in names:
            raise UsageError(f"--task-weights names {task!r}, which is not among the training tasks ({', '.join(names)})")
        if not (math.isfinite(w) and w > 0):
            raise UsageError(f"--task-weights {task}={w}: a weight must be a finite number above 0")


class Generator(Source):
    """The built-in procedural tasks (lavin_cli/train/tasks.py), endless and seeded."""

    def __init__(self, names: list[str] | None = None):
        unknown = sorted(set(names or []) - set(gen.TASKS))
        if unknown:
            raise InputError(f"unknown generator task(s) {unknown}; known: {', '.join(gen.TASKS)}")
        self.task_names = list(names or gen.TASKS)

    def kind(self, task: str) -> str:
        return gen.TASKS[task].kind

    def pair(self, task, rng, size, setting=None):
        return gen.TASKS[task].make(rng, size, setting)

    def draw_setting(self, task, rng):
        return gen.draw_setting(task, rng)


@dataclass
class _FolderTask:
    pairs: list[tuple[Path, Path]]


class Folders(Source):
    """A folder of task folders, each in the `lavin run` context format (image pairs)."""

    def __init__(self, root: Path):
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root}: training data folder not found")
        self.tasks: dict[str, _FolderTask] = {}
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                ctx = find_pairs(sub)
            except InputError:
                continue
            self.tasks[sub.name] = _FolderTask([(Path(p.input), Path(p.target)) for p in ctx.pairs])
        if not self.tasks:
            raise InputError(f"{root}: no task folders with <id>_input/<id>_target pairs")
        self.task_names = list(self.tasks)

    def kind(self, task: str) -> str:
        return "image"

    def pair(self, task, rng, size, setting=None):  # a folder's pairs are as the user made them
        inp, tgt = self.tasks[task].pairs[int(rng.integers(len(self.tasks[task].pairs)))]
        load = lambda p: image_io.fit(image_io.read_image(p), (size, size))[0][None].astype(np.float32) / 255  # noqa: E731
        return load(inp), load(tgt)
