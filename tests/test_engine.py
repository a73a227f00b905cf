"""The inference engine: options checked before loading, predictions streamed as they finish,
interrupts that keep finished work, read-ahead, and one codec shared with training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from conftest import random_image, read_record

from lavin_cli import Pipeline, RunOptions
from lavin_cli.errors import OptionError, UsageError
from lavin_cli.inference import codec
from lavin_cli.inference.prefetch import prefetch

BAD_OPTIONS = [
    (["--steps", "0"], "--steps must be at least 2"),
    (["--steps", "1"], "--steps must be at least 2"),
    (["--cfg", "nan"], "--cfg must be a finite number"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--seed", "18446744073709551616"], "--seed must be at most"),
    (["--size", "100"], "--size 100x100"),
    (["--size", "abc"], "--size 'abc' is not N or WIDTHxHEIGHT"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--pairs", "0"], "--pairs must be at least 1"),
    (["--select", "best"], "--select 'best' is not one of"),
    (["--fit", "stretch"], "--fit 'stretch' is not one of"),
    (["--solver", "rk4"], "--solver 'rk4' is not one of"),
    (["--device", "tpu"], "--device 'tpu' is not a device"),
    (["--dtype", "int8"], "--dtype 'int8' is not one of"),
    (["--attention", "flash9"], "--attention 'flash9' is not one of"),
    (["--offload", "disk"], "--offload 'disk' is not one of"),
]


@pytest.fixture
def loader_spy(monkeypatch):
    """Records every attempt to read model weights."""
    from lavin_cli.store import weights

    calls = []
    for name in ("load_dit", "load_vae"):
        real = getattr(weights, name)
        monkeypatch.setattr(weights, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    return calls


@pytest.mark.parametrize("extra,needle", BAD_OPTIONS)
def test_bad_options_fail_before_any_weights_are_read(cli, tiny_model, pairs_dir, queries, tmp_path, loader_spy,
                                                      extra, needle):
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png", *extra)
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert loader_spy == [] and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("command", [["run", "-i", "q.png", "-o", "o.png", "--steps", "0"],
                                     ["video", "-i", "q.mp4", "-o", "o.mp4", "--frames", "0"]])
def test_a_bad_option_is_answered_without_importing_torch(command, tmp_path):
    """Bad values answer in a fraction of a second: torch (over a second to import) is not loaded."""
    import subprocess
    import sys

    script = ("import sys\nfrom lavin_cli.cli.app import main\nsys.argv = ['lavin', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", script, *command, "--task", "depth_estimation"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["2", "False"], res.stdout + res.stderr


def test_python_keywords_are_checked_with_the_option_names(tiny_model, pairs_dir, queries):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    with pytest.raises(OptionError, match=r"^steps must be at least 2, got 0$"):
        pipe(pairs_dir, [str(queries[0])], steps=0)
    with pytest.raises(UsageError, match="unknown option.*stepz"):
        pipe(pairs_dir, [str(queries[0])], stepz=3)
    with pytest.raises(OptionError, match="offload"):
        Pipeline.from_pretrained(str(tiny_model), offload="disk")


def test_predictions_stream_out_batch_by_batch(tiny_model, pairs_dir, queries):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    calls = []
    real = pipe.engine.generate
    pipe.engine.generate = lambda *a, **k: calls.append(1) or real(*a, **k)
    run = pipe.stream(pairs_dir, [str(q) for q in queries] + ["missing.png"], RunOptions(steps=2, batch_size=1))
    assert run.header["steps"] == 2 and "queries" not in run.header  # known before any work
    seen = []
    for prediction in run:
        seen.append((prediction.index, len(calls), prediction.error is None))
    # each prediction arrives right after its own model call, before the next batch runs
    assert seen == [(0, 1, True), (1, 2, True), (2, 3, True), (3, 3, False)]
    collected = pipe(pairs_dir, [str(q) for q in queries], steps=2, batch_size=1)
    assert [p.image.tobytes() for p in collected.predictions][:1] == [pipe(pairs_dir, [str(queries[0])], steps=2)
                                                                      .predictions[0].image.tobytes()]


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_keeps_exactly_the_finished_outputs(cli, tiny_model, pairs_dir, tmp_path, monkeypatch, sig, code):
    from lavin_cli.io import files

    many = [random_image(tmp_path / "q" / f"q{i:02d}.png", seed=i) for i in range(6)]
    written = []
    real = files.write_atomic

    def write_then_signal(path, data, overwrite=False):
        real(path, data, overwrite)
        written.append(path.name)
        if len(written) == 3:  # the signal arrives while the 4th prediction is being made
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(files, "write_atomic", write_then_signal)
    out, record = tmp_path / "out", tmp_path / "run.jsonl"
    status, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", tmp_path / "q", "-o", out, "--steps", "2",
                         "--batch-size", "1", "--record", record)
    assert status == code and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["q00.png", "q01.png", "q02.png"]  # no partial files either
    data = read_record(record)
    assert [q["output"] for q in data["queries"]] == [str(out / n) for n in ("q00.png", "q01.png", "q02.png")]
    assert data["ends"][0]["interrupted"] == ("SIGINT" if sig == signal.SIGINT else "SIGTERM")
    assert len(many) == 6


def test_sigterm_to_a_running_process_keeps_a_consistent_record(tiny_model, pairs_dir, tmp_path):
    for i in range(40):
        random_image(tmp_path / "q" / f"q{i:02d}.png", seed=i)
    out, record = tmp_path / "out", tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "lavin_cli", "run", "-m", str(tiny_model), "-c", str(pairs_dir),
                             "-i", str(tmp_path / "q"), "-o", str(out), "--steps", "20", "--batch-size", "1",
                             "--record", str(record)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*.png")) if out.is_dir() else []) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    on_disk = sorted(str(p) for p in out.iterdir())
    assert all(p.endswith(".png") and not os.path.basename(p).startswith(".") for p in on_disk)  # nothing partial
    listed = [q["output"] for q in read_record(record)["queries"] if q.get("output")]
    assert 2 <= len(on_disk) < 40 and sorted(listed) == on_disk


def test_prefetch_keeps_order_reports_failures_in_turn_and_never_hangs():
    assert list(prefetch(range(10), lambda i: i * i, ahead=3)) == [i * i for i in range(10)]

    def load(i):
        if i == 2:
            raise ValueError("bad item")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item"):
        for value in prefetch(range(5), load):
            got.append(value)
    assert got == [0, 1]
    started = threading.active_count()
    gen = prefetch(range(1000), lambda i: i, ahead=1)
    assert next(gen) == 0
    gen.close()  # a consumer that stops early leaves no thread behind
    deadline = time.monotonic() + 5
    while threading.active_count() > started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= started


def test_a_training_batch_condition_equals_the_pipelines(tiny_model, monkeypatch):
    """Same pixels in, the same condition out: the trainer builds it with the pipeline's codec
    (posterior sample, normalisation, assembly, null condition). The bank stores moments in
    float16, hence the tolerance."""
    from lavin_cli.models.vae import Posterior
    from lavin_cli.training import dit_trainer, loop
    from lavin_cli.training.bank import LatentBank

    monkeypatch.setattr(Posterior, "sample", lambda self, noise=None, generator=None: self.mean)  # noise aside
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]  # in1, tg1, in2, tg2, query, its target
    # training encodes its bank in float32 on the CPU
    pipe = Pipeline.from_pretrained(str(tiny_model), device="cpu", dtype="float32")
    seen = {}
    real = pipe.engine.generate
    pipe.engine.generate = lambda cond, *a, **k: seen.setdefault("cond", cond) is None or real(cond, *a, **k)
    pipe([(pixels[0], pixels[1]), (pixels[2], pixels[3])], [pixels[4]], pairs=2, steps=2)

    class Source:
        task_names = ["t"]

        def kind(self, task):
            return "image"

    bank = LatentBank.__new__(LatentBank)
    bank.tasks, bank.vae = ["t"], pipe.vae
    moments = bank.encode([p[None].astype(np.float32) / 255 for p in pixels])
    bank.draw = lambda task, rng, count: [(moments[0], moments[1]), (moments[2], moments[3]), (moments[4], moments[5])]
    cfg = dit_trainer.DiTTrainConfig(batch=1, max_pairs=2, uncond=0.0, seed=0)
    step = next(s for s in range(100)  # a step whose draw is k = 2 context pairs
                if np.random.default_rng(loop.step_seed(cfg.seed, s, 0)).integers(1, 3) == 2)
    batch = dit_trainer.make_batch(bank, pipe.vae, Source(), cfg, step=step, rank=0)
    assert batch.cond.shape == seen["cond"].shape == (1, 16, 5, 4, 4)
    assert torch.allclose(batch.cond, seen["cond"], atol=2e-3)
    assert torch.equal(codec.null_condition(batch.cond), torch.cat([torch.zeros_like(batch.cond[:, :, :1]),
                                                                    batch.cond[:, :, -1:]], dim=2))


def test_a_querys_result_barely_depends_on_its_batch(tiny_model, pairs_dir, queries):
    """Every image goes through the VAE alone and the DiT's timestep path is shared by the batch;
    the DiT's matrix products still see the whole batch, so the README states a bound: a mean of
    one level of 255 per output."""
    pipe = Pipeline.from_pretrained(str(tiny_model))
    paths = [str(q) for q in queries] * 2
    one = pipe(pairs_dir, paths, batch_size=1, steps=4, size=48)
    many = pipe(pairs_dir, paths, batch_size=4, steps=4, size=48)
    for a, b in zip(one.predictions, many.predictions):
        assert np.abs(a.image.astype(int) - b.image).mean() <= 1.0


def test_the_encoded_context_is_kept_across_calls(tiny_model, pairs_dir, queries):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    calls = []
    real = pipe.engine.encode
    pipe.engine.encode = lambda frames, gens: calls.append(len(frames)) or real(frames, gens)
    first = pipe(pairs_dir, [str(queries[0])], steps=2, pairs=2)
    second = pipe(pairs_dir, [str(queries[0])], steps=2, pairs=2)
    assert calls == [4, 1, 1]  # 2 pairs (4 images) once, then the query each time
    assert np.array_equal(first.predictions[0].image, second.predictions[0].image)
    pipe(pairs_dir, [str(queries[0])], steps=2, pairs=2, seed=1)  # another seed: encoded again
    assert calls[-2:] == [4, 1]


def test_compiled_blocks_share_one_graph():
    """Regional compilation (lavin run --compile): every block runs the one graph traced for the
    first, also where drop_path ramps over the blocks (the 1.0B and 3.4B presets), which made each
    block trace its own until torch gave up after 8 and ran the rest eagerly. torch's "eager"
    backend traces as inductor does (the guards and graphs are dynamo's), without a C++ compiler."""
    import dataclasses

    from torch._dynamo.utils import counters

    from lavin_cli.config import DIT_PRESETS
    from lavin_cli.inference.engine import compile_blocks
    from lavin_cli.models.dit import JDiT

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    dit = JDiT(dataclasses.replace(DIT_PRESETS["tiny"], depth=6, drop_path=0.1)).eval()
    target, cond = torch.randn(1, 16, 1, 8, 8), torch.randn(1, 16, 3, 8, 8)
    with torch.no_grad():
        expected = dit(target, torch.tensor([0.3]), cond)
        compile_blocks(dit, backend="eager")
        first = dit(target, torch.tensor([0.3]), cond)
        dit(target, torch.tensor([0.7]), cond)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-6)
    torch._dynamo.reset()


def test_compiled_blocks_settle_on_a_few_graphs_for_many_layouts():
    """A server meets many layouts (batch from packed guidance or --batch-size, context frames from
    the pair count, latent sizes from --size): a graph per layout hit torch's limit of 8 after 8
    of them and ran every later one eagerly. The sizes that change become symbolic instead, so
    twelve layouts need at most five graphs and the last ones reuse them; outputs equal eager."""
    import dataclasses

    from torch._dynamo.utils import counters

    from lavin_cli.config import DIT_PRESETS
    from lavin_cli.inference.engine import compile_blocks
    from lavin_cli.models.dit import JDiT

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    dit = JDiT(dataclasses.replace(DIT_PRESETS["tiny"], depth=3)).eval()
    layouts = [(1, 3, 1, 8, 8), (2, 3, 1, 8, 8), (1, 5, 1, 8, 8), (1, 3, 1, 6, 10), (2, 7, 1, 8, 8), (1, 9, 1, 4, 4),
               (1, 3, 2, 8, 8), (2, 5, 2, 6, 6), (1, 11, 1, 8, 8), (3, 3, 1, 8, 8), (1, 13, 1, 10, 6), (4, 2, 3, 4, 12)]
    inputs = [(torch.randn(b, 16, frames, h, w), torch.randn(b, 16, ctx, h, w)) for b, ctx, frames, h, w in layouts]
    graphs = []
    with torch.no_grad():
        expected = [dit(t, torch.full((len(t),), 0.3), c) for t, c in inputs]
        compile_blocks(dit, backend="eager")
        for (t, c), want in zip(inputs, expected):
            torch.testing.assert_close(dit(t, torch.full((len(t),), 0.3), c), want, rtol=1e-5, atol=1e-6)
            graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[-1] <= 5 and graphs[-4:] == [graphs[-1]] * 4, graphs  # settled: the last layouts traced nothing
    assert counters["frames"]["total"] == counters["frames"]["ok"], dict(counters["frames"])  # none fell back
    torch._dynamo.reset()
