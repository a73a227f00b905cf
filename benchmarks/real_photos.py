"""Models on real photos, as a markdown table for README (issue 31's bars).

    apt-get install -y mate-backgrounds          # GPL-2+ photographs in /usr/share/backgrounds/mate
    python benchmarks/real_photos.py [--photos /usr/share/backgrounds/mate/nature] [--queries 16] [--model A B]
    python benchmarks/real_photos.py --seed 34 --draws 10 --task colorization   # a model chosen on 31-33, on fresh seeds

`lavin eval --photos` (lavin_cli/evaluation/photos.py) for each model, float32, 20 steps, as
README's tables: per task the model's PSNR beside the degraded input's and the VAE's ceiling,
edges F1 beside the mean context target's. With --draws N (seeds --seed .. --seed+N-1, as
`lavin eval --photos --draws`) each cell is the mean over them, and a restoration's cell adds on
how many seeds the model beat the degraded input: the crops of one seed share their three
context pairs, so one seed is one draw of the examples, and a model picked by its scores on some
seeds is only measured on others (v27's colorization beat the gray
input on seeds 31 to 33, which chose it, and tied it over seeds 34 to 43).

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
from lavin_cli.evaluation.metrics import psnr
from lavin_cli.evaluation.photos import evaluate_draws
from lavin_cli.training.photos import Photos

PAIRS, SIZE, STEPS = 3, 64, 20


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
    parser.add_argument("--draws", type=int, default=1, help="seeds --seed .. --seed+N-1, averaged")
    parser.add_argument("--model", nargs="+", default=[None], help="models to compare (default: the bundled one)")
    parser.add_argument("--task", nargs="+", default=None, help="default: the photo tasks the first model knows")
    parser.add_argument("--vae", nargs="+", default=None, help="compare these VAEs' ceilings instead")
    args = parser.parse_args()
    photos = Photos(args.photos)  # decoded once for every model
    if args.vae:
        return vae_rows(args.vae, photos, args.queries, args.seed)
    reports = []
    for model in args.model:
        pipe = Pipeline.from_pretrained(model, dtype="float32")
        reports.append(evaluate_draws(pipe, photos, args.task, seed=args.seed, draws=args.draws, queries=args.queries,
                                      pairs=PAIRS, steps=STEPS))
    first, over = reports[0], args.draws > 1
    seeds = first["seeds"]
    print(f"crops of {first['photo_files']} photos in {', '.join(args.photos)}; {PAIRS} pairs, {args.queries} "
          f"queries per task, seed{f's {seeds[0]}-{seeds[-1]}' if over else f' {seeds[0]}'}, float32, {STEPS} steps; "
          f"models: {', '.join(map(str, args.model))}; each cell: the model's score (its VAE's ceiling)"
          + ("; the mean over the seeds [on how many the model beat the degraded input]" if over else "") + "\n")
    print("| task | metric | " + " | ".join(f"model {i + 1}" for i in range(len(reports))) + " | degraded input |")
    print("| --- | --- | " + " | ".join("---:" for _ in reports) + " | ---: |")
    for task, r in first["tasks"].items():
        cells = [cell(rep["tasks"][task], args.draws) for rep in reports]
        extra = f"{r['input']:.2f}" if "input" in r else f"baseline {r['baseline']:.3f}"
        print(f"| {task} | {r['metric']} | {' | '.join(cells)} | {extra} |")


def cell(t: dict, draws: int) -> str:
    """One model's cell for one task (evaluate_draws' scores): the VAE's ceiling beside a
    restoration's score, and with several draws on how many it beat its input."""
    if "input" not in t:
        return f"{t['model']:.3f}"
    return f"{t['model']:.2f} ({t['vae_ceiling']:.2f})" + (f" [{t['wins']}/{draws}]" if draws > 1 else "")


if __name__ == "__main__":
    main()
