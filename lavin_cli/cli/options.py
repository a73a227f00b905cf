"""Option types shared by several commands, declared once, and how help shows them: a flag shows
no value placeholder, an option taking a value shows what kind (N, DIR, [first|random|nearest])."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand, TyperGroup


class _HelpStyle:
    """Help without Typer's Python type names: flags get no metavar, other options their name."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.metavar is None and param.param_type_name == "option":
                param.metavar = "" if getattr(param, "is_flag", False) else param.name.upper()
        return params


class Command(_HelpStyle, TyperCommand):
    pass


class Group(_HelpStyle, TyperGroup):
    pass


def choices(*names: str) -> str:
    return "[" + "|".join(names) + "]"


DEVICE = typer.Option("auto", "--device", metavar="DEVICE", help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N.")
DTYPE = typer.Option("auto", "--dtype", metavar=choices("auto", "float32", "bfloat16", "float16"),
                     help="Precision: auto is bfloat16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), "
                          "else float32.")
ATTENTION = typer.Option("auto", "--attention", metavar=choices("auto", "sdpa", "xformers", "math"),
                         help="Attention kernel: auto is torch SDPA on a CPU or a Hopper or newer GPU, xformers "
                              "on an older GPU where it works; xformers is CUDA only, math is the reference.")
OFFLOAD = typer.Option("none", "--offload", metavar=choices("none", "model", "sequential", "auto"),
                       help="none, model (one component on the GPU at a time), sequential (DiT blocks streamed) or "
                            "auto (the fastest that fits the free GPU memory).")
COMPILE = typer.Option(False, "--compile", help="torch.compile the DiT blocks (slow first call; faster sampling after).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace output files that already exist.")
MODEL = typer.Option(None, "--model", "-m", metavar="NAME|DIR",
                     help="Model name or folder (default: $LAVIN_MODEL, else the bundled model).")
HOME = typer.Option(None, "--home", metavar="DIR", help="lavin's model store (default: $LAVIN_HOME, else the user data folder).")
CONTEXT = typer.Option(None, "--context", "-c", metavar="DIR",
                       help="Folder of example pairs: <id>_input.<ext>/<id>_target.<ext>, or input/ and target/.")
TASK = typer.Option(None, "--task", "-t", metavar="NAME",
                    help="A task folder installed with the model or shipped in examples/ (see `lavin tasks`).")
PAIRS = typer.Option(None, "--pairs", "-n", metavar="N",
                     help="How many example pairs go into the prompt (default: 4, or the most the model was trained "
                          "with if fewer: 3 for lavin-small).")
SELECT = typer.Option("first", "--select", metavar=choices("first", "random", "nearest"),
                      help="Which pairs: the first ones, random (seeded) or nearest (closest inputs to each query).")
SIZE = typer.Option(None, "--size", metavar="N|WxH",
                    help="Working resolution, N or WIDTHxHEIGHT, multiples of 16 (default: the model's).")
FIT = typer.Option("squash", "--fit", metavar=choices("squash", "pad", "crop"),
                   help="How images meet the working size: squash, pad (letterbox) or crop (centre).")
STEPS = typer.Option(11, "--steps", metavar="N",
                     help="Time points of the sampler, any count >= 2 (11: 10 model evaluations, measured as good as "
                          "the official 20 on lavin-small; 20 reproduces the official numerics).")
CFG = typer.Option(1.5, "--cfg", metavar="SCALE", help="Classifier-free guidance scale (1 disables the null branch).")
SEED = typer.Option(0, "--seed", metavar="N", help="Seed of the noise and of --select random.")
SOLVER = typer.Option("euler", "--solver", metavar=choices("euler", "heun", "adams"),
                      help="ODE solver: euler (official), heun (2 evaluations per step) or adams (second order, "
                           "1 evaluation per step).")
COND_REFRESH = typer.Option(1, "--cond-refresh", metavar="N",
                            help="Compute the context's tokens on every N-th model pass only and reuse their keys "
                                 "and values between (1: every pass, exact; 2-4: faster, approximate, see README).")
CFG_INTERVAL = typer.Option("0,1", "--cfg-interval", metavar="LO,HI",
                            help="Guide only while the time t (0 noise .. 1 data) is in [LO, HI]; outside, the "
                                 "null branch is skipped (about half the work of those steps).")
BATCH = typer.Option(4, "--batch-size", "-b", metavar="N", help="Queries per model call.")
MAX_PIXELS = typer.Option(64_000_000, "--max-pixels", metavar="N",
                          help="Refuse input images (and video frames) with more pixels than this, before decoding them.")
JSON_OUT = typer.Option(False, "--json", help="Print the run record as JSON on stdout.")
RECORD: Optional[Path] = typer.Option(None, "--record", metavar="FILE",
                                      help="Write the run record to FILE as JSON Lines, a line per query as it is written.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress, warnings or messages on stderr (errors still print).")
FILES_FROM = typer.Option(None, "--files-from", metavar="FILE",
                          help="Read query paths from FILE, one per line (- reads stdin), after any --query.")
NUL = typer.Option(False, "-0", "--null", help="--files-from separates paths with NUL bytes (as find -print0 writes).")
RECURSIVE = typer.Option(False, "--recursive", "-r", help="Query folders: take the files of every sub-folder too.")
ROOT = typer.Option(None, "--root", metavar="DIR",
                    help="Outputs mirror the queries' paths relative to DIR (default: the folder holding them all).")
SKIP_EXISTING = typer.Option(False, "--skip-existing", "--resume",
                             help="Keep outputs that exist and compute only the missing ones (a batch with a missing "
                                  "output runs again whole; its finished outputs are not rewritten).")
SHARD = typer.Option(None, "--shard", metavar="K/N",
                     help="Run shard K of N (0 <= K < N): N processes with K = 0..N-1 cover every query exactly once.")
