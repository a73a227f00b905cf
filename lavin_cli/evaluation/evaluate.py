"""`lavin eval`: measure a model on held-out generated scenes, per task, against a trivial baseline.

Held-out scenes are drawn from numpy SeedSequence([0x1A71E, seed, task, i]) entropy; training
draws integer seeds only, so the two never meet. For each task, `queries` queries are answered
in-context from `pairs` held-out pairs, and scored against the exact ground truth:

    depth_estimation         AbsRel and delta1 (< 1.25) of depth, after least-squares scale and
                             shift alignment of the prediction (gray = inverse depth) to the true
                             inverse depth, as in the paper
    surface_normals          mean angular error in degrees over pixels that hit a surface
    foreground_segmentation  IoU of (prediction > 0.5) with the object mask
    edge_detection           F1 of (prediction > 0.5) against the edge map, 1-pixel tolerance
    restoration tasks        PSNR (dB) against the clean picture
    frame_prediction         PSNR of the 4 new frames; baseline: repeating the last input frame;
                             also the VAE's own reconstruction PSNR of those frames (no prediction
                             through the VAE can score above it)
    video_depth              AbsRel and delta1 over the clip after one alignment per clip
The baseline answers every query with the mean of the context targets (frame prediction: with
its last input frame repeated). Task switching: the same
clean-RGB query under the contexts of depth, normals, foreground and edges (the tasks that share
that input) must give, each time, the prediction closest (MSE) to that context's task; the report keeps,
per context task, which task's truth each answer was closest to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavin_cli.errors import UsageError
from lavin_cli.evaluation.metrics import better, depth_metrics, edge_f1, iou, normal_error, psnr
from lavin_cli.io.video import Clip, write_video
from lavin_cli.training import tasks

EVAL_TAG = 0x1A71E
SWITCH_TASKS = tuple(tasks.SCENE_TARGETS)  # the tasks of one rendered scene: the same query, different answers


def heldout_rng(seed: int, task: str, i: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([EVAL_TAG, seed, list(tasks.TASKS).index(task), i]))


@dataclass
class Case:
    """One held-out query: its input, the encoded target, and what the metric needs."""

    input: np.ndarray  # (H, W, 3) float in [0, 1]
    target: np.ndarray
    render: object = None


def case_setting(seed: int, task: str):
    """What the context pairs and queries of `task` share under `seed` (tasks.draw_setting), as a
    user's own context shows the degradation of their queries; None for most tasks."""
    return tasks.draw_setting(task, heldout_rng(seed, task, 200_000))


def make_case(task: str, rng: np.random.Generator, size: int, setting=None) -> Case:
    if task in tasks.SCENE_TARGETS:
        r = tasks.render_scene(rng, size)
        target = tasks.SCENE_TARGETS[task](r)
        target = np.repeat(target[..., None], 3, -1) if target.ndim == 2 else target
        return Case(r.rgb, target.astype(np.float32), r)
    inp, tgt = tasks.TASKS[task].make(rng, size, setting)
    return Case(inp[0], tgt[0])


def score(task: str, pred: np.ndarray, case: Case) -> dict[str, float]:
    """pred (H, W, 3) float in [0, 1]."""
    gray, metric = pred.mean(-1), tasks.TASKS[task].metric
    if metric == "depth":
        return depth_metrics(gray, case.render.depth)
    if metric == "normals":
        return {"angular_error_deg": normal_error(pred, case.render.normal, case.render.surface)}
    if metric == "mask":
        return {"iou": iou(gray, case.render.instance > 0)}
    if metric == "edges":
        return {"f1": edge_f1(gray, case.target.mean(-1))}
    return {"psnr_db": psnr(pred, case.target)}


def _u8(x: np.ndarray) -> np.ndarray:
    return tasks.to_uint8(x)


def context_pairs(task: str, seed: int, pairs: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out, setting = [], case_setting(seed, task)
    for j in range(pairs):
        case = make_case(task, heldout_rng(seed, task, 100_000 + j), size, setting)
        out.append((case.input, case.target))
    return out


def query_cases(task: str, seed: int, queries: int, size: int) -> list[Case]:
    setting = case_setting(seed, task)
    return [make_case(task, heldout_rng(seed, task, i), size, setting) for i in range(queries)]


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([d[k] for d in dicts])), 4) for k in dicts[0]}


def task_keep(task: str, keep: str) -> str:
    """What a prediction of `task` keeps of its query: `keep` where it is a rule for the task's
    kind ('none' for any, 'last' for clips, the others for images; RunOptions/VideoOptions.keep),
    else the task's own as `lavin run -t` / `lavin video` give it (Task.keep, what its task
    folder's task.json says; a clip task's 'auto' is decided by the video runner)."""
    video = tasks.TASKS[task].kind == "video"
    if keep == "none" or (keep != "auto" and (keep == "last") == video):
        return keep
    return "auto" if video else (tasks.TASKS[task].keep or "none")


def evaluate_task(pipe, task: str, seed: int, queries: int, pairs: int, size: int, keep: str = "auto",
                  **sampling) -> dict:
    context = context_pairs(task, seed, pairs, size)
    cases = query_cases(task, seed, queries, size)
    result = pipe([(_u8(a), _u8(b)) for a, b in context], [_u8(c.input) for c in cases], pairs=pairs, seed=seed,
                  size=size, keep=task_keep(task, keep), **sampling)
    baseline = np.mean([b for _, b in context], axis=0)
    ours = [score(task, p.image.astype(np.float32) / 255, c) for p, c in zip(result.predictions, cases)]
    base = [score(task, baseline, c) for c in cases]
    metrics, base_metrics = _mean(ours), _mean(base)
    return {"metrics": metrics, "baseline": base_metrics, "better_than_baseline": better(metrics, base_metrics),
            "keep": result.record["keep"]}


def evaluate_video_task(pipe, task: str, seed: int, queries: int, pairs: int, size: int, keep: str = "auto",
                        **sampling) -> dict:
    """frame_prediction: PSNR of the 4 new frames; the baseline repeats the last input frame.
    video_depth: AbsRel / delta1 of every frame after one scale-and-shift alignment per clip; the
    baseline is the mean of the context targets."""
    import tempfile

    sampling.pop("batch_size", None)
    sampling["keep"] = task_keep(task, keep)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        targets, paths, renders = write_video_case(root, task, seed, pairs, queries, size)
        truths = [(np.stack([r.rgb for r in clip]), np.stack([r.depth for r in clip])) for clip in renders]
        result = pipe.video(root / "ctx", paths, frames=4 if _frames(task) else None, pairs=pairs, seed=seed,
                            size=size, **sampling)
        longer = pipe.video(root / "ctx", paths, frames=12, pairs=pairs, seed=seed, size=size, **sampling) \
            if _frames(task) else None
    ours, base, ceiling = [], [], []
    for pred, (frames, depth) in zip(result.predictions, truths):
        p = pred.clip.frames.astype(np.float32) / 255
        if _frames(task):
            scores = continuation_scores(pipe, p, frames)
            ours.append({"psnr_db": scores["model"]})
            base.append({"psnr_db": scores["input"]})
            ceiling.append(scores["vae_ceiling"])
        else:
            ours.append(depth_metrics(p.mean(-1), depth))
            base.append(depth_metrics(np.mean(targets, axis=0).mean(-1), depth))  # the mean context target
    metrics, base_metrics = _mean(ours), _mean(base)
    report = {"metrics": metrics, "baseline": base_metrics, "better_than_baseline": better(metrics, base_metrics),
              "keep": result.record["keep"]}
    if ceiling:
        report["vae_ceiling_db"] = round(float(np.mean(ceiling)), 2)
    if longer is not None:
        report["continuity"] = continuity([p.clip.frames for p in longer.predictions], chunk=4)
    return report


def _frames(task: str) -> bool:
    """A task whose target is the clip's continuation (scored against repeating its last frame)."""
    return tasks.TASKS[task].metric == "frames"


def continuation_scores(pipe, predicted: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    """Frame prediction's protocol for one query whose true clip is `frames` (9, H, W, 3), the
    query its frames 0-4: PSNR of the 4 `predicted` new frames against frames 5-8 ("model"), of
    repeating frame 4 ("input") and of the VAE's own coding of the target clip 4-8 without its
    anchor ("vae_ceiling")."""
    return {"model": psnr(predicted, frames[5:9]), "input": psnr(np.repeat(frames[4:5], 4, axis=0), frames[5:9]),
            "vae_ceiling": psnr(reconstruct(pipe, frames[4:9])[1:], frames[5:9])}


def write_clip_case(root: Path, context: list[tuple[np.ndarray, np.ndarray]], queries: list[np.ndarray]) -> list[str]:
    """Context clip pairs (frames in [0, 1]) as root/ctx/<j>_input and _target, query clips as
    root/q<i>, frame folders at 8 fps; the query paths."""
    for j, (inp, tgt) in enumerate(context):
        write_video(root / "ctx" / f"{j:03d}_input", Clip(tasks.to_uint8(inp), 8))
        write_video(root / "ctx" / f"{j:03d}_target", Clip(tasks.to_uint8(tgt), 8))
    for i, clip in enumerate(queries):
        write_video(root / f"q{i}", Clip(tasks.to_uint8(clip), 8))
    return [str(root / f"q{i}") for i in range(len(queries))]


def write_video_case(root: Path, task: str, seed: int, pairs: int, queries: int, size: int):
    """Held-out context clip pairs (root/ctx/<j>_input, _target) and 5-frame query clips (root/q<i>)
    of a video task, as files; returns (the context targets, the query paths, each query's renders:
    9 frames for frame_prediction, whose last 4 are the truth, else 5)."""
    context = [tasks.TASKS[task].make(heldout_rng(seed, task, 100_000 + j), size) for j in range(pairs)]
    renders = [tasks.clip_renders(heldout_rng(seed, task, i), size, 9 if _frames(task) else 5) for i in range(queries)]
    paths = write_clip_case(root, context, [np.stack([r.rgb for r in clip[:5]]) for clip in renders])
    return [tgt for _, tgt in context], paths, renders


def continuity(clips: list[np.ndarray], chunk: int) -> dict[str, float]:
    """PSNR of each predicted frame against the one before it, averaged within chunks and across
    the boundaries between chunks: a visible jump between chunks shows as a lower boundary value."""
    within, boundary = [], []
    for frames in clips:
        f = frames.astype(np.float32) / 255
        for t in range(1, len(f)):
            (boundary if t % chunk == 0 else within).append(psnr(f[t], f[t - 1]))
    return {"within_chunk_db": round(float(np.mean(within)), 2), "across_chunks_db": round(float(np.mean(boundary)), 2)}


def vae_ceiling(pipe, seed: int, queries: int, size: int) -> dict[str, float]:
    """The VAE's own reconstruction PSNR (posterior mean, decoded) on clean held-out scenes and
    5-frame clips: the best any prediction through this VAE can do."""
    pictures, clips = [], []
    for i in range(queries):
        pictures.append(tasks.render_scene(heldout_rng(seed, "colorization", 900_000 + i), size).rgb[None])
        clips.append(np.stack([r.rgb for r in tasks.clip_renders(heldout_rng(seed, "video_depth", 900_000 + i), size, 5)]))
    scores = {}
    for name, items in (("image_psnr_db", pictures), ("clip_psnr_db", clips)):
        scores[name] = round(float(np.mean([psnr(reconstruct(pipe, frames), frames) for frames in items])), 2)
    return scores


def reconstruct(pipe, frames: np.ndarray, raw: bool = False) -> np.ndarray:
    """Frames (F, H, W, 3) in [0, 1] through the VAE (posterior mean, decoded), in [0, 1]; with
    `raw`, as decoded, not rounded to 8 bits."""
    import torch

    _, mean = pipe.engine.encode(tasks.to_uint8(frames)[None], [torch.Generator().manual_seed(0)])
    if raw:
        return pipe.engine.decode(mean, raw=True)[1][0]
    return pipe.engine.decode(mean)[0].astype(np.float32) / 255


def task_switch(pipe, names: list[str], seed: int, queries: int, pairs: int, size: int,
                **sampling) -> dict[str, dict[str, int]] | None:
    """For each context task T (of those sharing the clean-picture input), how many answers under
    T's context were closest (MSE) to each task's truth: {T: {answered: count}}; the diagonal is
    what switched right (None when fewer than two of the evaluated tasks share that input)."""
    names = [n for n in SWITCH_TASKS if n in names]
    if len(names) < 2:
        return None
    renders = [tasks.render_scene(heldout_rng(seed, "depth_estimation", 500_000 + i), size) for i in range(queries)]
    truths = {n: [np.broadcast_to(np.atleast_3d(tasks.SCENE_TARGETS[n](r)), r.rgb.shape) for r in renders] for n in names}
    answers: dict[str, dict[str, int]] = {}
    for task in names:
        context = [(_u8(a), _u8(b)) for a, b in context_pairs(task, seed, pairs, size)]
        result = pipe(context, [_u8(r.rgb) for r in renders], pairs=pairs, seed=seed, size=size, **sampling)
        answers[task] = dict.fromkeys(names, 0)
        for i, pred in enumerate(result.predictions):
            p = pred.image.astype(np.float32) / 255
            errors = {n: float(np.mean((p - truths[n][i]) ** 2)) for n in names}
            answers[task][min(errors, key=errors.get)] += 1
    return answers


def switch_accuracy(answers: dict[str, dict[str, int]]) -> float:
    """Share of all answers that were closest to their own context's task."""
    return sum(row[task] for task, row in answers.items()) / sum(sum(row.values()) for row in answers.values())


def evaluate(pipe, names: list[str] | None = None, seed: int = 0, queries: int = 8, pairs: int | None = None,
             steps: int = 11, cfg: float = 1.5, callback=None, solver: str = "euler",
             cfg_interval: tuple[float, float] = (0.0, 1.0), cond_refresh: int = 1, size: int | None = None,
             batch_size: int | None = None, keep: str = "auto") -> dict:
    """Per-task metrics, baseline and task-switch accuracy of the model behind `pipe`; `pairs`
    and `size` (the side of the square scenes, the working size) default to the model's
    (Pipeline.default_pairs, default_size); `batch_size` to the queries of a task at once; `keep`
    what image predictions keep of their queries (task_keep: 'auto' is each task's own rule)."""
    size = size or pipe.default_size
    pairs = pipe.default_pairs if pairs is None else pairs
    unknown = [n for n in names or [] if n not in tasks.TASKS]
    if unknown:
        raise UsageError(f"unknown task(s) {', '.join(unknown)}; the generator's are {', '.join(tasks.TASKS)}")
    names = names or list((pipe.model.trained_tasks if pipe.model else None) or tasks.IMAGE_TASKS)
    sampling = {"steps": steps, "cfg": cfg, "batch_size": batch_size or queries, "solver": solver,
                "cfg_interval": cfg_interval, "cond_refresh": cond_refresh}
    report: dict = {"model": pipe.model.name if pipe.model else None, "seed": seed, "queries_per_task": queries,
                    "pairs": pairs, "steps": steps, "cfg": cfg, "solver": solver, "cfg_interval": list(cfg_interval), "cond_refresh": cond_refresh,
                    "keep": keep, "dtype": str(pipe.dtype).replace("torch.", ""), "size": size, "tasks": {}, "skipped": {}}
    for n, task in enumerate(names):
        if task not in tasks.TASKS:
            report["skipped"][task] = "not a generator task"
        elif tasks.TASKS[task].kind == "video":
            report["tasks"][task] = evaluate_video_task(pipe, task, seed, queries, pairs, size, keep, **sampling)
        else:
            report["tasks"][task] = evaluate_task(pipe, task, seed, queries, pairs, size, keep, **sampling)
        if callback:
            callback(n + 1, len(names) + 1)
    answers = task_switch(pipe, names, seed, queries, pairs, size, **sampling)
    report["task_switch_accuracy"] = None if answers is None else round(switch_accuracy(answers), 4)
    report["task_switch_answers"] = answers
    report["vae_ceiling"] = vae_ceiling(pipe, seed, queries, size)
    if callback:
        callback(len(names) + 1, len(names) + 1)
    return report


def evaluate_draws(pipe, names: list[str] | None = None, seed: int = 0, draws: int = 1, callback=None,
                   **keywords) -> dict:
    """evaluate at seeds seed .. seed + draws - 1, merged (evaluation/draws.py)."""
    from functools import partial

    from lavin_cli.evaluation import draws as repeat

    return repeat.merge_scenes(repeat.over_draws(partial(evaluate, pipe, names, **keywords), seed, draws, callback))
