"""Masks given beside the queries (--mask, RunOptions.mask): the bundled inpainting fills what the
mask marks and keeps every other pixel, including the mid-gray ones the colour rule would take."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import smooth_photo
from PIL import Image

from lavin_cli.errors import InputError, OptionError, UsageError
from lavin_cli.inference import masks


def _box(h: int, w: int, top: int, left: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[top:top + size, left:left + size] = True
    return m


def test_patterns_are_checked_and_filled_from_each_query_file(tmp_path):
    assert masks.check("m/{stem}.png") == "m/{stem}.png" and masks.check(None) is None
    for bad, why in (("m/{name}.png", "unknown field {name}"), ("m/{stem.png", "{{"), ("", "not a mask")):
        with pytest.raises(OptionError, match=why):
            masks.check(bad)
    with pytest.raises(OptionError, match="shape"):
        masks.check(np.zeros((2, 2, 2, 2)))
    assert masks.source_for("{dir}/masks/{stem}_m.png", "/data/a/img.jpg", "q") == "/data/a/masks/img_m.png"
    assert masks.source_for("one.png", b"bytes", "query #0") == "one.png"
    with pytest.raises(InputError, match="query #0: not a file"):
        masks.source_for("m/{stem}.png", b"bytes", "query #0")


def test_arrays_and_files_mean_the_same_and_are_scaled_to_the_query(tmp_path):
    fill = _box(40, 60, 10, 20, 12)
    assert np.array_equal(masks.read(fill, "q.png", "q", (40, 60), 10**6), fill)
    assert np.array_equal(masks.read(fill.astype(np.uint8) * 255, "q", "q", (40, 60), 10**6), fill)
    assert np.array_equal(masks.read(fill * 0.9, "q", "q", (40, 60), 10**6), fill)
    Image.fromarray((fill * 255).astype(np.uint8)).convert("RGBA").save(tmp_path / "m.png")
    assert np.array_equal(masks.read(str(tmp_path / "m.png"), "q", "q", (80, 120), 10**6),
                          np.repeat(np.repeat(fill, 2, 0), 2, 1))  # half the query's size: scaled, nearest
    with pytest.raises(InputError, match=r"m.png: the mask is 60x40 but its query q is 60x60"):
        masks.read(str(tmp_path / "m.png"), "q", "q", (60, 60), 10**6)
    painted = masks.paint(smooth_photo(40, 60, 0), fill, (128, 128, 128))
    assert (painted[fill] == 128).all() and np.array_equal(painted[~fill], smooth_photo(40, 60, 0)[~fill])


def test_bundled_inpainting_fills_the_mask_and_keeps_every_other_pixel(cli, tmp_path):
    h, w = 96, 160
    photos = {"a": smooth_photo(h, w, 1), "b": smooth_photo(h, w, 2)}
    photos["a"][:, :24] = 128  # a mid-gray band of the photo itself: the colour rule would redraw it
    (tmp_path / "masks").mkdir()
    for name, pic in photos.items():
        Image.fromarray(pic).save(tmp_path / f"{name}.png")
    Image.fromarray(_box(h, w, 30, 60, 32)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(_box(h // 2, w // 2, 15, 30, 16)).save(tmp_path / "masks" / "b.png")  # half size
    code, out, err = cli("run", "-t", "inpainting", "-i", tmp_path / "a.png", "-i", tmp_path / "b.png",
                         "--mask", str(tmp_path / "masks" / "{stem}.png"), "-o", tmp_path / "out", "--steps", 3,
                         "--json", "-q")
    assert code == 0, err
    record = json.loads(out)
    assert record["mask"].endswith("{stem}.png") and record["keep"] == "unmasked:128,128,128"
    box = _box(h, w, 30, 60, 32)
    for name, pic in photos.items():
        got = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert np.array_equal(got[~box], pic[~box])  # the gray band too
        assert np.abs(got[box].astype(int) - pic[box]).mean() > 3  # the box is the model's
        assert np.abs(got[box].astype(int) - 128).mean() > 1  # a fill, not the painted gray
    code, _, err = cli("run", "-t", "inpainting", "-i", tmp_path / "a.png", "-o", tmp_path / "colour.png",
                       "--steps", 3, "-q")  # the colour rule, for contrast: the band is the model's
    colour = np.asarray(Image.open(tmp_path / "colour.png"))
    assert code == 0 and not np.array_equal(colour[:, :24], photos["a"][:, :24])


def test_mask_problems_are_one_line_each_and_a_batch_goes_on(cli, tmp_path):
    pic = smooth_photo(64, 64, 3)
    for name in ("a", "b"):
        Image.fromarray(pic).save(tmp_path / f"{name}.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a_mask.png")  # all black: nothing to fill
    code, out, err = cli("run", "-t", "inpainting", "-i", tmp_path / "a.png", "-i", tmp_path / "b.png",
                         "--mask", str(tmp_path / "{stem}_mask.png"), "-o", tmp_path / "out", "--steps", 2, "--json")
    assert code == 7 and "Traceback" not in err  # some items failed, the others were written
    assert f"failed: mask {tmp_path / 'b_mask.png'}: file not found" in err
    assert "a.png: its mask marks no pixel to fill" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), pic)
    code, _, err = cli("run", "-t", "colorization", "-i", tmp_path / "a.png", "--mask", tmp_path / "a_mask.png",
                       "-o", tmp_path / "c.png")
    assert code == 2 and "--mask marks pixels to fill, but this run keeps luma" in err and not (tmp_path / "c.png").exists()
    assert "model lavin-small" not in err  # refused before the model loads
    code, _, err = cli("run", "-t", "inpainting", "-i", tmp_path / "a.png", "--mask", "m/{name}.png", "-o", tmp_path / "d.png")
    assert code == 2 and err.strip().endswith("a pattern may use {stem} and {dir}") and len(err.strip().splitlines()) == 1


def test_a_server_is_sent_masks_as_files_not_as_an_option():
    """(What a server does with them: test_serve.py, test_masks_over_a_server_give_a_local_runs_bytes.)"""
    from lavin_cli.inference.options import RunOptions
    from lavin_cli.serve.client import options_json

    assert "mask" not in json.loads(options_json(RunOptions(mask="m/{stem}.png")))


def test_python_takes_an_array_mask_for_in_memory_queries(tiny_model, pairs_dir):
    from lavin_cli import Pipeline

    pipe = Pipeline.from_pretrained(str(tiny_model))
    query = smooth_photo(48, 64, 4)
    fill = _box(48, 64, 8, 16, 20)
    result = pipe(pairs_dir, [query], steps=2, mask=fill)
    got = result.predictions[0].image
    assert result.record["mask"] == "array" and result.record["keep"] == "unmasked:128,128,128"
    assert np.array_equal(got[~fill], query[~fill]) and not np.array_equal(got[fill], query[fill])
    with pytest.raises(OptionError, match="mask"):
        pipe(pairs_dir, [query], steps=2, mask=np.zeros((2, 2, 2, 2)))
    other = _box(48, 64, 30, 40, 10)  # a list: one mask per query, in order
    result = pipe(pairs_dir, [query, query], steps=2, mask=[fill, other])
    assert result.record["mask"] == "2 masks, one per query"
    for got, m in zip((p.image for p in result.predictions), (fill, other)):
        assert np.array_equal(got[~m], query[~m]) and not np.array_equal(got[m], query[m])
    with pytest.raises(UsageError, match="2 masks for 1 queries"):
        pipe(pairs_dir, [query], steps=2, mask=[fill, other])
