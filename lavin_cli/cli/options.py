"""Option types shared by several commands, declared once, and how help shows them: a flag shows
no value placeholder, an option taking a value shows what kind (N, DIR, [first|random|nearest])."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand, TyperGroup

from lavin_cli.choices import ATTENTION_KERNELS, SOLVERS, described, one_of
from lavin_cli.inference import options as lib


class _HelpStyle:
    """Help without Typer's Python type names (flags get no metavar, other options their name),
    printed by lavin's own renderer (cli/help.py: panels, nothing cut off)."""

    def format_help(self, ctx, formatter) -> None:
        from lavin_cli.cli import help as help_renderer

        help_renderer.render(self, ctx)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.metavar is None and param.param_type_name == "option":
                param.metavar = "" if getattr(param, "is_flag", False) else metavar_of(param)
        return params


def metavar_of(param) -> str:
    """What an option without a declared metavar takes, the same on every command: N (a whole
    number), X (a number), PATH, else its name where short (DATA), else TEXT."""
    kind = _value_type(param)
    if kind is int:
        return "N"
    if kind is float:
        return "X"
    if isinstance(kind, type) and issubclass(kind, Path):
        return "PATH"
    return param.name.upper() if len(param.name) <= 8 else "TEXT"


def _value_type(param):
    """The Python type an option's value converts to (Optional and list unwrapped)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is None:  # click's own parameter types (Typer versions without descriptors)
        name = getattr(getattr(param, "type", None), "name", "")
        return {"integer": int, "float": float, "path": Path}.get(name, str)
    while typing.get_args(annotation):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if not inner:
            break
        annotation = inner[0]
    return annotation


class Command(_HelpStyle, TyperCommand):
    pass


class Group(_HelpStyle, TyperGroup):
    pass


INPUTS, OUTPUTS, SAMPLING, DATASET, DEVICE_PANEL = "Inputs", "Outputs", "Sampling", "Dataset", "Model and device"


def typed(ctx: typer.Context | None) -> list[tuple[str, str]]:
    """(parameter, flag) of each option typed on the command line, not left at its default, in
    --help's order: what a command refuses where its mode would not use it. None: a command
    called as a function (lavin eval --truth calls lavin run's), which checks its own options."""
    if ctx is None:
        return []
    found = []
    for param in ctx.command.params:  # sources by name: typer may bring its own copy of click's enum
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            flags = [o for o in param.opts if o.startswith("--")]
            found.append((param.name, flags[0] if flags else param.name.upper()))
    return found


def default(cls, name: str):
    """The library's default of an option dataclass field: the CLI never spells a default itself
    (tests/test_docs.py checks that every flag shows the library's)."""
    import dataclasses

    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _interval(lo_hi: tuple[float, float]) -> str:
    return ",".join(f"{v:g}" for v in lo_hi)


MODEL = typer.Option(None, "--model", "-m", metavar="NAME|DIR", rich_help_panel=DEVICE_PANEL,
                     help="Model name or folder (default: $LAVIN_MODEL, else the bundled model).")
HOME = typer.Option(None, "--home", metavar="DIR", rich_help_panel=DEVICE_PANEL,
                    help="lavin's model store (default: $LAVIN_HOME, else the user data folder).")
DEVICE = typer.Option("auto", "--device", metavar="DEVICE", rich_help_panel=DEVICE_PANEL,
                      help="auto (CUDA if present, else CPU), cpu, cuda or cuda:N.")
DTYPE = typer.Option(default(lib.LoadOptions, "dtype"), "--dtype", metavar="TYPE", rich_help_panel=DEVICE_PANEL,
                     help=f"Precision: {one_of(lib.DTYPES)}; auto is bfloat16 on CUDA and on CPUs with "
                          "native bf16 (AVX512-BF16, AMX), else float32.")
ATTENTION = typer.Option(default(lib.LoadOptions, "attention"), "--attention", metavar="KERNEL", rich_help_panel=DEVICE_PANEL,
                         help=f"Attention kernel: auto (torch SDPA on a CPU or a Hopper or newer GPU, xformers "
                              f"on an older GPU where it works), {described(ATTENTION_KERNELS)}.")
OFFLOAD = typer.Option(default(lib.LoadOptions, "offload"), "--offload", metavar="MODE", rich_help_panel=DEVICE_PANEL,
                       help="none, model (one component on the GPU at a time), sequential (DiT blocks streamed) or "
                            "auto (the fastest that fits the free GPU memory).")
QUANTIZE = typer.Option(default(lib.LoadOptions, "quantize"), "--quantize", metavar="HOW", rich_help_panel=DEVICE_PANEL,
                        help="none, or int8: the DiT blocks' weights in one byte each, quantized as they load "
                             "(half a bf16 model's weight memory; a folder saved by lavin convert --quantize loads so "
                             "whatever this says).")
COMPILE = typer.Option(False, "--compile", rich_help_panel=DEVICE_PANEL,
                       help="torch.compile the DiT blocks (slow first call; faster sampling after).")
BATCH = typer.Option(default(lib.RunOptions, "batch_size"), "--batch-size", "-b", metavar="N", rich_help_panel=DEVICE_PANEL, help="Queries per model call.")

CONTEXT = typer.Option(None, "--context", "-c", metavar="DIR", rich_help_panel=INPUTS,
                       help="Folder of example pairs: <id>_input.<ext> and <id>_target.<ext> files, or input/ and "
                            "target/ folders.")
TASK = typer.Option(None, "--task", "-t", metavar="NAME", rich_help_panel=INPUTS,
                    help="A task folder installed with the model or shipped in examples/ (see `lavin tasks`).")
MAX_PIXELS = typer.Option(default(lib.RunOptions, "max_pixels"), "--max-pixels", metavar="N", rich_help_panel=INPUTS,
                          help="Refuse input images (and video frames) with more pixels than this, before decoding them.")

KEEP = typer.Option(default(lib.RunOptions, "keep"), "--keep", metavar="WHAT", rich_help_panel=OUTPUTS,
                    help="What of the query the output keeps exactly, at the query's own resolution: none, luma (its "
                         "luminance, the model's colour: colorization), unmasked[:R,G,B] (its pixels outside the mask "
                         "colour, default 128,128,128: inpainting) or auto (the task.json's \"keep\", else none).")
VIDEO_KEEP = typer.Option(default(lib.VideoOptions, "keep"), "--keep", metavar="WHAT", rich_help_panel=OUTPUTS,
                          help="Prediction tasks: last (each new frame is the query's last frame, at its own "
                               "resolution, plus the model's change from its own copy of that frame: what stands "
                               "still stays sharp), none (the model's frames) or auto (the task.json's \"keep\", "
                               "else last for prediction).")
EVAL_KEEP = typer.Option(default(lib.RunOptions, "keep"), "--keep", metavar="WHAT", rich_help_panel=OUTPUTS,
                         help="What predictions keep of their queries, as lavin run's and lavin video's --keep: "
                              "auto (each task's own rule), none (the model's own pixels, every task), an image "
                              "rule (luma, unmasked[:R,G,B]) for the image tasks, last for frame prediction.")
MASK = typer.Option(None, "--mask", metavar="PATH", rich_help_panel=INPUTS,
                    help="Inpainting: the pixels to fill, as an image beside the query (white = fill): one file for "
                         "every query, or a pattern naming each query's mask by its file, with {stem} (its name "
                         "without extension) and {dir} (its folder), e.g. 'masks/{stem}.png'. The query is painted "
                         "in the mask colour there and keeps its own pixels everywhere else.")
PAIRS = typer.Option(None, "--pairs", "-n", metavar="N", rich_help_panel=SAMPLING,
                     help="How many example pairs go into the prompt (default: 4, or the most the model was trained "
                          "with if fewer: 3 for lavin-small).")
SELECT = typer.Option(default(lib.RunOptions, "select"), "--select", metavar="HOW", rich_help_panel=SAMPLING,
                      help="Which pairs: first (the first ones), random (seeded) or nearest (the closest inputs to "
                           "each query).")
SIZE = typer.Option(None, "--size", metavar="N|WxH", rich_help_panel=SAMPLING,
                    help="Working resolution, N or WIDTHxHEIGHT, multiples of 16 (default: the model's).")
FIT = typer.Option(default(lib.RunOptions, "fit"), "--fit", metavar="HOW", rich_help_panel=SAMPLING,
                   help="How images meet the working size: squash, pad (letterbox) or crop (centre).")
STEPS = typer.Option(default(lib.SamplingOptions, "steps"), "--steps", metavar="N", rich_help_panel=SAMPLING,
                     help="Time points of the sampler, any count >= 2 (11: 10 model evaluations, measured as good as "
                          "the official 20 on lavin-small; 20 reproduces the official numerics).")
CFG = typer.Option(default(lib.SamplingOptions, "cfg"), "--cfg", metavar="SCALE", rich_help_panel=SAMPLING,
                   help="Classifier-free guidance scale (1 disables the null branch).")
SEED = typer.Option(default(lib.SamplingOptions, "seed"), "--seed", metavar="N", rich_help_panel=SAMPLING, help="Seed of the noise and of --select random.")
SOLVER = typer.Option(default(lib.SamplingOptions, "solver"), "--solver", metavar="NAME", rich_help_panel=SAMPLING,
                      help=f"ODE solver: {described(SOLVERS)}.")
COND_REFRESH = typer.Option(default(lib.SamplingOptions, "cond_refresh"), "--cond-refresh", metavar="N", rich_help_panel=SAMPLING,
                            help="Compute the context's tokens on every N-th model pass only and reuse their keys "
                                 "and values between (1: every pass, exact; 2-4: faster, approximate, see README).")
CFG_INTERVAL = typer.Option(_interval(default(lib.SamplingOptions, "cfg_interval")), "--cfg-interval", metavar="LO,HI", rich_help_panel=SAMPLING,
                            help="Guide only while the time t (0 noise .. 1 data) is in [LO, HI]; outside, the "
                                 "null branch is skipped (about half the work of those steps).")

OVERWRITE = typer.Option(False, "--overwrite", rich_help_panel=OUTPUTS, help="Replace output files that already exist.")
JSON_OUT = typer.Option(False, "--json", rich_help_panel=OUTPUTS, help="Print the run record as JSON on stdout.")
RECORD: Optional[Path] = typer.Option(None, "--record", metavar="FILE", rich_help_panel=OUTPUTS,
                                      help="Write the run record to FILE as JSON Lines, a line per query as it is written.")
QUIET = typer.Option(False, "--quiet", "-q", rich_help_panel=OUTPUTS,
                     help="No progress, warnings or messages on stderr (errors still print).")

FILES_FROM = typer.Option(None, "--files-from", metavar="FILE", rich_help_panel=DATASET,
                          help="Read query paths from FILE, one per line (- reads stdin), after any --query.")
NUL = typer.Option(False, "-0", "--null", rich_help_panel=DATASET,
                   help="--files-from separates paths with NUL bytes (as find -print0 writes).")
RECURSIVE = typer.Option(False, "--recursive", "-r", rich_help_panel=DATASET,
                         help="Query folders: take the files of every sub-folder too.")
ROOT = typer.Option(None, "--root", metavar="DIR", rich_help_panel=DATASET,
                    help="Outputs mirror the queries' paths relative to DIR (default: the folder holding them all).")
SKIP_EXISTING = typer.Option(False, "--skip-existing", "--resume", rich_help_panel=DATASET,
                             help="Keep outputs that exist and compute only the missing ones (a batch with a missing "
                                  "output runs again whole; its finished outputs are not rewritten).")
SHARD = typer.Option(None, "--shard", metavar="K/N", rich_help_panel=DATASET,
                     help="Run shard K of N (0 <= K < N): N processes with K = 0..N-1 cover every query exactly once.")

SERVER = typer.Option(None, "--server", metavar="URL", rich_help_panel=DEVICE_PANEL,
                      help="Compute on a lavin server (http://HOST:PORT or unix:PATH, default: $LAVIN_SERVER) "
                           "instead of loading a model here; the outputs are written here, the same bytes.")
TOKEN = typer.Option(None, "--token", metavar="TEXT", rich_help_panel=DEVICE_PANEL,
                     help="The server's token (default: $LAVIN_SERVE_TOKEN).")
