"""lavin's folders: the store ($LAVIN_HOME), the cache, the package's bundled model and examples."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from lavin_cli.errors import OptionError, UsageError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def home(override: Path | str | None = None) -> Path:
    """Root of lavin's store: --home, else $LAVIN_HOME, else the user data directory. A path that
    exists but is not a folder is refused, naming where it came from."""
    if override:
        path = Path(override).expanduser()
        if path.exists() and not path.is_dir():
            raise OptionError("home", f"{path} is a file; lavin's store must be a folder")
        return path
    if os.environ.get("LAVIN_HOME"):
        path = Path(os.environ["LAVIN_HOME"]).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(f"LAVIN_HOME={path} is a file; point it to a folder (or unset it)")
        return path
    return Path(platformdirs.user_data_dir("lavin", appauthor=False))


def cache_dir() -> Path:
    """lavin's cache folder (hashes of checkpoints, reports of bugs)."""
    return Path(platformdirs.user_cache_dir("lavin", appauthor=False))


def hash_cache() -> Path:
    """The JSON file that remembers checkpoint hashes by (path, size, mtime)."""
    return cache_dir() / "sha256.json"


def bundled_dir() -> Path | None:
    """The small model that ships with lavin, when present (installed wheel or source checkout)."""
    for candidate in (PACKAGE_ROOT / "weights_data" / "bundled", PACKAGE_ROOT.parent / "weights" / "bundled"):
        if (candidate / "dit.safetensors").is_file():
            return candidate
    return None


def shipped_registry() -> Path | None:
    for candidate in (PACKAGE_ROOT / "weights_data" / "registry.json", PACKAGE_ROOT.parent / "weights" / "registry.json"):
        if candidate.is_file():
            return candidate
    return None


def examples_dir() -> Path | None:
    """The example task folders: a source checkout's examples/, else the installed package's copy."""
    for candidate in (PACKAGE_ROOT.parent / "examples", PACKAGE_ROOT / "examples_data"):
        if candidate.is_dir() and any(candidate.glob("*/task.json")):
            return candidate
    return None
