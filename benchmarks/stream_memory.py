"""Peak memory of `lavin run` against the number of queries: results stream to disk as they
finish, so memory is set by the batch size, not by how many queries a run has.

    python benchmarks/stream_memory.py                   # the bundled model, 16 / 256 / 1024 queries
    python benchmarks/stream_memory.py --counts 16,64 --steps 4

Each count runs as its own `lavin run` process on generated 64 px queries (a folder of PNGs);
its peak resident memory (ru_maxrss of the child) and wall time are printed as a table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def make_queries(folder: Path, count: int, size: int = 64) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"q{i:05d}.png")


def peak_of(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one child process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, r.returncode)")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    kb, seconds, rc = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"lavin run failed ({rc}): {' '.join(args)}")
    return int(kb) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="16,256,1024")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--task", default="depth_estimation")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(f"lavin run, bundled model, --task {args.task}, 64 px queries, {args.steps} steps, "
          f"--batch-size {args.batch_size}; {os.cpu_count()} CPUs")
    print("| queries | peak RSS MB | vs first | wall s | s / query |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_queries(root / "q", max(counts))
        for count in counts:
            folder = root / f"q{count}"
            folder.mkdir()
            for p in sorted((root / "q").iterdir())[:count]:
                os.link(p, folder / p.name)
            peak, seconds = peak_of([sys.executable, "-m", "lavin_cli", "run", "--task", args.task, "-i", str(folder),
                                     "-o", str(root / f"out{count}"), "--steps", str(args.steps),
                                     "--batch-size", str(args.batch_size), "--quiet"])
            first = first or peak
            print(f"| {count} | {peak:.0f} | {peak / first:.2f}x | {seconds:.1f} | {seconds / count:.3f} |", flush=True)


if __name__ == "__main__":
    main()
