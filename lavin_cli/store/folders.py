"""Model folders on disk: what one is, where they live, and resolving a name or a path to one.

A lavin model folder holds `dit.safetensors`, `vae.safetensors` (our format, configs in their
metadata), an optional `model.json` ({"name", "description", "size"}) and optional task
folders under `tasks/`. An official release folder holds `lavin_dit.safetensors` and
`stvae.pt` (directly or under `weights/`) and optionally the official `template/` tasks.

Where models live: $LAVIN_HOME/models/<name> (LAVIN_HOME defaults to the user data
directory, e.g. ~/.local/share/lavin), and the model bundled with the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lavin_cli.errors import CheckpointError
from lavin_cli.io import files
from lavin_cli.store import registry
from lavin_cli.store.home import bundled_dir, examples_dir, hash_cache, home
from lavin_cli.store.registry import OFFICIAL_SIZE

DEFAULT_PAIRS = 4  # context pairs per prompt when neither the user nor the model says otherwise


@dataclass(frozen=True)
class ModelFolder:
    name: str
    path: Path
    dit: Path
    vae: Path
    size: int  # the default working size
    tasks_dir: Path | None
    description: str = ""
    extra: dict = field(default_factory=dict)
    trained_tasks: tuple[str, ...] | None = None  # what it was trained for, when model.json says
    sizes: tuple[int, ...] | None = None  # working sizes it was trained at, when model.json says
    max_pairs: int | None = None  # the most context pairs it was trained with, when model.json says

    @property
    def default_pairs(self) -> int:
        """Context pairs when none are asked for: 4 (the official code's), or fewer for a model
        trained with fewer (a longer prompt than it ever saw degrades it, video most)."""
        return min(DEFAULT_PAIRS, self.max_pairs) if self.max_pairs else DEFAULT_PAIRS


def _check_size(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value % 16:
        raise CheckpointError(f"{where} must be a positive multiple of 16, got {value!r}")
    return value


def _check_inside(folder: Path, value, where: str) -> Path:
    if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
        raise CheckpointError(f"{where} must be a path inside the model folder, got {value!r}")
    return folder / value


def max_pairs(meta: dict):
    """model.json's "max_pairs", else the "max_pairs" `lavin train` records under "training"."""
    training = meta.get("training")
    return meta.get("max_pairs", training.get("max_pairs") if isinstance(training, dict) else None)


def read_model_json(folder: Path) -> dict:
    """model.json, checked field by field: {"name", "description", "size", "sizes", "dit", "vae",
    "tasks_dir", "tasks" (trained task names; a folder name in older folders), "max_pairs" (or
    "training": {"max_pairs"}: the most context pairs it was trained with)}; others are kept."""
    path = folder / "model.json"
    meta = files.read_json_file(path, CheckpointError)
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: must hold a JSON object")
    for key in ("name", "description"):
        if key in meta and not isinstance(meta[key], str):
            raise CheckpointError(f"{path}: {key!r} must be a string, got {meta[key]!r}")
    if "size" in meta:
        _check_size(meta["size"], f"{path}: 'size'")
    if "sizes" in meta:
        if not isinstance(meta["sizes"], list) or not meta["sizes"]:
            raise CheckpointError(f"{path}: 'sizes' must be a list of working sizes, got {meta['sizes']!r}")
        for value in meta["sizes"]:
            _check_size(value, f"{path}: 'sizes'")
    if ("dit" in meta) != ("vae" in meta):
        raise CheckpointError(f"{path}: give both 'dit' and 'vae' file names, or neither")
    for key in ("dit", "vae", "tasks_dir"):
        if key in meta:
            _check_inside(folder, meta[key], f"{path}: {key!r}")
    pairs = max_pairs(meta)
    if pairs is not None and (isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1):
        raise CheckpointError(f"{path}: 'max_pairs' must be a positive whole number, got {pairs!r}")
    tasks = meta.get("tasks")
    if tasks is not None and not isinstance(tasks, str) and not (isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)):
        raise CheckpointError(f"{path}: 'tasks' must be a list of task names, got {tasks!r}")
    return meta


def write_model_json(folder: Path, meta: dict) -> Path:
    """The one writer of model.json (the trainer, the store's installs, save_model_folder):
    atomic, and read back through read_model_json so that nothing is written that the reader
    would refuse."""
    import json

    path = Path(folder) / "model.json"
    files.write_atomic(path, (json.dumps(meta, indent=2) + "\n").encode(), overwrite=True)
    read_model_json(Path(folder))
    return path


def open_folder(path: Path, name: str | None = None, dit: Path | None = None) -> ModelFolder:
    """Recognise a model folder: model.json naming its files, lavin's layout, or the official one."""
    path = path.expanduser()
    meta = read_model_json(path)
    name = meta.get("name", name or path.name)
    size = meta.get("size", OFFICIAL_SIZE)
    listed = meta.get("tasks")
    tasks_dir = meta.get("tasks_dir") or (listed if isinstance(listed, str) else None)  # older folders named it "tasks"
    if "dit" in meta:
        files = (dit or path / meta["dit"], path / meta["vae"])
        tasks = path / (tasks_dir or "tasks")
    elif (path / "vae.safetensors").is_file() and (dit or (path / "dit.safetensors")).is_file():
        files, tasks = (dit or path / "dit.safetensors", path / "vae.safetensors"), path / (tasks_dir or "tasks")
    else:
        weights = next((w for w in (path, path / "weights") if (w / "stvae.pt").is_file()), None)
        official = dit or (weights / "lavin_dit.safetensors" if weights else None)
        if weights is None or not official.is_file():
            raise CheckpointError(
                f"{path}: not a model folder (expected dit.safetensors + vae.safetensors, "
                "or the official lavin_dit.safetensors + stvae.pt)"
            )
        files = (official, weights / "stvae.pt")
        tasks = next((t for t in (path / "template", weights.parent / "template") if t.is_dir()), path / "template")
        meta.setdefault("description", "official LaVin-DiT release")
    for f in files:
        if not f.is_file():
            raise CheckpointError(f"{path}: model file {f.name} is missing")
    return ModelFolder(name, path, files[0], files[1], size, tasks if tasks.is_dir() else None,
                       meta.get("description", ""), meta, tuple(listed) if isinstance(listed, list) else None,
                       tuple(meta["sizes"]) if "sizes" in meta else None, max_pairs(meta))


def resolve(name_or_path: str | None, home_dir: Path | str | None = None) -> ModelFolder:
    """--model NAME|PATH, else $LAVIN_MODEL, else the bundled model."""
    spec = name_or_path or os.environ.get("LAVIN_MODEL")
    if not spec:
        bundled = bundled_dir()
        if bundled is None:
            raise CheckpointError("no model given and no bundled model installed: pass --model NAME|PATH or set LAVIN_MODEL")
        return open_folder(bundled, "lavin-small")
    path = Path(spec).expanduser()
    if path.is_dir():
        return open_folder(path)
    if path.is_file():  # a DiT checkpoint: its VAE is expected beside it
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{spec}: give a model folder or a DiT .safetensors checkpoint")
        return open_folder(path.parent, dit=path)
    if files.file_kind(path):
        raise CheckpointError(f"{spec}: is {files.file_kind(path)}, not a model folder or checkpoint")
    if registry.is_hub_id(spec) and not spec.startswith("."):
        entry = registry.entry_for(spec, home_dir)
        if (home(home_dir) / "models" / entry.name).is_dir():
            return open_folder(home(home_dir) / "models" / entry.name, entry.name)
        raise CheckpointError(f"{spec}: not installed (a Hugging Face repo, read as {entry.name}); run "
                              f"`lavin download {spec}`, or give a folder path")
    if os.sep in spec or spec.startswith("."):
        raise CheckpointError(f"{spec}: model folder not found")
    installed = home(home_dir) / "models" / spec
    if installed.is_dir():
        return open_folder(installed, spec)
    bundled = bundled_dir()
    if bundled is not None and spec in ("lavin-small", "bundled"):
        return open_folder(bundled, "lavin-small")
    if spec in registry.load(home_dir):
        raise CheckpointError(f"model {spec!r} is not installed: run `lavin download {spec}`")
    known = sorted(p.name for p in (home(home_dir) / "models").glob("*") if p.is_dir()) if (home(home_dir) / "models").is_dir() else []
    hint = f"installed: {', '.join(known)}" if known else f"none installed under {home(home_dir) / 'models'}"
    raise CheckpointError(f"unknown model {spec!r} ({hint}); see `lavin models`, or pass a model folder path")


@dataclass(frozen=True)
class Task:
    name: str
    path: Path
    source: str  # "model" or "examples"


def tasks(model: ModelFolder | None) -> dict[str, Task]:
    """Task folders: the model's own (or the official templates), then the shipped examples."""
    found: dict[str, Task] = {}
    sources = [(model.tasks_dir, "model")] if model and model.tasks_dir else []
    if examples_dir():
        sources.append((examples_dir(), "examples"))
    for root, source in sources:
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if any(sub.glob("*_input.*")) or (sub / "input").is_dir():
                found.setdefault(sub.name, Task(sub.name, sub, source))
    return found


def file_sha256(path: Path) -> str:
    """sha256 of a model file, remembered across runs (big checkpoints are hashed once)."""
    return files.sha256(path, cache=hash_cache())
