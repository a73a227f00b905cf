"""Per-query cost of `lavin run` on the CPU: one query per run versus a batch of 16 in one run.

    python benchmarks/cpu_run.py                 # the bundled model (or a tiny random one if none ships yet)
    python benchmarks/cpu_run.py --model DIR --size 64 --steps 20

Prints a table: wall time of the whole `lavin run` process (start-up, model load, context
encoding, sampling, writing) and of the in-process `Pipeline` call alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def _model(arg: str | None, tmp: Path) -> tuple[str, str]:
    from lavin_cli.store.home import bundled_dir

    if arg:
        return arg, arg
    if bundled_dir() is not None:
        return str(bundled_dir()), "bundled"
    folder = tmp / "tiny-random"
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_random_model.py"), str(folder)], check=True,
                   capture_output=True)
    return str(folder), "tiny random (no bundled model yet)"


def _queries(tmp: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = tmp / "queries" / f"q{i:02d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _cli(model: str, context: str, queries: list[str], out: Path, args) -> float:
    cmd = [sys.executable, "-m", "lavin_cli", "run", "-m", model, "-c", context, "-o", str(out), "--quiet",
           "--overwrite", "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    cmd += ["--size", str(args.size)] if args.size else []
    for q in queries:
        cmd += ["-i", q]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--context", default=str(ROOT / "examples" / "depth_estimation"))
    parser.add_argument("--size", type=int)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from lavin_cli import Pipeline

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, label = _model(args.model, tmp)
        queries = _queries(tmp, 16)
        one = [_cli(model, args.context, queries[:1], tmp / "one.png", args) for _ in range(args.repeats)]
        batch = [_cli(model, args.context, queries, tmp / "many", args) for _ in range(args.repeats)]
        pipe = Pipeline.from_pretrained(model, device="cpu")
        call = dict(steps=args.steps, size=args.size, batch_size=args.batch_size)
        pipe(args.context, queries[:1], **call)  # warm-up
        t_one = [_timed(lambda: pipe(args.context, queries[:1], **call)) for _ in range(args.repeats)]
        t_batch = [_timed(lambda: pipe(args.context, queries, **call)) for _ in range(args.repeats)]

    med = statistics.median
    print(f"model: {label}; steps {args.steps}; size {args.size or 'model default'}; batch size {args.batch_size}; "
          f"median of {args.repeats}")
    print(f"{'what':<34} {'queries':>7} {'total s':>9} {'per query s':>12}")
    rows = [("lavin run, 1 query per process", 1, med(one)), ("lavin run, 16 queries, one process", 16, med(batch)),
            ("Pipeline call, 1 query", 1, med(t_one)), ("Pipeline call, 16 queries", 16, med(t_batch))]
    for name, n, total in rows:
        print(f"{name:<34} {n:>7} {total:>9.3f} {total / n:>12.3f}")
    print(f"16 separate runs would take {16 * med(one):.1f} s; one run of 16 takes {med(batch):.1f} s "
          f"({16 * med(one) / med(batch):.1f}x less)")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
