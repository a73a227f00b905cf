"""What a prediction keeps of its query (--keep, task.json "keep"): the rules on arrays, and the
bundled model's inpainting and colorization through the CLI at a query size above the model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import read_record, smooth_photo
from PIL import Image

from lavin_cli.inference import keep
from lavin_cli.training.tasks import to_uint8


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ keep.LUMA


def test_parse_accepts_the_rules_and_names_what_is_wrong():
    assert keep.parse("unmasked") == keep.Keep("unmasked", (128, 128, 128))
    assert keep.parse("unmasked:0,0,0") == keep.Keep("unmasked", (0, 0, 0))
    assert str(keep.parse("unmasked:0,10,255")) == "unmasked:0,10,255"
    assert keep.resolve("auto", "luma") == keep.Keep("luma") and keep.resolve("auto", None) == keep.Keep("none")
    assert keep.resolve("none", "luma") == keep.Keep("none")
    for bad in ("sharp", "unmasked:1,2", "unmasked:300,0,0", "", 3):
        with pytest.raises(ValueError):
            keep.parse(bad)


def test_unmasked_keeps_every_pixel_outside_the_mask_and_fills_it_from_the_prediction():
    query = smooth_photo()
    query[20:50, 30:70] = 128
    prediction = smooth_photo(seed=1)
    out = keep.apply(keep.parse("unmasked"), prediction, query)
    inside = np.zeros(query.shape[:2], bool)
    inside[20:50, 30:70] = True
    assert np.array_equal(out[inside], prediction[inside])
    outside = ~inside & ~keep.mask_of(query, (128, 128, 128))  # photo pixels that happen to be mid-gray go too
    assert outside.mean() > 0.8 and np.array_equal(out[outside], query[outside])
    raw = keep.apply(keep.parse("unmasked"), prediction.astype(np.float32) / 255, query)  # a raw prediction
    assert raw.dtype == np.float32 and np.allclose(raw[outside], query[outside] / 255)


def test_luma_keeps_the_querys_luminance_and_the_predictions_colour():
    query = np.repeat(_luma(smooth_photo())[..., None], 3, -1).round().astype(np.uint8)  # a gray picture
    prediction = smooth_photo(seed=2)
    out = keep.apply(keep.parse("luma"), prediction, query)
    inner = (out > 2).all(-1) & (out < 253).all(-1)  # where nothing clipped
    assert np.abs(_luma(out) - _luma(query))[inner].max() <= 1.0
    chroma = lambda rgb: rgb.astype(np.float32) - _luma(rgb)[..., None]
    assert np.abs(chroma(out) - chroma(prediction))[inner].max() <= 1.5


def _folder(root: Path, pairs: list[tuple[np.ndarray, np.ndarray]], meta: dict | None) -> Path:
    root.mkdir(parents=True)
    for i, (a, b) in enumerate(pairs):
        Image.fromarray(a).save(root / f"{i}_input.png")
        Image.fromarray(b).save(root / f"{i}_target.png")
    if meta is not None:
        (root / "task.json").write_text(json.dumps(meta))
    return root


def test_bundled_inpainting_keeps_the_photo_outside_the_box_at_its_own_size(cli, tmp_path):
    truth = smooth_photo(96, 160, seed=3)
    query = truth.copy()
    query[30:60, 60:100] = 128
    Image.fromarray(query).save(tmp_path / "q.png")
    code, _, err = cli("run", "-t", "inpainting", "-i", tmp_path / "q.png", "-o", tmp_path / "kept.png",
                       "--steps", 3, "--record", tmp_path / "kept.jsonl", "-q")
    assert code == 0, err
    assert cli("run", "-t", "inpainting", "-i", tmp_path / "q.png", "-o", tmp_path / "model.png", "--steps", 3,
               "--keep", "none", "-q")[0] == 0
    kept, model = (np.asarray(Image.open(tmp_path / n)) for n in ("kept.png", "model.png"))
    box = np.zeros(query.shape[:2], bool)
    box[30:60, 60:100] = True
    outside = ~keep.mask_of(query, (128, 128, 128))
    assert np.array_equal(kept[outside], query[outside])  # the photo's own pixels, not the VAE's 64 px copy
    assert np.array_equal(kept[box], model[box])  # the fill is the model's
    assert not np.array_equal(model[outside], query[outside])
    assert read_record(tmp_path / "kept.jsonl")["runs"][0]["keep"] == "unmasked:128,128,128"


def test_bundled_colorization_keeps_the_gray_querys_detail(cli, tmp_path):
    gray = np.repeat(_luma(smooth_photo(80, 112, seed=4))[..., None], 3, -1).round().astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    code, out, err = cli("run", "-t", "colorization", "-i", tmp_path / "g.png", "-o", tmp_path / "c.png", "--steps", 3,
                         "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["keep"] == "luma"
    colour = np.asarray(Image.open(tmp_path / "c.png"))
    inner = (colour > 2).all(-1) & (colour < 253).all(-1)
    assert inner.mean() > 0.9 and np.abs(_luma(colour) - _luma(gray))[inner].max() <= 1.0
    assert np.abs(colour.astype(int) - gray).max() > 5  # coloured, not the gray query back


def test_a_context_folders_task_json_sets_the_rule_and_a_bad_one_is_named(cli, tiny_model, tmp_path):
    pairs = [(smooth_photo(48, 48, seed=s), smooth_photo(48, 48, seed=s + 10)) for s in range(2)]
    query = smooth_photo(48, 64, seed=5)
    query[:, :20] = (0, 0, 0)
    Image.fromarray(query).save(tmp_path / "q.png")
    good = _folder(tmp_path / "good", pairs, {"keep": "unmasked:0,0,0"})
    code, out, err = cli("run", "-m", tiny_model, "-c", good, "-i", tmp_path / "q.png", "-o", tmp_path / "o.png",
                         "--steps", 2, "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["keep"] == "unmasked:0,0,0"
    o = np.asarray(Image.open(tmp_path / "o.png"))
    assert np.array_equal(o[:, 20:], query[:, 20:])
    bad = _folder(tmp_path / "bad", pairs, {"keep": "sharpen"})
    code, _, err = cli("run", "-m", tiny_model, "-c", bad, "-i", tmp_path / "q.png", "-o", tmp_path / "p.png", "-q")
    assert code == 3 and f"{bad / 'task.json'}: 'keep'" in err and "Traceback" not in err
    assert not (tmp_path / "p.png").exists()
    code, _, err = cli("run", "-m", tiny_model, "-c", good, "-i", tmp_path / "q.png", "-o", tmp_path / "p.png",
                       "--keep", "unmasked:1,2", "-q")
    assert code == 2 and "--keep 'unmasked:1,2' is not one of" in err and len(err.strip().splitlines()) <= 2


def test_a_query_without_the_mask_colour_is_warned_about_not_returned_silently(cli, tmp_path):
    query = np.zeros((64, 80, 3), np.uint8)
    query[..., 0], query[..., 1] = np.linspace(150, 250, 80).astype(np.uint8), 40
    query[20:40, 20:40] = 0  # a black hole: not the task's mid-gray mask
    Image.fromarray(query).save(tmp_path / "black_hole.png")
    code, out, err = cli("run", "-t", "inpainting", "-i", tmp_path / "black_hole.png", "-o", tmp_path / "o.png",
                         "--steps", 2, "--json")
    assert code == 0, err
    assert "black_hole.png: no pixel of the mask colour 128,128,128" in err and "--keep unmasked:R,G,B" in err
    assert json.loads(out)["queries"][0]["warnings"][0].startswith(str(tmp_path / "black_hole.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), query)
    code, out, err = cli("run", "-t", "inpainting", "-i", tmp_path / "black_hole.png", "-o", tmp_path / "p.png",
                         "--steps", 2, "--keep", "unmasked:0,0,0", "--json")
    assert code == 0 and "no pixel" not in err and "warnings" not in json.loads(out)["queries"][0]


def test_carry_moves_the_base_by_the_models_change():
    base = np.full((4, 4, 3), 0.5, np.float32)
    model_base = np.full((4, 4, 3), 0.4, np.float32)
    frames = np.stack([model_base + 0.1, model_base - 0.45, model_base + 0.7])
    out = keep.carry(base, model_base, frames)
    assert np.allclose(out[0], 0.6) and np.allclose(out[1], 0.05) and np.allclose(out[2], 1.0)  # clipped
    assert keep.resolve_video("auto", None, predict=True) == "last"
    assert keep.resolve_video("auto", None, predict=False) == "none"
    assert keep.resolve_video("none", "last", predict=True) == "none"
    assert keep.resolve_video("last", None, predict=False) == "none"


def _prediction_pairs(folder: Path, size: int = 64) -> Path:
    from lavin_cli.io import video as video_io
    from lavin_cli.training import tasks

    folder.mkdir()
    for i in range(3):
        a, b = tasks.pair("frame_prediction", 500 + i, size)
        video_io.write_video(folder / f"{i}_input", video_io.Clip(to_uint8(a), 8))  # frame folders: lossless
        video_io.write_video(folder / f"{i}_target", video_io.Clip(to_uint8(b), 8))
    return folder


def test_video_prediction_keeps_the_still_query_sharp_at_its_own_size(tmp_path):
    """A still 128 px clip, the bundled model working at 64 px: with keep "last" (the default for
    prediction) the new frames are the query's last frame plus the model's change, so they stay
    nearer the query than the model's own frames, its 64 px VAE's copy upscaled (the model still
    draws some motion: its context pairs move)."""
    from lavin_cli import Pipeline
    from lavin_cli.io import video as video_io

    pairs = _prediction_pairs(tmp_path / "ctx")
    still = np.repeat(smooth_photo(128, 128, seed=6)[None], 5, 0)
    video_io.write_video(tmp_path / "still", video_io.Clip(still, 8))
    pipe = Pipeline.from_pretrained(None, device="cpu", dtype="float32")
    runs = {k: pipe.video(pairs, [str(tmp_path / "still")], frames=4, steps=3, keep=k) for k in ("auto", "none")}
    assert runs["auto"].record["keep"] == "last" and runs["none"].record["keep"] == "none"
    err = {k: np.abs(r.predictions[0].clip.frames.astype(int) - still[-1]).mean() for k, r in runs.items()}
    assert err["auto"] < 0.8 * err["none"], err
    assert runs["auto"].predictions[0].clip.frames.shape == (4, 128, 128, 3)


def test_video_keep_is_checked_and_a_clip_task_says_it_keeps_nothing(cli, tmp_path):
    from lavin_cli.io import video as video_io
    from lavin_cli.training import tasks

    depth = tmp_path / "depth"
    depth.mkdir()
    for i in range(2):
        a, b = tasks.pair("video_depth", 600 + i, 64)
        video_io.write_video(depth / f"{i}_input", video_io.Clip(to_uint8(a), 8))
        video_io.write_video(depth / f"{i}_target", video_io.Clip(to_uint8(b), 8))
    q, _ = tasks.pair("video_depth", 700, 64)
    video_io.write_video(tmp_path / "q", video_io.Clip(to_uint8(q), 8))
    code, out, err = cli("video", "-c", depth, "-i", tmp_path / "q", "-o", tmp_path / "d.gif", "--steps", 2,
                         "--keep", "last", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["keep"] == "none" and "--keep last is for prediction tasks" in err
    code, _, err = cli("video", "-c", depth, "-i", tmp_path / "q", "-o", tmp_path / "e.gif", "--keep", "luma")
    assert code == 2 and "--keep 'luma' is not one of auto, none, last (for videos)" in err
