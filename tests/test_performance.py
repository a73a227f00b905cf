"""Speed and memory features, checked for correctness on CPU (timings live in benchmarks/)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lavin_cli import Pipeline
from lavin_cli.config import dit_preset, vae_preset
from lavin_cli.errors import DeviceError
from lavin_cli.inference import codec, sampling
from lavin_cli.runtime import offload
from lavin_cli.store import weights

BF16_MEAN_ABS_TOLERANCE = 2.0  # of 255, documented in README (measured 0.42 on the tiny model)


@pytest.fixture(scope="module")
def dit():
    torch.manual_seed(0)
    model = weights.build(dit_preset("tiny")).eval()
    for p in model.parameters():
        p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    return model


@pytest.mark.parametrize("frames,batch", [(1, 1), (1, 3), (2, 2)])
def test_packed_guidance_equals_two_passes(dit, frames, batch):
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(batch, 16, 5 * frames, 8, 12, generator=g)
    x = torch.randn(batch, 16, frames, 8, 12, generator=g)
    t = torch.full((batch,), 0.37)
    null = torch.cat([torch.zeros_like(cond[:, :, :1]), cond[:, :, -frames:]], dim=2)
    with torch.no_grad():
        packed = sampling.guided(dit, cond, 1.5, null)(x, t)
        separate = sampling.guided(dit, cond, 1.5, null, packed=False)(x, t)
        v_cond, v_null = dit.forward_multi(x, t, [cond, null])
        assert torch.allclose(v_cond, dit(x, t, cond), atol=1e-5) and torch.allclose(v_null, dit(x, t, null), atol=1e-5)
    assert torch.allclose(packed, separate, atol=1e-5)


def test_guidance_runs_one_model_call_per_step(dit):
    calls = []
    real = dit.forward_multi
    dit.forward_multi = lambda *a: calls.append(1) or real(*a)
    try:
        with torch.no_grad():
            cond = torch.randn(1, 16, 3, 8, 8)
            sampling.sample(sampling.guided(dit, cond, 1.5, codec.null_condition(cond)), torch.randn(1, 16, 1, 8, 8), 20)
    finally:
        del dit.forward_multi
    assert len(calls) == 19


# every device this machine has: the CPU, and CUDA where present (tests/test_gpu.py has the rest of the GPU checks)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,bound", [("float32", 1), ("bfloat16", 8)])
def test_compiled_pipeline_matches_eager(tiny_model, pairs_dir, queries, dtype, bound, device):
    """float32: the same to a level; bf16: compiled kernels fuse and round differently (README)."""
    eager = Pipeline.from_pretrained(str(tiny_model), device=device, dtype=dtype)
    expected = eager(pairs_dir, [str(queries[0])], steps=3).predictions[0].image
    compiled = Pipeline.from_pretrained(str(tiny_model), device=device, dtype=dtype, compile=True)
    result = compiled(pairs_dir, [str(queries[0])], steps=3).predictions[0].image
    assert np.abs(result.astype(int) - expected).max() <= bound


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_matches_float32_within_the_documented_tolerance(tiny_model, pairs_dir, queries, device):
    f32 = Pipeline.from_pretrained(str(tiny_model), device=device, dtype="float32")(pairs_dir, [str(q) for q in queries],
                                                                                    steps=5)
    bf16 = Pipeline.from_pretrained(str(tiny_model), device=device, dtype="bfloat16")(pairs_dir,
                                                                                      [str(q) for q in queries], steps=5)
    for a, b in zip(f32.predictions, bf16.predictions):
        assert np.abs(a.image.astype(float) - b.image).mean() <= BF16_MEAN_ABS_TOLERANCE


def test_auto_offload_and_estimates():
    needs = offload.estimate(dit_preset("3.4B"), vae_preset("official"), torch.bfloat16, (512, 512), 4)
    gb = {k: v / 2**30 for k, v in needs.items()}
    assert gb["sequential"] < 4 < gb["model"] < gb["none"]  # the 3.4B weights alone are 6.3 GB in bf16
    assert offload.choose(needs, 80 * 2**30) == "none"
    assert offload.choose(needs, int(8.4 * 2**30)) == "model"
    assert offload.choose(needs, 3 * 2**30) == "sequential"
    assert offload.choose(needs, 2**29) is None
    message = str(DeviceError(offload.explain_oom(needs, 3 * 2**30, "none")))
    assert "offload='sequential'" in message and "3.0 GB free" in message
    bigger = offload.estimate(dit_preset("3.4B"), vae_preset("official"), torch.bfloat16, (512, 512), 8)
    assert bigger["none"] > needs["none"]
    int8 = offload.estimate(dit_preset("3.4B"), vae_preset("official"), torch.bfloat16, (512, 512), 4, int8=True)
    assert int8["none"] < 0.65 * needs["none"] and offload.choose(int8, 8 * 2**30) == "none"  # an 8 GB card
    message = str(DeviceError(offload.explain_oom(needs, 6 * 2**30, "none", int8)))
    assert "offload='sequential'" in message and "quantize='int8' (about 4.7 GB" in message
    assert "quantize" not in str(DeviceError(offload.explain_oom(needs, 3 * 2**30, "none", int8)))  # 4.7 > 3 GB


def test_releasing_sequential_offload_leaves_a_plain_model(dit):
    """A benchmark that tries every mode on one model must not keep the block-streaming hooks."""
    vae = weights.build(vae_preset("tiny"))
    mode = offload.make("sequential", torch.device("cpu"))
    mode.place(vae, dit)
    assert all(block._forward_pre_hooks and block._forward_hooks for block in dit.blocks)
    mode.release(vae, dit)
    assert not any(block._forward_pre_hooks or block._forward_hooks for block in dit.blocks)


def test_auto_offload_is_none_on_cpu(tiny_model):
    assert Pipeline.from_pretrained(str(tiny_model), offload="auto").offload.name == "none"


def test_out_of_memory_is_explained(tiny_model, pairs_dir, queries, cli, tmp_path, monkeypatch):
    from lavin_cli.models.dit import JDiT

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(JDiT, "forward_multi", oom)
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png", "--steps", "3")
    assert code == 5 and "out of GPU memory" in err and "--offload" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()
    pipe = Pipeline.from_pretrained(str(tiny_model))
    with pytest.raises(DeviceError, match="out of GPU memory"):
        pipe(pairs_dir, [str(queries[0])], steps=3)


def test_large_images_go_through_the_tiled_vae(tiny_model, pairs_dir, queries):
    pipe = Pipeline.from_pretrained(str(tiny_model))
    assert pipe.engine.tile((512, 512)) is None and pipe.engine.tile((1024, 768)) == 512
    pipe.engine.vae_tile = 32  # tile anything above 32 px: the tiled path end to end, at test cost
    result = pipe(pairs_dir, [str(queries[0])], size=64, steps=3)
    assert result.predictions[0].image.shape[:2] == (30, 45) and result.predictions[0].error is None
