"""Bad input never gives a traceback: one clear line, a documented exit code, no partial output."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import make_pairs, random_image


def _assert_clean(code, stderr, expected_code, *needles):
    assert code == expected_code, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:") or any(l.startswith("failed:") for l in lines), stderr
    for needle in needles:
        assert needle in stderr, (needle, stderr)


@pytest.fixture
def base(tiny_model, queries):
    return ["run", "-m", tiny_model, "-i", queries[0], "--steps", 3]


def test_missing_context_folder(cli, base, tmp_path):
    code, _, err = cli(*base, "-c", tmp_path / "absent", "-o", tmp_path / "o.png")
    _assert_clean(code, err, 3, "context folder not found")
    assert not (tmp_path / "o.png").exists()


def test_empty_context_and_no_complete_pair(cli, base, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli(*base, "-c", tmp_path / "empty", "-o", tmp_path / "o.png")
    _assert_clean(code, err, 3, "no complete <id>_input/<id>_target pair")
    random_image(tmp_path / "half" / "a_input.png")
    code, _, err = cli(*base, "-c", tmp_path / "half", "-o", tmp_path / "o.png")
    _assert_clean(code, err, 3, "not used: a_input.png (no partner)")
    assert not (tmp_path / "o.png").exists()


def test_corrupt_context_image_is_named(cli, base, tmp_path):
    ctx = make_pairs(tmp_path / "ctx", count=2)
    (ctx / "001_target.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, _, err = cli(*base, "-c", ctx, "-o", tmp_path / "o.png")
    _assert_clean(code, err, 3, "001_target.png", "not a readable image")
    assert not (tmp_path / "o.png").exists()


def test_query_not_found_or_corrupt(cli, tiny_model, pairs_dir, tmp_path):
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", tmp_path / "nope.jpg", "-o", tmp_path / "o.png")
    _assert_clean(code, err, 3, "nope.jpg: file not found")
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is not a jpeg")
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", bad, "-o", tmp_path / "o.png")
    _assert_clean(code, err, 3, "bad.jpg: not a readable image")
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", str(tmp_path / "*.webp"), "-o", tmp_path / "d")
    _assert_clean(code, err, 3, "no image matches")
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "d").exists()


def test_batch_with_a_bad_query_completes_the_others(cli, tiny_model, pairs_dir, queries, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    out = tmp_path / "out"
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-i", bad, "-i", queries[1],
                       "-o", out, "--steps", 3)
    assert code == 7, err
    assert "broken.png" in err and "1 of 3 queries failed" in err and "Traceback" not in err
    assert sorted(p.name for p in out.rglob("*.png")) == ["q0.png", "q1.png"]  # (the queries' tree, mirrored)


def test_output_folder_not_writable(cli, base, pairs_dir, tmp_path):
    code, _, err = cli(*base, "-c", pairs_dir, "-o", "/proc/lavin-test/out.png")
    _assert_clean(code, err, 6, "not writable")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli(*base, "-c", pairs_dir, "-o", blocker / "out.png")
    _assert_clean(code, err, 6, "is a file")
    if os.geteuid() != 0:  # permissions bind ordinary users only
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = cli(*base, "-c", pairs_dir, "-o", locked / "o.png")
        _assert_clean(code, err, 6, "not writable")


def test_existing_output_is_refused_unless_overwrite(cli, base, pairs_dir, tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    code, _, err = cli(*base, "-c", pairs_dir, "-o", out)
    _assert_clean(code, err, 6, "exists; pass --overwrite")
    assert out.read_bytes() == b"precious"
    code, _, err = cli(*base, "-c", pairs_dir, "-o", out, "--overwrite")
    assert code == 0, err and out.read_bytes() != b"precious"


@pytest.mark.parametrize("size,needle", [("100", "multiples of 16"), ("0", "multiples of 16"), ("big", "not N or WIDTHxHEIGHT"),
                                         ("64x50", "multiples of 16")])
def test_invalid_size(cli, base, pairs_dir, tmp_path, size, needle):
    code, _, err = cli(*base, "-c", pairs_dir, "-o", tmp_path / "o.png", "--size", size)
    _assert_clean(code, err, 2, needle)


@pytest.mark.parametrize("steps", ["0", "-3", "1"])
def test_zero_or_negative_steps(cli, tiny_model, queries, pairs_dir, tmp_path, steps):
    code, _, err = cli("run", "-m", tiny_model, "-i", queries[0], "-c", pairs_dir, "-o", tmp_path / "o.png", "--steps", steps)
    _assert_clean(code, err, 2, "--steps must be at least 2")
    assert not (tmp_path / "o.png").exists()


def test_other_bad_options(cli, base, pairs_dir, tmp_path):
    for extra, needle in ((["--pairs", "0"], "--pairs must be at least 1"), (["--select", "best"], "--select 'best' is not one of"),
                          (["--fit", "stretch"], "--fit 'stretch' is not one of"), (["--solver", "rk4"], "--solver 'rk4' is not"),
                          (["--offload", "disk"], "--offload 'disk' is not"), (["--batch-size", "0"], "--batch-size")):
        code, _, err = cli(*base, "-c", pairs_dir, "-o", tmp_path / "o.png", *extra)
        _assert_clean(code, err, 2, needle)
    code, _, err = cli(*base, "-o", tmp_path / "o.png")
    _assert_clean(code, err, 2, "exactly one of --context")


def test_unknown_model(cli, queries, pairs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LAVIN_HOME", str(tmp_path / "home"))
    code, _, err = cli("run", "-m", "no-such-model", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png")
    _assert_clean(code, err, 4, "unknown model 'no-such-model'")
    code, _, err = cli("run", "-m", tmp_path / "nowhere", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png")
    _assert_clean(code, err, 4, "model folder not found")
    (tmp_path / "notamodel").mkdir()
    code, _, err = cli("run", "-m", tmp_path / "notamodel", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png")
    _assert_clean(code, err, 4, "not a model folder")


def test_no_model_at_all(cli, queries, pairs_dir, tmp_path, monkeypatch):
    from lavin_cli.store import folders

    monkeypatch.delenv("LAVIN_MODEL", raising=False)
    monkeypatch.setattr(folders, "bundled_dir", lambda: None)  # as an installation without the bundled model
    code, _, err = cli("run", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png")
    _assert_clean(code, err, 4, "no bundled model")


def test_cuda_requested_but_absent(cli, base, pairs_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = cli(*base, "-c", pairs_dir, "-o", tmp_path / "o.png", "--device", "cuda")
    _assert_clean(code, err, 5, "no CUDA GPU")
    assert not (tmp_path / "o.png").exists()


def test_stdout_rules(cli, tiny_model, queries, pairs_dir, tmp_path):
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-i", queries[1], "-o", "-")
    _assert_clean(code, err, 2, "-o - writes one image")
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-o", "-", "--json")
    _assert_clean(code, err, 2, "drop --json")
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-i", queries[1], "-o", tmp_path / "x.png")
    _assert_clean(code, err, 2, "need an output folder")
