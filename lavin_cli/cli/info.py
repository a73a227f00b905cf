"""`lavin info`: what this machine offers and what lavin would use, plus the model presets."""

from __future__ import annotations

import dataclasses
import json

import typer
from rich.table import Table

from lavin_cli.cli import options
from lavin_cli.cli.console import out, print_table


def info(
    device: str = options.DEVICE,
    attention: str = options.ATTENTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Show the device, precision and attention backend lavin picks here, and the model presets."""
    from lavin_cli import config
    from lavin_cli.io.video import describe_backend
    from lavin_cli.runtime import device as devices
    from lavin_cli.store import weights

    env = {**dataclasses.asdict(devices.describe(device, attention)), "video_files": describe_backend()}
    presets = [
        {"name": name, "hidden": c.hidden_size, "layers": c.depth, "heads": c.num_heads,
         "kv_heads": c.num_kv_heads, "head_dim": c.head_dim, "parameters": weights.parameter_count(c)}
        for name, c in config.DIT_PRESETS.items()
    ]
    vaes = [{"name": name, "channels": list(c.block_out_channels), "parameters": weights.parameter_count(c)}
            for name, c in config.VAE_PRESETS.items()]
    if as_json:
        out.print_json(json.dumps({"environment": env, "dit_presets": presets, "vae_presets": vaes}))
        return
    table = Table(title="environment", show_header=False)
    for key, value in env.items():
        table.add_row(key, str(value) if value not in (None, ()) else "-")
    print_table(table)
    dit_table = Table(title="J-DiT presets")
    for column in ("preset", "hidden", "layers", "heads", "kv heads", "head dim", "parameters"):
        dit_table.add_column(column, justify="right" if column != "preset" else "left")
    for p in presets:
        dit_table.add_row(p["name"], *(str(p[k]) for k in ("hidden", "layers", "heads", "kv_heads", "head_dim")),
                          f"{p['parameters']:,}")
    print_table(dit_table)
    vae_table = Table(title="ST-VAE presets")
    vae_table.add_column("preset")
    vae_table.add_column("channels")
    vae_table.add_column("parameters", justify="right")
    for v in vaes:
        vae_table.add_row(v["name"], str(v["channels"]), f"{v['parameters']:,}")
    print_table(vae_table)
