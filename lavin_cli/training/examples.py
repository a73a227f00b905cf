"""Task folders of example pairs (the `lavin run` / `lavin video` context format) written from a
data source: image tasks as PNG pairs, video tasks as small MP4 clip pairs, each folder with its
task.json and, on request, a few queries under queries/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from lavin_cli.errors import OutputError
from lavin_cli.io.video import Clip, write_video
from lavin_cli.training.data import Source
from lavin_cli.training.tasks import task_json, to_uint8

CLIP_FPS = 8


def _write(path: Path, frames: np.ndarray, video: bool) -> None:
    """(F, H, W, 3) float frames -> a PNG (one frame) or an MP4 clip."""
    if video:
        write_video(path.with_suffix(".mp4"), Clip(to_uint8(frames), CLIP_FPS), overwrite=True)
    else:
        Image.fromarray(to_uint8(frames[0])).save(path.with_suffix(".png"))


def write_task_folders(root: Path, source: Source, size: int, pairs: int = 6, seed: int = 0,
                       queries: int = 0, tasks: list[str] | None = None, replace: bool = False) -> list[Path]:
    """root/<task>/<id>_input + <id>_target (.png for image tasks, .mp4 for video tasks) for every
    task (existing folders kept unless `replace`), task.json, and `queries` query inputs under
    root/<task>/queries/. Pair i of task k is drawn from seed + 1000 k + i; the pairs and queries of
    a folder share one setting (Source.draw_setting), drawn from seed + 1000 k + 999."""
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root}: is a file; --out names the folder of task folders to write")
    written = []
    for index, task in enumerate(source.task_names):
        if tasks is not None and task not in tasks:
            continue
        video = source.kind(task) == "video"
        folder = root / task
        if folder.is_dir() and any(folder.glob("*_input.*")) and not replace:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for old in [*folder.glob("*_input.*"), *folder.glob("*_target.*"), *folder.glob("queries/*")]:
            old.unlink()
        (folder / "task.json").write_text(json.dumps(task_json(task, "video" if video else "image")) + "\n")
        setting = source.draw_setting(task, np.random.default_rng(seed + 1000 * index + 999))
        for i in range(pairs + queries):
            rng = np.random.default_rng(seed + 1000 * index + i)
            inp, tgt = source.pair(task, rng, size, source.member(setting, i))
            if i < pairs:
                _write(folder / f"{i:03d}_input", inp, video)
                _write(folder / f"{i:03d}_target", tgt, video)
            else:
                (folder / "queries").mkdir(exist_ok=True)
                _write(folder / "queries" / f"q{i - pairs}", inp, video)
        written.append(folder)
    return written
