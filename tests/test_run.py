"""`lavin run` and `lavin_cli.Pipeline` end to end on a tiny random model, CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SIZE, make_pairs, random_image, read_record
from PIL import Image

from lavin_cli import Pipeline


def test_single_query_to_file(cli, tiny_model, pairs_dir, queries, tmp_path):
    out = tmp_path / "out.png"
    code, stdout, stderr = cli("run", "--model", tiny_model, "--context", pairs_dir, "--query", queries[0], "-o", out, "--steps", 4)
    assert code == 0, stderr
    assert "model tiny-random" in stderr
    image = Image.open(out)
    assert image.size == Image.open(queries[0]).size and image.mode == "RGB"  # back at the query's size


def test_same_seed_same_bytes_and_other_seed_differs(cli, tiny_model, pairs_dir, queries, tmp_path):
    args = ["run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "--steps", 4]
    for name, seed in (("a.png", 3), ("b.png", 3), ("c.png", 4)):
        assert cli(*args, "-o", tmp_path / name, "--seed", seed)[0] == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()


def test_many_queries_glob_to_folder_with_json_record(cli, tiny_model, pairs_dir, queries, tmp_path):
    out = tmp_path / "preds"
    pattern = str(queries[0].parent / "*.jpg")
    code, stdout, stderr = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", pattern, "-o", out, "--pairs", 2,
                               "--seed", 7, "--json", "--steps", 3, "--batch-size", 2, "--quiet")
    assert code == 0, stderr
    assert stderr == ""  # --quiet
    record = json.loads(stdout)
    assert sorted(p.name for p in out.iterdir()) == ["q0.png", "q1.png", "q2.png"]
    assert record["seed"] == 7 and record["steps"] == 3 and record["model"]["name"] == "tiny-random"
    assert len(record["model"]["dit_sha256"]) == 64
    assert [q["pairs"] for q in record["queries"]] == [["000", "001"]] * 3
    assert all(Path(q["output"]).is_file() for q in record["queries"])
    assert record["size"] == {"height": TINY_SIZE, "width": TINY_SIZE}
    assert set(record["timings"]) >= {"load_s", "context_s"}


def test_folder_query_select_random_and_nearest_are_recorded(tiny_model, pairs_dir, queries):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    rnd = pipe(pairs_dir, [str(q) for q in queries], pairs=3, select="random", seed=5, steps=3)
    again = pipe(pairs_dir, [str(q) for q in queries], pairs=3, select="random", seed=5, steps=3)
    assert rnd.record["queries"][0]["pairs"] == again.record["queries"][0]["pairs"]
    assert len(set(rnd.record["queries"][0]["pairs"])) == 3
    # nearest: a query identical to pair 003's input must get that pair, next to the query (last)
    near = pipe(pairs_dir, [str(pairs_dir / "003_input.png")], pairs=2, select="nearest", steps=3)
    assert near.predictions[0].pairs[-1] == "003"


def test_pipeline_accepts_arrays_and_pil_images(tiny_model):
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)))
             for _ in range(2)]
    pipe = Pipeline.from_pretrained(str(tiny_model))
    result = pipe(pairs, [rng.random((17, 23, 3))], steps=3, pairs=2)
    assert result.predictions[0].image.shape == (17, 23, 3) and result.predictions[0].error is None


def test_batch_costs_less_than_separate_runs(tiny_model, pairs_dir, queries):
    """The context is encoded once and reused: 3 queries encode 4 pairs once, not 3 times."""
    pipe = Pipeline.from_pretrained(str(tiny_model))
    calls = []
    real = pipe.vae.encode
    pipe.vae.encode = lambda x: calls.append(x.shape[0]) or real(x)
    pipe(pairs_dir, [str(q) for q in queries], pairs=4, steps=3, batch_size=3)
    assert calls == [1] * 11  # 4 pairs (8 images) once, then the 3 queries; each image through the VAE alone


@pytest.mark.parametrize("fit", ["squash", "pad", "crop"])
def test_fit_modes_return_the_original_size(tiny_model, pairs_dir, queries, fit):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    result = pipe(pairs_dir, [str(queries[2])], fit=fit, size="48x32", steps=3)
    assert result.predictions[0].image.shape[:2] == Image.open(queries[2]).size[::-1]
    assert result.record["size"] == {"height": 32, "width": 48}


@pytest.mark.parametrize("offload", ["none", "model", "sequential"])
def test_offload_modes_give_identical_results_on_cpu(tiny_model, pairs_dir, queries, offload):
    ref = Pipeline.from_pretrained(str(tiny_model))(pairs_dir, [str(queries[0])], steps=3).predictions[0].image
    pipe = Pipeline.from_pretrained(str(tiny_model), offload=offload)
    assert np.array_equal(pipe(pairs_dir, [str(queries[0])], steps=3).predictions[0].image, ref)


def test_subfolder_layout_and_input_conversions(cli, tiny_model, tmp_path):
    ctx = tmp_path / "ctx"
    random_image(ctx / "input" / "a.png", seed=1, mode="RGBA")
    random_image(ctx / "target" / "a.webp", seed=2)
    img16 = (np.random.default_rng(0).random((24, 24)) * 65535).astype(np.uint16)
    (ctx / "input").mkdir(exist_ok=True)
    Image.fromarray(img16).save(ctx / "input" / "b.png")
    random_image(ctx / "target" / "b.bmp", seed=3, mode="L")
    random_image(ctx / "input" / "lonely.tiff", seed=4)
    q = random_image(tmp_path / "q.png", seed=5, mode="P")
    code, _, stderr = cli("run", "-m", tiny_model, "-c", ctx, "-i", q, "-o", tmp_path / "o.jpg", "--steps", 3, "--record", tmp_path / "r.json")
    assert code == 0, stderr
    record = read_record(tmp_path / "r.json")
    assert record["queries"][0]["pairs"] == ["a", "b"] and record["runs"][0]["unpaired"] == ["input/lonely.tiff"]
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"


def test_grid_is_saved_beside_the_output(cli, tiny_model, pairs_dir, queries, tmp_path):
    code, _, stderr = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "p.png",
                          "--grid", "--pairs", 2, "--steps", 3)
    assert code == 0, stderr
    grid = Image.open(tmp_path / "p_grid.png")
    assert grid.size[0] > 5 * grid.size[1]  # 2 pairs + query + prediction in a row


def test_tasks_are_listed_and_usable(cli, tiny_model, tmp_path):
    make_pairs(tiny_model / "tasks" / "noise_task", count=2)
    try:
        code, stdout, _ = cli("tasks", "-m", tiny_model, "--json")
        assert code == 0 and {"task": "noise_task", "source": "model", "pairs": 2} in [
            {k: r[k] for k in ("task", "source", "pairs")} for r in json.loads(stdout)]
        q = random_image(tmp_path / "q.png")
        code, _, stderr = cli("run", "-m", tiny_model, "--task", "noise_task", "-i", q, "-o", tmp_path / "o.png", "--steps", 3)
        assert code == 0, stderr
        code, _, stderr = cli("run", "-m", tiny_model, "--task", "nope", "-i", q, "-o", tmp_path / "o2.png")
        assert code == 2 and "unknown task 'nope'" in stderr and "noise_task" in stderr
    finally:
        import shutil

        shutil.rmtree(tiny_model / "tasks")


def test_stdin_to_stdout_pipe(tiny_model, pairs_dir, queries):
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "-m", str(tiny_model), "-c", str(pairs_dir),
                          "--query", "-", "-o", "-", "--steps", "3", "--quiet"],
                         input=queries[1].read_bytes(), capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout[:8] == b"\x89PNG\r\n\x1a\n" and res.stderr == b""


def test_model_from_environment_variable(cli, tiny_model, pairs_dir, queries, tmp_path, monkeypatch):
    monkeypatch.setenv("LAVIN_MODEL", str(tiny_model))
    code, _, stderr = cli("run", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png", "--steps", 3)
    assert code == 0 and "tiny-random" in stderr


def test_folder_query_and_progress_callbacks(cli, tiny_model, pairs_dir, queries, tmp_path):
    code, _, stderr = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0].parent, "-o", tmp_path / "o", "--steps", 3)
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [q.with_suffix(".png").name for q in queries]
    events = []
    Pipeline.from_pretrained(str(tiny_model))(pairs_dir, [str(q) for q in queries], steps=3, batch_size=2,
                                               callback=events.append)
    stages = [(e.stage, e.done, e.total) for e in events]
    assert stages[0] == ("context", 4, 4)
    assert stages.count(("sample", 2, 2)) == 2 and stages[-1] == ("query", 3, 3)


def test_progress_bars_on_a_terminal_only(tiny_model, pairs_dir, queries, tmp_path):
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lavin_cli", "run", "-m", str(tiny_model), "-c", str(pairs_dir),
                             "-i", str(queries[0]), "-o", str(tmp_path / "tty.png"), "--steps", "4"],
                            stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and "sampling" in text and "queries" in text
    # not a terminal (captured): no bars, only the plain lines
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "-m", str(tiny_model), "-c", str(pairs_dir),
                          "-i", str(queries[0]), "-o", str(tmp_path / "pipe.png"), "--steps", "4"], capture_output=True, text=True)
    assert res.returncode == 0 and "sampling" not in res.stderr and "prediction(s) written" in res.stderr


def test_shell_completion_knows_commands_and_options():
    env = {**os.environ, "_LAVIN_COMPLETE": "complete_bash", "COMP_WORDS": "lavin run --se", "COMP_CWORD": "2"}
    res = subprocess.run([sys.executable, "-m", "lavin_cli"], env=env, capture_output=True, text=True)
    assert {"--select", "--seed"} <= set(res.stdout.split())
    # from a shell, as a user runs it: the shell is detected from the parent processes, so a test run
    # with no shell among its ancestors (a detached job) must provide one
    res = subprocess.run(["bash", "-c", f"'{sys.executable}' -m lavin_cli --show-completion; exit $?"], capture_output=True,
                         text=True, env={**os.environ, "SHELL": "/bin/bash"})
    assert res.returncode == 0 and "_lavin_completion" in res.stdout


def test_pairs_default_to_what_the_model_was_trained_with(cli, tmp_path, pairs_dir, queries):
    """A model trained with at most K pairs gets K by default (a longer prompt than it ever saw
    degrades it); asking for more, or for a working size it was not trained at, warns."""
    import shutil

    from conftest import make_tiny_model

    from lavin_cli.store import folders

    model = make_tiny_model(tmp_path / "model")
    meta = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**meta, "sizes": [TINY_SIZE], "training": {"max_pairs": 2}}))
    args = ["run", "-m", model, "-c", pairs_dir, "-i", queries[0], "--steps", 2, "--json"]
    code, stdout, err = cli(*args, "-o", tmp_path / "a.png")
    assert code == 0, err
    assert json.loads(stdout)["pairs_used"] == 2 and "warning" not in err
    code, stdout, err = cli(*args, "-o", tmp_path / "b.png", "--pairs", 3, "--size", 2 * TINY_SIZE)
    assert code == 0 and json.loads(stdout)["pairs_used"] == 3
    assert "trained with at most 2 pairs; with 3" in err and "--pairs 2 is its default" in err
    assert f"trained at {TINY_SIZE} px" in err
    assert Pipeline.from_pretrained(str(model))(pairs_dir, [str(queries[0])], steps=2).record["pairs_used"] == 2
    assert folders.open_folder(folders.bundled_dir(), "lavin-small").default_pairs == 3  # trained with 1..3
    # trained with more than 4: the default stays 4, and the warning names that default
    (model / "model.json").write_text(json.dumps({**meta, "max_pairs": 6}))
    many = make_pairs(tmp_path / "many", count=7)
    code, stdout, err = cli("run", "-m", model, "-c", many, "-i", queries[0], "--steps", 2, "--json", "--pairs", 7,
                            "-o", tmp_path / "d.png")
    assert code == 0 and json.loads(stdout)["pairs_used"] == 7
    assert "trained with at most 6 pairs; with 7" in err and "--pairs 4 is its default" in err
    # a value model.json cannot mean is refused when the folder is opened, naming the file
    (model / "model.json").write_text(json.dumps({**meta, "max_pairs": 0}))
    code, _, err = cli(*args, "-o", tmp_path / "c.png")
    assert code != 0 and "model.json: 'max_pairs' must be a positive whole number, got 0" in err
    shutil.rmtree(model)


def test_forced_bf16_on_a_cpu_that_emulates_it_is_warned(tiny_model, pairs_dir, queries, tmp_path):
    """oneDNN capped at AVX2 emulates bf16 on any CPU (a fresh process: the cap is read once); the
    default precision there is float32 and says nothing."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "COLUMNS": "200"}
    args = [sys.executable, "-m", "lavin_cli", "run", "-m", str(tiny_model), "-c", str(pairs_dir), "-i", str(queries[0]),
            "--steps", "2"]
    forced = subprocess.run([*args, "-o", str(tmp_path / "b.png"), "--dtype", "bfloat16"], env=env, capture_output=True,
                            text=True)
    assert forced.returncode == 0 and "bfloat16 on this CPU is emulated" in forced.stderr, forced.stderr
    default = subprocess.run([*args, "-o", str(tmp_path / "a.png")], env=env, capture_output=True, text=True)
    assert default.returncode == 0 and "float32" in default.stderr and "emulated" not in default.stderr, default.stderr
