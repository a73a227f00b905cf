"""Option types shared by several commands, declared once."""

from __future__ import annotations

import typer

DEVICE = typer.Option("auto", "--device", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N.")
ATTENTION = typer.Option("auto", "--attention", help="auto, sdpa, xformers (CUDA only) or math (reference).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace output files that already exist.")
