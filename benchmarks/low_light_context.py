"""Does a model read low-light's darkening from its context? Held-out photos, as `lavin eval --photos`.

    apt-get install -y mate-backgrounds
    python benchmarks/low_light_context.py [--model DIR] [--seeds 31,32,33] [--queries 16]

Low-light's input is (factor x picture) ^ gamma, one (factor, gamma) per sample, shown by its
context pairs (lavin_cli/training/tasks.py). For each seed the same dark queries are answered
under contexts darkened with several settings: the seed's own and the ends of the generator's
range. Under a context with setting (f, g) the right answer to a dark query y is y ^ (1/g) / f,
so a model that reads its context changes its answers' brightness with it. Per seed and context:
the answers' mean brightness beside the mean of the context's right answers, and the PSNR
against them; "response" is the slope of the answers' mean brightness on the right answers'
(1: follows the context fully; 0: ignores it).

Two ceilings per seed, for the seed's own setting: the VAE's reconstruction of the clean truth
(what `lavin eval` reports) and the exact inverse of the darkening applied to the VAE's own
reconstruction of the dark query, decoded without rounding to 8 bits (what the latent of the dark
input still holds of the picture once its brightness is undone: undoing the darkening amplifies
the VAE's small absolute errors on a dark picture into large ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lavin_cli import Pipeline
from lavin_cli.evaluation.evaluate import reconstruct
from lavin_cli.evaluation.metrics import psnr
from lavin_cli.evaluation.photos import CONTEXT, QUERIES, photo_pairs, shared_setting
from lavin_cli.training import tasks
from lavin_cli.training.photos import Photos

TASK, PAIRS, SIZE, STEPS = "low_light_enhancement", 3, 64, 20
ENDS = [(0.35, 1.2), (0.12, 1.8)]  # the mildest and the darkest setting the generator draws


def undarken(dark: np.ndarray, setting: tuple[float, float]) -> np.ndarray:
    """The exact inverse of tasks._low_light for one setting, clipped to [0, 1]."""
    factor, gamma = setting
    return np.clip(np.clip(dark, 0, 1) ** (1 / gamma) / factor, 0, 1)


def seed_rows(pipe, photos: Photos, seed: int, queries: int) -> tuple[list[dict], dict]:
    """Per context setting: answers' and right answers' mean brightness and the PSNR between; and
    the seed's ceilings."""
    own = shared_setting(photos, TASK, seed)
    cases = photo_pairs(photos, TASK, seed, QUERIES, queries, SIZE, own)
    dark = [tasks.to_uint8(i[0]) for i, _ in cases]
    rows = []
    for setting in [own, *ENDS]:
        context = photo_pairs(photos, TASK, seed, CONTEXT, PAIRS, SIZE, setting)
        result = pipe([(tasks.to_uint8(a[0]), tasks.to_uint8(b[0])) for a, b in context], dark, pairs=PAIRS,
                      seed=seed, size=SIZE, steps=STEPS, batch_size=queries)
        answers = [p.image.astype(np.float32) / 255 for p in result.predictions]
        right = [undarken(d.astype(np.float32) / 255, setting) for d in dark]
        rows.append({"setting": setting, "own": setting == own, "answer": float(np.mean([a.mean() for a in answers])),
                     "right": float(np.mean([r.mean() for r in right])),
                     "psnr": float(np.mean([psnr(a, r) for a, r in zip(answers, right)])),
                     "truth_psnr": float(np.mean([psnr(a, t[0]) for a, (_, t) in zip(answers, cases)]))})
    truths = [t[0] for _, t in cases]
    ceilings = {"vae": float(np.mean([psnr(reconstruct(pipe, t[None])[0], t) for t in truths])),
                "dark_latent": float(np.mean([psnr(undarken(reconstruct(pipe, d[None].astype(np.float32) / 255, raw=True)[0], own), t) for d, t in zip(dark, truths)]))}
    return rows, ceilings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or name (default: the bundled model)")
    parser.add_argument("--photos", default="/usr/share/backgrounds/mate/nature")
    parser.add_argument("--seeds", default="31,32,33", help="photo eval seeds, comma-separated")
    parser.add_argument("--queries", type=int, default=16)
    args = parser.parse_args()
    pipe = Pipeline.from_pretrained(args.model, device="cpu", dtype="float32")
    photos = Photos([Path(args.photos)])
    print("| seed | context (factor, gamma) | answers' mean | right answers' mean | PSNR to the right answers dB |")
    print("| ---: | --- | ---: | ---: | ---: |")
    summary = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows, ceilings = seed_rows(pipe, photos, seed, args.queries)
        for r in rows:
            label = f"{r['setting'][0]:.3f}, {r['setting'][1]:.2f}" + (" (the queries' own)" if r["own"] else "")
            print(f"| {seed} | {label} | {r['answer']:.3f} | {r['right']:.3f} | {r['psnr']:.2f} |")
        slope = np.polyfit([r["right"] for r in rows], [r["answer"] for r in rows], 1)[0]
        summary.append((seed, slope, rows[0]["truth_psnr"], ceilings))
    print()
    print("| seed | response | PSNR to the truth dB | undone darkening of the VAE's dark input dB | VAE ceiling dB |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for seed, slope, own, ceilings in summary:
        print(f"| {seed} | {slope:.2f} | {own:.2f} | {ceilings['dark_latent']:.2f} | {ceilings['vae']:.2f} |")


if __name__ == "__main__":
    main()
