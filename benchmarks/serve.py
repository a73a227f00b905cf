"""lavin serve against one `lavin run` process per call, with the bundled model on this machine.

    python benchmarks/serve.py [--calls 50] [--clients 8] [--soak 2000]

1. Per-call latency: N sequential `lavin run --server` processes against N local `lavin run`
   processes (each loads the model again), one query each.
2. Throughput: M concurrent clients (one query per request, shared batches) against one client;
   the batch sizes the server formed.
3. Soak: many requests in a row, with one seed and with a new seed each (a new encoded
   context each, which fills the context cache to --cache-mb); the server's resident memory
   sampled, its growth reported.
Prints markdown tables (README "Serving" shows them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import Server, query_file  # noqa: E402

QUERY = ROOT / "examples/denoising/queries/q0.png"
LAVIN = [sys.executable, "-m", "lavin_cli"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def per_call(server: Server, calls: int, out: Path) -> list[tuple]:
    rows = []
    for name, extra in (("lavin run (a process per call)", []), ("lavin run --server", ["--server", server.url])):
        seconds = []
        for i in range(calls):
            start = time.perf_counter()
            subprocess.run([*LAVIN, "run", *extra, "-t", "denoising", "-i", QUERY, "-o", out / f"{len(extra)}-{i}.png",
                            "-q"], check=True)
            seconds.append(time.perf_counter() - start)
        rows.append((name, calls, statistics.median(seconds), sum(seconds) / calls))
    return rows


def throughput(server: Server, clients: int, requests: int) -> list[tuple]:
    rows = []
    for count in (1, clients):
        before = _histogram(server)
        done, start = [0], time.perf_counter()

        def client() -> None:
            while True:
                with lock:
                    if done[0] >= requests:
                        return
                    done[0] += 1
                status, _, _ = server.post("/v1/run", {"task": "denoising"}, [query_file(QUERY)])
                assert status == 200

        lock = threading.Lock()
        threads = [threading.Thread(target=client) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        after = _histogram(server)
        calls = after["count"] - before["count"]
        rows.append((count, requests, wall, requests / wall, calls, requests / max(calls, 1)))
    return rows


def _histogram(server: Server) -> dict:
    text = server.get("/metrics")[2].decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("lavin_batch_queries_count "):
            values["count"] = float(line.split()[-1])
    return values


def soak(server: Server, requests: int, new_seeds: bool) -> list[tuple]:
    """`requests` requests in a row; with `new_seeds` each one another seed, so that each
    encodes its context anew and the context cache fills to its bound."""
    samples = [(0, rss_mb(server.proc.pid))]
    for i in range(1, requests + 1):
        options = json.dumps({"steps": 2, "seed": i if new_seeds else 0})
        status, _, _ = server.post("/v1/run", {"task": "denoising", "options": options}, [query_file(QUERY)])
        assert status == 200
        if i % max(1, requests // 10) == 0:
            samples.append((i, rss_mb(server.proc.pid)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64, help="requests of the throughput runs")
    parser.add_argument("--soak", type=int, default=2000)
    parser.add_argument("--cache-mb", type=float, default=64.0, help="the soak server's context cache")
    args = parser.parse_args()
    server = Server("--max-batch", "8", "--batch-wait-ms", "20")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            calls = per_call(server, args.calls, Path(tmp))
        print("| one query per call | calls | median s / call | mean s / call |\n| --- | ---: | ---: | ---: |")
        for name, n, median, mean in calls:
            print(f"| {name} | {n} | {median:.3f} | {mean:.3f} |")
        print("\n| clients | requests | wall s | queries / s | model calls | queries / call |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for count, n, wall, rate, model_calls, per in throughput(server, args.clients, args.requests):
            print(f"| {count} | {n} | {wall:.2f} | {rate:.2f} | {model_calls:.0f} | {per:.2f} |")
    finally:
        server.stop()
    rows = {}
    for name, new_seeds in (("one seed", False), (f"a new seed each (--cache-mb {args.cache_mb:g})", True)):
        server = Server("--cache-mb", str(args.cache_mb))
        try:
            rows[name] = soak(server, args.soak, new_seeds)
        finally:
            server.stop()
    names = list(rows)
    print(f"\n| requests served | RSS MB, {names[0]} | RSS MB, {names[1]} |\n| ---: | ---: | ---: |")
    for (n, a), (_, b) in zip(*rows.values()):
        print(f"| {n} | {a:.0f} | {b:.0f} |")
    for name, samples in rows.items():
        print(f"{name}: {samples[-1][1] - samples[1][1]:+.0f} MB from request {samples[1][0]} to {samples[-1][0]}")


if __name__ == "__main__":
    main()
