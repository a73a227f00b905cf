"""`lavin eval`: a model's scores on held-out generated scenes, per task, against a baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lavin_cli.cli import options
from lavin_cli.cli.console import log, out


def evaluate(
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    task: Optional[list[str]] = typer.Option(None, "--task", "-t", help="Evaluate only these tasks (repeatable; default: the model's)."),
    seed: int = typer.Option(0, "--seed", help="Chooses the held-out scenes (never used in training)."),
    queries: int = typer.Option(8, "--queries", help="Held-out queries per task."),
    pairs: Optional[int] = options.PAIRS,
    steps: int = options.STEPS,
    cfg: float = options.CFG,
    solver: str = options.SOLVER,
    cfg_interval: str = options.CFG_INTERVAL,
    cond_refresh: int = options.COND_REFRESH,
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: per-task metrics, baseline, task_switch_accuracy and task_switch_answers."),
    quiet: bool = options.QUIET,
) -> None:
    """Measure a model on held-out generated scenes: per-task metrics, a trivial baseline, task switching."""
    from lavin_cli.errors import UsageError
    from lavin_cli.evaluation.evaluate import evaluate as run_eval
    from lavin_cli.inference.pipeline import Pipeline
    from lavin_cli.training.tasks import TASKS

    if queries < 1:
        raise UsageError("--queries must be at least 1")
    unknown = [t for t in task or [] if t not in TASKS]
    if unknown:  # before the model loads
        raise UsageError(f"unknown task(s) {', '.join(unknown)}; the generator's are {', '.join(TASKS)}")
    from lavin_cli.inference.options import SamplingOptions

    sampling = SamplingOptions(steps=steps, cfg=cfg, solver=solver, cfg_interval=cfg_interval,
                               cond_refresh=cond_refresh)  # checked before loading
    pipe = Pipeline.from_pretrained(model, device=device, dtype=dtype, home=home)
    if not quiet:
        log(f"evaluating {pipe.model.name} ({pipe.model.path}) on {pipe.device}")
    report = run_eval(pipe, task or None, seed=seed, queries=queries, pairs=pairs, steps=steps, cfg=cfg,
                      solver=sampling.solver, cfg_interval=sampling.cfg_interval, cond_refresh=sampling.cond_refresh)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{report['model']}: {queries} held-out queries per task, seed {seed}, {report['pairs']} pairs, "
                        f"{steps} steps ({solver}), {report['dtype']}")
    for column in ("task", "metric", "model", "baseline", "better"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for name, r in report["tasks"].items():
        for metric, value in r["metrics"].items():
            table.add_row(name, metric, f"{value:.4f}", f"{r['baseline'][metric]:.4f}", "yes" if r["better_than_baseline"] else "no")
    out.print(table)
    out.print(_switch_line(report["task_switch_accuracy"], report["task_switch_answers"]))
    ceiling = report["vae_ceiling"]
    out.print(f"VAE ceiling (its own reconstruction of clean held-out scenes): {ceiling['image_psnr_db']} dB pictures, "
              f"{ceiling['clip_psnr_db']} dB clips")
    for name, r in report["tasks"].items():
        if "vae_ceiling_db" in r:
            out.print(f"{name} VAE ceiling (its own reconstruction of the true new frames): {r['vae_ceiling_db']} dB")
        if "continuity" in r:
            c = r["continuity"]
            out.print(f"{name} continuity (PSNR of each frame against the one before): {c['within_chunk_db']} dB within "
                      f"chunks, {c['across_chunks_db']} dB across chunk boundaries")
    for name, why in report["skipped"].items():
        log(f"skipped {name}: {why}")


def _switch_line(accuracy: float | None, answers: dict | None) -> str:
    """'task switch accuracy: 0.828 (edge_detection 10/32 right, answered as depth_estimation 10, ...)'."""
    if accuracy is None:
        return "task switch accuracy: n/a (needs two of depth, normals, foreground, edges)"
    misses = []
    for task, row in answers.items():
        wrong = {k: v for k, v in row.items() if k != task and v}
        if wrong:
            total = sum(row.values())
            misses.append(f"{task} {row[task]}/{total} right, answered as "
                          + ", ".join(f"{k} {v}" for k, v in sorted(wrong.items(), key=lambda kv: -kv[1])))
    return f"task switch accuracy: {accuracy:.3f}" + (f" ({'; '.join(misses)})" if misses else " (every context right)")
