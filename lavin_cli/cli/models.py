"""`lavin download`, `lavin models`, `lavin verify`: the model store from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lavin_cli.cli import options
from lavin_cli.cli.console import log, out, print_table, warn
from lavin_cli.cli.progress import Progress

OFFLINE = typer.Option(False, "--offline", help="Never touch the network (also HF_HUB_OFFLINE=1).")


def download(
    name: str = typer.Argument(..., help="A model name from `lavin models` (e.g. lavin-dit-3.4b), or a Hugging Face "
                                         "repo in the official layout, org/repo[@revision]."),
    home: Optional[Path] = options.HOME,
    offline: bool = OFFLINE,
    force: bool = typer.Option(False, "--force", help="Install again even if a ready copy exists."),
    revision: Optional[str] = typer.Option(None, "--revision", metavar="REV",
                                           help="A hub revision (commit, tag, branch) instead of the registry's; "
                                                "installed as NAME@REV, its manifest says it is not pinned."),
    quiet: bool = options.QUIET,
) -> None:
    """Download a model (and its task templates), verify, unpack and convert it into the store.

    Sources are Hugging Face repos (honouring HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE and the HF
    cache) or HTTPS URLs; interrupted downloads resume. Every file is hashed (a hash the registry
    knows must match, or the file is quarantined); archives unpack only their expected members;
    stvae.pt is converted to safetensors through weights_only loading; the DiT is checked
    against its preset before the model is marked ready.
    """
    from lavin_cli.store import hub, manifest

    with Progress(not quiet, units="bytes") as progress:
        folder = hub.install(name, home, offline, force,
                             lambda e: progress.update(f"{e.stage} {e.item}", f"{e.stage} {e.item}"[:28], e.done, e.total),
                             revision=revision)
    if not quiet:
        source = manifest.source(folder.path)
        if source.get("type") == "hf" and not source.get("pinned"):
            warn(f"{folder.name}: {source.get('repo')}@{source.get('revision')} is not pinned (no sha256 in the "
                 "registry): installed as the hub served it, its hashes recorded in manifest.json for `lavin verify`")
        log(f"{folder.name} is ready in {folder.path}")
    out.print(str(folder.path), highlight=False)


def models(
    home: Optional[Path] = options.HOME,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the models lavin knows and the ones installed: status, source, size on disk (--json adds
    each one's path)."""
    from lavin_cli.store import manifest, registry
    from lavin_cli.store.home import bundled_dir
    from lavin_cli.store.home import home as store_home

    rows = []
    entries = registry.load(home)
    for entry in entries.values():
        if entry.source == "bundled":
            path = bundled_dir()
            status = "bundled" if path else "missing from this install"
        else:
            path = manifest.installed(entry.name, home)
            partial = (store_home(home) / "models" / f"{entry.name}.partial").exists()
            status = "ready" if path else ("interrupted" if partial else "not installed")
        source = f"hf:{entry.repo}" if entry.source == "hf" else entry.source
        rows.append({"name": entry.name, "status": status, "source": source, "preset": entry.preset,
                     "bytes": manifest.disk_size(path) if path else None, "path": str(path) if path else None,
                     "description": entry.description})
    models_dir = store_home(home) / "models"
    for folder in sorted(models_dir.iterdir()) if models_dir.is_dir() else []:
        if folder.is_dir() and folder.name not in entries and not folder.name.endswith(".partial"):
            rows.append({"name": folder.name, "status": "local", "source": "local", "preset": None,
                         "bytes": manifest.disk_size(folder), "path": str(folder), "description": ""})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"models (store: {store_home(home)})")
    for column in ("name", "status", "source", "size", "description"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for r in rows:
        size = f"{r['bytes'] / 1e6:,.1f} MB" if r["bytes"] else "-"
        table.add_row(r["name"], r["status"], r["source"], size, r["description"])
    print_table(table)


def verify(
    name: str = typer.Argument(..., help="An installed model's name, or a model folder with a manifest."),
    home: Optional[Path] = options.HOME,
    quiet: bool = options.QUIET,
) -> None:
    """Re-hash an installed model's files against the manifest written when it was downloaded."""
    from lavin_cli.errors import CheckpointError
    from lavin_cli.store import manifest

    results = manifest.verify(name, home)
    bad = {k: v for k, v in results.items() if v != "ok"}
    if not quiet:
        for rel, status in results.items():
            out.print(f"{status:>16}  {rel}", highlight=False)
    if bad:
        listing = ", ".join(f"{rel} ({why})" for rel, why in bad.items())
        raise CheckpointError(f"{name}: {len(bad)} of {len(results)} files fail verification: {listing}")
    log(f"{name}: all {len(results)} files match the manifest")
