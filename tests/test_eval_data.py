"""`lavin eval --truth` on folders: the protocols against hand-computed values and independent
formulas, the generator's folders scored as the generator mode scores them, matching, resuming,
records, --compare, --sweep and the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lavin_cli.evaluation import compare as cmp
from lavin_cli.evaluation import dataset, protocols
from lavin_cli.evaluation.heldout import write_folders
from lavin_cli.evaluation.protocols import Protocol

# ------------------------------------------------------------------ the protocols, by hand


def test_depth_metrics_by_hand():
    depth = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.0, 2.0], [4.0, 16.0]])  # as depth, no alignment: one pixel twice too far
    m = protocols.depth_metrics(pred, depth, Protocol("depth", align="none"))
    assert m["abs_rel"] == pytest.approx(0.25)  # (0 + 0 + 0 + 8/8) / 4
    assert m["sq_rel"] == pytest.approx(64 / 8 / 4)
    assert m["rmse"] == pytest.approx(np.sqrt(64 / 4))
    assert m["rmse_log"] == pytest.approx(np.sqrt(np.log(2) ** 2 / 4))
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.75, 0.75, 0.75)  # ratio 2 > 1.25 ** 3


@pytest.mark.parametrize("align,pred", [("lsq-disparity", lambda d: 0.3 / d + 0.1), ("lsq-depth", lambda d: 2 * d - 1),
                                        ("median", lambda d: 5.0 / d)])
def test_each_alignment_recovers_its_own_family_exactly(align, pred):
    depth = np.linspace(1.0, 9.0, 64).reshape(8, 8)
    m = protocols.depth_metrics(pred(depth), depth, Protocol("depth", align=align))
    assert m["abs_rel"] < 1e-9 and m["rmse"] < 1e-8 and m["delta1"] == 1.0


def test_depth_caps_and_missing_pixels_are_left_out(tmp_path):
    stored = np.array([[256, 512], [0, 90 * 256]], dtype=np.uint16)  # KITTI: metres * 256, 0 = none
    Image.fromarray(stored).save(tmp_path / "d.png")
    truth = dataset.read_truth(tmp_path / "d.png", "depth", scale=256)
    assert truth[0, 0] == 1.0 and truth[0, 1] == 2.0 and np.isnan(truth[1, 0]) and truth[1, 1] == 90.0
    pred = np.array([[1.0, 2.0], [7.0, 1.0]])
    m = protocols.depth_metrics(pred, truth, Protocol("depth", align="none", max_depth=80))
    assert m["abs_rel"] == 0.0  # only the two measured pixels inside the 80 m cap count
    with pytest.raises(ValueError, match="fewer than two valid"):
        protocols.depth_metrics(pred, np.full((2, 2), np.nan), Protocol("depth"))


def test_normal_angles_by_hand():
    truth = np.zeros((2, 2, 3))
    truth[..., 2] = 1
    truth[1, 1] = 0  # no surface: not scored
    angles = np.radians([10.0, 45.0, 10.0])
    pred = np.zeros((2, 2, 3))
    for (r, c), a in zip([(0, 0), (0, 1), (1, 0)], angles):
        pred[r, c] = (np.array([0, np.sin(a), np.cos(a)]) + 1) / 2  # RGB = (n + 1) / 2
    m = protocols.normal_metrics(pred, truth)
    assert m["angle_mean"] == pytest.approx(65 / 3) and m["angle_median"] == pytest.approx(10)
    assert m["within_11.25"] == pytest.approx(2 / 3) and m["within_30"] == pytest.approx(2 / 3)


def test_mask_iou_and_boundary_f_by_hand():
    truth = np.zeros((20, 20))
    truth[5:15, 5:15] = 1  # 100 pixels
    pred = np.zeros((20, 20, 3))
    pred[5:15, 10:20] = 1.0  # 50 inside, 50 outside
    m = protocols.mask_metrics(pred, truth)
    assert m["iou"] == pytest.approx(50 / 150)
    assert m["miou_sweep"] == pytest.approx(50 / 150)  # a binary prediction: the same at every threshold
    same = protocols.mask_metrics(np.repeat(truth[..., None], 3, -1), truth)
    assert same["iou"] == 1.0 and same["boundary_f"] == 1.0
    far = np.zeros((20, 20), bool)
    far[0:2, 0:2] = True
    assert protocols.boundary_f(far, truth > 0.5) == 0.0


def test_edges_ods_ois_by_hand():
    truth = np.zeros((40, 40))
    truth[10, 5:35] = 1
    truth[30, 5:35] = 1
    exact = protocols.edge_metrics(np.repeat(truth[..., None], 3, -1), truth)
    assert exact["f1_ois"] == pytest.approx(1.0) and exact["f1_05"] == 1.0
    half = np.zeros((40, 40, 3))
    half[10, 5:35] = 1  # one of the two edges: precision 1, recall 1/2
    m = protocols.edge_metrics(half, truth)
    assert m["f1_ois"] == pytest.approx(2 / 3, abs=1e-3)
    ods = protocols.dataset_edges([exact["_counts"], m["_counts"]])["f1_ods"]
    assert ods == pytest.approx(2 * 0.75 / 1.75, abs=1e-3)  # summed: 90 of 120 truth pixels, all predictions right


def _ssim_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 on one channel: Gaussian window 11, sigma 1.5, K = 0.01, 0.03, valid region."""
    x = np.arange(11) - 5
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()

    def blur(z):
        z = np.lib.stride_tricks.sliding_window_view(z, 11, axis=0) @ g
        return np.lib.stride_tricks.sliding_window_view(z, 11, axis=1) @ g

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return float(np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def test_psnr_and_ssim_against_hand_and_independent_formulas():
    rng = np.random.default_rng(3)
    truth = rng.random((40, 48, 3))
    m = protocols.restoration_metrics(np.clip(truth + 0.1, None, None), truth, Protocol("restoration"))
    assert m["psnr_db"] == pytest.approx(20.0)  # MSE 0.01
    pred = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    ours = protocols.restoration_metrics(pred, truth, Protocol("restoration"))["ssim"]
    assert ours == pytest.approx(np.mean([_ssim_numpy(pred[..., c], truth[..., c]) for c in range(3)]), abs=1e-6)
    y = protocols.restoration_metrics(pred, truth, Protocol("restoration", channel="y", crop=4))
    ya, yb = protocols.luma(pred)[4:-4, 4:-4], protocols.luma(truth)[4:-4, 4:-4]
    assert y["psnr_db"] == pytest.approx(10 * np.log10(1 / np.mean((ya - yb) ** 2)))
    assert y["ssim"] == pytest.approx(_ssim_numpy(ya, yb), abs=1e-6)
    assert protocols.luma(np.ones((1, 1, 3)))[0, 0] == pytest.approx(235 / 255)
    assert protocols.luma(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16 / 255)


# ------------------------------------------------------------------ on the generator's folders

GENERATOR = {"depth_estimation": ("abs_rel", "abs_rel"), "surface_normals": ("angular_error_deg", "angle_mean"),
             "foreground_segmentation": ("iou", "iou"), "edge_detection": ("f1", "f1_05"),
             "colorization": ("psnr_db", "psnr_db")}


@pytest.fixture(scope="module")
def bundled_pipe():
    from lavin_cli.inference.pipeline import Pipeline

    return Pipeline.from_pretrained(None)


@pytest.mark.parametrize("task", list(GENERATOR))
def test_folders_score_as_the_generator_mode_does(task, tmp_path, cli, bundled_pipe):
    """The bundled model on the generator's held-out folders, through `lavin eval --truth`: the
    same numbers as `lavin eval -t TASK` (its evaluate_task) on the same queries."""
    from lavin_cli.evaluation.evaluate import evaluate_task

    f = write_folders(tmp_path / "bench", task, seed=0, pairs=3, queries=4, size=64)
    code, stdout, err = cli("eval", "-c", f["context"], "-i", f["queries"], "--truth", f["truth"], "-b", "4",
                            "--format", "png", "--max-depth", "100", "--json", "-q")
    assert code == 0, err
    ours = json.loads(stdout)["results"][0]["summary"]
    theirs = evaluate_task(bundled_pipe, task, 0, 4, 3, 64, steps=11, cfg=1.5, batch_size=4, solver="euler",
                           cfg_interval=(0.0, 1.0), cond_refresh=1)["metrics"]
    name, here = GENERATOR[task]
    assert ours["scored"] == 4 and round(ours[here], 4) == pytest.approx(theirs[name], abs=1e-4)
    if task == "depth_estimation":
        assert round(ours["delta1"], 4) == pytest.approx(theirs["delta1"], abs=1e-4)


def test_an_inpainting_benchmark_with_masks_scores_the_holes(cli, tmp_path):
    """--mask runs each query with its mask (as lavin run --mask) and scores the filled pixels
    apart: psnr_hole_db and l1_hole, by hand from the predictions kept with -o; the whole-image
    PSNR counts the kept pixels, which equal the truth here."""
    examples = Path(__file__).resolve().parent.parent / "examples" / "denoising"
    for folder in ("q", "t", "m"):
        (tmp_path / folder).mkdir()
    for i, box in enumerate(((8, 8), (30, 20))):
        photo = Image.open(examples / f"00{i}_target.png").convert("RGB")
        photo.save(tmp_path / "q" / f"p{i}.png")
        photo.save(tmp_path / "t" / f"p{i}.png")
        mask = np.zeros((photo.height // 2, photo.width // 2), np.uint8)  # half size: scaled as run scales it
        mask[box[0] // 2:box[0] // 2 + 10, box[1] // 2:box[1] // 2 + 10] = 255
        Image.fromarray(mask).save(tmp_path / "m" / f"p{i}.png")
    args = ["eval", "-t", "inpainting", "-i", tmp_path / "q", "--truth", tmp_path / "t", "--steps", "3", "--json",
            "-q"]
    code, stdout, err = cli(*args, "--mask", str(tmp_path / "m" / "{stem}.png"), "-o", tmp_path / "pred")
    assert code == 0, err
    result = json.loads(stdout)["results"][0]
    for row in result["queries"]:
        name = Path(row["query"]).name
        truth = np.asarray(Image.open(tmp_path / "t" / name).convert("RGB"), np.float64) / 255
        pred = np.asarray(Image.open(tmp_path / "pred" / name).convert("RGB"), np.float64) / 255
        fill = np.asarray(Image.open(tmp_path / "m" / name).resize(truth.shape[1::-1], Image.NEAREST)) >= 128
        assert (pred[~fill] == truth[~fill]).all()  # the kept pixels are the query's, here the truth's
        hole = pred[fill] - truth[fill]
        assert row["metrics"]["psnr_hole_db"] == pytest.approx(-10 * np.log10((hole ** 2).mean()), abs=1e-4)
        assert row["metrics"]["l1_hole"] == pytest.approx(np.abs(hole).mean(), abs=1e-5)
        assert row["metrics"]["psnr_db"] > row["metrics"]["psnr_hole_db"] + 5
    assert result["summary"]["psnr_hole_db"] == pytest.approx(
        np.mean([r["metrics"]["psnr_hole_db"] for r in result["queries"]]), abs=1e-5)
    code, stdout, _ = cli(*args)  # without masks: the task's own rule, and no hole to score
    assert code == 0 and "psnr_hole_db" not in json.loads(stdout)["results"][0]["summary"]
    code, _, err = cli("eval", "-t", "inpainting", "--mask", "m.png")
    assert code == 2 and "--mask is for scoring your own folders" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def depth_bench(tmp_path_factory):
    return write_folders(tmp_path_factory.mktemp("bench") / "depth", "depth_estimation", queries=4)


def _eval(cli, bench, *args):
    return cli("eval", "-c", bench["context"], "-i", bench["queries"], "--truth", bench["truth"], "--steps", "2",
               "--max-depth", "100", *map(str, args))


def test_resume_and_a_second_metric_cost_no_inference(cli, depth_bench, tmp_path):
    preds = tmp_path / "preds"
    code, _, err = _eval(cli, depth_bench, "-o", preds, "--record", tmp_path / "a.jsonl")
    assert code == 0 and "4 prediction(s) written" in err, err
    stamps = {p.name: p.stat().st_mtime_ns for p in preds.iterdir()}
    code, stdout, err = _eval(cli, depth_bench, "-o", preds, "--skip-existing", "--align", "median", "--json")
    assert code == 0 and "nothing to do" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in preds.iterdir()} == stamps
    assert json.loads(stdout)["protocol"]["align"] == "median"
    code, _, err = _eval(cli, depth_bench, "-o", preds, "--record", tmp_path / "a.jsonl")
    assert code == 6 and "a.jsonl exists; add --overwrite" in err, err


def test_unmatched_files_are_listed_and_failed_queries_exit_7(cli, depth_bench, tmp_path):
    import shutil

    truth = tmp_path / "truth"
    shutil.copytree(depth_bench["truth"], truth)
    (truth / "q000.npy").rename(truth / "extra.npy")  # q000 has no truth; extra.npy no query
    (truth / "q001.npy").write_bytes(b"not a numpy file")
    code, stdout, err = cli("eval", "-c", depth_bench["context"], "-i", depth_bench["queries"], "--truth", truth,
                            "--steps", "2", "--record", tmp_path / "r.jsonl", "--json")
    assert code == 7, err
    assert "1 queries without a partner" in err and "1 truth files without a partner" in err and "extra.npy" in err
    result = json.loads(stdout)
    assert result["unmatched"] == {"queries": [str(depth_bench["queries"] / "q000.png")], "truths": ["extra.npy"]}
    assert result["results"][0]["summary"]["scored"] == 2
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["eval", "query", "query", "query", "summary"]
    assert "not a readable .npy file" in lines[1]["error"] and "q001.npy" in lines[1]["error"]


def test_matching_by_relative_path_then_unique_stem(tmp_path):
    for rel in ("q/a/x.png", "q/b/x.png", "q/c/only.png", "t/a/x.npy", "t/b/x.npy", "t/elsewhere/only.npy"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    queries = [str(tmp_path / q) for q in ("q/a/x.png", "q/b/x.png", "q/c/only.png")]
    m = dataset.match(queries, tmp_path / "t")
    assert [(i, p.relative_to(tmp_path / "t").as_posix()) for i, p in m.pairs] == \
        [(0, "a/x.npy"), (1, "b/x.npy"), (2, "elsewhere/only.npy")]
    assert not m.unmatched_queries and not m.unmatched_truths


def test_metric_comes_from_task_json_or_is_asked_for(cli, depth_bench, tmp_path):
    import shutil

    ctx = tmp_path / "ctx"
    shutil.copytree(depth_bench["context"], ctx)
    (ctx / "task.json").write_text('{"target": "gray"}')
    code, _, err = cli("eval", "-c", ctx, "-i", depth_bench["queries"], "--truth", depth_bench["truth"])
    assert code == 2 and "which metric? give --metric" in err, err
    code, stdout, err = cli("eval", "-c", ctx, "-i", depth_bench["queries"], "--truth", depth_bench["truth"],
                            "--metric", "l1", "--steps", "2", "--json", "-q")
    assert code == 0, err  # l1 of the gray prediction against the depth values themselves: any number
    assert set(json.loads(stdout)["results"][0]["summary"]) == {"queries", "scored", "l1", "l2"}
    for bad, message in ((["--truth", tmp_path / "none"], "truth folder not found"),
                         (["--truth", depth_bench["truth"], "--align", "mean"], "--align 'mean': use one of"),
                         (["--truth", depth_bench["truth"], "--sweep", "speed=1"], "give NAME=V1,V2")):
        code, _, err = cli("eval", "-c", depth_bench["context"], "-i", depth_bench["queries"], *bad)
        assert code in (2, 3) and message in err and "Traceback" not in err, err
    code, _, err = cli("eval", "--queries", "photos/")
    assert code == 2 and "give --truth DIR" in err, err


def test_shards_score_their_own_queries(cli, depth_bench, tmp_path):
    code, stdout, err = _eval(cli, depth_bench, "-o", tmp_path / "p", "--shard", "1/2", "-b", "1", "--json", "-q")
    assert code == 0, err
    rows = json.loads(stdout)["results"][0]["queries"]
    assert [Path(r["query"]).name for r in rows] == ["q001.png", "q003.png"]
    code, stdout, err = _eval(cli, depth_bench, "-o", tmp_path / "p", "--shard", "0/2", "-b", "1", "-q")
    code, stdout, err = _eval(cli, depth_bench, "-o", tmp_path / "p", "--skip-existing", "-b", "1", "--json")
    assert code == 0 and "nothing to do" in err and json.loads(stdout)["results"][0]["summary"]["scored"] == 4


def test_sweep_tabulates_every_combination(cli, depth_bench, tmp_path):
    code, stdout, err = _eval(cli, depth_bench, "--sweep", "steps=2,3", "--sweep", "cfg=1,1.5", "-o", tmp_path / "p",
                              "--record", tmp_path / "s.jsonl", "-q")
    assert code == 0, err
    rows = [line.split() for line in stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[:3] for r in rows] == [["2", "1.0", "4/4"], ["2", "1.5", "4/4"], ["3", "1.0", "4/4"], ["3", "1.5", "4/4"]]
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["steps=2,cfg=1.0", "steps=2,cfg=1.5",
                                                                  "steps=3,cfg=1.0", "steps=3,cfg=1.5"]
    record = [json.loads(x) for x in (tmp_path / "s.steps=3,cfg=1.5.jsonl").read_text().splitlines()]
    assert record[0]["sweep"] == {"steps": 3, "cfg": 1.5} and record[0]["options"]["steps"] == 3


def test_report_folder(cli, depth_bench, tmp_path):
    code, _, err = _eval(cli, depth_bench, "--report", tmp_path / "rep")
    assert code == 0 and f"report: {tmp_path / 'rep' / 'index.html'}" in err, err
    names = sorted(os.listdir(tmp_path / "rep"))
    assert names == sorted(["index.html", "summary.json", "worst.png", "best.png"]
                           + [f"hist_{m}.png" for m in ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")])
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "worst.png" in page and "hist_abs_rel.png" in page and "abs_rel" in page
    worst = np.asarray(Image.open(tmp_path / "rep" / "worst.png"))
    assert worst.shape[0] > 4 * 128 and worst.shape[1] >= 3 * 128  # 4 rows of query, truth, prediction
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["summary"]["scored"] == 4


def test_the_worst_come_first_whichever_way_a_metric_points():
    from lavin_cli.evaluation.report import worst_first

    rows = [{"query": str(i), "metrics": {"abs_rel": v, "iou": v}} for i, v in enumerate([0.2, 0.5, 0.1])]
    scored = dataset.Scored(rows, {}, "depth")
    assert [r["query"] for r in worst_first(scored, "abs_rel")] == ["1", "0", "2"]  # the largest error first
    assert [r["query"] for r in worst_first(scored, "iou")] == ["2", "0", "1"]  # the smallest overlap first


# ------------------------------------------------------------------ --compare


def _record(path: Path, values: dict[str, float], metric: str = "abs_rel") -> Path:
    lines = [{"type": "eval", "metric": "depth"}] + [{"type": "query", "key": k, "metrics": {metric: v}}
                                                      for k, v in values.items()]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_compare_paired_bootstrap(tmp_path):
    a = _record(tmp_path / "a.jsonl", {f"q{i}": 0.2 + 0.01 * i for i in range(20)})
    b = _record(tmp_path / "b.jsonl", {f"q{i}": 0.1 + 0.01 * i for i in range(20)})  # 0.1 lower on every query
    c = _record(tmp_path / "c.jsonl", {f"q{i}": 0.2 + 0.01 * i + (0.05 if i % 2 else -0.05) for i in range(21)})
    result = cmp.compare([a, b, c])
    assert result.queries == 20  # q20 is only in c
    (row,) = result.rows
    assert row["means"][0] == pytest.approx(0.295) and row["means"][1] == pytest.approx(0.195)
    better, mixed = row["differences"]
    assert better["mean"] == pytest.approx(-0.1) and better["ci95"] == pytest.approx([-0.1, -0.1])
    assert better["verdict"] == "better"  # abs_rel: lower is better
    assert mixed["mean"] == pytest.approx(0.0) and mixed["ci95"][0] < 0 < mixed["ci95"][1]
    assert mixed["verdict"] == "no difference shown"


def test_compare_on_the_command_line(cli, tmp_path):
    a = _record(tmp_path / "a.jsonl", {f"q{i}": 0.5 + 0.01 * i for i in range(10)}, "iou")
    b = _record(tmp_path / "b.jsonl", {f"q{i}": 0.4 + 0.01 * i for i in range(10)}, "iou")
    code, stdout, err = cli("eval", "--compare", a, b)
    assert code == 0, err
    assert "10 queries scored in all 2 records" in stdout and "worse" in stdout  # iou: higher is better
    code, stdout, _ = cli("eval", "--compare", a, b, "--json")
    assert json.loads(stdout)["rows"][0]["differences"][0]["verdict"] == "worse"
    (tmp_path / "bad.jsonl").write_text("{}\n")
    code, _, err = cli("eval", "--compare", a, tmp_path / "bad.jsonl")
    assert code == 3 and "bad.jsonl: no eval line" in err, err
    code, _, err = cli("eval", a, b)
    assert code == 2 and "give --compare" in err, err


def test_under_torchrun_the_ranks_predict_and_rank_0_scores_all(cli, depth_bench, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["-c", depth_bench["context"], "-i", depth_bench["queries"], "--truth", depth_bench["truth"], "--steps", "2",
            "--max-depth", "100", "-b", "1"]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lavin_cli",
                          "eval", *map(str, args), "-o", str(tmp_path / "ddp"), "--record", str(tmp_path / "r.jsonl"),
                          "-q"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines[-1]["scored"] == 4 and res.stdout.count("depth on") == 1  # one table, from rank 0
    # one process on one thread, as each rank (the thread count splits the kernels' sums, whose low
    # bits differ on some CPUs: AVX2 ones)
    one = subprocess.run([sys.executable, "-m", "lavin_cli", "eval", *map(str, args), "-o", str(tmp_path / "one"),
                          "--json", "-q"], capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    summary = json.loads(one.stdout)["results"][0]["summary"]
    assert {k: v for k, v in lines[-1].items() if k != "type"} == summary  # the same as one process


def test_without_the_eval_extra_the_fix_is_named(cli, depth_bench, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, _, err = _eval(cli, depth_bench, "--report", "rep")
    assert code == 2 and "needs the eval extra (matplotlib is missing): pip install 'lavin-cli[eval]'" in err, err
