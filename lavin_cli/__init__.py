"""lavin: in-context vision tasks with LaVin-DiT, from the command line and from Python."""

__version__ = "0.1.0"

__all__ = ["Pipeline", "__version__"]


def __getattr__(name: str):
    # `import lavin_cli` stays light (no torch); the pipeline loads on first use
    if name == "Pipeline":
        from lavin_cli.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'lavin_cli' has no attribute {name!r}")
