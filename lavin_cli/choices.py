"""The names a user picks that select code: ODE solvers and attention kernels, registered here
once with the line `--help` shows for each.

Torch-free, so that the option dataclasses and the CLI check and list them without importing
what implements them. Each implementation is found by its name, and a name without one fails at
import: `inference/sampling.py` defines the solver function `<name>`, `models/ops.py` the kernel
`attention_<name>`. Adding a solver (or a kernel) is its function plus one entry here.
"""

from __future__ import annotations

SOLVERS: dict[str, str] = {
    "euler": "official",
    "heun": "2 evaluations per step",
    "adams": "second order, 1 evaluation per step",
}

ATTENTION_KERNELS: dict[str, str] = {
    "sdpa": "torch scaled_dot_product_attention",
    "xformers": "CUDA only",
    "math": "the reference",
}


def one_of(names) -> str:
    """'a, b or c', for --help and messages."""
    names = list(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


def described(names: dict[str, str]) -> str:
    """'a (what a), b (what b) or c (what c)', for --help."""
    return one_of(f"{name} ({what})" for name, what in names.items())
