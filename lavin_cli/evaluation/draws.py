"""An eval repeated over seeds: `lavin eval --draws N`.

Every query of a seed shares the seed's context pairs (the generated scenes' and the photo
crops' alike), so one seed is one draw of the examples, and its scores move with that draw: on
real photos by a dB or more (lavin-small v27's colorization beat the gray input on the three
seeds that chose it and on 4 of 10 others). Repeated at seeds S .. S+N-1, each score is the
mean over the draws, with each draw's own ("per_seed") and on how many draws the model beat
its reference ("wins": the degraded input or the baseline).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from lavin_cli.errors import UsageError
from lavin_cli.evaluation.metrics import better


def over_draws(run: Callable[..., dict], seed: int, draws: int, callback=None) -> list[dict]:
    """`run(seed=s, callback=...)` for s in seed .. seed + draws - 1; `callback(done, total)` counts
    run's own steps over all the draws."""
    if draws < 1:
        raise UsageError(f"draws={draws}: at least one draw of examples and queries is needed")
    reports = []
    for n in range(draws):
        step = (lambda done, total, n=n: callback(n * total + done, draws * total)) if callback else None
        reports.append(run(seed=seed + n, callback=step))
    return reports


def _mean(values) -> float:
    return round(float(np.mean(list(values))), 4)


def _merged(reports: list[dict], merge_task: Callable[[list[dict]], dict]) -> dict:
    """The first report with every draw's seed ("seeds", beside its own "seed") and each task's rows
    of the draws merged by `merge_task`; one draw: its report as it is, with "seeds"."""
    merged = {**reports[0], "seeds": [r["seed"] for r in reports]}
    if len(reports) > 1:
        merged["tasks"] = {task: merge_task([r["tasks"][task] for r in reports]) for task in reports[0]["tasks"]}
    return merged


def _photo_task(per_draw: list[dict]) -> dict:
    scores = [k for k in ("model", "input", "vae_ceiling", "baseline") if k in per_draw[0]]
    reference = "input" if "input" in per_draw[0] else "baseline"
    return {**per_draw[0], **{k: _mean(d[k] for d in per_draw) for k in scores},
            "per_seed": {k: [d[k] for d in per_draw] for k in scores},
            "wins": sum(d["model"] > d[reference] for d in per_draw)}


def merge_photos(reports: list[dict]) -> dict:
    """evaluate_photos' reports of several draws as one: per task the means of "model", "input",
    "vae_ceiling" and "baseline", "per_seed" and "wins" (the model over the input, or the baseline
    for edges)."""
    return _merged(reports, _photo_task)


def _scene_task(per_draw: list[dict]) -> dict:
    row = {**per_draw[0], **{part: {k: _mean(d[part][k] for d in per_draw) for k in per_draw[0][part]}
                             for part in ("metrics", "baseline")}}
    row["better_than_baseline"] = better(row["metrics"], row["baseline"])
    row["per_seed"] = {k: [d["metrics"][k] for d in per_draw] for k in row["metrics"]}
    row["wins"] = sum(d["better_than_baseline"] for d in per_draw)
    if "vae_ceiling_db" in row:
        row["vae_ceiling_db"] = _mean(d["vae_ceiling_db"] for d in per_draw)
    if "continuity" in row:
        row["continuity"] = {k: _mean(d["continuity"][k] for d in per_draw) for k in row["continuity"]}
    return row


def merge_scenes(reports: list[dict]) -> dict:
    """evaluate's (generated scenes) reports of several draws as one: per task the mean metrics
    and baselines, better_than_baseline on the means, "per_seed" metrics and "wins" (draws better
    than the baseline); the task-switch accuracy and VAE ceilings averaged, the answers summed."""
    merged = _merged(reports, _scene_task)
    if len(reports) == 1:
        return merged
    accuracy = [r["task_switch_accuracy"] for r in reports]
    merged["task_switch_accuracy"] = None if None in accuracy else _mean(accuracy)
    if reports[0]["task_switch_answers"] is not None:
        rows = {task: [r["task_switch_answers"][task] for r in reports] for task in reports[0]["task_switch_answers"]}
        merged["task_switch_answers"] = {task: {answer: sum(row.get(answer, 0) for row in per_draw)
                                                for answer in dict.fromkeys(a for row in per_draw for a in row)}
                                         for task, per_draw in rows.items()}
    merged["vae_ceiling"] = {k: _mean(r["vae_ceiling"][k] for r in reports) for k in reports[0]["vae_ceiling"]}
    return merged
