"""Does a model read colorization's palette from its examples? Held-out photos, as `lavin eval --photos`.

    apt-get install -y mate-backgrounds
    python benchmarks/colorization_context.py [--model A B ...] [--seeds 31,32,33] [--queries 16]

For each seed the same gray queries are answered twice: under their example pairs as they are,
and under the same pairs with the targets' red and blue channels swapped (a palette no photo
taught: blue flowers turn orange, skies turn brown). A model that colours from what it learned of
photos alone answers the same both times; one that reads its examples moves its answers' chroma
with theirs. Per model and seed: the mean chroma (Cb, Cr in -0.5..0.5) of the examples' targets
and of the answers under each context, and the PSNR of the first answers to the truth beside the
gray query's own. "Response": the change of the answers' mean chroma over the change of the
examples' (1: follows the examples fully, 0: ignores them), pooled over the seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lavin_cli import Pipeline
from lavin_cli.evaluation.metrics import psnr
from lavin_cli.evaluation.photos import CONTEXT, QUERIES, photo_pairs
from lavin_cli.training import tasks
from lavin_cli.training.photos import Photos

TASK, PAIRS, SIZE, STEPS = "colorization", 3, 64, 20
CB = np.array([-0.168736, -0.331264, 0.5])  # BT.601 chroma of RGB in [0, 1]
CR = np.array([0.5, -0.418688, -0.081312])


def chroma(images: list[np.ndarray]) -> np.ndarray:
    """Mean (Cb, Cr) over uint8 RGB images."""
    rgb = np.stack([i.astype(np.float64) / 255 for i in images])
    return np.array([(rgb @ CB).mean(), (rgb @ CR).mean()])


def seed_row(pipe, photos: Photos, seed: int, queries: int) -> dict:
    context = [(tasks.to_uint8(a[0]), tasks.to_uint8(b[0])) for a, b in photo_pairs(photos, TASK, seed, CONTEXT, PAIRS, SIZE)]
    cases = photo_pairs(photos, TASK, seed, QUERIES, queries, SIZE)
    gray = [tasks.to_uint8(i[0]) for i, _ in cases]
    swapped = [(a, b[..., ::-1].copy()) for a, b in context]
    row = {"seed": seed}
    for name, pairs in (("as is", context), ("swapped", swapped)):
        result = pipe(pairs, gray, pairs=PAIRS, seed=seed, size=SIZE, steps=STEPS, batch_size=queries, keep="luma")
        answers = [p.image for p in result.predictions]
        row[name] = {"examples": chroma([b for _, b in pairs]), "answers": chroma(answers)}
        if name == "as is":  # scored as lavin eval --photos scores them (evaluation/photos.py)
            row["psnr"] = float(np.mean([psnr(a.astype(np.float32) / 255, t[0]) for a, (_, t) in zip(answers, cases)]))
            row["gray_psnr"] = float(np.mean([psnr(i[0], t[0]) for i, t in cases]))
    return row


def response(rows: list[dict]) -> np.ndarray:
    moved = sum(r["swapped"]["answers"] - r["as is"]["answers"] for r in rows)
    shown = sum(r["swapped"]["examples"] - r["as is"]["examples"] for r in rows)
    return moved / shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=[None], help="model folders or names (default: the bundled model)")
    parser.add_argument("--photos", default="/usr/share/backgrounds/mate/nature")
    parser.add_argument("--seeds", default="31,32,33", help="photo eval seeds, comma-separated")
    parser.add_argument("--queries", type=int, default=16)
    args = parser.parse_args()
    photos = Photos([Path(args.photos)])
    print("| model | seed | examples' Cb, Cr: as is / swapped | answers' Cb, Cr: as is / swapped | PSNR dB (gray query) |")
    print("| --- | ---: | --- | --- | --- |")
    summary = []
    for model in args.model:
        pipe = Pipeline.from_pretrained(model, device="cpu", dtype="float32")
        rows = [seed_row(pipe, photos, int(s), args.queries) for s in args.seeds.split(",")]
        for r in rows:
            ex = " / ".join(f"{r[k]['examples'][0]:+.3f}, {r[k]['examples'][1]:+.3f}" for k in ("as is", "swapped"))
            an = " / ".join(f"{r[k]['answers'][0]:+.3f}, {r[k]['answers'][1]:+.3f}" for k in ("as is", "swapped"))
            print(f"| {model or 'bundled'} | {r['seed']} | {ex} | {an} | {r['psnr']:.2f} ({r['gray_psnr']:.2f}) |")
        summary.append((model or "bundled", response(rows)))
    print()
    print("| model | response Cb | response Cr |")
    print("| --- | ---: | ---: |")
    for model, (cb, cr) in summary:
        print(f"| {model} | {cb:.2f} | {cr:.2f} |")


if __name__ == "__main__":
    main()
