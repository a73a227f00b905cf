"""CUDA checks: attention kernels at the 3.4B block shapes, offload modes, out-of-memory advice.

Every test here needs a CUDA device and is skipped without one (CI has none); run them on a GPU
with `python -m pytest -q tests/test_gpu.py` (the whole suite runs them too). bf16 against float32
and --compile against eager run on every device in tests/test_performance.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lavin_cli import Pipeline
from lavin_cli.config import dit_preset
from lavin_cli.models import ops
from lavin_cli.runtime import attention as attention_policy
from lavin_cli.runtime import offload

pytestmark = pytest.mark.gpu  # skipped without CUDA (tests/conftest.py)

def _block_qkv(tokens: int, seed: int = 0):
    """q, k, v of one 3.4B block's joint attention: 32 query heads, 8 key/value heads of 72."""
    cfg = dit_preset("3.4B")
    heads, d = cfg.num_heads, cfg.hidden_size // cfg.num_heads
    kv = heads // cfg.kv_group
    gen = torch.Generator(device="cuda").manual_seed(seed)
    make = lambda h: torch.randn(2, tokens, h, d, device="cuda", generator=gen, dtype=torch.bfloat16)  # noqa: E731
    return make(heads), make(kv), make(kv)


def _reference(q, k, v, chunk: int = 1024) -> torch.Tensor:
    """The float32 math reference, a chunk of queries at a time (the full score matrix is GBs)."""
    return torch.cat([ops.attention_math(q[:, i:i + chunk].float(), k.float(), v.float())
                      for i in range(0, q.shape[1], chunk)], dim=1)


# 512 px with 4 pairs: 10 latent frames of 32 x 32 tokens; 256 px with 8 pairs: 18 of 16 x 16
@pytest.mark.parametrize("tokens", [10 * 32 * 32, 18 * 16 * 16])
def test_every_attention_kernel_matches_the_math_reference_at_3_4b_shapes(tokens):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = _block_qkv(tokens)
    ref = _reference(q, k, v)
    scale = ref.abs().max().item()
    results = {}
    kernels = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
    small = tokens < 5000  # the math kernels hold the whole score matrix: 27 GB in float32 at 10240 tokens
    if small:
        kernels["math"] = SDPBackend.MATH
    for name, kernel in kernels.items():
        try:
            with sdpa_kernel([kernel]):
                results[f"sdpa-{name}"] = ops.attention(q, k, v, "sdpa")
        except RuntimeError as exc:  # a kernel that does not take these shapes says so; flash must
            assert name != "flash", f"SDPA flash refused the 3.4B shapes: {exc}"
    if attention_policy.xformers_status(0)[0]:
        results["xformers"] = ops.attention(q, k, v, "xformers")
    if small:
        results["lavin-math"] = ops.attention(q, k, v, "math")
    assert "sdpa-flash" in results
    for name, out in results.items():
        err = (out.float() - ref).abs()
        assert err.max().item() < 2e-2 * max(scale, 1.0) and err.mean().item() < 2e-3, (name, err.max().item())


def test_auto_attention_picks_sdpa_on_hopper_and_xformers_before_it_where_it_works():
    works, reason = attention_policy.xformers_status(0)
    expected = "sdpa" if torch.cuda.get_device_capability(0)[0] >= 9 else "xformers" if works else "sdpa"
    assert attention_policy.resolve_backend("auto", torch.device("cuda")) == expected, reason


def _predict(model, pairs_dir, queries, **load):
    pipe = Pipeline.from_pretrained(str(model), device="cuda", **load)
    result = pipe(pairs_dir, [str(q) for q in queries], steps=5)
    assert all(p.error is None for p in result.predictions)
    return [p.image for p in result.predictions]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_offload_modes_give_identical_predictions(tiny_model, pairs_dir, queries, dtype):
    base = _predict(tiny_model, pairs_dir, queries, dtype=dtype, offload="none")
    for mode in ("model", "sequential"):
        for a, b in zip(base, _predict(tiny_model, pairs_dir, queries, dtype=dtype, offload=mode)):
            assert np.array_equal(a, b), mode


def test_sequential_offload_waits_for_a_late_prefetch(tiny_model, pairs_dir, queries, monkeypatch):
    """The side-stream copy of each prefetched block is made late and poisoned: its device memory
    is filled with NaN, a long sleep kernel is queued, then the real copy. If the compute stream
    did not wait for the side stream, a block would read NaN (or a stale block) and the
    prediction would differ or fail."""
    base = _predict(tiny_model, pairs_dir, queries, offload="none")
    real = offload.SequentialOffload.fetch

    def late_fetch(self, block):
        if self._stream is None or torch.cuda.current_stream(self.device) != self._stream:
            return real(self, block)
        moving = [p for p in block.parameters() if p.device != self.device]
        poisoned = [torch.full_like(self._home[p], float("nan"), device=self.device) for p in moving]
        torch.cuda._sleep(50_000_000)  # tens of ms of GPU cycles queued ahead of the copies
        for p, t in zip(moving, poisoned):
            p.data = t.copy_(self._home[p], non_blocking=True)

    monkeypatch.setattr(offload.SequentialOffload, "fetch", late_fetch)
    for a, b in zip(base, _predict(tiny_model, pairs_dir, queries, offload="sequential")):
        assert np.array_equal(a, b)


def test_sequential_offload_keeps_block_weights_off_the_gpu(tiny_model, pairs_dir, queries):
    pipe = Pipeline.from_pretrained(str(tiny_model), device="cuda", offload="sequential")
    pipe(pairs_dir, [str(queries[0])], steps=3)
    assert all(p.device.type == "cpu" and p.is_pinned() for p in pipe.dit.blocks.parameters())
    assert all(p.device.type == "cuda" for p in pipe.dit.final.parameters())


def test_auto_dtype_is_bf16_on_cuda(tiny_model):
    assert Pipeline.from_pretrained(str(tiny_model), device="cuda").dtype == torch.bfloat16


def test_too_little_gpu_memory_is_answered_with_the_offload_advice(tiny_model, pairs_dir, queries):
    """The GPU filled up to 256 MB by another tensor: a 2048 px run is refused (or its real
    out-of-memory error turned into advice), and the same pipeline works once memory is back."""
    from lavin_cli.errors import DeviceError

    pipe = Pipeline.from_pretrained(str(tiny_model), device="cuda")
    blocker = torch.empty(torch.cuda.mem_get_info()[0] - 256 * 2**20, dtype=torch.uint8, device="cuda")
    try:
        with pytest.raises(DeviceError, match="offload"):
            pipe(pairs_dir, [str(queries[0])], size=2048, steps=2)
    finally:
        del blocker
        torch.cuda.empty_cache()
    assert pipe(pairs_dir, [str(queries[0])], steps=2).predictions[0].error is None


def test_model_offload_copies_nothing_back(tiny_model, pairs_dir, queries):
    """After a stage the device copy is dropped and each weight points at its pinned home copy
    again (same memory as before the run): a copy back would cost seconds for a 3.4B model."""
    pipe = Pipeline.from_pretrained(str(tiny_model), device="cuda", offload="model")
    weights = [*pipe.dit.parameters(), *pipe.vae.parameters()]
    before = [p.data_ptr() for p in weights]
    assert all(p.device.type == "cpu" and p.is_pinned() for p in weights)
    assert pipe(pairs_dir, [str(queries[0])], steps=2).predictions[0].error is None
    assert [p.data_ptr() for p in weights] == before


def test_bf16_rms_norm_needs_no_float32_copy_on_cuda():
    """The kernel accumulates bf16 in float32: the same values as normalising an upcast copy."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = (3 * torch.randn(2, 4096, 2304, device="cuda", generator=gen)).bfloat16()
    w = (1 + 0.1 * torch.randn(2304, device="cuda", generator=gen)).bfloat16()
    for weight in (None, w):
        upcast = torch.nn.functional.rms_norm(x.float(), (2304,), eps=1e-6)
        upcast = (upcast if weight is None else upcast * weight.float()).bfloat16()
        direct = ops.rms_norm(x, weight)
        assert direct.dtype == torch.bfloat16
        # at most one bf16 rounding step apart (summation order), almost always equal
        diff = (direct.float() - upcast.float()).abs() / upcast.float().abs().clamp_min(1e-3)
        assert diff.max().item() <= 2 ** -7 and (direct != upcast).float().mean().item() < 1e-3


def test_compiled_blocks_serve_new_layouts_with_inductor_on_cuda():
    """--compile in a server: layouts after the first make their changing sizes symbolic
    (engine.compile_blocks); inductor must compile those dynamic graphs on CUDA, in bf16, with
    xformers or SDPA as the attention, and stay within compile's bf16 bound of eager."""
    import dataclasses

    from torch._dynamo.utils import counters

    from lavin_cli.inference.engine import compile_blocks
    from lavin_cli.models.dit import JDiT

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    dit = JDiT(dataclasses.replace(dit_preset("tiny"), depth=3)).to("cuda", torch.bfloat16).eval()
    layouts = [(1, 3, 1, 8, 8), (2, 3, 1, 8, 8), (1, 5, 1, 6, 10), (2, 7, 1, 4, 4), (1, 9, 2, 8, 8), (3, 4, 1, 12, 8)]
    make = lambda *shape: torch.randn(*shape, device="cuda", dtype=torch.bfloat16)  # noqa: E731
    inputs = [(make(b, 16, frames, h, w), make(b, 16, ctx, h, w)) for b, ctx, frames, h, w in layouts]
    with torch.no_grad():
        expected = [dit(t, torch.full((len(t),), 0.3, device="cuda"), c).float() for t, c in inputs]
        compile_blocks(dit)
        for (t, c), want in zip(inputs, expected):
            got = dit(t, torch.full((len(t),), 0.3, device="cuda"), c).float()
            assert (got - want).abs().mean() < 0.02 * want.abs().mean(), (got - want).abs().mean()
    assert counters["stats"]["unique_graphs"] <= 5 and counters["frames"]["total"] == counters["frames"]["ok"]
    torch._dynamo.reset()
