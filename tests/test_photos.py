"""Real photos as a source: crops, the generator's own degradations, the folder rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lavin_cli.errors import InputError, UsageError
from lavin_cli.training import tasks
from lavin_cli.training.photos import ALL_PHOTO_TASKS, PHOTO_TASKS, VIDEO_PHOTO_TASKS, Photos


@pytest.fixture
def photo_dir(tmp_path):
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(200, 160), (320, 240), (160, 300)]):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(tmp_path / f"p{i}.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "icon.png")  # too small to be a photo
    (tmp_path / "vector.svg").write_text("<svg/>")  # not read
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")  # left out
    return tmp_path


def test_crops_are_seeded_and_pairs_use_the_generators_degradations(photo_dir):
    photos = Photos([photo_dir])
    assert [p.name for p in photos.files] == ["p0.png", "p1.png", "p2.png"]
    assert photos.task_names == PHOTO_TASKS + VIDEO_PHOTO_TASKS == ALL_PHOTO_TASKS
    a = photos.pair("denoising", np.random.default_rng(5), 64)
    b = photos.pair("denoising", np.random.default_rng(5), 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and a[0].shape == (1, 64, 64, 3)
    rng = np.random.default_rng(7)
    pic = photos.picture(rng, 64)
    inp, tgt = tasks.derived_pair("deblurring", pic, rng)
    assert np.array_equal(tgt[0], pic) and not np.array_equal(inp[0], pic)
    inp, tgt = photos.pair("edge_detection", np.random.default_rng(1), 64)
    assert set(np.unique(tgt)) <= {0.0, 1.0} and inp.min() >= 0 and inp.max() <= 1
    factor, gamma = setting = photos.draw_setting("low_light_enhancement", np.random.default_rng(2))
    for seed in (3, 4):  # the pairs of one sample (context and query) share the darkening
        inp, tgt = photos.pair("low_light_enhancement", np.random.default_rng(seed), 64, setting)
        assert np.allclose(inp, np.clip((tgt * factor) ** gamma, 0, 1), atol=1e-6)


def test_what_cannot_be_made_from_photos_is_refused(photo_dir, tmp_path):
    with pytest.raises(InputError, match="cannot be made from photos"):
        Photos([photo_dir], ["depth_estimation"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no photo of at least 128 px"):
        Photos([tmp_path / "nothing"])
    with pytest.raises(InputError, match="give one or more folders of photos"):
        Photos([])
    with pytest.raises(InputError, match="photo folder not found"):
        Photos([tmp_path / "missing"])
    with pytest.raises(ValueError, match="not derived from a picture"):
        tasks.derived_pair("depth_estimation", np.zeros((8, 8, 3), np.float32), np.random.default_rng(0))


def test_train_on_photos(cli, photo_dir, tmp_path):
    code, _, err = cli("train", "vae", "-o", tmp_path / "run", "--data", f"photos:{photo_dir}", "--steps", "1",
                       "--batch", "2", "--size", "32", "--video-fraction", "0", "-q")
    assert code == 0, err
    assert (tmp_path / "run" / "vae.safetensors").is_file()


def test_eval_on_photos_scores_model_input_and_vae(cli, tiny_model, photo_dir):
    """lavin eval --photos: each restoration beside its degraded input and the VAE's ceiling, edges
    beside the mean context target; seeded, so the same command gives the same report."""
    import json

    args = ("eval", "-m", tiny_model, "--photos", photo_dir, "-t", "denoising", "-t", "edge_detection",
            "--queries", "2", "--pairs", "1", "--steps", "2", "--json", "-q")
    code, out, err = cli(*args)
    assert code == 0, err
    report = json.loads(out)
    assert report["photo_files"] == 3 and list(report["tasks"]) == ["denoising", "edge_detection"]
    den, edges = report["tasks"]["denoising"], report["tasks"]["edge_detection"]
    assert den["metric"] == "psnr_db" and 10 < den["input"] < 25  # noise of sigma 0.08-0.2 on random pixels
    assert 0 < den["model"] < 99 and 0 < den["vae_ceiling"] < 99
    assert edges["metric"] == "f1" and 0 <= edges["model"] <= 1 and 0 <= edges["baseline"] <= 1
    assert json.loads(cli(*args)[1]) == report
    code, out, err = cli(*args[:-2], "-q")
    assert code == 0 and "model - input" in out and "denoising" in out


def test_eval_on_photos_over_draws_reports_the_mean_and_the_draws_won(cli, tiny_model, photo_dir):
    """--draws N: the eval at seeds S .. S+N-1, each score the mean of the single-seed evals (the
    same numbers those give), with each draw's score and on how many the model beat its input;
    refused with --truth, whose queries and examples are fixed."""
    import json

    base = ("eval", "-m", tiny_model, "--photos", photo_dir, "-t", "denoising", "-t", "edge_detection",
            "--queries", "2", "--pairs", "1", "--steps", "2", "--json", "-q")
    single = [json.loads(cli(*base, "--seed", str(s))[1])["tasks"] for s in (3, 4)]
    code, out, err = cli(*base, "--seed", "3", "--draws", "2")
    assert code == 0, err
    report = json.loads(out)
    assert report["seeds"] == [3, 4] and report["seed"] == 3
    for task, reference in (("denoising", "input"), ("edge_detection", "baseline")):
        merged = report["tasks"][task]
        assert merged["per_seed"]["model"] == [s[task]["model"] for s in single]
        assert merged["model"] == pytest.approx(np.mean([s[task]["model"] for s in single]), abs=1e-4)
        assert merged[reference] == pytest.approx(np.mean([s[task][reference] for s in single]), abs=1e-4)
        assert merged["wins"] == sum(s[task]["model"] > s[task][reference] for s in single)
    code, out, _ = cli(*base[:-2], "--seed", "3", "--draws", "2")
    assert code == 0 and "seeds 3-4 (mean of 2 draws)" in out and "draws won" in out
    stream = photo_dir / "progress.jsonl"  # progress counts the tasks over the draws
    code, _, err = cli("--progress-json", stream, *base[:-2], "--draws", "2", "-q")
    assert code == 0, err
    events = [json.loads(line) for line in stream.read_text().splitlines()]
    ticks = [(e["done"], e["total"]) for e in events if e["event"] == "progress"]
    assert ticks[-1] == (4, 4) and all(total == 4 for _, total in ticks) and events[-1]["event"] == "end"
    from lavin_cli import Pipeline
    from lavin_cli.evaluation.photos import evaluate_draws

    with pytest.raises(UsageError, match="draws=0"):
        evaluate_draws(Pipeline.from_pretrained(str(tiny_model)), Photos([photo_dir]), draws=0)
    code, _, err = cli("eval", "-m", tiny_model, "-c", photo_dir, "--queries", photo_dir, "--truth", photo_dir,
                       "--metric", "restoration", "--draws", "2")
    assert code == 2 and "--draws" in err and "--truth" in err


def test_eval_on_photos_keeps_what_the_task_keeps(cli, tiny_model, photo_dir):
    """Inpainting is scored as `lavin run -t inpainting` gives it (the query's pixels outside the
    box kept: better than the tiny model's own, which --keep none scores), and says so."""
    import json

    args = ("eval", "-m", tiny_model, "--photos", photo_dir, "-t", "inpainting", "--queries", "2", "--pairs", "1",
            "--steps", "2", "--json", "-q")
    kept, own = (json.loads(cli(*args, *extra)[1])["tasks"]["inpainting"] for extra in ((), ("--keep", "none")))
    assert kept["keep"] == "unmasked:128,128,128" and own["keep"] == "none"
    assert kept["model"] > own["model"] + 3 and kept["input"] == own["input"]
    code, out, _ = cli(*args[:-2])
    assert code == 0 and "kept of the query (--keep): inpainting unmasked:128,128,128" in out


def test_photo_clips_move_a_camera_over_one_photo(photo_dir):
    """Frame prediction from photos: 9 frames of one window panning and zooming, seeded; the
    target's first frame is the input's last, as the generator's clips."""
    photos = Photos([photo_dir], ["frame_prediction"])
    assert photos.kind("frame_prediction") == "video"
    inp, tgt = photos.pair("frame_prediction", np.random.default_rng(3), 32)
    again = photos.pair("frame_prediction", np.random.default_rng(3), 32)
    assert inp.shape == tgt.shape == (5, 32, 32, 3) and np.array_equal(inp, again[0])
    assert np.array_equal(inp[-1], tgt[0]) and 0 <= inp.min() and inp.max() <= 1
    frames = photos.clip(np.random.default_rng(4), 32, 9)
    steps = [np.abs(frames[t + 1] - frames[t]).mean() for t in range(8)]
    assert all(s > 0 for s in steps)  # the camera moves every frame
    assert np.abs(frames[8] - frames[0]).mean() > np.mean(steps) / 2  # ... and gets somewhere


def test_eval_on_photo_clips_scores_frame_prediction_against_repeating(cli, tiny_model, photo_dir):
    import json

    code, out, err = cli("eval", "-m", tiny_model, "--photos", photo_dir, "-t", "frame_prediction", "--queries", "1",
                         "--pairs", "1", "--steps", "2", "--json", "-q")
    assert code == 0, err
    r = json.loads(out)["tasks"]["frame_prediction"]
    assert r["metric"] == "psnr_db" and 0 < r["model"] < 99 and 0 < r["input"] < 99 and 0 < r["vae_ceiling"] < 99


def test_same_photo_samples_crop_every_pair_from_one_photo(tmp_path):
    """lavin train dit --same-photo P: that share of the samples takes its context pairs and query
    from one photo (a setting the pairs share, kept with the task's own: low-light's darkening);
    without it every pair draws its own photo, and the draws are those the eval has always made."""
    from lavin_cli.training.data import Generator
    from lavin_cli.training.photos import SamePhoto, WithPhotos

    colours = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40)]
    for i, colour in enumerate(colours):  # a photo is known by its colour in any crop
        Image.fromarray(np.full((160, 160, 3), colour, np.uint8)).save(tmp_path / f"c{i}.png")

    def photo_of(target):
        return int(np.argmin([np.abs(target[0].mean((0, 1)) * 255 - c).sum() for c in colours]))

    shared = WithPhotos(Generator(), Photos([tmp_path], same_photo=1.0))
    for seed in range(4):
        rng = np.random.default_rng(seed)
        setting = shared.draw_setting("colorization", rng)
        assert isinstance(setting, SamePhoto) and setting.photo is not None
        assert {photo_of(shared.pair("colorization", rng, 32, setting)[1]) for _ in range(4)} == {setting.photo}
        dark = shared.draw_setting("low_light_enhancement", rng)
        (factor, gamma), inp, tgt = dark.inner, *shared.pair("low_light_enhancement", rng, 32, dark)
        assert photo_of(tgt) == dark.photo and np.allclose(inp, np.clip((tgt * factor) ** gamma, 0, 1), atol=1e-6)
    assert shared.draw_setting("depth_estimation", np.random.default_rng(0)) is None  # scenes: nothing shared

    plain = Photos([tmp_path])
    rng = np.random.default_rng(0)
    assert plain.draw_setting("colorization", rng) is None
    assert len({photo_of(plain.pair("colorization", rng, 32)[1]) for _ in range(12)}) > 1
    mixed = Photos([tmp_path], same_photo=0.5)
    drawn = [mixed.draw_setting("colorization", np.random.default_rng(s)).photo for s in range(40)]
    assert 8 < sum(p is None for p in drawn) < 32  # about half the samples share a photo
    rng = np.random.default_rng(9)  # without the option a setting draws nothing: the eval's crops are as they were
    plain.draw_setting("colorization", rng)
    assert rng.random() == np.random.default_rng(9).random()

    one_task = Photos([tmp_path], same_photo_tasks={"colorization": 1.0})  # --same-photo colorization=1: that task only
    assert all(one_task.draw_setting("colorization", np.random.default_rng(s)).photo is not None for s in range(8))
    rng = np.random.default_rng(9)
    assert one_task.draw_setting("denoising", rng) is None and rng.random() == np.random.default_rng(9).random()
    with pytest.raises(UsageError, match="same_photo names 'depth_estimation'"):
        Photos([tmp_path], same_photo_tasks={"depth_estimation": 1.0})


def test_same_photo_is_checked(cli, photo_dir, tiny_model, tmp_path):
    def train(data, share):
        return cli("train", "dit", "-o", tmp_path / "run", "--vae", tiny_model / "vae.safetensors",
                   "--data", data, "--same-photo", share, "--steps", "1", "-q")

    photos = f"photos:{photo_dir}"
    for data, share, said in [(photos, "1.5", "same_photo"), (photos, "colorization=2", "colorization=2"),
                              (photos, "colorization=much", "TASK=P"), (photos, "=0.5", "names no task"),
                              (photos, "depth_estimation=1", "depth_estimation"), ("generator", "0.5", "has no photos")]:
        code, _, err = train(data, share)
        assert code == 2 and said in (err.replace("-", "_") if said == "same_photo" else err), (share, err)
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists(), err


def test_same_photo_per_task_trains_and_is_recorded(cli, photo_dir, tiny_model, tmp_path):
    code, _, err = cli("train", "dit", "-o", tmp_path / "run", "--vae", tiny_model / "vae.safetensors",
                       "--data", f"photos:{photo_dir}", "--same-photo", "0.25,colorization=1", "--steps", "1",
                       "--batch", "2", "--bank-slots", "8", "--max-pairs", "1", "-q")
    assert code == 0, err
    training = json.loads((tmp_path / "run" / "model.json").read_text())["training"]
    assert training["same_photo"] == 0.25 and training["same_photo_tasks"] == [["colorization", 1.0]]


def test_same_photo_pairs_are_cropped_from_disjoint_parts_of_the_photo(tmp_path):
    """The pairs of a same-photo sample (as the latent bank and the example folders draw them,
    each its member of the sample) never share a pixel: each comes from its own quadrant, so no
    context target holds the query's answer to copy. Told by a photo whose colour encodes the
    position; clips (frame prediction) as well."""
    from lavin_cli.training.bank import LatentBank
    from lavin_cli.training.photos import SamePhoto

    ys, xs = np.mgrid[0:300, 0:400]  # red: 0-100 in the left half, 155-255 in the right; green the same downwards
    red, green = np.where(xs < 200, xs // 2, 155 + (xs - 200) // 2), np.where(ys < 150, ys * 2 // 3, 155 + (ys - 150) * 2 // 3)
    Image.fromarray(np.stack([red, green, np.zeros_like(xs)], -1).astype(np.uint8)).save(tmp_path / "xy.png")
    photos = Photos([tmp_path], same_photo=1.0)

    def quadrant(frames):  # where in the photo a crop (or every frame of a clip) lies
        x, y = frames[..., 0] * 255, frames[..., 1] * 255
        cols, rows = {int(v) for v in (x > 127.5).ravel()}, {int(v) for v in (y > 127.5).ravel()}
        assert len(cols) == 1 and len(rows) == 1, "a crop crosses the quadrants' border"
        return 2 * rows.pop() + cols.pop()

    for seed in range(6):
        for task in ("colorization", "frame_prediction"):
            setting = photos.draw_setting(task, np.random.default_rng(seed))
            assert isinstance(setting, SamePhoto) and sorted(setting.quadrants) == [0, 1, 2, 3]
            got = [quadrant(photos.pair(task, np.random.default_rng(100 + i), 32, photos.member(setting, i))[1]) for i in range(4)]
            assert got == list(setting.quadrants)

    class Bank(LatentBank):  # the bank's members, without a VAE: which quadrant each slot's target came from
        def encode(self, frames):  # (input, target) after each other; colorization's inputs are gray
            return [quadrant(f) if n % 2 else None for n, f in enumerate(frames)]

    bank = Bank(photos, vae=None, slots=8, size=32, seed=1, group=4)
    bank.build(0)
    for first in (0, 4):
        assert sorted(bank.moments["colorization"][first + j][1] for j in range(4)) == [0, 1, 2, 3]
