"""lavin: in-context vision tasks with LaVin-DiT, from the command line and from Python."""

__version__ = "0.1.0"
