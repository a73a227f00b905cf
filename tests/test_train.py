"""Training: the procedural tasks and `lavin train` with tiny step counts on CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_pairs
from lavin_cli import weights
from lavin_cli.train import tasks
from lavin_cli.train.data import Folders, Generator


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_task_is_seeded_and_well_formed(name):
    a_in, a_tg = tasks.pair(name, seed=3, size=32)
    b_in, b_tg = tasks.pair(name, seed=3, size=32)
    c_in, _ = tasks.pair(name, seed=4, size=32)
    frames = 1 if tasks.TASKS[name].kind == "image" else 5
    assert a_in.shape == a_tg.shape == (frames, 32, 32, 3) and a_in.dtype == np.float32
    assert np.array_equal(a_in, b_in) and np.array_equal(a_tg, b_tg) and not np.array_equal(a_in, c_in)
    assert 0 <= a_in.min() and a_in.max() <= 1 and 0 <= a_tg.min() and a_tg.max() <= 1
    assert not np.array_equal(a_in, a_tg)


def test_at_least_eight_image_and_two_video_tasks():
    assert len(tasks.IMAGE_TASKS) >= 8 and len(tasks.VIDEO_TASKS) >= 2


def test_scene_ground_truth_is_consistent():
    from lavin_cli.train import scenes

    r = scenes.render(scenes.random_scene(np.random.default_rng(1)), 48)
    fg = r.instance > 0
    assert fg.any() and (~fg).any()
    assert np.allclose(np.linalg.norm(r.normal, axis=-1), 1, atol=1e-4)
    assert (r.depth[fg] < scenes.FAR).all() and (r.depth > 0).all()
    # frame prediction: the first target frame is the last input frame
    inp, tgt = tasks.pair("frame_prediction", seed=2, size=32)
    assert np.array_equal(inp[-1], tgt[0])


def test_train_vae_runs_resumes_exactly_and_loads(cli, tmp_path):
    args = ["train", "vae", "--batch", "2", "--size", "32", "--save-every", "2", "--seed", "5", "-q"]
    code, _, err = cli(*args, "--out", tmp_path / "a", "--steps", "4")
    assert code == 0, err
    code, _, err = cli(*args, "--out", tmp_path / "b", "--steps", "2")
    assert code == 0, err
    code, _, err = cli(*args, "--out", tmp_path / "b", "--steps", "4", "--resume")
    assert code == 0, err
    a = torch.load(tmp_path / "a" / "vae_state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "vae_state.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    vae = weights.load_vae(tmp_path / "a" / "vae.safetensors")
    assert vae.cfg.causal_norm and vae.cfg.latent_scale > 0
    log = [json.loads(line) for line in (tmp_path / "a" / "vae_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4] and all(np.isfinite(e["loss"]) for e in log)


def test_folder_data_source(tmp_path):
    make_pairs(tmp_path / "data" / "taskA", count=2)
    make_pairs(tmp_path / "data" / "taskB", count=3, seed=9)
    (tmp_path / "data" / "notes").mkdir()
    src = Folders(tmp_path / "data")
    assert src.task_names == ["taskA", "taskB"]
    inp, tgt = src.pair("taskB", np.random.default_rng(0), 32)
    assert inp.shape == tgt.shape == (1, 32, 32, 3)
    assert src.images(np.random.default_rng(0), 3, 32).shape == (3, 32, 32, 3)
    assert src.clips(np.random.default_rng(0), 2, 32).shape == (2, 5, 32, 32, 3)
    with pytest.raises(Exception, match="unknown generator task"):
        Generator(["nope"])
