"""Attention backends, GQA and 3D RoPE."""

from __future__ import annotations

import pytest
import torch

from lavin_cli.errors import DeviceError, OptionError
from lavin_cli.models import ops
from lavin_cli.runtime import attention as attention_policy


def _qkv(hq=8, hkv=2, length=37, d=24, b=2, seed=0, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    make = lambda h: torch.randn(b, length, h, d, generator=g).to(device, dtype)  # noqa: E731
    return make(hq), make(hkv), make(hkv)


def _available_backends(device: torch.device) -> list[str]:
    names = ["sdpa", "math"]
    if device.type == "cuda" and attention_policy.xformers_status(device.index or 0)[0]:
        names.append("xformers")
    return names


def test_gqa_equals_full_attention_with_repeated_kv():
    q, k, v = _qkv(hq=8, hkv=2)
    groups = 4
    full = ops.attention_math(q, k.repeat_interleave(groups, dim=2), v.repeat_interleave(groups, dim=2))
    for backend in ("sdpa", "math"):
        assert torch.allclose(ops.attention(q, k, v, backend), full, atol=1e-5)
    # the head mapping is repeat_interleave (h // groups), not repeat (h % groups)
    wrong = ops.attention_math(q, k.repeat(1, 1, groups, 1), v.repeat(1, 1, groups, 1))
    assert (wrong - full).abs().max() > 1e-2


def test_sdpa_gqa_does_not_repeat_kv(monkeypatch):
    """The SDPA backend hands K/V with their own head count to torch (enable_gqa)."""
    seen = {}
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen["kv_heads"], seen["gqa"] = k.shape[1], kw.get("enable_gqa")
        return real(q, k, v, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    q, k, v = _qkv(hq=8, hkv=2)
    ops.attention_sdpa(q, k, v)
    assert seen == {"kv_heads": 2, "gqa": True}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_every_backend_matches_math_reference(device):
    dev = torch.device(device)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    q, k, v = _qkv(device=dev, dtype=dtype, hq=32, hkv=8, d=72, length=300)
    ref = ops.attention_math(q.float(), k.float(), v.float())
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for backend in _available_backends(dev):
        out = ops.attention(q, k, v, backend).float()
        assert (out - ref).abs().max().item() < tol, backend


def test_resolve_backend_on_cpu_never_picks_xformers():
    cpu = torch.device("cpu")
    assert attention_policy.resolve_backend("auto", cpu) == "sdpa"
    with pytest.raises(DeviceError, match="CUDA"):
        attention_policy.resolve_backend("xformers", cpu)
    with pytest.raises(OptionError, match="not a backend"):
        attention_policy.resolve_backend("flash9", cpu)


def test_rope_scores_depend_only_on_relative_position():
    """<R(p) q, R(p') k> is a function of p - p' along every axis."""
    dims = (8, 8, 8)
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 1, 1, 24, generator=g)
    k = torch.randn(1, 1, 1, 24, generator=g)

    def score(pq, pk):
        tq = ops.rope_tables(torch.tensor([pq], dtype=torch.float32), dims)
        tk = ops.rope_tables(torch.tensor([pk], dtype=torch.float32), dims)
        return (ops.apply_rope(q, tq) * ops.apply_rope(k, tk)).sum().item()

    base = score((3.0, 5.0, 7.0), (1.0, 2.0, 4.0))
    shifted = score((13.0, 9.0, 8.0), (11.0, 6.0, 5.0))  # both moved by (10, 4, 1)
    assert abs(base - shifted) < 1e-4
    assert abs(base - score((4.0, 5.0, 7.0), (1.0, 2.0, 4.0))) > 1e-3  # a different offset matters


def test_rope_is_a_rotation():
    q, _, _ = _qkv(hq=4, length=48, d=24)
    tables = ops.rope_tables(ops.grid_positions(3, 4, 4), (8, 8, 8))
    assert torch.allclose(ops.apply_rope(q, tables).norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    zero = ops.rope_tables(torch.zeros(48, 3), (8, 8, 8))
    assert torch.allclose(ops.apply_rope(q, zero), q)


def test_rope_uneven_split_for_64_dim_heads():
    from lavin_cli.config import DiTConfig

    assert DiTConfig(hidden_size=512, depth=1, num_heads=8).rope_dims == (20, 22, 22)
    assert DiTConfig(hidden_size=2304, depth=1, num_heads=32).rope_dims == (24, 24, 24)
    q, _, _ = _qkv(hq=2, length=12, d=64)
    tables = ops.rope_tables(ops.grid_positions(2, 2, 3), (20, 22, 22))
    assert torch.allclose(ops.apply_rope(q, tables).norm(dim=-1), q.norm(dim=-1), atol=1e-5)


def test_rms_norm_keeps_dtype_and_computes_in_float32():
    x = torch.randn(4, 64, dtype=torch.bfloat16) * 100
    y = ops.rms_norm(x, torch.ones(64))
    assert y.dtype == torch.bfloat16
    ref = x.float() / x.float().pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    assert torch.allclose(y.float(), ref, atol=2e-2)
