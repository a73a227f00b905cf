"""The bundled model on real photos (issue 31's starting point, and its bars).

    apt-get install -y mate-backgrounds          # GPL-2+ photographs in /usr/share/backgrounds/mate
    python benchmarks/real_photos.py [--photos /usr/share/backgrounds/mate/nature] [--queries 16]

For each task that follows from a photo (lavin_cli/training/photos.py), in context: 3 pairs
and N queries drawn from crops of the photos (different crops, a fixed seed), the model's
answer scored against the truth: PSNR for the restorations, beside the degraded input's own
PSNR (the baseline every restoration must beat) and the VAE's reconstruction of the truth (the
ceiling no prediction through the VAE passes); F1 at 0.5 with a one-pixel tolerance for edges
(against the Sobel detector on the clean photo). Float32, 20 steps, as README's tables. Prints a
markdown table.

    python benchmarks/real_photos.py --vae runs/vae_photos/vae.safetensors [--vae ...]

compares VAEs alone: each one's reconstruction PSNR of the photo crops and of lavin eval's clean
held-out scenes and clips (the ceilings), without a DiT.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lavin_cli import Pipeline
from lavin_cli.evaluation.evaluate import reconstruct, vae_ceiling
from lavin_cli.evaluation.metrics import edge_f1, psnr
from lavin_cli.training import tasks
from lavin_cli.training.photos import Photos

PAIRS, SIZE, STEPS = 3, 64, 20


def task_row(pipe, photos: Photos, task: str, queries: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, tasks.IMAGE_TASKS.index(task) if task in tasks.IMAGE_TASKS else 99])
    context = [photos.pair(task, rng, SIZE) for _ in range(PAIRS)]
    cases = [photos.pair(task, rng, SIZE) for _ in range(queries)]
    u8 = tasks.to_uint8
    result = pipe([(u8(a[0]), u8(b[0])) for a, b in context], [u8(a[0]) for a, _ in cases], pairs=PAIRS, seed=seed,
                  steps=STEPS, batch_size=queries)
    preds = [p.image.astype(np.float32) / 255 for p in result.predictions]
    if task == "edge_detection":
        return {"task": task, "metric": "F1@0.5", "model": np.mean([edge_f1(p.mean(-1), t[0].mean(-1))
                                                                   for p, (_, t) in zip(preds, cases)])}
    return {"task": task, "metric": "PSNR dB",
            "model": np.mean([psnr(p, t[0]) for p, (_, t) in zip(preds, cases)]),
            "input": np.mean([psnr(i[0], t[0]) for i, t in cases]),
            "vae": np.mean([psnr(reconstruct(pipe, t)[0], t[0]) for _, t in cases])}


def vae_rows(vaes: list[str], photos: Photos, queries: int, seed: int) -> None:
    """Each VAE's ceilings on photo crops and on lavin eval's clean scenes (seed 11)."""
    import shutil
    import tempfile

    from lavin_cli.store.home import bundled_dir

    rng = np.random.default_rng(seed)
    crops = [photos.picture(rng, SIZE)[None] for _ in range(queries)]
    print("| VAE | photo crops dB | scenes dB | clips dB |")
    print("| --- | ---: | ---: | ---: |")
    for vae in vaes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            shutil.copytree(bundled_dir(), folder, ignore=shutil.ignore_patterns("tasks"))
            shutil.copyfile(vae, folder / "vae.safetensors")  # the bundled DiT beside it is never called
            pipe = Pipeline.from_pretrained(str(folder), dtype="float32")
            photo_db = np.mean([psnr(reconstruct(pipe, c)[0], c[0]) for c in crops])
            scenes = vae_ceiling(pipe, 11, queries, SIZE)
        print(f"| {vae} | {photo_db:.2f} | {scenes['image_psnr_db']:.2f} | {scenes['clip_psnr_db']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", nargs="+", default=["/usr/share/backgrounds/mate/nature"])
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--model", default=None)
    parser.add_argument("--vae", nargs="+", default=None, help="compare these VAEs' ceilings instead")
    args = parser.parse_args()
    photos = Photos(args.photos)
    if args.vae:
        return vae_rows(args.vae, photos, args.queries, args.seed)
    pipe = Pipeline.from_pretrained(args.model, dtype="float32")
    print(f"{pipe.model.name} on crops of {len(photos.files)} photos in {', '.join(args.photos)}; "
          f"{PAIRS} pairs, {args.queries} queries per task, seed {args.seed}, float32, {STEPS} steps\n")
    print("| task | metric | model | degraded input | VAE ceiling | model - input |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for task in photos.task_names:
        r = task_row(pipe, photos, task, args.queries, args.seed)
        if "input" in r:
            print(f"| {task} | {r['metric']} | {r['model']:.2f} | {r['input']:.2f} | {r['vae']:.2f} | "
                  f"{r['model'] - r['input']:+.2f} |")
        else:
            print(f"| {task} | {r['metric']} | {r['model']:.3f} | | | |")


if __name__ == "__main__":
    main()
