"""Where the bundled model loses its two missed bars, on held-out scenes (`lavin eval`'s seeds).

    python benchmarks/bundled_gaps.py                         # seeds 11 and 12, 32 queries each
    python benchmarks/bundled_gaps.py --seeds 5 --queries 16 --model /path/to/run

Restorations: PSNR as `lavin eval` scores it, and again after one brightness gain per picture
fitted to the truth (least squares). What the fit adds is the error in overall brightness; the
table also gives how that error follows the true picture's mean brightness (correlation of the
log gain with it) and how much of it a linear fit on the dark input's own statistics can predict
(R^2, leave one out over all seeds): a low R^2 means the input does not show what the model
missed; and the PSNR of the mean of several predictions drawn with different noise (what the
sampler's spread costs). Denoising and deblurring are the controls.

Frame prediction (trained, not shipped: the context clips are written here, as `lavin eval`
does): PSNR of the 4 new frames on still pixels (those repeating the last frame gets
right) and moving ones, for the model, for repeating the last frame and for the VAE's own
coding of the true frames. Float32, 20 steps, 3 pairs, as in README's table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from lavin_cli import Pipeline
from lavin_cli.evaluation.evaluate import context_pairs, query_cases, reconstruct, write_video_case
from lavin_cli.evaluation.metrics import psnr
from lavin_cli.training import tasks

RESTORATIONS = ("low_light_enhancement", "denoising", "deblurring")
PAIRS, SIZE, STEPS = 3, 64, 20


def restoration_rows(pipe, task: str, seed: int, queries: int, samples: int) -> list[dict]:
    """Per query: model PSNR, PSNR after the best brightness gain, that gain's log, the truth's
    mean, statistics of the input (features for the regression), and the PSNR of the mean of
    `samples` predictions drawn with different noise."""
    context = [(tasks.to_uint8(a), tasks.to_uint8(b)) for a, b in context_pairs(task, seed, PAIRS, SIZE)]
    cases = query_cases(task, seed, queries, SIZE)
    outputs = []
    for k in range(samples):
        result = pipe(context, [tasks.to_uint8(c.input) for c in cases], pairs=PAIRS, seed=seed + 1000 * k, size=SIZE,
                      steps=STEPS)
        outputs.append([p.image.astype(np.float32) / 255 for p in result.predictions])
    rows = []
    for n, case in enumerate(cases):
        out, truth = outputs[0][n], case.target.astype(np.float32)
        gain = float((out * truth).sum() / max((out * out).sum(), 1e-8))
        seen = np.log(tasks.to_uint8(case.input).astype(np.float32) / 255 + 0.5 / 255)
        rows.append({"psnr": psnr(out, truth), "fitted": psnr(np.clip(out * gain, 0, 1), truth),
                     "averaged": psnr(np.mean([o[n] for o in outputs], axis=0), truth),
                     "log_gain": np.log(max(gain, 1e-8)), "truth_mean": float(truth.mean()),
                     "features": [1.0, seen.mean(), np.percentile(seen, 99), np.percentile(seen, 50), seen.std(),
                                  np.log(out.mean() + 1e-3)]})
    return rows


def loo_r2(rows: list[dict]) -> float:
    """Leave-one-out R^2 of a linear fit of the log gain on the input's statistics."""
    x = np.array([r["features"] for r in rows])
    y = np.array([r["log_gain"] for r in rows])
    guess = np.empty_like(y)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        guess[i] = x[i] @ np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
    return float(1 - ((y - guess) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def restorations(pipe, seeds: list[int], queries: int, samples: int) -> None:
    print(f"| task | seed | PSNR dB | with the best brightness gain | corr(log gain, true brightness) "
          f"| mean of {samples} samples |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for task in RESTORATIONS:
        every = []
        for seed in seeds:
            rows = restoration_rows(pipe, task, seed, queries, samples)
            every += rows
            corr = np.corrcoef([r["log_gain"] for r in rows], [r["truth_mean"] for r in rows])[0, 1]
            print(f"| {task} | {seed} | {np.mean([r['psnr'] for r in rows]):.2f} | "
                  f"{np.mean([r['fitted'] for r in rows]):.2f} | {corr:+.2f} | "
                  f"{np.mean([r['averaged'] for r in rows]):.2f} |")
        if task == "low_light_enhancement":
            print(f"| {task} | all | R^2 of the log gain from the input's statistics (leave one out): "
                  f"{loo_r2(every):.2f} | | | |")


def frame_rows(pipe, seed: int, queries: int) -> list[dict]:
    """Per clip: PSNR of the new frames on still and on moving pixels, for model, repeat and VAE."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, paths, renders = write_video_case(root, "frame_prediction", seed, PAIRS, queries, SIZE)
        result = pipe.video(root / "ctx", paths, frames=4, pairs=PAIRS, seed=seed, size=SIZE, steps=STEPS)
    truths = [np.stack([r.rgb for r in clip]) for clip in renders]
    rows = []
    for pred, frames in zip(result.predictions, truths):
        truth, repeat = frames[5:9], np.repeat(frames[4:5], 4, axis=0)
        coded = reconstruct(pipe, frames[4:9])[1:]  # the anchor and the new frames, as the model's target
        moving = np.repeat(np.abs(truth - repeat).max(-1, keepdims=True) > 2 / 255, 3, -1)
        answers = {"model": pred.clip.frames.astype(np.float32) / 255, "repeat": repeat, "vae": coded}
        rows.append({f"{name} {part}": _masked_psnr(a, truth, mask)
                     for name, a in answers.items() for part, mask in (("still", ~moving), ("moving", moving))}
                    | {f"{name} all": psnr(a, truth) for name, a in answers.items()} | {"moving share": moving.mean()})
    return rows


def _masked_psnr(a: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    return psnr(a[mask], truth[mask]) if mask.any() else 99.0  # 99: metrics.psnr's value for no error


def frame_prediction(pipe, seeds: list[int], queries: int) -> None:
    print("| seed | moving pixels | answer | still pixels dB | moving pixels dB | all dB |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for seed in seeds:
        rows = frame_rows(pipe, seed, queries)
        share = np.mean([r["moving share"] for r in rows])
        for name in ("model", "repeat", "vae"):
            cells = " | ".join(f"{np.mean([r[f'{name} {part}'] for r in rows]):.2f}"
                               for part in ("still", "moving", "all"))
            print(f"| {seed} | {share:.0%} | {name} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or name (default: the bundled model)")
    parser.add_argument("--seeds", default="11,12", help="held-out scene seeds, comma-separated")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4, help="predictions averaged per query (last column)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    pipe = Pipeline.from_pretrained(args.model, device="cpu", dtype="float32")
    restorations(pipe, seeds, args.queries, args.samples)
    print()
    frame_prediction(pipe, seeds, args.queries)


if __name__ == "__main__":
    main()
