"""`lavin eval`: a model's scores. Three modes:

    lavin eval [-t TASK ...] [--queries 8]          held-out generated scenes, per task, against a
                                                    baseline, task switching (evaluation/evaluate.py)
    lavin eval -c PAIRS --queries Q --truth GT      the user's own folders: predictions by `lavin
                                                    run`, scored by the target's protocol
                                                    (cli/evaluate_data.py)
    lavin eval --compare A.jsonl B.jsonl            records side by side, paired bootstrap intervals

and, beside the generated scenes, `lavin eval --photos DIR`: the tasks that follow from a photo,
on crops of real photos, against the degraded input and the VAE (evaluation/photos.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from lavin_cli.cli import options
from lavin_cli.cli.console import log, out, print_table
from lavin_cli.errors import UsageError

TRUTH = "Ground truth (--truth)"


def evaluate(
    ctx: typer.Context,
    records: Optional[list[Path]] = typer.Argument(None, metavar="RECORDS", show_default=False,
                                                   help="With --compare: two or more eval records."),
    model: Optional[str] = options.MODEL,
    home: Optional[Path] = options.HOME,
    task: Optional[list[str]] = typer.Option(None, "--task", "-t", metavar="NAME", rich_help_panel=options.INPUTS,
                                             help="Generator: evaluate only these tasks (repeatable; default: the "
                                                  "model's). With --truth: the task folder of the context pairs."),
    seed: int = typer.Option(0, "--seed", metavar="N", rich_help_panel=options.SAMPLING,
                             help="Generator: chooses the held-out scenes. With --truth: the noise, as lavin run's."),
    queries: Optional[list[str]] = typer.Option(None, "--queries", "-i", metavar="N|PATH", rich_help_panel=options.INPUTS,
                                                help="Generator: held-out queries per task (default 8). With --truth: "
                                                     "query images as lavin run's --query (files, folders, globs)."),
    photos: Optional[list[Path]] = typer.Option(None, "--photos", metavar="DIR", rich_help_panel=options.INPUTS,
                                                help="Instead of generated scenes: crops of the photos in DIR "
                                                     "(repeatable), for the tasks that follow from a photo, scored "
                                                     "against the degraded input and the VAE's reconstruction."),
    draws: int = typer.Option(1, "--draws", metavar="N", min=1, rich_help_panel=options.SAMPLING,
                              help="Generator and --photos: repeat the eval at seeds --seed .. --seed+N-1, each its "
                                   "own draw of example pairs and queries, and report the mean and on how many draws "
                                   "the model beat the input or baseline (one draw's scores move with its examples)."),
    truth: Optional[Path] = typer.Option(None, "--truth", metavar="DIR", rich_help_panel=TRUTH,
                                         help="Folder of ground truths, matched to the queries by relative path "
                                              "without the extension, else by unique file stem."),
    context: Optional[Path] = options.CONTEXT,
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="DIR", rich_help_panel=options.OUTPUTS,
                                         help="With --truth: keep the predictions in DIR (as lavin run writes them; "
                                              "with --skip-existing, reused). Default: a temporary folder."),
    record: Optional[Path] = typer.Option(None, "--record", metavar="FILE", rich_help_panel=options.OUTPUTS,
                                          help="With --truth: write the eval record (JSON Lines: a header, a line per "
                                               "query with its metrics, the summary); --compare reads it."),
    report: Optional[Path] = typer.Option(None, "--report", metavar="DIR", rich_help_panel=options.OUTPUTS,
                                          help="With --truth: write DIR/index.html with metric histograms and the "
                                               "worst and best queries as grids."),
    metric: Optional[str] = typer.Option(None, "--metric", metavar="KIND", rich_help_panel=TRUTH,
                                         help="depth, normals, mask, edges, restoration or l1 (default: the context "
                                              "folder's task.json \"metric\", else the known task's)."),
    align: str = typer.Option("lsq-disparity", "--align", metavar="HOW", rich_help_panel=TRUTH,
                              help="Depth: lsq-disparity (scale and shift of the prediction to 1/depth), lsq-depth, "
                                   "median (scaling) or none."),
    min_depth: float = typer.Option(1e-3, "--min-depth", metavar="M", rich_help_panel=TRUTH,
                                    help="Depth: truth pixels below are not scored; predictions are clipped to it."),
    max_depth: float = typer.Option(1e4, "--max-depth", metavar="M", rich_help_panel=TRUTH,
                                    help="Depth: the cap (80 for KITTI, 10 for NYUv2): truth beyond it is not "
                                         "scored, predictions are clipped to it."),
    truth_scale: float = typer.Option(1.0, "--truth-scale", metavar="S", rich_help_panel=TRUTH,
                                      help="Depth: metres = stored value / S (256 for KITTI's 16-bit PNGs, 1000 for "
                                           "millimetres); 0 is no measurement."),
    channel: str = typer.Option("rgb", "--channel", metavar="C", rich_help_panel=TRUTH,
                                help="Restoration: PSNR/SSIM on rgb or on y (the luma of YCbCr, BT.601)."),
    crop: int = typer.Option(0, "--crop", metavar="PX", rich_help_panel=TRUTH,
                             help="Restoration: leave PX border pixels out (super-resolution's scale factor)."),
    compare: bool = typer.Option(False, "--compare", rich_help_panel=TRUTH,
                                 help="Compare the RECORDS (of --record) on their common queries: means and, "
                                      "against the first, paired differences with bootstrap 95% intervals."),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", metavar="NAME=V,..", rich_help_panel=TRUTH,
                                              help="With --truth: evaluate every combination (steps=6,11,20; cfg=1.5,2.5; "
                                                   "seed, pairs, solver, select, size, fit, cond_refresh) and tabulate."),
    files_from: Optional[str] = options.FILES_FROM,
    nul: bool = options.NUL,
    recursive: bool = options.RECURSIVE,
    root: Optional[str] = options.ROOT,
    skip_existing: bool = options.SKIP_EXISTING,
    overwrite: bool = options.OVERWRITE,
    shard: Optional[str] = options.SHARD,
    fmt: Optional[str] = typer.Option(None, "--format", metavar="FMT", rich_help_panel=options.OUTPUTS,
                                      help="With --truth: the predictions' format, png, png16 or npy, as lavin run's."),
    pairs: Optional[int] = options.PAIRS,
    select: str = options.SELECT,
    size: Optional[str] = options.SIZE,
    fit: str = options.FIT,
    steps: int = options.STEPS,
    cfg: float = options.CFG,
    solver: str = options.SOLVER,
    cfg_interval: str = options.CFG_INTERVAL,
    cond_refresh: int = options.COND_REFRESH,
    batch_size: int = options.BATCH,
    keep: str = options.EVAL_KEEP,
    mask: Optional[str] = options.MASK,
    device: str = options.DEVICE,
    dtype: str = options.DTYPE,
    attention: str = options.ATTENTION,
    offload: str = options.OFFLOAD,
    as_json: bool = typer.Option(False, "--json", rich_help_panel=options.OUTPUTS,
                                 help="Print one JSON object instead of the tables."),
    quiet: bool = options.QUIET,
) -> None:
    """Measure a model: on held-out generated scenes, on your own folders (--truth), or compare records.

    [dim]lavin eval -t depth_estimation --queries 16[/]
    [dim]lavin eval --photos /usr/share/backgrounds/mate/nature[/]
    [dim]lavin eval -c pairs/ -i img/ --truth depth/ --record v3.jsonl --report v3/[/]
    [dim]lavin eval --compare v2.jsonl v3.jsonl[/]
    """
    values = {**locals(), "typed": options.typed(ctx)}
    if compare or records:
        if not compare:
            raise UsageError(f"{records[0]}: to compare eval records give --compare (lavin eval --compare A.jsonl "
                             "B.jsonl)")
        _refuse_given(values, COMPARE_OPTIONS, "has no effect with --compare, which reads the records: leave it out")
        return _compare(records or [], as_json)
    if truth is None:
        _refuse_given(values, GENERATOR_OPTIONS, "is for scoring your own folders: give --truth DIR with it "
                                                 "(without --truth, lavin eval scores held-out generated scenes, or "
                                                 "crops of --photos)")
        return _generator(values, _count(queries))
    if photos:
        raise UsageError("--photos scores crops of photos, --truth your own folders: give one")
    if draws > 1:
        raise UsageError("--draws repeats the eval of generated scenes or --photos over seeds; with --truth your "
                         "queries and examples are fixed: leave it out")
    from lavin_cli.cli import evaluate_data

    code = evaluate_data.from_command(dict(locals()))
    if code:
        raise SystemExit(code)


# What each mode reads of the command's options; any other option given is refused, not ignored.
GENERATOR_OPTIONS = {"model", "home", "task", "seed", "queries", "photos", "draws", "truth", "pairs", "size", "steps",
                     "cfg", "solver", "cfg_interval", "cond_refresh", "batch_size", "keep", "device", "dtype",
                     "attention", "offload", "as_json", "quiet"}
COMPARE_OPTIONS = {"records", "compare", "as_json", "quiet"}


def _refuse_given(values: dict, accepted: set[str], why: str) -> None:
    extra = [flag for name, flag in values["typed"] if name not in accepted]
    if extra:
        raise UsageError(f"{extra[0]} {why}")


def _count(queries: Optional[list[str]]) -> int:
    if not queries:
        return 8
    if len(queries) > 1 or not queries[0].strip().isdigit():
        raise UsageError(f"--queries {queries[0]!r}: without --truth it is a count of held-out queries per task; "
                         "to score your own images give --truth DIR (and --context)")
    count = int(queries[0])
    if count < 1:
        raise UsageError("--queries must be at least 1")
    return count


def _compare(paths: list[Path], as_json: bool) -> None:
    import dataclasses

    from lavin_cli.evaluation.compare import compare

    result = compare(paths)
    if as_json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
        return
    out.print(f"{result.queries} queries scored in all {len(paths)} records; "
              + "; ".join(f"{chr(65 + i) if i < 26 else i}: {name}" for i, name in enumerate(result.names)))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("metric", "record", "mean", "minus A [95% interval]", "verdict"):
        table.add_column(column, justify="right" if column in ("mean", "minus A [95% interval]") else "left",
                         no_wrap=column != "verdict")
    for row in result.rows:
        for i, mean in enumerate(row["means"]):
            d = row["differences"][i - 1] if i else None
            table.add_row(row["metric"] if not i else "",
                          chr(65 + i) if i < 26 else str(i), f"{mean:.4f}",
                          f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d else "",
                          d["verdict"] if d else "", end_section=i == len(row["means"]) - 1)
    print_table(table)
    lower = [row["metric"] for row in result.rows if row["lower_is_better"]]
    if lower:
        out.print(f"lower is better: {', '.join(lower)}; higher for the others")


def _generator(v: dict, queries: int) -> None:
    """Held-out generated scenes, or crops of --photos: the options of GENERATOR_OPTIONS in `v`."""
    from lavin_cli.cli.drive import warn_if_emulated
    from lavin_cli.cli.progress import Progress
    from lavin_cli.evaluation.evaluate import evaluate_draws as run_eval
    from lavin_cli.evaluation.photos import evaluate_draws
    from lavin_cli.errors import OptionError
    from lavin_cli.inference import keep as keep_rules
    from lavin_cli.inference.options import SamplingOptions, parse_size
    from lavin_cli.inference.pipeline import Pipeline
    from lavin_cli.training.photos import ALL_PHOTO_TASKS, Photos
    from lavin_cli.training.tasks import TASKS

    photos, task = v["photos"], v["task"]
    known = ALL_PHOTO_TASKS if photos else TASKS
    unknown = [t for t in task or [] if t not in known]
    if unknown:  # before the model loads
        kind = "that follow from a photo" if photos else "of the generator"
        raise UsageError(f"unknown task(s) {', '.join(unknown)}; the tasks {kind} are {', '.join(known)}")
    size = parse_size(v["size"])
    if size and size[0] != size[1]:
        raise UsageError(f"--size {v['size']}: the generated scenes and photo crops are square; give one side, "
                         f"e.g. --size {max(size)}")
    source = Photos(photos) if photos else None  # a missing folder or one without photos, before the model loads
    sampling = SamplingOptions(steps=v["steps"], cfg=v["cfg"], solver=v["solver"], cfg_interval=v["cfg_interval"],
                               cond_refresh=v["cond_refresh"])  # checked before loading
    try:
        keep_rules.check_any(v["keep"])
    except ValueError as exc:
        raise OptionError("keep", str(exc)) from None
    pipe = Pipeline.from_pretrained(v["model"], device=v["device"], dtype=v["dtype"], attention=v["attention"],
                                    offload=v["offload"], home=v["home"])
    if not v["quiet"]:
        log(f"evaluating {pipe.model.name} ({pipe.model.path}) on {pipe.device}")
        warn_if_emulated(pipe)
    batch = v["batch_size"] if "batch_size" in dict(v["typed"]) else None  # default: a task's queries at once
    keywords = dict(seed=v["seed"], queries=queries, pairs=v["pairs"], steps=v["steps"], cfg=v["cfg"],
                    solver=sampling.solver, cfg_interval=sampling.cfg_interval, cond_refresh=sampling.cond_refresh,
                    size=size[0] if size else None, batch_size=batch, keep=v["keep"])
    with Progress(not v["quiet"]) as progress:
        keywords["callback"] = lambda done, total: progress.update("eval", "tasks", done, total)
        if source:
            report = evaluate_draws(pipe, source, task or None, draws=v["draws"], **keywords)
        else:
            report = run_eval(pipe, task or None, draws=v["draws"], **keywords)
    if v["as_json"]:
        print(json.dumps(report, indent=2))
    elif photos:
        _show_photos(report)
    else:
        _show_generator(report, queries, v["steps"], sampling.solver)


def _seeds(report: dict) -> str:
    seeds = report["seeds"]
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]} (mean of {len(seeds)} draws)"


def _show_photos(report: dict) -> None:
    draws, where = len(report["seeds"]), _seeds(report)
    table = Table(title=f"{report['model']}: {report['queries_per_task']} crops per task of {report['photo_files']} "
                        f"photos, {where}, {report['pairs']} pairs, {report['steps']} steps "
                        f"({report['solver']}), {report['dtype']}")
    columns = ["task", "metric", "model", "input", "VAE ceiling", "model - input", "baseline"]
    for column in columns + (["draws won"] if draws > 1 else []):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for name, r in report["tasks"].items():
        won = (f"{r['wins']}/{draws}",) if draws > 1 else ()
        if "input" in r:
            table.add_row(name, r["metric"], f"{r['model']:.2f}", f"{r['input']:.2f}", f"{r['vae_ceiling']:.2f}",
                          f"{r['model'] - r['input']:+.2f}", "", *won)
        else:
            table.add_row(name, r["metric"], f"{r['model']:.4f}", "", "", "", f"{r['baseline']:.4f}", *won)
    print_table(table)
    out.print("input: the degraded input's own score (doing nothing; for frame prediction, repeating the last "
              "frame); baseline: the mean context target's"
              + ("; draws won: the seeds where the model beat the input (or the baseline)" if draws > 1 else ""))
    _show_kept(report)


def _show_kept(report: dict) -> None:
    kept = [f"{name} {r['keep']}" for name, r in report["tasks"].items() if r.get("keep", "none") != "none"]
    if kept:
        out.print(f"kept of the query (--keep): {', '.join(kept)}; --keep none scores the model's own pixels")


def _show_generator(report: dict, queries: int, steps: int, solver: str) -> None:
    draws = len(report["seeds"])
    table = Table(title=f"{report['model']}: {queries} held-out queries per task, {_seeds(report)}, "
                        f"{report['pairs']} pairs, {steps} steps ({solver}), {report['dtype']}")
    for column in ["task", "metric", "model", "baseline", "better"] + (["draws won"] if draws > 1 else []):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for name, r in report["tasks"].items():
        won = (f"{r['wins']}/{draws}",) if draws > 1 else ()
        for metric, value in r["metrics"].items():
            table.add_row(name, metric, f"{value:.4f}", f"{r['baseline'][metric]:.4f}",
                          "yes" if r["better_than_baseline"] else "no", *won)
    print_table(table)
    if draws > 1:
        out.print("better: on the means over the draws; draws won: the seeds where the model beat the baseline")
    out.print(switch_line(report["task_switch_accuracy"], report["task_switch_answers"]))
    _show_kept(report)
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


def switch_line(accuracy: float | None, answers: dict | None) -> str:
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
