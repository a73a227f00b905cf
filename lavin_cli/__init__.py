"""lavin: in-context vision tasks with LaVin-DiT, from the command line and from Python.

    from lavin_cli import Pipeline, RunOptions
    pipe = Pipeline.from_pretrained()                       # the bundled model, or a name / folder
    for prediction in pipe.stream("pairs/", ["a.png", "b.png"], options=RunOptions(steps=20)):
        ...

The package, one room per concern (data flows down this list, never up):

    errors.py, config.py   typed errors with exit codes; model configs and presets
    models/                the networks only: J-DiT, ST-VAE (+ tiling), kernels (attention, RoPE, norms)
    io/                    files: images, videos, atomic publishing, hashing
    store/                 home, model folders, registry, hub downloads, checkpoint formats, weights
    runtime/               device and dtype, attention backend selection, weight offload
    inference/             options -> codec -> sampling -> engine -> image / video runners -> records;
                           Pipeline, the entry point
    training/              the procedural task generator, data sources, the VAE and DiT trainers
    evaluation/            metrics and held-out evaluation of a model
    cli/                   the `lavin` command: parses flags, calls the library, prints and writes
"""

__version__ = "0.1.0"

from lavin_cli.errors import (CheckpointError, ConfigError, DeviceError, InputError, LavinError, OptionError,
                              OutputError, PartialFailure, ServerError, TooLarge, UnknownTask, UsageError)

__all__ = ["Pipeline", "RunOptions", "VideoOptions", "LoadOptions", "__version__", "LavinError", "UsageError",
           "OptionError", "ConfigError", "UnknownTask", "InputError", "TooLarge", "CheckpointError", "DeviceError",
           "OutputError", "PartialFailure", "ServerError"]

_LAZY = {"Pipeline": "lavin_cli.inference.pipeline", "RunOptions": "lavin_cli.inference.options",
         "VideoOptions": "lavin_cli.inference.options", "LoadOptions": "lavin_cli.inference.options"}


def __getattr__(name: str):
    # `import lavin_cli` stays light (no torch): these load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lavin_cli' has no attribute {name!r}")
