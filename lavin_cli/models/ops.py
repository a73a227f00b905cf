"""Pure tensor functions shared by the models: attention kernels, 3D RoPE, RMS norm.

Which attention kernel runs where is decided in lavin_cli/runtime/attention.py.

Layout convention for attention: q (B, L, Hq, D), k and v (B, L, Hkv, D) with Hq a multiple of
Hkv; query head h reads key/value head h // (Hq // Hkv) (flash-attn's GQA convention, i.e. K/V
repeated with `repeat_interleave`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lavin_cli.choices import ATTENTION_KERNELS

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Reference: explicit softmax in float32, K/V repeated per query head."""
    groups = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(groups, dim=2)
    v = v.repeat_interleave(groups, dim=2)
    scale = q.shape[-1] ** -0.5
    scores = torch.einsum("blhd,bmhd->bhlm", q.float(), k.float()) * scale
    out = torch.einsum("bhlm,bmhd->blhd", scores.softmax(dim=-1), v.float())
    return out.to(q.dtype)


def attention_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch SDPA (flash / memory-efficient / math kernels); GQA without repeating K/V."""
    gqa = q.shape[2] != k.shape[2]
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), enable_gqa=gqa
    )
    return out.transpose(1, 2)


def attention_xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """xformers memory-efficient attention, GQA through its 5-D (B, L, G, H/G, D) layout."""
    import xformers.ops as xops  # imported only here, on CUDA, after the capability check

    b, length, hq, d = q.shape
    hkv = k.shape[2]
    if hkv == hq:
        return xops.memory_efficient_attention(q, k, v)
    g = hq // hkv
    q5 = q.reshape(b, length, hkv, g, d)  # head h = kv_head * g + j
    k5 = k.reshape(b, k.shape[1], hkv, 1, d).expand(-1, -1, -1, g, -1)
    v5 = v.reshape(b, v.shape[1], hkv, 1, d).expand(-1, -1, -1, g, -1)
    return xops.memory_efficient_attention(q5, k5, v5).reshape(b, length, hq, d)


FUNCTIONS: dict[str, AttentionFn] = {name: globals()[f"attention_{name}"] for name in ATTENTION_KERNELS}


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "sdpa") -> torch.Tensor:
    """Non-causal multi-head attention with scale head_dim**-0.5; see the module doc for layout."""
    return FUNCTIONS[backend](q, k, v)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16/fp16 -> float32; float64 stays)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6) -> torch.Tensor:
    """RMS norm over the last axis, computed in at least float32, returned in x's dtype.

    torch's kernel accumulates a bf16/fp16 input in float32 and rounds once, so x goes in as it
    is: upcasting first gives the same values at the cost of two copies of the whole tensor (15
    of 180 ms of a 3.4B step on an H100). Only a weight of another dtype takes the upcast path.
    """
    if weight is None or weight.dtype == x.dtype:
        return F.rms_norm(x, (x.shape[-1],), weight=weight, eps=eps)
    xf = upcast(x)
    return (F.rms_norm(xf, (x.shape[-1],), eps=eps) * weight.to(xf.dtype)).to(x.dtype)


def grid_positions(frames: int, rows: int, cols: int, device=None) -> torch.Tensor:
    """(L, 3) float32 (t, h, w) positions of a frames x rows x cols token grid, row-major."""
    t, h, w = torch.meshgrid(
        torch.arange(frames, dtype=torch.float32, device=device),
        torch.arange(rows, dtype=torch.float32, device=device),
        torch.arange(cols, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack([t.reshape(-1), h.reshape(-1), w.reshape(-1)], dim=-1)


def rope_tables(
    positions: torch.Tensor, dims: tuple[int, int, int], base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 tables for `apply_rope`: cos (L, D), signed sin (L, D) and the rotate-half index.

    Each axis chunk of size d uses inv_freq_j = base**(-2j/d), j < d/2, and the rotate-half
    convention: the chunk's first half pairs with its second half (not interleaved pairs).
    """
    cos_parts, sin_parts, index, offset = [], [], [], 0
    for axis, d in enumerate(dims):
        inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, device=positions.device)[: d // 2].float() / d))
        freqs = positions[:, axis : axis + 1] * inv_freq[None, :]  # (L, d/2)
        cos, sin = freqs.cos(), freqs.sin()
        cos_parts += [cos, cos]
        sin_parts += [-sin, sin]  # rotate_half(x) = (-x2, x1)
        half = d // 2
        index += list(range(offset + half, offset + d)) + list(range(offset, offset + half))
        offset += d
    perm = torch.tensor(index, device=positions.device)
    return torch.cat(cos_parts, dim=-1), torch.cat(sin_parts, dim=-1), perm


def apply_rope(x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate x (B, L, heads, D) in at least float32 by `rope_tables`' tables; returns x's dtype."""
    cos, sin, perm = tables
    xf = upcast(x)
    out = xf * cos[:, None, :].to(xf.dtype) + xf[..., perm] * sin[:, None, :].to(xf.dtype)
    return out.to(x.dtype)
