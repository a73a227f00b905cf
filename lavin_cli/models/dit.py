"""J-DiT: the joint diffusion transformer of LaVin-DiT.

Two token streams with their own weights, one joint attention:
    cond   = clean latents of the context pairs and the query   (B, C, T_c, H, W)
    target = noisy latents of the answer being generated         (B, C, T_x, H, W)
Each block modulates both streams from the timestep (scale and tanh gate, no shift), projects
them separately, attends over the concatenated sequence [cond, target] with GQA, QK RMS-norm and
3D RoPE over (frame, row, col), and runs a SwiGLU MLP per stream; sandwich RMS norms wrap both
sub-layers. Only the target stream reaches the output: the velocity of the flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from lavin_cli.config import DiTConfig
from lavin_cli.models.ops import apply_rope, attention, grid_positions, rms_norm, rope_tables


class PatchEmbed(nn.Module):
    """2x2 latent patches -> tokens: Linear then affine LayerNorm."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.patch = cfg.patch_size
        self.proj = nn.Linear(cfg.patch_dim, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=1e-5)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        # channel fastest inside a patch, as the official checkpoints expect
        tokens = rearrange(latents, "b c t (h ph) (w pw) -> b (t h w) (ph pw c)", ph=self.patch, pw=self.patch)
        return self.norm(self.proj(tokens.to(self.proj.weight.dtype)))


class TimestepEmbed(nn.Module):
    """Sinusoidal embedding of t in [0, 1] (not scaled), order [cos, sin], then an MLP."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.freq_dim = cfg.time_freq_dim
        self.fc1 = nn.Linear(cfg.time_freq_dim, cfg.hidden_size)
        self.fc2 = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([args.cos(), args.sin()], dim=-1).to(self.fc1.weight.dtype)
        return self.fc2(F.silu(self.fc1(emb)))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up fused into one projection."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Stream(nn.Module):
    """The per-stream weights of one block: modulation, fused QKV, QK norms, output, MLP."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d, hd = cfg.hidden_size, cfg.head_dim
        self.heads, self.kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, hd
        self.mod = nn.Linear(d, 4 * d)
        self.qkv = nn.Linear(d, (cfg.num_heads + 2 * cfg.num_kv_heads) * hd, bias=False)
        self.q_norm = nn.Parameter(torch.ones(cfg.num_heads * hd))
        self.k_norm = nn.Parameter(torch.ones(cfg.num_kv_heads * hd))
        self.out = nn.Linear(cfg.num_heads * hd, d, bias=False)
        self.mlp = SwiGLU(d, cfg.mlp_hidden)

    def modulation(self, t: torch.Tensor) -> list[torch.Tensor]:
        """[scale_attn, gate_attn, scale_mlp, gate_mlp], each (B, 1, D); gates through tanh."""
        scale_a, gate_a, scale_m, gate_m = self.mod(F.silu(t)).unsqueeze(1).chunk(4, dim=-1)
        return [scale_a, gate_a.tanh(), scale_m, gate_m.tanh()]

    def qkv_heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> q (B, L, Hq, hd), k and v (B, L, Hkv, hd); QK norms span all heads."""
        nq, nkv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = self.qkv(h).split([nq, nkv, nkv], dim=-1)
        q = rms_norm(q, self.q_norm)
        k = rms_norm(k, self.k_norm)
        split = lambda x: rearrange(x, "b l (n d) -> b l n d", d=self.head_dim)  # noqa: E731
        return split(q), split(k), split(v)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (training only). `training` is tested first: a compiled block
    then guards on it alone, not on each block's own `p` (a ramp over the blocks), so one graph
    serves every block at inference."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - p)
    return x * keep / (1 - p)


@dataclass(frozen=True)
class Segment:
    """One joint-attention sequence inside a packed batch: its cond and target token ranges and
    its RoPE tables. Several segments share one pass through every linear layer."""

    cond: slice
    target: slice
    rope: tuple


class CondCache:
    """Keys and values of the condition tokens, per block and segment, kept from a full pass.

    The condition is clean and the same at every sampling step; only its modulation (by t) and
    its attention to the few target tokens change. A pass that reuses the cache runs the target
    stream alone, attending to the kept condition keys and values: the condition tokens, most of
    the sequence, cost nothing. `fill` is set for the passes that refresh it.
    """

    def __init__(self):
        self.kv: dict[int, list] = {}  # block index -> [(keys with RoPE, values) per segment]
        self.fill = True


class Block(nn.Module):
    def __init__(self, cfg: DiTConfig, drop: float = 0.0):
        super().__init__()
        self.cond = Stream(cfg)
        self.target = Stream(cfg)
        self.drop = drop

    def _attend_target(self, x_h, segments: list[Segment], kept: list, backend: str):
        """The target stream alone, attending to the condition's kept keys and values."""
        qx, kx, vx = self.target.qkv_heads(x_h)
        out_x = qx.new_empty(qx.shape)
        for seg, (kc, vc) in zip(segments, kept):
            n = kc.shape[1]
            rope = tuple(table[n:] for table in seg.rope[:2]) + (seg.rope[2],)
            q = apply_rope(qx[:, seg.target], rope)
            k = torch.cat([kc, apply_rope(kx[:, seg.target], rope)], dim=1)
            out_x[:, seg.target] = attention(q, k, torch.cat([vc, vx[:, seg.target]], dim=1), backend)
        return self.target.out(out_x.flatten(2))

    def forward_target(self, x, t_x, segments: list[Segment], kept: list, backend: str):
        """One block for the target stream only (see CondCache)."""
        mod_x = self.target.modulation(t_x)
        a_x = self._attend_target((1 + mod_x[0]) * rms_norm(x, None), segments, kept, backend)
        x = x + mod_x[1] * rms_norm(a_x, None)
        h_x = self.target.mlp((1 + mod_x[2]) * rms_norm(x, None))
        return x + mod_x[3] * rms_norm(h_x, None)

    def _attend(self, cond_h, x_h, segments: list[Segment], backend: str, keep: list | None = None):
        """Per-stream projections over all tokens at once; attention within each segment. With
        `keep` (a list), each segment's condition keys (with RoPE) and values are appended to it."""
        qc, kc, vc = self.cond.qkv_heads(cond_h)
        qx, kx, vx = self.target.qkv_heads(x_h)
        out_c = qc.new_empty(qc.shape)
        out_x = qx.new_empty(qx.shape)
        for seg in segments:
            n = seg.cond.stop - seg.cond.start
            q = apply_rope(torch.cat([qc[:, seg.cond], qx[:, seg.target]], dim=1), seg.rope)
            k = apply_rope(torch.cat([kc[:, seg.cond], kx[:, seg.target]], dim=1), seg.rope)
            v = torch.cat([vc[:, seg.cond], vx[:, seg.target]], dim=1)
            if keep is not None:
                keep.append((k[:, :n], v[:, :n]))
            o = attention(q, k, v, backend)
            out_c[:, seg.cond], out_x[:, seg.target] = o[:, :n], o[:, n:]
        return self.cond.out(out_c.flatten(2)), self.target.out(out_x.flatten(2))

    def forward(self, cond, x, t_cond, t_x, segments: list[Segment], backend: str, keep: list | None = None):
        mod_c, mod_x = self.cond.modulation(t_cond), self.target.modulation(t_x)
        a_c, a_x = self._attend((1 + mod_c[0]) * rms_norm(cond, None), (1 + mod_x[0]) * rms_norm(x, None), segments,
                                backend, keep)
        cond = cond + drop_path(mod_c[1] * rms_norm(a_c, None), self.drop, self.training)
        x = x + drop_path(mod_x[1] * rms_norm(a_x, None), self.drop, self.training)

        # per-stream SwiGLU
        h_c = self.cond.mlp((1 + mod_c[2]) * rms_norm(cond, None))
        h_x = self.target.mlp((1 + mod_x[2]) * rms_norm(x, None))
        cond = cond + drop_path(mod_c[3] * rms_norm(h_c, None), self.drop, self.training)
        x = x + drop_path(mod_x[3] * rms_norm(h_x, None), self.drop, self.training)
        return cond, x


class FinalLayer(nn.Module):
    """RMS norm, timestep scale, linear to one patch of latent channels."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.mod = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.proj = nn.Linear(cfg.hidden_size, cfg.patch_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale = self.mod(F.silu(t)).unsqueeze(1)
        return self.proj((1 + scale) * rms_norm(x, None))


class JDiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        self.cond_embed = PatchEmbed(cfg)
        self.target_embed = PatchEmbed(cfg)
        self.cond_type = nn.Parameter(torch.zeros(1, cfg.hidden_size))  # "prompt" embedding
        self.target_type = nn.Parameter(torch.zeros(1, cfg.hidden_size))  # "answer" embedding
        self.time_embed = TimestepEmbed(cfg)
        drops = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linear ramp
        self.blocks = nn.ModuleList(Block(cfg, drops[i]) for i in range(cfg.depth))
        self.final = FinalLayer(cfg)

    def forward(self, target: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, attention: str = "sdpa") -> torch.Tensor:
        """Velocity for noisy `target` (B, C, T_x, H, W) at times t (B,) given `cond` (B, C, T_c, H, W),
        attention computed by the kernel named `attention` (ops.FUNCTIONS; the caller chooses).

        H and W must be multiples of the patch size. Returns float32 (B, C, T_x, H, W).
        """
        return self.forward_multi(target, t, [cond], attention=attention)[0]

    def forward_multi(self, target: torch.Tensor, t: torch.Tensor, conds: list[torch.Tensor],
                      cache: CondCache | None = None, attention: str = "sdpa") -> list[torch.Tensor]:
        """The velocity of the same `target` under each condition (any frame counts), in one pass.

        The conditions' tokens and one copy of the target per condition are packed along the
        sequence; every linear layer runs once over all of them, and attention stays within each
        (condition, target copy) segment, whose RoPE time positions start after its own
        condition. Used for classifier-free guidance: [cond, null] at once. With a `cache`, a
        pass either refreshes it (cache.fill) or runs the target stream alone on what it holds.
        """
        p = self.cfg.patch_size
        _, _, t_x, height, width = target.shape
        hp, wp = height // p, width // p
        x_tokens = t_x * hp * wp
        segments, c_start = [], 0
        for n, cond in enumerate(conds):
            c_len = cond.shape[2] * hp * wp
            positions = grid_positions(cond.shape[2] + t_x, hp, wp, device=target.device)
            segments.append(Segment(slice(c_start, c_start + c_len), slice(n * x_tokens, (n + 1) * x_tokens),
                                    rope_tables(positions, self.cfg.rope_dims, self.cfg.rope_base)))
            c_start += c_len

        x = self.target_embed(target).repeat(1, len(conds), 1)
        if t.numel() > 1 and bool((t == t[:1]).all()):
            t = t[:1]  # one time for the whole batch (sampling): its embedding broadcasts, whatever the batch
        t_emb = self.time_embed(t)
        t_cond, t_target = t_emb + self.cond_type, t_emb + self.target_type
        if cache is not None and not cache.fill:
            for i, block in enumerate(self.blocks):
                x = block.forward_target(x, t_target, segments, cache.kv[i], attention)
        else:
            c = self.cond_embed(torch.cat(conds, dim=2))  # tokens of each condition, one after the other
            for i, block in enumerate(self.blocks):
                keep = cache.kv.setdefault(i, []) if cache is not None else None
                if keep is not None:
                    keep.clear()
                c, x = block(c, x, t_cond, t_target, segments, attention, keep)
        x = self.final(x, t_target)
        return [rearrange(x[:, seg.target], "b (t h w) (ph pw c) -> b c t (h ph) (w pw)", t=t_x, h=hp, ph=p, pw=p).float()
                for seg in segments]

    def new_cond_cache(self) -> CondCache:
        return CondCache()

    def init_weights(self) -> None:
        """Training initialisation (DiT recipe): xavier linears, zeroed modulations and output."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for stream in (s for b in self.blocks for s in (b.cond, b.target)):
            nn.init.ones_(stream.q_norm)
            nn.init.ones_(stream.k_norm)
            nn.init.zeros_(stream.mod.weight)
            nn.init.zeros_(stream.mod.bias)
        nn.init.normal_(self.cond_type, std=0.02)
        nn.init.normal_(self.target_type, std=0.02)
        nn.init.normal_(self.time_embed.fc1.weight, std=0.02)
        nn.init.normal_(self.time_embed.fc2.weight, std=0.02)
        for layer in (self.final.mod, self.final.proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
