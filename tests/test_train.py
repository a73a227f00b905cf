"""Training: the procedural tasks and `lavin train` with tiny step counts on CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_pairs

from lavin_cli.store import weights
from lavin_cli.training import tasks
from lavin_cli.training.data import Folders, Generator, Source
from lavin_cli.training.dit_trainer import grow_depth


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
    assert len(tasks.IMAGE_TASKS) >= 8 and sum(t.kind == "video" for t in tasks.TASKS.values()) >= 2


def test_scene_ground_truth_is_consistent():
    from lavin_cli.training import scenes

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


def test_an_interrupted_training_keeps_its_steps_and_resumes_exactly(cli, tmp_path, monkeypatch):
    """Ctrl-C before the first --save-every: the steps done are saved, --resume finishes the run
    as an uninterrupted one."""
    import os
    import signal

    from lavin_cli.training import loop

    args = ["train", "vae", "--batch", "2", "--size", "32", "--save-every", "100", "--seed", "5", "--steps", "4", "-q"]
    assert cli(*args, "--out", tmp_path / "a")[0] == 0
    real = loop.Log.write

    def write(self, step, **values):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, step, **values)

    monkeypatch.setattr(loop.Log, "write", write)
    code, _, err = cli(*args, "--out", tmp_path / "b")
    assert code == 130, err
    monkeypatch.setattr(loop.Log, "write", real)
    assert torch.load(tmp_path / "b" / "vae_state.pt", weights_only=True)["step"] == 3
    assert cli(*args, "--out", tmp_path / "b", "--resume")[0] == 0
    a = torch.load(tmp_path / "a" / "vae_state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "vae_state.pt", weights_only=True)
    assert b["step"] == 4 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    log = [json.loads(line)["step"] for line in (tmp_path / "b" / "vae_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4]  # the interrupt waited for step 3's line


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


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory):
    """A VAE from two real `lavin train vae` steps (weights barely trained; the mechanics are real)."""
    from lavin_cli.training.data import Generator
    from lavin_cli.training.vae_trainer import VAETrainConfig, train_vae

    out = tmp_path_factory.mktemp("vae")
    return train_vae(out, Generator(), VAETrainConfig(steps=2, batch=2, size=32, save_every=2))


def _darkened_by(inp: np.ndarray, tgt: np.ndarray, setting: tuple[float, float]) -> bool:
    factor, gamma = setting
    return np.allclose(inp, np.clip((tgt * factor) ** gamma, 0, 1), atol=1e-6)


def test_low_light_pairs_of_one_sample_share_their_darkening():
    """A low-light context shows the query's darkening (issue 31: drawn per pair, a dim scene
    darkened a little and a bright one darkened a lot look alike); a lone pair draws its own, with
    the same draws as before settings existed."""
    setting = tasks.draw_setting("low_light_enhancement", np.random.default_rng(0))
    assert all(_darkened_by(*tasks.pair("low_light_enhancement", seed, 32, setting), setting) for seed in (1, 2))
    rng = np.random.default_rng(5)
    picture = tasks.render_scene(rng, 32).rgb
    alone = np.clip((picture * rng.uniform(0.12, 0.35)) ** rng.uniform(1.2, 1.8), 0, 1)
    assert np.array_equal(tasks.pair("low_light_enhancement", 5, 32)[0][0], alone.astype(np.float32))
    assert tasks.draw_setting("denoising", np.random.default_rng(0)) is None


def test_the_latent_bank_draws_a_low_light_sample_from_one_darkening():
    from lavin_cli.config import VAE_PRESETS
    from lavin_cli.models.vae import STVAE
    from lavin_cli.training.bank import LatentBank

    torch.manual_seed(0)
    source = Generator(["low_light_enhancement", "denoising"])
    bank = LatentBank(source, STVAE(VAE_PRESETS["tiny"]).eval(), slots=8, size=16, seed=3, period=8, group=4)
    bank.build(0)
    assert bank.grouped == {"low_light_enhancement"}
    slots = bank.moments["low_light_enhancement"]
    for draw in range(10):
        picked = bank.draw("low_light_enhancement", np.random.default_rng(draw), 4)
        groups = {next(j for j, m in enumerate(slots) if m is p) // 4 for p in picked}
        assert len(groups) == 1  # the four pairs of one sample come from one group
    for group in (0, 1):  # each group's pairs are darkened alike, as stored
        setting = bank._setting("low_light_enhancement", 4 * group, 0)
        for j in range(4 * group, 4 * group + 4):
            rng = np.random.default_rng(bank._seed(0, j, 0))
            inp, tgt = source.pair("low_light_enhancement", rng, 16, setting)
            assert _darkened_by(inp, tgt, setting)
            assert all(torch.equal(a, b) for a, b in zip(bank.encode([inp, tgt]), slots[j]))
    assert bank._setting("low_light_enhancement", 0, 0) != bank._setting("low_light_enhancement", 4, 0)
    for step in range(1, 17):  # a group is regenerated as one (its setting with it)
        changed = {bank._generation(bank._first("low_light_enhancement", j), step) for j in range(4)}
        assert len(changed) == 1


DIT_ARGS = ["--batch", "4", "--bank-slots", "4", "--size", "32", "--preset", "tiny", "--seed", "3", "-q"]


def test_train_dit_resumes_exactly_and_writes_a_model_folder(cli, trained_vae, tmp_path):
    code, _, err = cli("train", "dit", "--out", tmp_path / "a", "--vae", trained_vae, "--steps", "4", "--save-every", "2", *DIT_ARGS)
    assert code == 0, err
    code, _, err = cli("train", "dit", "--out", tmp_path / "b", "--vae", trained_vae, "--steps", "2", "--save-every", "2", *DIT_ARGS)
    assert code == 0, err
    code, _, err = cli("train", "dit", "--out", tmp_path / "b", "--vae", trained_vae, "--steps", "4", "--save-every", "2",
                       "--resume", *DIT_ARGS)
    assert code == 0, err
    a = torch.load(tmp_path / "a" / "dit_state.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "dit_state.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["size"] == 32 and "depth_estimation" in meta["tasks"]
    # the run folder is a model: lavin run uses it, with its own task folders
    q = tmp_path / "a" / "tasks" / "depth_estimation" / "000_input.png"
    code, _, err = cli("run", "-m", tmp_path / "a", "--task", "depth_estimation", "-i", q, "-o", tmp_path / "p.png", "--steps", "3")
    assert code == 0, err


def test_train_dit_fine_tunes_on_folder_data(cli, trained_vae, tmp_path):
    code, _, err = cli("train", "dit", "--out", tmp_path / "base", "--vae", trained_vae, "--steps", "1", "--save-every", "1",
                       "--data", "generator:denoising,colorization", *DIT_ARGS)
    assert code == 0, err
    make_pairs(tmp_path / "mine" / "my_task", count=5)
    code, _, err = cli("train", "dit", "--out", tmp_path / "tuned", "--init", tmp_path / "base", "--data", tmp_path / "mine",
                       "--steps", "2", "--save-every", "2", *DIT_ARGS)
    assert code == 0, err
    base = weights.load_dit(tmp_path / "base" / "dit.safetensors")
    tuned = weights.load_dit(tmp_path / "tuned" / "dit.safetensors")
    assert base.cfg == tuned.cfg
    assert json.loads((tmp_path / "tuned" / "model.json").read_text())["tasks"] == ["my_task"]
    code, _, err = cli("train", "dit", "--out", tmp_path / "x", "--steps", "1", *DIT_ARGS)
    assert code == 2 and "--vae" in err


def test_task_weights_shift_the_mix_and_bad_ones_are_refused(cli, trained_vae, tmp_path):
    from lavin_cli.training.data import task_probabilities

    names = ["depth_estimation", "edge_detection", "denoising"]
    assert task_probabilities(names, ()) is None
    assert task_probabilities(names, (("frame_prediction", 3.0),)) is None  # a video weight leaves images uniform
    p = task_probabilities(names, (("edge_detection", 4.0),))
    assert np.allclose(p, [1 / 6, 4 / 6, 1 / 6])
    rng = np.random.default_rng(0)
    draws = [rng.choice(names, p=p) for _ in range(3000)]
    assert 0.62 < draws.count("edge_detection") / 3000 < 0.71
    for bad, words in (("edges=2", "not among the training tasks"), ("denoising=0", "above 0"), ("denoising=inf", "finite"), ("denoising=nan", "finite"),
                       ("denoising", "not TASK=WEIGHT"), ("denoising=x", "not TASK=WEIGHT"), ("=2", "not TASK=WEIGHT"),
                       ("denoising=2,denoising=3", "give each task once")):
        code, _, err = cli("train", "dit", "--out", tmp_path / "w", "--vae", trained_vae, "--steps", "1",
                           "--data", "generator:denoising,colorization", "--task-weights", bad, *DIT_ARGS)
        assert code == 2 and words in err and "Traceback" not in err, err
        assert not (tmp_path / "w").exists()
    code, _, err = cli("train", "dit", "--out", tmp_path / "w", "--vae", trained_vae, "--steps", "1", "--save-every", "1",
                       "--data", "generator:denoising,colorization", "--task-weights", "denoising=3", *DIT_ARGS)
    assert code == 0, err
    assert json.loads((tmp_path / "w" / "model.json").read_text())["training"]["task_weights"] == [["denoising", 3.0]]


class _TwoTasks(Source):
    """A data source whose every picture shows which of its two tasks it came from (its value)."""

    task_names = ["bright", "dark"]

    def kind(self, task):
        return "image"

    def pair(self, task, rng, size):
        value = 0.9 if task == "bright" else 0.1
        return np.full((1, size, size, 3), value, np.float32), np.full((1, size, size, 3), value, np.float32)


def test_vae_task_weights_draw_the_vae_pictures_and_bad_ones_are_refused(cli, tmp_path):
    rng = np.random.default_rng(0)
    assert 0.4 < (_TwoTasks().images(rng, 600, 8)[:, 0, 0, 0] < 0.5).mean() < 0.6
    dark = (_TwoTasks().images(rng, 600, 8, (("dark", 3.0),))[:, 0, 0, 0] < 0.5).mean()
    assert 0.7 < dark < 0.8
    args = ["--steps", "1", "--batch", "2", "--size", "32", "--save-every", "1", "-q",
            "--data", "generator:denoising,low_light_enhancement"]
    for bad, words in (("deblurring=2", "not among the training tasks"), ("denoising=-1", "above 0"), ("x", "not TASK=WEIGHT")):
        code, _, err = cli("train", "vae", "--out", tmp_path / "v", "--task-weights", bad, *args)
        assert code == 2 and words in err and "Traceback" not in err, err
        assert not (tmp_path / "v").exists()
    code, _, err = cli("train", "vae", "--out", tmp_path / "v", "--task-weights", "low_light_enhancement=9", *args)
    assert code == 0, err
    meta = json.loads(torch.load(tmp_path / "v" / "vae_state.pt", weights_only=True)["meta"])
    assert meta["task_weights"] == [["low_light_enhancement", 9.0]]


def test_tone_term_weights_dark_errors_and_bad_weights_are_refused(cli, tmp_path):
    from lavin_cli.training.vae_trainer import mu_law

    black, white = torch.full((4,), -1.0), torch.full((4,), 1.0)
    err = 0.02
    dark = (mu_law(black + err) - mu_law(black)).abs().mean()
    bright = (mu_law(white) - mu_law(white - err)).abs().mean()
    assert dark > 40 * bright  # slope 12.7 at black against 0.25 at white
    args = ["--steps", "1", "--batch", "2", "--size", "32", "--save-every", "1", "-q", "--data", "generator:low_light_enhancement"]
    for bad in ("-1", "nan", "inf"):
        code, _, err_text = cli("train", "vae", "--out", tmp_path / "v", "--tone-weight", bad, *args)
        assert code == 2 and "--tone-weight" in err_text and "Traceback" not in err_text, err_text
        assert not (tmp_path / "v").exists()
    from lavin_cli.errors import UsageError
    from lavin_cli.training.data import Generator
    from lavin_cli.training.vae_trainer import VAETrainConfig, train_vae

    with pytest.raises(UsageError, match="tone_weight"):  # the library refuses it too, not only the CLI
        train_vae(tmp_path / "lib", Generator(), VAETrainConfig(steps=1, batch=2, size=32, tone_weight=-1.0))
    assert not (tmp_path / "lib").exists()
    code, _, err_text = cli("train", "vae", "--out", tmp_path / "v", "--tone-weight", "2", *args)
    assert code == 0, err_text
    meta = json.loads(torch.load(tmp_path / "v" / "vae_state.pt", weights_only=True)["meta"])
    assert meta["tone_weight"] == 2.0
    logged = json.loads((tmp_path / "v" / "vae_log.jsonl").read_text().splitlines()[-1])
    assert logged["tone"] > 0


def test_decoder_only_training_keeps_the_encoder_and_its_latents(cli, trained_vae, tmp_path):
    """--decoder-only: the encoder's weights and the latent normalisation come out as they went in
    (a DiT trained in those latents stays valid), the decoder learns; without --init it is refused."""
    args = ["--steps", "2", "--batch", "2", "--size", "32", "--save-every", "2", "--lr", "1e-2", "-q"]
    code, _, err = cli("train", "vae", "--out", tmp_path / "d", "--init", trained_vae, "--decoder-only", *args)
    assert code == 0, err
    before, after = weights.load_vae(trained_vae), weights.load_vae(tmp_path / "d" / "vae.safetensors")
    assert (after.cfg.latent_shift, after.cfg.latent_scale) == (before.cfg.latent_shift, before.cfg.latent_scale)
    enc_a, enc_b = before.encoder.state_dict(), after.encoder.state_dict()
    assert all(torch.equal(enc_a[k], enc_b[k]) for k in enc_a)
    dec_a, dec_b = before.decoder.state_dict(), after.decoder.state_dict()
    assert any(not torch.equal(dec_a[k], dec_b[k]) for k in dec_a)
    code, _, err = cli("train", "vae", "--out", tmp_path / "e", "--decoder-only", *args)
    assert code == 2 and "--init" in err and "Traceback" not in err, err
    assert not (tmp_path / "e").exists()


def test_train_dit_under_torchrun_with_two_gloo_processes(trained_vae, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not on PATH")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lavin_cli",
                          "train", "dit", "--out", str(tmp_path / "ddp"), "--vae", str(trained_vae), "--steps", "2",
                          "--save-every", "2", "--device", "cpu", *DIT_ARGS], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "ddp" / "dit_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2]  # rank 0 alone writes
    assert weights.load_dit(tmp_path / "ddp" / "dit.safetensors").cfg.hidden_size == 96


def test_bf16_training_on_a_cpu_that_emulates_bf16_is_warned_and_runs(tmp_path):
    """oneDNN capped at AVX2 emulates bf16 on any CPU (a fresh process: the cap is read once)."""
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "lavin_cli", "train", "vae", "--steps", "1", "--batch", "1", "--size", "16",
            "--video-fraction", "0", "--save-every", "1", "--data", "generator:denoising", "-q"]
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "COLUMNS": "200"}
    done = subprocess.run([*args, "--out", str(tmp_path / "b"), "--bf16"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "no native bf16" in done.stderr and "leave out --bf16" in done.stderr, done.stderr
    assert (tmp_path / "b" / "vae.safetensors").exists()


def test_shape_options_are_refused_with_init_not_ignored(cli, trained_vae, tiny_model, tmp_path):
    """--init's weights decide the architecture: --channels, --layers (vae) and --preset (dit) that
    name another shape are refused by name before anything is written, not silently dropped."""
    for args, message in ((["vae", "--init", trained_vae, "--channels", "64,64,64,64"], "--channels 64,64,64,64: the VAE"),
                          (["vae", "--init", trained_vae, "--layers", "3"], "--layers 3: the VAE of --init"),
                          (["dit", "--init", tiny_model, "--preset", "0.1B"], "--preset 0.1B: the J-DiT of --init")):
        code, _, err = cli("train", *args, "--out", tmp_path / "run", "--steps", "1", "-q")
        assert code == 2 and message in err and "leave" in err, err
        assert not (tmp_path / "run").exists()


def test_depth_grows_an_init_model_that_computes_the_same_and_trains_on(cli, trained_vae, tmp_path):
    """--depth with --init inserts fresh blocks between the old ones, closed by zero gates: the
    grown model's output equals its init's exactly; training then opens the new blocks, --resume
    goes on in the grown shape, and a smaller depth is refused by name before anything is written."""
    code, _, err = cli("train", "dit", "--out", tmp_path / "base", "--vae", trained_vae, "--steps", "2", "--save-every", "2", *DIT_ARGS)
    assert code == 0, err
    base = weights.load_dit(tmp_path / "base" / "dit.safetensors").eval()
    grown = grow_depth(base, 5, "base").eval()
    assert grown.cfg.depth == 5 and base.cfg.depth == 2
    torch.manual_seed(0)
    target, t, cond = torch.randn(2, 16, 1, 4, 4), torch.rand(2), torch.randn(2, 16, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(grown(target, t, cond), base(target, t, cond))

    args = ["train", "dit", "--out", tmp_path / "big", "--init", tmp_path / "base", "--depth", "4", "--save-every", "2",
            *[a for a in DIT_ARGS if a not in ("--preset", "tiny")]]
    code, _, err = cli(*args, "--steps", "2")
    assert code == 0, err
    code, _, err = cli(*args, "--steps", "4", "--resume")
    assert code == 0, err
    state = torch.load(tmp_path / "big" / "dit_state.pt", weights_only=True)["model"]
    big = weights.load_dit(tmp_path / "big" / "dit.safetensors")
    assert big.cfg.depth == 4 and big.cfg.hidden_size == base.cfg.hidden_size
    for new in (1, 3):  # old blocks went to 0 and 2; the new ones' gates opened
        assert state[f"blocks.{new}.target.mod.weight"].abs().sum() > 0

    code, _, err = cli("train", "dit", "--out", tmp_path / "small", "--init", tmp_path / "base", "--depth", "1", "--steps", "1", "-q")
    assert code == 2 and "--depth 1" in err and "2 blocks" in err and "Traceback" not in err, err
    assert not (tmp_path / "small").exists()
    code, _, err = cli("train", "dit", "--out", tmp_path / "fresh", "--vae", trained_vae, "--depth", "3", "--steps", "1", *DIT_ARGS)
    assert code == 0, err
    assert weights.load_dit(tmp_path / "fresh" / "dit.safetensors").cfg.depth == 3
