"""Device and precision policy: which device and dtype to run on, and what this machine offers.

An unknown device or dtype name is a usage error (the options check names before anything
loads); a well-formed request the machine cannot serve (CUDA asked for but absent) is a device
error.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from lavin_cli.errors import DeviceError, OptionError
from lavin_cli.runtime import attention as attention_policy

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> first CUDA device if present, else CPU. Asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise OptionError("device", f"{name!r} is not a device; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but this torch build sees no CUDA GPU; use {{{{device=cpu}}}}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) present")
    return device


# oneDNN's ISA names below the first with bf16 dot products (ONEDNN_MAX_CPU_ISA, DNNL_MAX_CPU_ISA)
ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags /proc/cpuinfo lists (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.M)
    return frozenset(line.group(1).split()) if line else frozenset()


def onednn_isa_cap() -> str | None:
    """The ISA the user capped oneDNN at (ONEDNN_MAX_CPU_ISA, or its old name DNNL_MAX_CPU_ISA)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap else None


@lru_cache(maxsize=None)
def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (x86 AVX512-BF16 or AMX) and oneDNN,
    which runs torch's bf16 matrix products, may use it: there bf16 runs the bundled model about
    1.6x faster than float32 with the same eval metrics (README); elsewhere, a CPU without the
    instructions or oneDNN capped below them (ONEDNN_MAX_CPU_ISA=AVX2), bf16 is emulated and
    several times slower. ATen's own kernels must run at AVX512 too (ATEN_CPU_CAPABILITY=avx2
    on an AMX CPU makes torch's bf16 attention fail: 'pack_vnni2 is only supported when avx512
    is supported')."""
    if onednn_isa_cap() in ISAS_WITHOUT_BF16 or torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA (float16 where bf16 is missing); on a CPU bfloat16 where it is
    native (native_cpu_bf16), else float32."""
    if name not in DTYPES and name != "auto":
        raise OptionError("dtype", f"{name!r} is not a precision; choose auto, {', '.join(DTYPES)}")
    if name == "auto":
        if device.type != "cuda":
            return torch.bfloat16 if native_cpu_bf16() else torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[name]


def emulated_precision(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether `dtype` is emulated on `device`: bfloat16 on a CPU without native bf16 (there a
    64 px query of the bundled model measured 10x slower than float32, which 'auto' picks)."""
    return device.type == "cpu" and dtype == torch.bfloat16 and not native_cpu_bf16()


EMULATED_BF16 = ("bfloat16 on this CPU is emulated (no AVX512-BF16 or AMX): about 10x slower than float32, "
                 "which --dtype auto picks here")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


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
    """What lavin would use here and why (xformers is only probed on a CUDA GPU: older than
    Hopper, or when asked for)."""
    dev = pick_device(device)
    gpus = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()
    backend = attention_policy.resolve_backend(attention, dev)
    if dev.type == "cuda":
        index = dev.index or 0
        reason = (attention_policy.xformers_status(index) if backend == "xformers" else
                  attention_policy.auto_choice(index))[1]
    else:
        reason = "CPU: torch scaled_dot_product_attention (xformers has no CPU kernels and is not imported)"
    return Environment(
        python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda, gpus=gpus,
        device=str(dev), dtype=dtype_name(pick_dtype("auto", dev)),
        attention=backend, attention_reason=reason,
    )
