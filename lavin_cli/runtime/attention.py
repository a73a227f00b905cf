"""Which attention kernel runs on which device: `auto` resolves to torch SDPA on a CPU and on a
Hopper or newer GPU (its cuDNN kernel beat xformers there: 3.34 vs 4.02 s per 3.4B prediction at
512 px on an H100, benchmarks/gpu.py), to xformers on an older CUDA GPU where a real test call
succeeds, else SDPA. xformers is imported only here, only for CUDA."""

from __future__ import annotations

import functools

import torch

from lavin_cli.errors import DeviceError, OptionError
from lavin_cli.models.ops import FUNCTIONS, attention_math, attention_xformers

BACKENDS = ("auto", *FUNCTIONS)  # the kernels registered in models/ops.py, and the automatic choice


@functools.lru_cache(maxsize=None)
def xformers_status(device_index: int = 0) -> tuple[bool, str]:
    """(works, reason): import xformers and run one small GQA attention against the reference.

    Only ever called for a CUDA device: xformers has no CPU kernels and warns on import there.
    """
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    try:
        import xformers.ops  # noqa: F401
    except Exception as exc:  # ImportError, or a broken build raising anything at import
        return False, f"xformers not importable: {exc.__class__.__name__}: {exc}".splitlines()[0]
    try:
        gen = torch.Generator(device="cpu").manual_seed(0)
        dev = torch.device("cuda", device_index)
        q = torch.randn(1, 40, 8, 72, generator=gen).to(dev, torch.bfloat16)
        k = torch.randn(1, 40, 2, 72, generator=gen).to(dev, torch.bfloat16)
        v = torch.randn(1, 40, 2, 72, generator=gen).to(dev, torch.bfloat16)
        err = (attention_xformers(q, k, v).float() - attention_math(q, k, v).float()).abs().max().item()
    except Exception as exc:
        return False, f"xformers kernel failed: {exc.__class__.__name__}: {exc}".splitlines()[0]
    if not err < 0.05:
        return False, f"xformers result differs from the reference by {err:.3g}"
    return True, "xformers memory-efficient attention works on this GPU"


@functools.lru_cache(maxsize=None)
def auto_choice(device_index: int = 0) -> tuple[str, str]:
    """(backend, reason) that `auto` picks on CUDA device `device_index`."""
    major, minor = torch.cuda.get_device_capability(device_index)
    if major >= 9:
        return "sdpa", (f"sm_{major}{minor}: torch SDPA (cuDNN attention), faster than xformers on Hopper "
                        "(measured on an H100: benchmarks/gpu.py)")
    works, reason = xformers_status(device_index)
    return ("xformers" if works else "sdpa"), reason


def resolve_backend(name: str, device: torch.device) -> str:
    """Turn 'auto' into a concrete backend for `device`; refuse xformers where it cannot run."""
    if name not in BACKENDS:
        raise OptionError("attention", f"{name!r} is not a backend; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return auto_choice(device.index or 0)[0] if device.type == "cuda" else "sdpa"
    if name == "xformers":
        if device.type != "cuda":
            raise DeviceError("{{attention=xformers}} needs a CUDA device; use {{attention=sdpa}} on this machine")
        works, reason = xformers_status(device.index or 0)
        if not works:
            raise DeviceError(f"{{{{attention=xformers}}}} is unavailable: {reason}")
    return name
