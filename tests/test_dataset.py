"""Datasets, not folders: query lists, the mirrored output tree, raw outputs, shards, torchrun and
resuming, all giving the same bytes as one plain run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_image, read_record
from PIL import Image

from lavin_cli import Pipeline

COMMON = ["--steps", "2", "--batch-size", "4", "--device", "cpu", "-q"]  # cpu: the same outputs on a GPU machine too


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """24 queries in a small tree: a/ (8), b/ (8), b/deep/ (8); two share a name."""
    root = tmp_path_factory.mktemp("dataset")
    for i in range(24):
        folder = root / ("a" if i < 8 else "b" if i < 16 else "b/deep")
        random_image(folder / f"img{i:02d}.png", hw=(24 + i % 5, 30), seed=500 + i)
    random_image(root / "b" / "img00.png", seed=999)  # the same name as a/img00.png
    return root


def tree(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix != ".jsonl"}


@pytest.fixture(scope="module")
def single(dataset, tiny_model, tmp_path_factory) -> dict[str, str]:
    """The reference: every query in one plain process, on one thread as each torchrun rank here
    (the thread count splits the kernels' sums, whose low bits differ on some CPUs: AVX2 ones)."""
    out = tmp_path_factory.mktemp("single") / "out"
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "-m", str(tiny_model), "-c", str(_pairs(tiny_model)),
                          "-i", str(dataset), "--recursive", "-o", str(out), *COMMON], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    return tree(out)


def _pairs(model: Path) -> Path:
    from conftest import make_pairs

    folder = model.parent / "dataset-pairs"
    if not folder.is_dir():
        make_pairs(folder, count=3)
    return folder


def test_recursive_folders_mirror_the_tree(single, dataset):
    assert len(single) == 25 and "a/img00.png" in single and "b/img00.png" in single and "b/deep/img20.png" in single


def test_root_and_files_from_stdin_and_nul(cli, dataset, tiny_model, tmp_path, monkeypatch, single):
    names = sorted(str(p) for p in dataset.rglob("*.png"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\0".join(names).encode())))
    code, _, err = cli("run", "-m", tiny_model, "-c", _pairs(tiny_model), "--files-from", "-", "-0", "--root", dataset,
                       "-o", tmp_path / "nul", *COMMON)
    assert code == 0, err
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n\n")
    code, _, err = cli("run", "-m", tiny_model, "-c", _pairs(tiny_model), "--files-from", tmp_path / "list.txt",
                       "--root", dataset.parent, "-o", tmp_path / "lines", *COMMON)
    assert code == 0, err
    assert tree(tmp_path / "nul") == single
    assert {k.split("/", 1)[1]: v for k, v in tree(tmp_path / "lines").items()} == single  # one folder deeper
    code, _, err = cli("run", "-m", tiny_model, "-c", _pairs(tiny_model), "--files-from", tmp_path / "list.txt",
                       "--root", tmp_path, "-o", tmp_path / "x", *COMMON)
    assert code == 2 and "--root" in err and "does not hold" in err


def test_shards_cover_the_list_exactly_once(cli, dataset, tiny_model, tmp_path, single):
    seen = []
    for k in range(3):
        out = tmp_path / f"shard{k}"
        code, _, err = cli("run", "-m", tiny_model, "-c", _pairs(tiny_model), "-i", dataset, "-r", "-o", out,
                           "--shard", f"{k}/3", "--record", tmp_path / f"s{k}.jsonl", *COMMON)
        assert code == 0, err
        seen += [q["index"] for q in read_record(tmp_path / f"s{k}.jsonl")["queries"]]
        part = tree(out)
        assert all(single[name] == digest for name, digest in part.items())  # the same bytes as one run
        shutil.copytree(out, tmp_path / "all", dirs_exist_ok=True)
    assert sorted(seen) == list(range(25)) and tree(tmp_path / "all") == single
    code, _, err = cli("run", "-m", tiny_model, "-c", _pairs(tiny_model), "-i", dataset, "-o", tmp_path / "z",
                       "--shard", "3/3")
    assert code == 2 and "--shard 3/3" in err


def test_torchrun_with_more_processes_than_gpus_is_told_the_fix(monkeypatch):
    """A 1-GPU machine given two processes (simulated: CI has no GPU): one line with the fix."""
    import torch

    from lavin_cli.cli import distributed
    from lavin_cli.errors import DeviceError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    ranks = distributed.Ranks(1, 2, 1)
    for requested in ("auto", "cuda"):
        with pytest.raises(DeviceError, match=r"2 processes on this machine, which has 1 GPU.*--nproc_per_node 1"):
            distributed.device(ranks, requested)
    assert distributed.device(ranks, "cpu") == "cpu" and distributed.device(ranks, "cuda:0") == "cuda:0"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert distributed.device(distributed.Ranks(0, 2, 0), "auto") == distributed.device(None, "cuda:0") == "cuda:0"


def test_torchrun_two_processes_match_one(dataset, tiny_model, tmp_path, single):
    out, record = tmp_path / "ddp", tmp_path / "run.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lavin_cli",
                          "run", "-m", str(tiny_model), "-c", str(_pairs(tiny_model)), "-i", str(dataset), "-r",
                          "-o", str(out), "--record", str(record), *COMMON], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert tree(out) == single
    joined = read_record(record)
    assert [q["index"] for q in joined["queries"]] == list(range(25)) and joined["ends"][0]["written"] == 25
    assert {line["rank"] for line in joined["runs"]} == {0} and not list(tmp_path.glob("run.jsonl.rank*"))


def test_an_interrupted_run_resumes_with_only_the_missing_outputs(cli, dataset, tiny_model, tmp_path, monkeypatch,
                                                                   single):
    from lavin_cli.inference.engine import Engine
    from lavin_cli.io import files

    out, record = tmp_path / "out", tmp_path / "run.jsonl"
    args = ["run", "-m", tiny_model, "-c", _pairs(tiny_model), "-i", dataset, "-r", "-o", out, "--record", record, *COMMON]
    real, count = files.write_atomic, [0]

    def write(path, data, overwrite=False):
        real(path, data, overwrite)
        count[0] += 1
        if count[0] == 10:  # killed in the middle of the third batch
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(files, "write_atomic", write)
    code, _, err = cli(*args)
    assert code == 143, err
    monkeypatch.setattr(files, "write_atomic", real)
    assert len(tree(out)) == 10
    calls = []
    generate = Engine.generate
    monkeypatch.setattr(Engine, "generate", lambda self, *a, **k: calls.append(1) or generate(self, *a, **k))
    written_before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    code, _, err = cli(*args[:-1], "--skip-existing")  # (-q dropped: the summary says what happened)
    assert code == 0, err
    assert len(calls) == 5  # batches 2 (two of its four missing) to 6, not the two finished ones
    assert tree(out) == single  # byte for byte
    assert all(p.stat().st_mtime_ns == t for p, t in written_before.items())  # finished outputs untouched
    assert "15 prediction(s) written, 2 already there" in err
    record_now = read_record(record)
    finished = {q["index"] for q in record_now["queries"] if q.get("output") or q.get("skipped")}
    assert finished == set(range(25)) and len(record_now["runs"]) == 2 and record_now["runs"][1]["resumed"]


def test_a_finished_run_resumed_says_how_many_are_there_and_keeps_its_record(cli, tiny_model, queries, tmp_path):
    out, record = tmp_path / "out", tmp_path / "run.jsonl"
    args = ["run", "-m", tiny_model, "-c", _pairs(tiny_model), *[x for q in queries for x in ("-i", q)], "-o", f"{out}/",
            *COMMON]
    assert cli(*args)[0] == 0
    code, stdout, err = cli(*args[:-1], "--skip-existing", "--record", record, "--json")  # without -q
    assert code == 0 and "nothing to do: the 3 output(s) of this run exist already" in err, err
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert [x["type"] for x in lines] == ["run", "query", "query", "query", "end"]
    assert all(x["skipped"] == "exists" for x in lines[1:4]) and lines[-1]["written"] == 0
    assert json.loads(stdout)["end"] == {**lines[-1]}


def test_raw_formats_round_trip(cli, tiny_model, queries, tmp_path):
    """On the CPU, where two runs give the same float32 values to the bit (on an H100 the raw
    values of two CUDA runs compared unequal; not yet diagnosed)."""
    base = ["run", "-m", tiny_model, "-c", _pairs(tiny_model), "-i", queries[0], "--steps", "2", "-q", "--device", "cpu"]
    assert cli(*base, "-o", tmp_path / "p.npy")[0] == 0  # the extension says npy
    assert cli(*base, "-o", tmp_path / "p16.png", "--format", "png16")[0] == 0
    assert cli(*base, "-o", tmp_path / "p8.png")[0] == 0
    values = np.load(tmp_path / "p.npy")
    reference = Pipeline.from_pretrained(str(tiny_model), device="cpu")(_pairs(tiny_model), [str(queries[0])], steps=2,
                                                                         raw=True)
    assert values.dtype == np.float32 and values.shape == (*Image.open(queries[0]).size[::-1], 3)
    assert np.array_equal(values, reference.predictions[0].raw)  # the decoded float output, at the query's size
    gray = np.asarray(Image.open(tmp_path / "p16.png"))
    assert gray.dtype == np.uint16 and np.abs(gray / 65535 - values.mean(-1)).max() <= 0.5 / 65535 + 1e-7
    eight = np.asarray(Image.open(tmp_path / "p8.png")).astype(float) / 255
    assert np.abs(eight - values).max() <= 3 / 255  # 8 bits, truncated, then resized as integers


def test_gray_tasks_default_to_16_bit(cli, tiny_model, queries, tmp_path):
    task = tmp_path / "depthish"
    shutil.copytree(_pairs(tiny_model), task)
    (task / "task.json").write_text('{"target": "gray"}')
    code, _, err = cli("run", "-m", tiny_model, "-c", task, "-i", queries[0], "-o", tmp_path / "d.png", "--steps", "2")
    assert code == 0, err
    assert Image.open(tmp_path / "d.png").mode == "I;16"
    (task / "task.json").write_text('{"target": "purple"}')
    code, _, err = cli("run", "-m", tiny_model, "-c", task, "-i", queries[0], "-o", tmp_path / "e.png", "--steps", "2")
    assert code == 3 and "task.json" in err


def test_video_takes_the_same_options(cli, tiny_model, tmp_path):
    from lavin_cli.io.video import Clip, write_video
    from lavin_cli.training import tasks

    for i in range(2):
        a, b = tasks.pair("video_depth", i, 32)
        write_video(tmp_path / "ctx" / f"{i}_input", Clip(tasks.to_uint8(a), 8))
        write_video(tmp_path / "ctx" / f"{i}_target", Clip(tasks.to_uint8(b), 8))
    for i in range(3):
        q, _ = tasks.pair("video_depth", 10 + i, 32)
        write_video(tmp_path / "q" / f"c{i}.gif", Clip(tasks.to_uint8(q), 8))
    (tmp_path / "list").write_text("\n".join(str(p) for p in sorted((tmp_path / "q").iterdir())))
    base = ["video", "-m", tiny_model, "-c", tmp_path / "ctx", "--files-from", tmp_path / "list", "--steps", "2", "-q"]
    for k in range(2):
        assert cli(*base, "-o", tmp_path / "v", "--shard", f"{k}/2", "--format", "npy")[0] == 0
    got = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert got == ["c0.npy", "c1.npy", "c2.npy"] and np.load(tmp_path / "v" / "c0.npy").shape == (5, 32, 32, 3)
    code, _, err = cli(*base, "-o", tmp_path / "v", "--format", "npy", "--skip-existing")
    assert code == 0 and not err
