"""Held-out generated scenes written as a user's benchmark folders, with their exact truths:

    ROOT/context/<j>_input.png, <j>_target.png, task.json   the in-context pairs
    ROOT/queries/q<i>.png                                   the query images
    ROOT/truth/q<i>.<npy|png>                               the truth of each query

depth: metres (.npy float32); normals: unit vectors, zero off the surfaces (.npy); masks and
edges: 0/255 PNGs; restorations: the clean picture (.npy float32 in [0, 1], the generator's exact
values). The same scenes, pairs and queries as `lavin eval` draws for that seed, so `lavin eval
--truth` on these folders scores what the generator mode scores (tests/test_eval_data.py).

    python -c "from lavin_cli.evaluation.heldout import write_folders; write_folders('bench', 'depth_estimation')"
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lavin_cli.errors import UsageError
from lavin_cli.evaluation import evaluate
from lavin_cli.evaluation.dataset import TASK_FAMILIES
from lavin_cli.io import images as image_io
from lavin_cli.io.files import write_atomic
from lavin_cli.training import tasks


def _truth(task: str, case: evaluate.Case) -> tuple[str, np.ndarray]:
    """(extension, values) of a case's truth file."""
    metric = tasks.TASKS[task].metric
    if metric == "depth":
        return ".npy", case.render.depth.astype(np.float32)
    if metric == "normals":
        return ".npy", (case.render.normal * case.render.surface[..., None]).astype(np.float32)
    if metric == "mask":
        return ".png", np.where(case.render.instance > 0, 255, 0).astype(np.uint8)
    if metric == "edges":
        return ".png", np.where(case.target.mean(-1) > 0.5, 255, 0).astype(np.uint8)
    return ".npy", case.target.astype(np.float32)


def write_folders(root: str | Path, task: str, seed: int = 0, pairs: int = 3, queries: int = 8,
                  size: int = 64) -> dict[str, Path]:
    """Write ROOT/context, ROOT/queries and ROOT/truth for a generator image task; their paths."""
    if task not in tasks.IMAGE_TASKS or task not in TASK_FAMILIES:
        raise UsageError(f"{task!r}: write_folders takes one of {', '.join(t for t in tasks.IMAGE_TASKS if t in TASK_FAMILIES)}")
    root = Path(root)
    folders = {name: root / name for name in ("context", "queries", "truth")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for j, (inp, tgt) in enumerate(evaluate.context_pairs(task, seed, pairs, size)):
        image_io.write_image(folders["context"] / f"{j:03d}_input.png", tasks.to_uint8(inp), overwrite=True)
        image_io.write_image(folders["context"] / f"{j:03d}_target.png", tasks.to_uint8(tgt), overwrite=True)
    meta = {**tasks.task_json(task), "metric": TASK_FAMILIES[task]}
    write_atomic(folders["context"] / "task.json", json.dumps(meta).encode(), overwrite=True)
    for i, case in enumerate(evaluate.query_cases(task, seed, queries, size)):
        image_io.write_image(folders["queries"] / f"q{i:03d}.png", tasks.to_uint8(case.input), overwrite=True)
        ext, values = _truth(task, case)
        path = folders["truth"] / f"q{i:03d}{ext}"
        if ext == ".npy":
            write_atomic(path, image_io.encode_npy(values), overwrite=True)
        else:
            write_atomic(path, image_io.encode_image(values, ".png"), overwrite=True)
    return folders
