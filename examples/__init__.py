"""The example task folders and scripts (installed as lavin_cli.examples_data, so that a pip install has them too)."""
