"""`lavin video` and `Pipeline.video` end to end on the tiny random model, CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lavin_cli import Pipeline
from lavin_cli.io import video as video_io
from lavin_cli.training import tasks


def _write_pairs(folder, task, count, ext):
    for i in range(count):
        a, b = tasks.pair(task, i, 32)
        video_io.write_video(folder / f"{i}_input{ext}", video_io.Clip(tasks.to_uint8(a), 8))
        video_io.write_video(folder / f"{i}_target{ext}", video_io.Clip(tasks.to_uint8(b), 8))
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    predict = _write_pairs(root / "predict", "frame_prediction", 2, ".gif")
    depth = _write_pairs(root / "depth", "video_depth", 2, "")  # frame folders
    q, _ = tasks.pair("frame_prediction", 99, 32)
    query = root / ("query.mp4" if video_io.video_backend() else "query.gif")  # the GPU image has no codec
    video_io.write_video(query, video_io.Clip(tasks.to_uint8(q), 7))
    long_query = root / "long"
    video_io.write_video(long_query, video_io.Clip(np.concatenate([tasks.to_uint8(q)] * 3)[:13], 7))
    return {"predict": predict, "depth": depth, "query": query, "long": long_query}


@pytest.mark.parametrize("n", [1, 4, 5, 12, 13])
def test_prediction_produces_exactly_n_frames(tiny_model, clips, n):
    result = Pipeline.from_pretrained(str(tiny_model)).video(clips["predict"], [str(clips["query"])], frames=n, steps=2, pairs=2)
    pred = result.predictions[0]
    assert pred.error is None and result.record["mode"] == "predict"
    assert pred.clip.frames.shape == (n, 32, 32, 3) and abs(pred.clip.fps - 7) < 0.2  # (a GIF: 10 ms units)


def test_prediction_holds_the_known_first_target_frame(tiny_model, clips):
    """The target's first frame is the query's last: its latent is the VAE's code of that frame
    alone, held while the new frames are sampled, not left to the model to redraw."""
    run = Pipeline.from_pretrained(str(tiny_model)).video_stream(clips["predict"], [str(clips["query"])], steps=3, pairs=2)
    run.prepare()
    window = np.stack(video_io.read_video(clips["query"]).frames[-5:])
    z, _ = run.generate(window, 2, 0, first=window[-1])
    anchor = run.engine.encode(window[None, -1:], [torch.Generator()])[1]
    assert torch.allclose(z[:, :, :1], anchor.float(), atol=1e-5)
    free, _ = run.generate(window, 2, 0)
    assert not torch.allclose(free[:, :, :1], anchor.float(), atol=1e-2)


def test_clip_to_clip_chunks_a_long_query(tiny_model, clips):
    result = Pipeline.from_pretrained(str(tiny_model)).video(clips["depth"], [str(clips["long"])], steps=2, pairs=2)
    assert result.record["mode"] == "clip" and result.record["context_clip_frames"] == {"input": 5, "target": 5}
    assert result.predictions[0].clip.frames.shape[0] == 13  # 3 chunks of 5 sharing a frame, every frame once
    assert not result.record["warnings"]
    told = Pipeline.from_pretrained(str(tiny_model)).video(clips["depth"], [str(clips["long"])], steps=2, pairs=2,
                                                           frames=7)  # a prediction option on a clip task: said
    assert told.predictions[0].clip.frames.shape[0] == 13
    assert any("frames=7" in w and "no new frames are made" in w for w in told.record["warnings"]), told.record


@pytest.mark.parametrize("out", ["pred.gif", "pred.mp4", "pred.webm", "frames_out"])
def test_cli_outputs_and_fps(cli, tiny_model, clips, tmp_path, out, requires_codec):
    code, stdout, err = cli("video", "-m", tiny_model, "-c", clips["predict"], "-i", clips["query"], "--frames", "4",
                            "-o", tmp_path / out, "--steps", "2", "--json")
    assert code == 0, err
    clip = video_io.read_video(tmp_path / out)
    assert clip.frames.shape == (4, 32, 32, 3)
    if out != "frames_out":
        assert abs(clip.fps - 7) < 0.6
    record = json.loads(stdout)
    assert record["sequence_tokens"] > 0 and record["queries"][0]["frames"] == 4
    assert "DiT sequence:" in err and "task kind: predict" in err


def test_grid_shows_each_used_pair_then_query_and_prediction(cli, tiny_model, clips, tmp_path, requires_codec):
    from PIL import Image

    code, stdout, err = cli("video", "-m", tiny_model, "-c", clips["predict"], "-i", clips["query"], "--frames", "4",
                            "-o", tmp_path / "p.mp4", "--steps", "2", "--pairs", "2", "--grid", "--json")
    assert code == 0, err
    assert json.loads(stdout)["queries"][0]["grid"] == str(tmp_path / "p_grid.png")
    grid = np.asarray(Image.open(tmp_path / "p_grid.png"))
    assert grid.shape[0] == 3 * 96 + 2 * 4  # two pairs and the query row, 96 px each, 4 px gaps
    code, _, err = cli("video", "-m", tiny_model, "-c", clips["predict"], "-i", clips["query"], "--frames", "4",
                       "-o", tmp_path / "p.mp4", "--steps", "2", "--grid", "--overwrite")
    assert code == 0, err


def test_cli_batch_of_clips_with_a_bad_one(cli, tiny_model, clips, tmp_path, requires_codec):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really")
    code, _, err = cli("video", "-m", tiny_model, "-c", clips["depth"], "-i", clips["query"], "-i", bad, "-o", tmp_path / "o",
                       "--steps", "2")
    assert code == 7 and "bad.mp4: unreadable, truncated or unsupported video" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "o").rglob("*.mp4")) == ["query.mp4"]  # (the queries' tree, mirrored)


def test_video_errors(cli, tiny_model, clips, tmp_path, monkeypatch, requires_codec):
    base = ["video", "-m", tiny_model, "--steps", "2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(*base, "-c", clips["predict"], "-i", empty, "-o", tmp_path / "a.mp4")
    assert code == 3 and "neither videos nor frame images" in err
    mismatched = tmp_path / "mismatched"
    a, b = tasks.pair("video_depth", 0, 32)
    video_io.write_video(mismatched / "0_input", video_io.Clip(tasks.to_uint8(a), 8))
    video_io.write_video(mismatched / "0_target", video_io.Clip(tasks.to_uint8(b)[:3], 8))
    code, _, err = cli(*base, "-c", mismatched, "-i", clips["query"], "-o", tmp_path / "b.mp4", "--mode", "clip")
    assert code == 3 and "input has 5 frames, target 3" in err
    code, _, err = cli(*base, "-c", clips["predict"], "-i", clips["query"], "-o", tmp_path / "c.mp4", "--frames", "0")
    assert code == 2 and "--frames must be at least 1" in err
    code, _, err = cli(*base, "-c", tmp_path / "nothing", "-i", clips["query"], "-o", tmp_path / "d.mp4")
    assert code == 3 and "context folder not found" in err
    code, _, err = cli(*base, "-c", clips["predict"], "-i", clips["query"], "-o", tmp_path / "e.mp4", "--ext", "wav",
                       "-i", clips["query"])
    assert code == 2 and "--ext .wav" in err
    from lavin_cli.inference.engine import Engine

    monkeypatch.setattr(Engine, "free_memory", lambda self: 1024)
    code, _, err = cli(*base, "-c", clips["predict"], "-i", clips["query"], "-o", tmp_path / "f.mp4")
    assert code == 5 and "token sequence" in err and "--offload sequential" in err and not (tmp_path / "f.mp4").exists()


def test_nearest_pairs_and_truncated_files(cli, tiny_model, clips, tmp_path, requires_codec):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    same = clips["depth"] / "1_input"  # the query is pair 1's own input clip
    result = pipe.video(clips["depth"], [str(same)], pairs=1, select="nearest", steps=2)
    assert result.predictions[0].error is None and result.record["queries"][0]["pairs"] == ["1"]
    import torch

    from lavin_cli.inference import clips as clip_runner
    from lavin_cli.inference import context as ctx
    from lavin_cli.inference.options import VideoOptions

    ctx_clips = clip_runner.encode_context(pipe.engine, ctx.find_pairs(clips["depth"], clips=True), (32, 32),
                                           VideoOptions(pairs=1, select="nearest"))
    _, mean = pipe.engine.encode(video_io.read_video(same).frames[None], [torch.Generator().manual_seed(0)])
    assert clip_runner.for_query(ctx_clips, mean[0, :, 0], 1, "nearest", 0).ids == ["1"]
    whole = clips["query"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])
    code, _, err = cli("video", "-m", tiny_model, "-c", clips["predict"], "-i", cut, "-o", tmp_path / "o.mp4", "--steps", "2")
    assert code == 3 and "cut.mp4: unreadable, truncated or unsupported video" in err


def test_example_task_folders_for_images_and_clips_run_as_written(cli, tiny_model, tmp_path, requires_codec):
    import shutil

    from PIL import Image

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    code, _, err = cli("train", "examples", "--out", model / "tasks", "--data",
                       "generator:frame_prediction,depth_estimation", "--pairs", "2", "--queries", "1", "--size", "32")
    assert code == 0, err
    predict = model / "tasks" / "frame_prediction"
    assert sorted(p.name for p in predict.iterdir()) == ["000_input.mp4", "000_target.mp4", "001_input.mp4",
                                                         "001_target.mp4", "queries", "task.json"]
    assert json.loads((predict / "task.json").read_text()) == {"target": "rgb", "kind": "video"}
    code, stdout, _ = cli("tasks", "-m", model, "--json")
    kinds = {row["task"]: (row["kind"], row["pairs"]) for row in json.loads(stdout) if row["source"] == "model"}
    assert kinds == {"frame_prediction": ("video", 2), "depth_estimation": ("image", 2)}
    code, _, err = cli("video", "-m", model, "--task", "frame_prediction", "-i", predict / "queries" / "q0.mp4",
                       "-o", tmp_path / "next.mp4", "--frames", "4", "--steps", "2")
    assert code == 0, err
    assert video_io.read_video(tmp_path / "next.mp4").frames.shape[0] == 4
    code, _, err = cli("run", "-m", model, "--task", "depth_estimation", "-i",
                       model / "tasks" / "depth_estimation" / "queries" / "q0.png", "-o", tmp_path / "d.png", "--steps", "2")
    assert code == 0 and Image.open(tmp_path / "d.png").mode == "I;16"  # task.json: gray targets, 16-bit


def test_fps_is_refused_where_no_output_stores_a_frame_rate(cli, tiny_model, clips, tmp_path):
    for out, extra, kind in (("p.npy", [], ".npy arrays"), ("p16", ["--format", "png16"], "png16 frame folders"),
                             ("frames_out", [], "frame folders")):
        code, _, err = cli("video", "-m", tiny_model, "-c", clips["depth"], "-i", clips["query"], "--fps", "5",
                           "-o", tmp_path / out, *extra, "--steps", "2")
        assert code == 2 and f"these outputs are {kind}" in err and "Traceback" not in err, err
        assert not (tmp_path / out).exists()


def test_cli_through_pyav_and_without_any_codec(cli, tiny_model, clips, tmp_path, monkeypatch, use_video_backend):
    """The same command with PyAV as the codec backend (the GPU image has no imageio-ffmpeg), and,
    with neither installed, one line that says what to install (exit 2): nothing written."""
    args = ["video", "-m", tiny_model, "-c", clips["predict"], "-i", clips["query"], "--frames", "4", "--steps", "2"]
    use_video_backend("pyav")
    code, _, err = cli(*args, "-o", tmp_path / "pred.mp4")
    assert code == 0, err
    clip = video_io.read_video(tmp_path / "pred.mp4")
    assert clip.frames.shape == (4, 32, 32, 3) and abs(clip.fps - 7) < 0.6
    monkeypatch.setattr(video_io, "available", lambda backend: False)
    monkeypatch.delenv(video_io.BACKEND_ENV)
    code, _, err = cli(*args, "-o", tmp_path / "none.mp4")
    assert code == 2 and len(err.strip().splitlines()) == 1, err  # refused before the model loads: no model line
    assert "none.mp4: .mp4 files need ffmpeg: pip install imageio-ffmpeg (or av)" in err, err
    assert not (tmp_path / "none.mp4").exists()
