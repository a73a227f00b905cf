"""Device and precision policy: which device and dtype to run on, and what this machine offers."""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from lavin_cli.errors import DeviceError
from lavin_cli.models import ops

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> first CUDA device if present, else CPU. Asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but this torch build sees no CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise DeviceError(f"device type {device.type!r} is not supported; use cpu or cuda")
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA (float16 where bf16 is missing), float32 on CPU."""
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in DTYPES:
        raise DeviceError(f"unknown dtype {name!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]


@dataclass(frozen=True)
class Environment:
    python: str
    torch: str
    cuda: str | None
    gpus: tuple[str, ...]
    device: str
    dtype: str
    attention: str
    attention_reason: str


def describe(device: str = "auto", attention: str = "auto") -> Environment:
    """What lavin would use here and why (xformers is only probed when a CUDA device is present)."""
    dev = pick_device(device)
    gpus = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()
    backend = ops.resolve_backend(attention, dev)
    if dev.type == "cuda":
        reason = ops.xformers_status(dev.index or 0)[1]
    else:
        reason = "CPU: torch scaled_dot_product_attention (xformers has no CPU kernels and is not imported)"
    return Environment(
        python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda, gpus=gpus,
        device=str(dev), dtype=str(pick_dtype("auto", dev)).replace("torch.", ""),
        attention=backend, attention_reason=reason,
    )
