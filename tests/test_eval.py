"""`lavin eval`: the metrics are right on known answers, and the report has the promised shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lavin_cli.evaluation import evaluate as ev
from lavin_cli.training import tasks


def test_depth_metrics_are_invariant_to_scale_and_shift_of_inverse_depth():
    r = tasks.render_scene(np.random.default_rng(0), 48)
    encoded = tasks.inverse_depth(r.depth) * 0.7 + 0.1  # any affine code of inverse depth
    m = ev.depth_metrics(encoded, r.depth)
    assert m["abs_rel"] < 1e-4 and m["delta1"] == 1.0
    flat = ev.depth_metrics(np.full_like(encoded, 0.5), r.depth)
    assert flat["abs_rel"] > 0.05 and flat["delta1"] < 1.0


def test_normals_iou_edges_psnr_on_perfect_and_wrong_answers():
    r = tasks.render_scene(np.random.default_rng(1), 48)
    valid = r.depth < tasks.scenes.FAR
    assert ev.normal_error((r.normal + 1) / 2, r.normal, valid) < 1e-3
    assert ev.normal_error((-r.normal + 1) / 2, r.normal, valid) > 170
    mask = (r.instance > 0).astype(np.float32)
    assert ev.iou(mask, mask) == 1.0 and ev.iou(1 - mask, mask) == 0.0
    edges = tasks.SCENE_TARGETS["edge_detection"](r)
    assert ev.edge_f1(edges, edges) == 1.0
    assert ev.edge_f1(np.roll(edges, 1, axis=1), edges) > 0.95  # one pixel off is tolerated
    assert ev.edge_f1(np.zeros_like(edges), edges) == 0.0
    assert ev.psnr(r.rgb, r.rgb) == 99.0 and 19 < ev.psnr(np.clip(r.rgb + 0.1, 0, 1), r.rgb) < 21


def test_heldout_seeds_differ_from_training_seeds():
    a = tasks.TASKS["denoising"].make(ev.heldout_rng(0, "denoising", 0), 32)[0]
    b = tasks.pair("denoising", 0, 32)[0]
    assert not np.array_equal(a, b)
    again = tasks.TASKS["denoising"].make(ev.heldout_rng(0, "denoising", 0), 32)[0]
    assert np.array_equal(a, again)


def test_a_low_light_context_and_its_queries_share_one_darkening():
    setting = ev.case_setting(11, "low_light_enhancement")
    factor, gamma = setting
    darkened = lambda inp, tgt: np.allclose(inp, np.clip((tgt * factor) ** gamma, 0, 1), atol=1e-6)  # noqa: E731
    assert all(darkened(a, b) for a, b in ev.context_pairs("low_light_enhancement", 11, 3, 32))
    assert all(darkened(c.input, c.target) for c in ev.query_cases("low_light_enhancement", 11, 4, 32))
    assert ev.case_setting(12, "low_light_enhancement") != setting and ev.case_setting(11, "denoising") is None


def test_eval_json_report(cli, tiny_model):
    code, stdout, err = cli("eval", "-m", tiny_model, "--queries", "2", "--steps", "2", "--pairs", "2",
                            "-t", "foreground_segmentation", "-t", "depth_estimation", "-t", "video_depth", "--json", "-q")
    assert code == 0, err
    report = json.loads(stdout)
    assert set(report["tasks"]) == {"foreground_segmentation", "depth_estimation", "video_depth"}
    fg = report["tasks"]["foreground_segmentation"]
    assert set(fg) == {"metrics", "baseline", "better_than_baseline", "keep"} and "iou" in fg["metrics"]
    assert fg["keep"] == "none" and report["tasks"]["video_depth"]["keep"] == "none"  # nothing kept for these
    assert set(report["tasks"]["depth_estimation"]["metrics"]) == {"abs_rel", "delta1"}
    assert 0.0 <= report["task_switch_accuracy"] <= 1.0
    answers = report["task_switch_answers"]  # per context task: which truth each answer was closest to
    assert set(answers) == {"foreground_segmentation", "depth_estimation"}
    assert all(sum(row.values()) == 2 for row in answers.values())
    right = sum(row[task] for task, row in answers.items())
    assert report["task_switch_accuracy"] == round(right / 4, 4)
    assert set(report["tasks"]) >= {"video_depth"} and set(report["tasks"]["video_depth"]["metrics"]) == {"abs_rel", "delta1"}


def test_eval_over_draws_averages_the_single_seed_reports(cli, tiny_model):
    """--draws 2 on generated scenes: every metric, baseline and the task-switch accuracy are the
    means of what seeds 5 and 6 give alone, the switch answers their sums; "better" is judged on
    the means and "wins" counts the draws that beat the baseline."""
    base = ("eval", "-m", tiny_model, "--queries", "2", "--steps", "2", "--pairs", "2", "-t", "depth_estimation",
            "-t", "foreground_segmentation", "--json", "-q")
    single = [json.loads(cli(*base, "--seed", str(s))[1]) for s in (5, 6)]
    code, stdout, err = cli(*base, "--seed", "5", "--draws", "2")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["seeds"] == [5, 6] and single[0]["seeds"] == [5]
    for task, row in report["tasks"].items():
        for part in ("metrics", "baseline"):
            for k, v in row[part].items():
                assert v == pytest.approx(np.mean([s["tasks"][task][part][k] for s in single]), abs=1e-4)
        assert row["per_seed"] == {k: [s["tasks"][task]["metrics"][k] for s in single] for k in row["metrics"]}
        assert row["wins"] == sum(s["tasks"][task]["better_than_baseline"] for s in single)
    assert report["task_switch_accuracy"] == pytest.approx(np.mean([s["task_switch_accuracy"] for s in single]), abs=1e-4)
    answers = report["task_switch_answers"]["depth_estimation"]
    assert sum(answers.values()) == 4  # two queries per draw
    code, stdout, _ = cli(*base[:-2], "--draws", "2")
    assert code == 0 and "seeds 0-1 (mean of 2 draws)" in stdout and "draws won" in stdout


def test_eval_refuses_zero_pairs_as_run_does(cli, tiny_model):
    """0 pairs is an error, not "the model's default" (a falsy check once made it run with that)."""
    code, _, err = cli("eval", "-m", tiny_model, "--queries", "1", "--steps", "2", "--pairs", "0", "-t", "depth_estimation")
    assert code == 2 and "--pairs must be at least 1, got 0" in err, err


def test_eval_covers_frame_prediction(cli, tiny_model):
    code, stdout, err = cli("eval", "-m", tiny_model, "--queries", "1", "--steps", "2", "--pairs", "1",
                            "-t", "frame_prediction", "--json", "-q")
    assert code == 0, err
    report = json.loads(stdout)
    fp = report["tasks"]["frame_prediction"]
    assert "psnr_db" in fp["metrics"] and "psnr_db" in fp["baseline"]
    assert 0 < fp["vae_ceiling_db"] < 100  # the true new frames through the VAE
    assert set(fp["continuity"]) == {"within_chunk_db", "across_chunks_db"}  # 12 frames: three chunks of 4
    assert report["task_switch_accuracy"] is None and report["task_switch_answers"] is None and "NaN" not in stdout
    assert set(report["vae_ceiling"]) == {"image_psnr_db", "clip_psnr_db"} and report["vae_ceiling"]["image_psnr_db"] > 0


def test_continuity_sees_a_jump_between_chunks():
    smooth = np.linspace(0, 1, 12)[:, None, None, None] * np.ones((12, 8, 8, 3))
    jumpy = smooth.copy()
    jumpy[4:] += 0.3
    a = ev.continuity([(np.clip(smooth, 0, 1) * 255).astype(np.uint8)], chunk=4)
    b = ev.continuity([(np.clip(jumpy, 0, 1) * 255).astype(np.uint8)], chunk=4)
    assert abs(a["within_chunk_db"] - a["across_chunks_db"]) < 1.0 and b["across_chunks_db"] < b["within_chunk_db"] - 5


def test_the_table_names_the_contexts_that_switch_wrong(cli, tiny_model):
    from lavin_cli.cli.evaluate import switch_line

    line = switch_line(0.75, {"depth_estimation": {"depth_estimation": 4, "edge_detection": 0},
                               "edge_detection": {"depth_estimation": 2, "edge_detection": 2}})
    assert line == "task switch accuracy: 0.750 (edge_detection 2/4 right, answered as depth_estimation 2)"
    assert switch_line(1.0, {"a": {"a": 3, "b": 0}, "b": {"a": 0, "b": 3}}).endswith("(every context right)")
    code, stdout, err = cli("eval", "-m", tiny_model, "--queries", "1", "--steps", "2", "--pairs", "1",
                            "-t", "depth_estimation", "-t", "edge_detection", "-q")
    assert code == 0, err
    assert "task switch accuracy: " in stdout


def test_eval_takes_the_working_size_and_refuses_what_it_would_ignore(cli, tiny_model):
    """Every option lavin eval accepts does something in the mode it runs in: --size sets the
    scenes' side, an option of another mode (--truth's, --compare's) is refused by name."""
    code, stdout, err = cli("eval", "-m", tiny_model, "--queries", "1", "--steps", "2", "--pairs", "1",
                            "-t", "denoising", "--size", "48", "-b", "1", "--json", "-q")
    assert code == 0, err
    assert json.loads(stdout)["size"] == 48
    for args, message in ((["-t", "denoising", "--crop", "4"], "--crop is for scoring your own folders: give --truth"),
                          (["-t", "denoising", "--fit", "pad"], "--fit is for scoring your own folders"),
                          (["-t", "denoising", "--size", "64x48"], "square; give one side, e.g. --size 64"),
                          (["--compare", "a.jsonl", "b.jsonl", "--steps", "3"], "--steps has no effect with --compare")):
        code, _, err = cli("eval", "-m", tiny_model, *args) if args[0] != "--compare" else cli("eval", *args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
