"""Queries per second of `lavin run` over a dataset: one process with every core against torchrun
with one process per core, and how long the model waited for its input (the read-ahead thread
should make that close to nothing).

    python benchmarks/throughput.py                          # the bundled model, 64 queries
    python benchmarks/throughput.py --queries 32 --steps 10

Prints a table: wall seconds, queries per second, and the share of the run the model spent
waiting for queries to be read and fitted (the record's input_wait_s over run_s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_queries(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(folder / f"q{i:04d}.jpg", quality=90)


def run(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    res = subprocess.run(command, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"failed ({res.returncode}): {res.stderr[-2000:]}")
    return time.perf_counter() - start


def waited(record: Path) -> tuple[float, float]:
    """(input wait, model run) seconds summed over the ranks' end lines (torchrun joins them)."""
    end = [json.loads(line) for line in record.read_text().splitlines() if '"type": "end"' in line][-1]
    ends = end.get("rank_ends", [end])
    return sum(e["timings"]["input_wait_s"] for e in ends), sum(e["timings"]["run_s"] for e in ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--task", default="depth_estimation")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"lavin run, bundled model, --task {args.task}, {args.queries} queries (128x96 JPEG), {args.steps} steps, "
          f"--batch-size {args.batch_size}; {cores} CPU cores")
    print("| setup | wall s | queries / s | model waited for input |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_queries(root / "q", args.queries)
        common = ["run", "--task", args.task, "-i", str(root / "q"), "--steps", str(args.steps),
                  "--batch-size", str(args.batch_size), "-q", "--format", "png"]
        setups = [
            (f"1 process, {cores} threads", [sys.executable, "-m", "lavin_cli"], {"OMP_NUM_THREADS": str(cores)}),
            (f"torchrun, {cores} processes x 1 thread",
             [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cores), "-m", "lavin_cli"],
             {"OMP_NUM_THREADS": "1"}),
        ]
        for n, (name, launcher, extra) in enumerate(setups):
            out, record = root / f"out{n}", root / f"run{n}.jsonl"
            seconds = run([*launcher, *common, "-o", str(out), "--record", str(record)], {**os.environ, **extra})
            wait, busy = waited(record)
            print(f"| {name} | {seconds:.1f} | {args.queries / seconds:.2f} | {100 * wait / max(busy, 1e-9):.1f}% |",
                  flush=True)


if __name__ == "__main__":
    main()
