"""The record of a run: what ran (a header, known before the first prediction) and one entry per
query (known as each finishes). Plain JSON-ready dicts."""

from __future__ import annotations

import dataclasses

from lavin_cli import __version__
from lavin_cli.inference import masks
from lavin_cli.store.folders import ModelFolder, file_sha256


def model_info(model: ModelFolder | None) -> dict:
    if model is None:
        return {"name": "in-memory", "path": None, "dit_sha256": None, "vae_sha256": None}
    return {"name": model.name, "path": str(model.path), "dit_sha256": file_sha256(model.dit),
            "vae_sha256": file_sha256(model.vae)}


def settings(options) -> dict:
    """The record's copy of a run's options, but the working size (the header's own "size"): the
    fields as they are (asdict would deep-copy a mask's arrays or uploads), a mask named."""
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name != "size"}
    if "mask" in fields:
        fields["mask"] = masks.describe(fields["mask"])
    return fields


def header(engine, model: ModelFolder | None, options, working: tuple[int, int], context: dict) -> dict:
    """Model, device, options and context of a run; `context` holds the runner's own fields."""
    from lavin_cli.runtime.device import dtype_name

    return {
        "lavin": __version__,
        "model": model_info(model),
        "device": str(engine.device), "dtype": dtype_name(engine.dtype),
        "attention": engine.attention, "offload": engine.offload.name, "quantize": engine.quantize,
        "size": {"height": working[0], "width": working[1]},
        **settings(options),
        **context,
        "timings": {"load_s": round(engine.load_seconds, 4)},
    }


def entry(prediction) -> dict:
    """The record line of one prediction (image or clip)."""
    out = {"query": prediction.query, "pairs": prediction.pairs, "seconds": round(prediction.seconds, 4),
           "error": prediction.error}
    clip = getattr(prediction, "clip", None)
    if hasattr(prediction, "clip"):
        out.update(frames=None if clip is None else len(clip.frames), fps=None if clip is None else clip.fps)
    if getattr(prediction, "warnings", None):
        out["warnings"] = list(prediction.warnings)
    return out


def warnings(model: ModelFolder | None, options, working: tuple[int, int], available_pairs: int,
             unused: list[str] = ()) -> list[str]:
    """What the run does differently from what was asked, or outside what the model knows;
    `unused`: entries of the context folder named as pairs and not used, with why."""
    out = []
    if unused:
        more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
        out.append(f"{len(unused)} entr{'y' if len(unused) == 1 else 'ies'} of the context not used: "
                   f"{', '.join(unused[:3])}{more} (the record lists them)")
    if options.pairs > available_pairs:
        out.append(f"{{{{pairs={options.pairs}}}}} but the context holds {available_pairs} pair(s): using {available_pairs}")
    used = min(options.pairs, available_pairs)
    if model is not None and model.max_pairs and used > model.max_pairs:
        out.append(f"{model.name} was trained with at most {model.max_pairs} pairs; with {used} (a longer prompt than it "
                   f"has seen) expect poor results, clips most: {{{{pairs={model.default_pairs}}}}} is its default")
    if model is not None and model.sizes and max(working) not in model.sizes and min(working) not in model.sizes:
        trained = ", ".join(f"{s} px" for s in model.sizes)
        out.append(f"{model.name} was trained at {trained}; at {working[1]}x{working[0]} expect poor results "
                   "(stripes, tiled blobs)")
    return out
