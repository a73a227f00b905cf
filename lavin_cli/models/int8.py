"""Int8 weight-only linear layers: the DiT blocks' matrices in one byte per weight.

Each weight row (one output feature) is stored as int8 with one float32 scale, symmetric:
w ~= q * scale, scale = max |w_row| / 127. The layer computes in the activations' dtype, the
weight dequantized on the way in; activations, norms, embeddings and the final layer keep their
dtype. This halves a bf16 model's weight memory (the 3.4B DiT: 6.8 GB -> about 3.5 GB).

    quantize_weight(w)  -> (q, scale)
    Int8Linear          the layer (buffers `weight` int8 (out, in), `scale` float32 (out,), bias)
    quantize_blocks(dit)  the layout: every nn.Linear inside the DiT blocks an Int8Linear
    quantize_state(dit, state, dtype)  a checkpoint's tensors for that layout, quantized as read
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCHEME = "int8-weight-per-row"  # the name checkpoints carry in their metadata


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> int8 (out, in) and float32 scales (out,), rounding to nearest."""
    w = w.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """nn.Linear with an int8 weight and one scale per output feature."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scale", torch.empty(out_features, dtype=torch.float32, device=device))
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype), requires_grad=False) \
            if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.scale.to(x.dtype)[:, None]  # (out, in), dequantized
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8"


def quantize_blocks(dit: nn.Module) -> nn.Module:
    """Lay out a DiT for int8 weights: every nn.Linear inside `dit.blocks` replaced in place by an
    empty Int8Linear (on the linear's device: meta for a model about to receive a checkpoint)."""
    for block in dit.blocks:
        for _, module in list(block.named_modules()):
            for name, child in list(module.named_children()):
                if type(child) is nn.Linear:
                    layer = Int8Linear(child.in_features, child.out_features, child.bias is not None,
                                       child.weight.device, child.weight.dtype)
                    setattr(module, name, layer)
    return dit


def int8_keys(dit: nn.Module) -> set[str]:
    """The state-dict keys an int8 layout stores as they are: the layers' weights and scales."""
    return {f"{name}.{leaf}" for name, m in dit.named_modules() if isinstance(m, Int8Linear)
            for leaf in ("weight", "scale")}


def quantize_state(dit: nn.Module, state: dict, dtype: torch.dtype) -> dict:
    """A float state dict (as stored) for `dit`, laid out by quantize_blocks: each int8 layer's
    weight quantized from its stored values (its scale added), every other float cast to `dtype`.
    `state` is emptied as it goes: each float tensor is released once converted, so the peak is
    the stored state, not two copies of it."""
    kept = int8_keys(dit)
    out = {}
    for key in list(state):
        t = state.pop(key)
        if key in kept:
            out[key], out[key.rpartition(".")[0] + ".scale"] = quantize_weight(t)
        else:
            out[key] = t.to(dtype) if t.is_floating_point() else t
    return out


def is_quantized(dit: nn.Module) -> bool:
    return any(isinstance(m, Int8Linear) for m in dit.modules())
