"""Data shipped with lavin: the model registry and the bundled model (installed as lavin_cli.weights_data)."""
