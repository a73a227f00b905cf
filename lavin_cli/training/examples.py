"""Task folders of example pairs (the `lavin run` context format) written from a data source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from lavin_cli.training.data import Source
from lavin_cli.training.tasks import GRAY_TARGETS, to_uint8


def write_task_folders(root: Path, source: Source, size: int, pairs: int = 6, seed: int = 0,
                       queries: int = 0) -> list[Path]:
    """root/<task>/<id>_input.png + <id>_target.png for every image task (existing folders kept),
    and `queries` extra query images under root/<task>/queries/."""
    written = []
    for index, task in enumerate(source.task_names):
        if source.kind(task) != "image":
            continue  # video examples arrive with `lavin video`
        folder = root / task
        if folder.is_dir() and any(folder.glob("*_input.png")):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = "gray" if task in GRAY_TARGETS else "rgb"
        (folder / "task.json").write_text(json.dumps({"target": target}) + "\n")
        for i in range(pairs + queries):
            rng = np.random.default_rng(seed + 1000 * index + i)
            inp, tgt = source.pair(task, rng, size)
            if i < pairs:
                Image.fromarray(to_uint8(inp[0])).save(folder / f"{i:03d}_input.png")
                Image.fromarray(to_uint8(tgt[0])).save(folder / f"{i:03d}_target.png")
            else:
                (folder / "queries").mkdir(exist_ok=True)
                Image.fromarray(to_uint8(inp[0])).save(folder / "queries" / f"q{i - pairs}.png")
        written.append(folder)
    return written
