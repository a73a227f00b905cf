"""Where model weights live while the pipeline runs: one strategy, applied in one place.

    none        VAE and DiT stay on the execution device.
    model       both wait on the CPU; the component in use (VAE encode, DiT, VAE decode) is
                moved to the device for its stage and back afterwards.
    sequential  the VAE as in `model`; the DiT's small layers stay on the device and its blocks
                wait on the CPU (pinned memory on CUDA) and are streamed in one at a time, the
                next block's copy overlapping the current block's compute.
On a CPU execution device every mode computes the same thing with no copies.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from lavin_cli.errors import OptionError

MODES = ("none", "model", "sequential")  # fastest first; "auto" picks among them
CPU = torch.device("cpu")


class Offload:
    """`none`: everything on the device."""

    name = "none"

    def __init__(self, device: torch.device):
        self.device = device

    def place(self, vae: nn.Module, dit: nn.Module) -> None:
        vae.to(self.device)
        dit.to(self.device)

    @contextmanager
    def using(self, module: nn.Module):
        yield module

    def release(self, vae: nn.Module, dit: nn.Module) -> None:
        """Undo `place`: every weight back in main memory, no hooks left, device memory freed."""
        vae.to(CPU)
        dit.to(CPU)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class ModelOffload(Offload):
    """Weights wait in main memory (pinned on CUDA, so a copy in is fast and asynchronous); a
    stage's module is copied in for the stage and its device copy dropped afterwards. The
    weights are frozen, so nothing is copied back: the module points at its home copy again."""

    name = "model"

    def __init__(self, device: torch.device):
        super().__init__(device)
        self._home: dict[torch.Tensor, torch.Tensor] = {}  # parameter or buffer -> its main-memory copy

    def place(self, vae: nn.Module, dit: nn.Module) -> None:
        self._keep_home(vae)
        self._keep_home(dit)

    def _keep_home(self, module: nn.Module) -> None:
        for t in _tensors(module):
            if t not in self._home:
                self._home[t] = _pinned(t.data.to(CPU), self.device)
                t.data = self._home[t]

    @contextmanager
    def using(self, module: nn.Module):
        self._keep_home(module)
        for t in _tensors(module):
            t.data = self._home[t].to(self.device, non_blocking=True)
        try:
            yield module
        finally:
            for t in _tensors(module):
                t.data = self._home[t]
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def release(self, vae: nn.Module, dit: nn.Module) -> None:
        for t, home in self._home.items():
            t.data = home
        self._home.clear()
        super().release(vae, dit)


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def _pinned(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Page-locked where the device is CUDA (fast asynchronous copies); pageable if the system
    refuses to lock that much memory."""
    if device.type != "cuda":
        return t
    try:
        return t.pin_memory()
    except RuntimeError:
        return t


class SequentialOffload(ModelOffload):
    name = "sequential"

    def __init__(self, device: torch.device):
        super().__init__(device)
        self._hooks: list = []
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def place(self, vae: nn.Module, dit: nn.Module) -> None:
        self._keep_home(vae)
        blocks = list(dit.blocks)
        for block in blocks:
            self._keep_home(block)
        for name, child in dit.named_children():
            if name != "blocks":
                child.to(self.device)
        for p in dit._parameters.values():
            if p is not None:
                p.data = p.data.to(self.device)
        for i, block in enumerate(blocks):
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            self._hooks.append(block.register_forward_pre_hook(self._arrive(block, nxt)))
            self._hooks.append(block.register_forward_hook(self._leave(block)))

    def fetch(self, block: nn.Module) -> None:
        """Start copying `block`'s tensors that are not on the device yet (on the current stream)."""
        for p in _tensors(block):
            if p.device != self.device:
                p.data = self._home[p].to(self.device, non_blocking=True)

    def _arrive(self, block: nn.Module, nxt: nn.Module | None):
        def hook(_module, _args):
            if self._stream is not None:
                compute = torch.cuda.current_stream(self.device)
                compute.wait_stream(self._stream)
                for p in _tensors(block):
                    if p.device == self.device:
                        # copied on the side stream, read on this one: the allocator must not reuse
                        # the memory until this stream's queued work is done, even once we drop it
                        p.data.record_stream(compute)
            self.fetch(block)  # nothing to do when it was prefetched
            if nxt is not None:
                if self._stream is not None:
                    with torch.cuda.stream(self._stream):
                        self.fetch(nxt)
                else:
                    self.fetch(nxt)
        return hook

    def _leave(self, block: nn.Module):
        def hook(_module, _args, _output):
            for p in _tensors(block):  # weights are frozen: drop the device copy
                p.data = self._home[p]
        return hook

    def release(self, vae: nn.Module, dit: nn.Module) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        super().release(vae, dit)

    @contextmanager
    def using(self, module: nn.Module):
        if hasattr(module, "blocks"):  # the DiT streams itself through its block hooks
            yield module
        else:
            with super().using(module):
                yield module


def make(mode: str, device: torch.device) -> Offload:
    classes = {"none": Offload, "model": ModelOffload, "sequential": SequentialOffload}
    if mode not in classes:
        raise OptionError("offload", f"{mode!r} is not an offload mode; choose one of {', '.join(MODES)} or auto")
    return classes[mode](device)


def _params(config) -> tuple[int, int]:
    """(all parameters, parameters in the repeated blocks) of a config, counted on the meta device."""
    from lavin_cli.models.dit import JDiT
    from lavin_cli.models.vae import STVAE

    with torch.device("meta"):
        model = (STVAE if hasattr(config, "block_out_channels") else JDiT)(config)
    blocks = getattr(model, "blocks", None)
    return sum(p.numel() for p in model.parameters()), sum(p.numel() for p in blocks.parameters()) if blocks else 0


def estimate(dit_cfg, vae_cfg, dtype: torch.dtype, size: tuple[int, int], pairs: int, batch: int = 1,
             frames: int = 1, int8: bool = False) -> dict[str, int]:
    """Peak device bytes of one guided prediction per mode (a planning estimate, before loading).

    Weights at `dtype` (the DiT blocks' at one byte with `int8`, plus the widest layer dequantized
    while it computes); DiT activations of the packed [cond, null] pass (token count x the widest
    layer outputs); VAE activations of its widest feature map at full resolution.
    """
    nbytes = torch.tensor([], dtype=dtype).element_size()
    (dit_n, blocks_n), (vae_n, _) = _params(dit_cfg), _params(vae_cfg)
    block_bytes = 1 if int8 else nbytes
    dit_w, vae_w = (dit_n - blocks_n) * nbytes + blocks_n * block_bytes, vae_n * nbytes
    block_w = blocks_n * block_bytes // max(dit_cfg.depth, 1)
    h, w = size
    latent_frames = 1 + (frames - 1) // 4
    tokens_per_frame = (h // 16) * (w // 16)
    tokens = batch * tokens_per_frame * ((2 * pairs + 1 + 1) * latent_frames + (2 + 1) * latent_frames)
    dit_act = int(tokens * (4 * dit_cfg.hidden_size + 3 * dit_cfg.mlp_hidden) * nbytes * 1.5)
    dit_act += 2 * dit_cfg.mlp_hidden * dit_cfg.hidden_size * nbytes if int8 else 0
    vae_act = int(batch * frames * vae_cfg.block_out_channels[0] * h * w * max(nbytes, 4) * 6)
    return {
        "none": dit_w + vae_w + max(dit_act, vae_act),
        "model": max(dit_w + dit_act, vae_w + vae_act),
        "sequential": max(dit_w - dit_cfg.depth * block_w + 2 * block_w + dit_act, vae_w + vae_act),
    }


def choose(needs: dict[str, int], free: int) -> str | None:
    """The fastest mode whose estimate fits in 90% of the free memory."""
    for mode in MODES:
        if needs[mode] <= 0.9 * free:
            return mode
    return None


def explain_oom(needs: dict[str, int], free: int, current: str, int8_needs: dict[str, int] | None = None) -> str:
    """The out-of-memory message: the next offload mode that fits, and where the weights are not
    int8 yet (`int8_needs`: their estimate as int8), whether int8 weights would fit without it."""
    gb = lambda b: f"{b / 2**30:.1f} GB"  # noqa: E731
    fits = [m for m in MODES if needs[m] <= 0.9 * free and MODES.index(m) > MODES.index(current)]
    hint = f"use {{{{offload={fits[0]}}}}} (about {gb(needs[fits[0]])})" if fits else \
        "use {{offload=sequential}} with a smaller {{size}}, fewer {{pairs}} or {{batch_size=1}}"
    if int8_needs and int8_needs[current] <= 0.9 * free:
        hint += f", or {{{{quantize=int8}}}} (about {gb(int8_needs[current])} with this offload mode)"
    return (f"out of GPU memory with {{{{offload={current}}}}} (estimated {gb(needs[current])}, "
            f"{gb(free)} free before the run): {hint}")
