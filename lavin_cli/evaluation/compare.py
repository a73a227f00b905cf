"""`lavin eval --compare A.jsonl B.jsonl ...`: records of evaluations side by side, on the queries
all of them scored: each one's mean per metric, and against the first its paired difference with
a bootstrap 95% confidence interval (resampling queries), so that "B is better than A" is a
measured claim: an interval that excludes 0."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lavin_cli.errors import InputError, UsageError
from lavin_cli.evaluation.protocols import LOWER_IS_BETTER

RESAMPLES = 10_000


def read_record(path: Path) -> tuple[dict, dict[str, dict]]:
    """An eval record: its header line and {query: metrics} of its scored queries."""
    header, scored = {}, {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InputError(f"{path}:{n}: not a JSON line (is it a record of lavin eval --record?)") from None
        if not isinstance(item, dict):
            raise InputError(f"{path}:{n}: not a record line")
        if item.get("type") == "eval":
            header = item
        elif item.get("type") == "query" and isinstance(item.get("metrics"), dict):
            scored[str(item.get("key") or item.get("query"))] = item["metrics"]
    if not header:
        raise InputError(f"{path}: no eval line: not a record of lavin eval --truth ... --record")
    return header, scored


@dataclass
class Comparison:
    names: list[str]
    queries: int
    rows: list[dict]  # per metric: means per record, and per later record the difference and interval


def compare(paths: list[Path], seed: int = 0) -> Comparison:
    if len(paths) < 2:
        raise UsageError("--compare takes two or more records")
    records = [read_record(p) for p in paths]
    common = sorted(set.intersection(*(set(r[1]) for r in records)))
    if not common:
        raise InputError("the records share no scored query (were they made on the same queries?)")
    metrics = [m for m in records[0][1][common[0]] if all(m in r[1][common[0]] for r in records)]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(common), size=(RESAMPLES, len(common)))
    rows = []
    for metric in metrics:
        values = np.array([[r[1][q][metric] for q in common] for r in records], dtype=np.float64)
        row = {"metric": metric, "lower_is_better": metric in LOWER_IS_BETTER, "means": values.mean(1).tolist(),
               "differences": []}
        for other in values[1:]:
            diff = other - values[0]
            boot = diff[picks].mean(1)
            low, high = np.percentile(boot, [2.5, 97.5])
            row["differences"].append({"mean": float(diff.mean()), "ci95": [float(low), float(high)],
                                       "verdict": _verdict(low, high, metric in LOWER_IS_BETTER)})
        rows.append(row)
    return Comparison([str(p) for p in paths], len(common), rows)


def _verdict(low: float, high: float, lower_is_better: bool) -> str:
    if low > 0:
        return "worse" if lower_is_better else "better"
    if high < 0:
        return "better" if lower_is_better else "worse"
    return "no difference shown"
