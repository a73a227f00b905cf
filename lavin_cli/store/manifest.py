"""An installed model's manifest.json: what `lavin download` installed (source, revision, whether
it was pinned) and the sha256 and size of every file, which `lavin verify` checks again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from lavin_cli.errors import CheckpointError
from lavin_cli.io import files
from lavin_cli.store import registry
from lavin_cli.store.home import home as store_home

MANIFEST = "manifest.json"


def write_manifest(folder: Path, name: str, source: dict, downloads) -> None:
    """Hash every file of a finished model folder into its manifest, marked ready; written last,
    so that a folder with a manifest is complete (and atomically: a crash leaves none)."""
    import time

    listed = {str(p.relative_to(folder)): {"sha256": files.sha256(p), "size": p.stat().st_size}
              for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"name": name, "source": source, "downloads": downloads, "files": listed, "status": "ready",
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    files.write_atomic(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), overwrite=True)


def source(folder: Path) -> dict:
    """The "source" of an installed model's manifest ({} where there is none)."""
    try:
        source = json.loads((folder / MANIFEST).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return {}
    return source if isinstance(source, dict) else {}


def installed(name: str, home=None) -> Optional[Path]:
    folder = store_home(home) / "models" / name
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ready = isinstance(manifest, dict) and manifest.get("status") == "ready"
    return folder if ready else None


def verify(name_or_path: str, home=None, progress: files.HashProgress = None) -> dict[str, str]:
    """Re-hash an installed model's files against its manifest: {relative path: "ok" | problem}."""
    folder = Path(name_or_path) if Path(name_or_path).is_dir() else store_home(home) / "models" / name_or_path
    if not folder.is_dir():
        known = registry.load(home)
        hint = f"install it with `lavin download {name_or_path}`" if name_or_path in known else \
            "give an installed model's name (see `lavin models`) or a model folder"
        raise CheckpointError(f"{name_or_path}: not installed; {hint}")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: has no {MANIFEST} (lavin download writes it; a folder made otherwise "
                              "has nothing to verify against)") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / MANIFEST}: unreadable manifest ({exc}); install the model again with "
                              "--force") from None
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or not all(isinstance(i, dict) and {"sha256", "size"} <= set(i) for i in listed.values()):
        raise CheckpointError(f"{folder / MANIFEST}: malformed manifest (no 'files' with sha256 and size); "
                              "install the model again with --force")
    results = {}
    for rel, info in listed.items():
        path = folder / rel
        if not path.is_file():
            results[rel] = "missing"
        elif path.stat().st_size != info["size"]:
            results[rel] = f"size {path.stat().st_size} != {info['size']}"
        else:
            try:
                results[rel] = "ok" if files.sha256(path, progress) == info["sha256"] else "sha256 mismatch"
            except OSError as exc:
                results[rel] = f"unreadable ({files.describe_os_error(exc)})"
    return results


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
