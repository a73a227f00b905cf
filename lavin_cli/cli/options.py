"""Option types shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

DEVICE = typer.Option("auto", "--device", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N.")
DTYPE = typer.Option("auto", "--dtype", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16.")
ATTENTION = typer.Option("auto", "--attention", help="auto, sdpa, xformers (CUDA only) or math (reference).")
OFFLOAD = typer.Option("none", "--offload", help="none, model (one component on the GPU at a time), sequential (DiT blocks "
                                                  "streamed) or auto (the fastest that fits the free GPU memory).")
COMPILE = typer.Option(False, "--compile", help="torch.compile the DiT blocks (slow first call; faster sampling after).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace output files that already exist.")
MODEL = typer.Option(None, "--model", "-m", help="Model name or folder (default: $LAVIN_MODEL, else the bundled model).")
HOME = typer.Option(None, "--home", help="lavin's model store (default: $LAVIN_HOME, else the user data folder).")
CONTEXT = typer.Option(None, "--context", "-c", help="Folder of example pairs: <id>_input.<ext>/<id>_target.<ext>, or input/ and target/.")
TASK = typer.Option(None, "--task", "-t", help="A task folder installed with the model or shipped in examples/ (see `lavin tasks`).")
PAIRS = typer.Option(4, "--pairs", "-n", help="How many example pairs go into the prompt.")
SELECT = typer.Option("first", "--select", help="Which pairs: first, random (seeded) or nearest (closest inputs to each query).")
SIZE = typer.Option(None, "--size", help="Working resolution, N or WIDTHxHEIGHT, multiples of 16 (default: the model's).")
FIT = typer.Option("squash", "--fit", help="How images meet the working size: squash, pad (letterbox) or crop (centre).")
STEPS = typer.Option(20, "--steps", help="Time points of the sampler (20 = the official grid; any count >= 2).")
CFG = typer.Option(1.5, "--cfg", help="Classifier-free guidance scale (1 disables the null branch).")
SEED = typer.Option(0, "--seed", help="Seed of the noise and of --select random.")
SOLVER = typer.Option("euler", "--solver", help="ODE solver: euler (official) or heun (2 evaluations per step).")
BATCH = typer.Option(4, "--batch-size", "-b", help="Queries per model call.")
JSON_OUT = typer.Option(False, "--json", help="Print the run record as JSON on stdout.")
RECORD: Optional[Path] = typer.Option(None, "--record", help="Also write the run record as JSON to this file.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars or messages on stderr (errors still print).")
