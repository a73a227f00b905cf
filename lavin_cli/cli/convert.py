"""`lavin convert`: official checkpoint files <-> lavin's safetensors format."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from lavin_cli.cli import options
from lavin_cli.cli.console import log, out
from lavin_cli.errors import OutputError, UsageError
from lavin_cli.inference.options import QUANTIZE


class Target(str, Enum):
    lavin = "lavin"
    official = "official"


NAMES = {Target.lavin: ("dit.safetensors", "vae.safetensors"), Target.official: ("lavin_dit.safetensors", "stvae.pt")}


def convert(
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the converted files into."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="NAME|DIR", help="A whole model folder (installed name or path): its DiT and VAE converted, its model.json and task folders copied, so that -o is a model folder too."),
    home: Optional[Path] = options.HOME,
    dit: Optional[Path] = typer.Option(None, "--dit", help="DiT weights: official lavin_dit.safetensors or lavin's."),
    vae: Optional[Path] = typer.Option(None, "--vae", metavar="FILE", help="VAE weights: official stvae.pt (read with weights_only) or lavin's."),
    to: Target = typer.Option(Target.lavin, "--to", help="lavin: safetensors with config metadata; official: the published layout."),
    preset: Optional[str] = typer.Option(None, "--preset", metavar="NAME", help="DiT preset of an official file (default: inferred from its shapes)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="TYPE", help="Store the weights as float32, bfloat16 or float16 (default: as read)."),
    quantize: str = typer.Option("none", "--quantize", metavar="HOW", help="int8: store the DiT blocks' weights in one byte each (lavin format; loads quantized), none: as they are."),
    overwrite: bool = options.OVERWRITE,
) -> None:
    """Convert checkpoints between the official files and lavin's format; keys and shapes are checked.

    lavin format: dit.safetensors and vae.safetensors whose metadata carries the model config.
    official: lavin_dit.safetensors and stvae.pt ({"state_dict": ...}), as published.
    """
    from lavin_cli import config
    from lavin_cli.models import int8
    from lavin_cli.runtime import device as devices
    from lavin_cli.store import weights

    cast = devices.DTYPES.get(dtype) if dtype else None
    if dtype and (cast is None or dtype == "auto"):
        raise UsageError(f"--dtype {dtype!r}: choose float32, bfloat16 or float16")
    if model is not None and (dit is not None or vae is not None):
        raise UsageError("--model converts a folder's own DiT and VAE: give --model, or --dit and/or --vae")
    if dit is None and vae is None and model is None:
        raise UsageError("nothing to convert: give --model, or --dit and/or --vae")
    if quantize not in QUANTIZE:
        raise UsageError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZE)}")
    if quantize == "int8" and (dit is None and model is None or to is Target.official):
        raise UsageError("--quantize int8 stores a DiT in lavin's format: give --dit or --model, and leave out "
                         "--to official")
    if preset is not None and dit is None:
        raise UsageError("--preset names the shape of an official DiT file: give it with --dit, or leave --preset out")
    if preset is not None and preset not in config.DIT_PRESETS:
        raise UsageError(f"--preset {preset!r}: choose one of {', '.join(config.DIT_PRESETS)}")
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output} exists and is not a folder")
    source = None
    if model is not None:
        from lavin_cli.store import folders

        source = folders.resolve(model, home)
        dit, vae = source.dit, source.vae
    jobs = []
    if dit is not None:
        cfg = config.dit_preset(preset) if preset else None
        jobs.append((lambda cfg=cfg: weights.load_dit(dit, cfg, dtype=cast, quantize=quantize == "int8"),
                     output / NAMES[to][0]))
    if vae is not None:
        jobs.append((lambda: weights.load_vae(vae, dtype=cast), output / NAMES[to][1]))
    described = [output / "model.json", output / "tasks"] if source is not None else []
    for dest in [dest for _, dest in jobs] + described:
        if dest.exists() and not overwrite:
            raise OutputError(f"{dest} exists; pass --overwrite to replace it")
    for load, dest in jobs:
        model = load()  # a file that cannot be read leaves no output folder behind
        output.mkdir(parents=True, exist_ok=True)
        (weights.save if to is Target.lavin else weights.export_official)(model, dest)
        count = sum(t.numel() for t in model.state_dict().values())
        log(f"wrote {dest} ({type(model).__name__}, {count:,} parameters{', int8 blocks' if int8.is_quantized(model) else ''})")
        out.print(str(dest), highlight=False)
    if source is not None:
        _describe(source, output)


def _describe(source, output: Path) -> None:
    """model.json and the task folders of `source` beside the converted files; the weights' own
    paths are left out of model.json (the folder finds them by their names)."""
    import shutil

    from lavin_cli.store import folders

    meta = {k: v for k, v in folders.read_model_json(source.path).items() if k not in ("dit", "vae", "tasks_dir")}
    meta.setdefault("name", source.name)
    if source.tasks_dir is not None and source.tasks_dir.is_dir():
        shutil.rmtree(output / "tasks", ignore_errors=True)
        shutil.copytree(source.tasks_dir, output / "tasks")
        log(f"copied {source.tasks_dir} to {output / 'tasks'}")
    out.print(str(folders.write_model_json(output, meta)), highlight=False)
