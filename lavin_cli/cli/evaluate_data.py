"""`lavin eval --truth GT`: a model on the user's own folders. Predictions are made by `lavin
run` itself (the same options, files, --skip-existing, --shard, torchrun), read back from the
files it wrote, and scored by the protocol of the task's target (evaluation/protocols.py); with
--sweep, once per combination of the swept options."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from lavin_cli.cli import plan
from lavin_cli.cli.console import log, print_table, warn
from lavin_cli.errors import OutputError, UsageError
from lavin_cli.evaluation import dataset, protocols
from lavin_cli.evaluation.protocols import Protocol
from lavin_cli.io.files import write_atomic

SWEEPABLE = {"steps": int, "cfg": float, "seed": int, "pairs": int, "solver": str, "select": str, "size": str,
             "fit": str, "cond_refresh": int, "cfg_interval": str}


def parse_sweeps(specs: list[str]) -> list[dict]:
    """['steps=6,11', 'cfg=1.5,2.5'] -> the grid: [{'steps': 6, 'cfg': 1.5}, ...] ([{}] without)."""
    axes = []
    for spec in specs:
        name, _, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        if name not in SWEEPABLE or not values:
            raise UsageError(f"--sweep {spec!r}: give NAME=V1,V2 with NAME one of {', '.join(SWEEPABLE)}")
        try:
            axes.append([(name, SWEEPABLE[name](v.strip())) for v in values.split(";" if name == "cfg_interval" else ",")])
        except ValueError:
            raise UsageError(f"--sweep {spec!r}: {values!r} are not {SWEEPABLE[name].__name__} values") from None
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def combo_name(combo: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in combo.items())


def call_run(**given) -> int:
    """`lavin run` with `given` options, its other options at their defaults; its exit code
    (7: some queries failed, which the scores then list)."""
    from lavin_cli.cli.run import run

    values = {"ctx": None}  # no command line: the eval checked its own options
    for name, param in inspect.signature(run).parameters.items():
        if name == "ctx":
            continue
        default = param.default
        values[name] = given.get(name, getattr(default, "default", default))
    try:
        run(**values)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


@dataclasses.dataclass
class Setup:
    """The eval's inputs, as the command got them."""

    queries: list[str]
    truth: Path
    output: Optional[str]
    run_options: dict  # lavin run's keyword arguments shared by every combination
    protocol: Protocol
    truth_scale: float
    record: Optional[Path]
    report: Optional[Path]
    as_json: bool
    quiet: bool
    root: Optional[str]
    gray_target: bool  # the context's task.json says gray targets: png16 predictions by default
    model_name: str = ""
    scratch: str = ""  # the temporary folder of the predictions when there is no -o


RUN_OPTIONS = ("context", "files_from", "nul", "recursive", "root", "model", "home", "pairs", "select", "size", "fit",
               "steps", "cfg", "seed", "solver", "cfg_interval", "cond_refresh", "batch_size", "keep", "mask", "device",
               "dtype", "attention", "offload", "fmt", "skip_existing", "shard", "overwrite")


def from_command(given: dict) -> int:
    """`lavin eval --truth`'s options (the command's keyword arguments) -> its exit code."""
    from lavin_cli.evaluation.protocols import ALIGNMENTS
    from lavin_cli.inference import shards

    task = given["task"]
    if task and len(task) > 1:
        raise UsageError("with --truth, give one --task (the task folder of the context pairs)")
    if given["align"] not in ALIGNMENTS:
        raise UsageError(f"--align {given['align']!r}: use one of {', '.join(ALIGNMENTS)}")
    if given["channel"] not in ("rgb", "y"):
        raise UsageError(f"--channel {given['channel']!r}: use rgb or y")
    if given["skip_existing"] and not given["output"]:
        raise UsageError("--skip-existing reuses the predictions of -o DIR: give -o")
    if shards.torchrun_env() and not given["output"]:
        raise UsageError("under torchrun the ranks share their predictions through -o DIR: give -o")
    if not 0 < given["min_depth"] < given["max_depth"] or given["truth_scale"] <= 0 or given["crop"] < 0:
        raise UsageError("need 0 < --min-depth < --max-depth, --truth-scale > 0 and --crop >= 0")
    sweeps = parse_sweeps(given["sweep"] or [])
    if shards.torchrun_env() and len(sweeps) > 1:
        raise UsageError("under torchrun, evaluate one combination per launch (drop --sweep)")
    found, meta, model_name = _context(given, task[0] if task else None)
    family = dataset.family_for(task[0] if task else None, meta, given["metric"])
    lacking = protocols.missing(family, given["report"] is not None)
    if lacking:
        raise UsageError(f"scoring {family} needs the eval extra ({lacking} is missing): pip install 'lavin-cli[eval]'")
    queries = plan.gather(given["queries"] or [], given["files_from"], given["nul"], given["recursive"], clips=False)
    if not queries:
        raise UsageError("no query images: give --queries PATH (files, folders, globs) or --files-from FILE")
    run_options = {k: given[k] for k in RUN_OPTIONS}
    run_options.update(task=task[0] if task else None, files_from=None, recursive=False)
    setup = Setup(queries, given["truth"], given["output"], run_options,
                  Protocol(family, given["align"], given["min_depth"], given["max_depth"], given["channel"],
                           given["crop"]), given["truth_scale"], given["record"], given["report"], given["as_json"],
                  given["quiet"], given["root"], found.target == "gray", model_name)
    _check_written(setup, sweeps, given["overwrite"] or given["skip_existing"])
    with tempfile.TemporaryDirectory(prefix="lavin-eval-") as tmp:
        setup.scratch = tmp
        return evaluate(setup, sweeps, task[0] if task else None, found.source)


def _check_written(setup: Setup, sweeps: list[dict], replace: bool) -> None:
    """A record or report that exists is replaced only with --overwrite or --skip-existing (a
    resumed eval scores every query again)."""
    there = [record_path(setup.record, combo) for combo in sweeps] if setup.record else []
    there += [(setup.report / combo_name(combo) if combo else setup.report) / "index.html"
              for combo in sweeps] if setup.report else []
    there = [p for p in there if os.path.lexists(p)]
    if there and not replace:
        raise OutputError(f"{there[0]} exists; add --overwrite (or --skip-existing to resume) to replace it")


def _context(given: dict, task: Optional[str]):
    """The context pairs the runs will use and their task.json (its "metric" names the protocol)."""
    from lavin_cli.cli.drive import resolve_context
    from lavin_cli.inference.context import read_task_json
    from lavin_cli.store import folders

    model = folders.resolve(given["model"], given["home"])
    found = resolve_context(given["context"], task, model, quiet=True)
    return found, read_task_json(Path(found.source)), model.name


def evaluate(setup: Setup, sweeps: list[dict], task: Optional[str], meta_context: str) -> int:
    """Run and score every combination; the exit code (7 where a query has no score)."""
    from lavin_cli.inference import shards

    matched = dataset.match(setup.queries, setup.truth, setup.root)
    if not matched.pairs:
        raise UsageError(f"no query matches a file of {setup.truth} (by relative path or stem); "
                         f"e.g. {setup.queries[0]} has none")
    if not setup.quiet:
        for side, names in (("queries", matched.unmatched_queries), ("truth files", matched.unmatched_truths)):
            if names:
                warn(f"{len(names)} {side} without a partner, not scored: {', '.join(map(str, names[:3]))}"
                     f"{' ...' if len(names) > 3 else ''} (the record lists them)")
    queries = [setup.queries[i] for i, _ in matched.pairs]
    shard = setup.run_options.get("shard")
    mine = shards.select(len(queries), setup.run_options["batch_size"], shards.parse(shard)) if shard else \
        list(range(len(queries)))  # a shard scores its own queries; an unsharded --skip-existing pass all
    ranked = shards.torchrun_env()
    tables, worst = [], 0
    for combo in sweeps:
        code = call_run(**_run_keywords(setup, queries, combo))
        if code not in (0, 7):
            raise SystemExit(code)
        if ranked and ranked[0] != 0:
            continue  # rank 0 scores what every rank wrote (they all finished: the run's exit is agreed)
        scored, header = _score(setup, matched, queries, mine, combo, task, meta_context)
        worst = max(worst, 7 if any("error" in r for r in scored.rows) else 0)
        tables.append((combo, scored, header))
    if tables:
        _show(setup, tables)
    return worst


def _folder(setup: Setup, combo: dict, tmp: str) -> str:
    base = Path(setup.output) if setup.output else Path(tmp)
    return str(base / combo_name(combo) if combo else base) + os.sep


def _run_keywords(setup: Setup, queries: list[str], combo: dict) -> dict:
    return {**setup.run_options, **combo, "query": queries, "output": _folder(setup, combo, setup.scratch),
            "root": setup.root, "quiet": setup.quiet, "record": None, "as_json": False}


def _score(setup: Setup, matched, queries: list[str], mine: list[int], combo: dict, task, meta_context):
    given = _run_keywords(setup, queries, combo)
    fmt = plan.output_format(given.get("fmt"), given["output"], setup.gray_target, clips=False)
    outputs = plan.output_names(queries, given["output"], fmt, None, setup.root, False)
    items = [(queries[i], matched.pairs[i][1], Path(outputs[i])) for i in mine]
    scored = dataset.score_all(items, setup.protocol, setup.truth_scale, setup.run_options.get("mask"))
    for row, (_, truth_file, _) in zip(scored.rows, items):
        row["key"] = Path(truth_file).relative_to(setup.truth).with_suffix("").as_posix()
    options = {k: v for k, v in given.items() if k not in ("query", "quiet", "record", "as_json", "output")}
    header = {"type": "eval", "model": setup.model_name, "context": meta_context, "task": task, "truth": str(setup.truth),
              "metric": setup.protocol.family, "protocol": dataclasses.asdict(setup.protocol),
              "options": json.loads(json.dumps(options, default=str)), "sweep": combo,
              "predictions": given["output"] if setup.output else None,
              "unmatched": {"queries": matched.unmatched_queries, "truths": matched.unmatched_truths}}
    if setup.report:
        from lavin_cli.evaluation import report

        where = report.write(scored, setup.report / combo_name(combo) if combo else setup.report, setup.protocol,
                             header)
        if not setup.quiet:
            log(f"report: {where}")
    for row in scored.rows if not setup.output else []:
        row["prediction"] = None  # a temporary file, gone with the eval
    if setup.record:
        _write_record(setup.record, combo, header, scored)
    return scored, header


def record_path(path: Path, combo: dict) -> Path:
    return path if not combo else path.with_name(f"{path.stem}.{combo_name(combo)}{path.suffix}")


def _write_record(path: Path, combo: dict, header: dict, scored) -> None:
    lines = [header] + [{"type": "query", **r} for r in scored.rows] + [{"type": "summary", **scored.summary}]
    write_atomic(record_path(path, combo), "".join(json.dumps(line) + "\n" for line in lines).encode(), overwrite=True)


def _show(setup: Setup, tables: list) -> None:
    """The summary table on stdout (a row per combination), or one JSON object with --json."""
    if setup.as_json:
        print(json.dumps({"metric": setup.protocol.family, "truth": str(setup.truth),
                          "protocol": dataclasses.asdict(setup.protocol), "unmatched": tables[0][2]["unmatched"],
                          "results": [{"sweep": combo, "summary": scored.summary, "queries": scored.rows}
                                      for combo, scored, _ in tables]}, indent=2))
        return
    from rich import box
    from rich.table import Table

    metrics = [k for k in tables[0][1].summary if k not in ("queries", "scored")]
    swept = list(tables[0][0])
    table = Table(title=f"{setup.protocol.family} on {setup.truth}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, title_justify="left")
    for column in [*swept, "scored", *metrics]:
        table.add_column(column, justify="left" if column in swept else "right", no_wrap=True)
    for combo, scored, _ in tables:
        cells = [f"{scored.summary.get('scored', 0)}/{scored.summary.get('queries', 0)}"] + \
                [f"{scored.summary[m]:.4f}" if m in scored.summary else "-" for m in metrics]
        table.add_row(*[str(v) for v in combo.values()], *cells)
    print_table(table)
    if setup.quiet:
        return
    failed = {row["query"]: row["error"] for _, scored, _ in tables for row in scored.rows if "error" in row}
    for query, error in failed.items():
        warn(f"not scored: {query}: {error}")
