"""`lavin eval --photos DIR`: a model on crops of real photos, for the tasks whose truth follows
from the photo itself (training/photos.py: the restorations, colorization, edges).

For each task, in context: `pairs` pairs and `queries` queries, each made from its own random
crop of the photos (a fixed seed). A restoration is scored by PSNR beside two references: the
degraded input's own PSNR (what doing nothing scores: a restoration must beat it) and the VAE's
reconstruction of the truth (the ceiling no prediction through the VAE passes). Edges are scored
by F1 at 0.5 with a one-pixel tolerance against the Sobel detector on the clean crop, beside the
mean context target's F1 (the generator eval's baseline). Frame prediction runs on clips of a
camera moving over a photo: PSNR of the 4 new frames against repeating the last input frame,
beside the VAE's own coding of the true new frames.

evaluate_draws repeats it over seeds (evaluation/draws.py: one seed is one draw of the examples).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError
from lavin_cli.evaluation.evaluate import EVAL_TAG, continuation_scores, reconstruct, task_keep, write_clip_case
from lavin_cli.evaluation.metrics import edge_f1, psnr
from lavin_cli.training import tasks
from lavin_cli.training.photos import ALL_PHOTO_TASKS, Photos


def _rng(seed: int, task: str, part: int) -> np.random.Generator:
    """Crops drawn per (seed, task, part): part 0 the context pairs, 1 the queries, 2 the setting
    they share (tasks.draw_setting: low-light's darkening)."""
    return np.random.default_rng(np.random.SeedSequence([EVAL_TAG, seed, list(tasks.TASKS).index(task), part]))


CONTEXT, QUERIES = 0, 1  # the parts of a (seed, task) that crops are drawn for


def shared_setting(photos: Photos, task: str, seed: int):
    """What the context pairs and queries of `task` share at `seed` (low-light's darkening; else None)."""
    return photos.draw_setting(task, _rng(seed, task, 2))


def photo_pairs(photos: Photos, task: str, seed: int, part: int, count: int, size: int, setting=None) -> list:
    """The eval's `count` (input, target) crops of `task` for `part` (CONTEXT or QUERIES) at `seed`."""
    rng = _rng(seed, task, part)
    return [photos.pair(task, rng, size, setting) for _ in range(count)]


def evaluate_task(pipe, photos: Photos, task: str, seed: int, queries: int, pairs: int, size: int,
                  batch_size: int | None = None, keep: str = "auto", **sampling) -> dict:
    """One task's metrics and references on photo crops."""
    setting = shared_setting(photos, task, seed)
    context = photo_pairs(photos, task, seed, CONTEXT, pairs, size, setting)
    cases = photo_pairs(photos, task, seed, QUERIES, queries, size, setting)
    u8 = tasks.to_uint8
    result = pipe([(u8(a[0]), u8(b[0])) for a, b in context], [u8(a[0]) for a, _ in cases], pairs=pairs, seed=seed,
                  size=size, batch_size=batch_size or queries, keep=task_keep(task, keep), **sampling)
    preds = [p.image.astype(np.float32) / 255 for p in result.predictions]
    truths = [t[0] for _, t in cases]
    if tasks.TASKS[task].metric == "edges":
        baseline = np.mean([b[0] for _, b in context], axis=0).mean(-1)
        return {"metric": "f1", "model": _mean(edge_f1(p.mean(-1), t.mean(-1)) for p, t in zip(preds, truths)),
                "baseline": _mean(edge_f1(baseline, t.mean(-1)) for t in truths)}
    return {"metric": "psnr_db", "model": _mean(psnr(p, t) for p, t in zip(preds, truths)),
            "input": _mean(psnr(i[0], t) for (i, _), t in zip(cases, truths)),
            "vae_ceiling": _mean(psnr(reconstruct(pipe, t[None])[0], t) for t in truths),
            "keep": result.record["keep"]}


def evaluate_clips(pipe, photos: Photos, task: str, seed: int, queries: int, pairs: int, size: int,
                   batch_size: int | None = None, keep: str = "auto", **sampling) -> dict:
    """Frame prediction on photo clips (evaluate.continuation_scores: the query is frames 0-4, the
    truth frames 5-8); clips are sampled one at a time, whatever `batch_size`."""
    import tempfile

    context = photo_pairs(photos, task, seed, CONTEXT, pairs, size)
    rng = _rng(seed, task, QUERIES)
    clips = [photos.clip(rng, size, 9) for _ in range(queries)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_clip_case(root, context, [c[:5] for c in clips])
        result = pipe.video(root / "ctx", paths, frames=4, pairs=pairs, seed=seed, size=size,
                            keep=task_keep(task, keep), **sampling)
    scores = [continuation_scores(pipe, p.clip.frames.astype(np.float32) / 255, c)
              for p, c in zip(result.predictions, clips)]
    return {"metric": "psnr_db", **{k: _mean(s[k] for s in scores) for k in ("model", "input", "vae_ceiling")},
            "keep": result.record["keep"]}


def _mean(values) -> float:
    return round(float(np.mean(list(values))), 4)


def default_tasks(pipe) -> list[str]:
    """The photo tasks the model was trained on (all of them where its model.json does not say)."""
    trained = pipe.model.trained_tasks if pipe.model else None
    return [t for t in ALL_PHOTO_TASKS if trained is None or t in trained] or list(ALL_PHOTO_TASKS)


def evaluate_photos(pipe, photos: Photos, names: list[str] | None = None, seed: int = 0, queries: int = 8,
                    pairs: int | None = None, steps: int = 11, cfg: float = 1.5, solver: str = "euler",
                    cfg_interval: tuple[float, float] = (0.0, 1.0), cond_refresh: int = 1, callback=None,
                    size: int | None = None, batch_size: int | None = None, keep: str = "auto") -> dict:
    """Per-task scores of the model behind `pipe` on crops of `photos` (Photos([folder, ...]),
    decoded once): the tasks `names`, else those of the model's that photos make; `size` (the
    crops' side, the working size) defaults to the model's, `batch_size` to a task's queries;
    `keep` what image predictions keep of their queries ('auto': each task's rule, task_keep)."""
    names = names or default_tasks(pipe)
    unknown = [t for t in names if t not in ALL_PHOTO_TASKS]
    if unknown:
        raise InputError(f"task(s) {unknown} cannot be made from photos; these can: {', '.join(ALL_PHOTO_TASKS)}")
    size, pairs = size or pipe.default_size, pipe.default_pairs if pairs is None else pairs
    sampling = {"steps": steps, "cfg": cfg, "solver": solver, "cfg_interval": cfg_interval,
                "cond_refresh": cond_refresh, "batch_size": batch_size, "keep": keep}
    report: dict = {"model": pipe.model.name if pipe.model else None, "photos": [str(r) for r in photos.roots],
                    "photo_files": len(photos.files), "seed": seed, "queries_per_task": queries, "pairs": pairs,
                    "steps": steps, "cfg": cfg, "solver": solver, "keep": keep, "dtype": str(pipe.dtype).replace("torch.", ""),
                    "size": size, "tasks": {}}
    for n, task in enumerate(names):
        run = evaluate_clips if photos.kind(task) == "video" else evaluate_task
        report["tasks"][task] = run(pipe, photos, task, seed, queries, pairs, size, **sampling)
        if callback:
            callback(n + 1, len(names))
    return report


def evaluate_draws(pipe, photos: Photos, names: list[str] | None = None, seed: int = 0, draws: int = 1,
                   callback=None, **keywords) -> dict:
    """evaluate_photos at seeds seed .. seed + draws - 1, merged (evaluation/draws.py)."""
    from functools import partial

    from lavin_cli.evaluation import draws as repeat

    run = partial(evaluate_photos, pipe, photos, names, **keywords)
    return repeat.merge_photos(repeat.over_draws(run, seed, draws, callback))
