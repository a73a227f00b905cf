"""The model registry: every model lavin knows, where it comes from and what it unpacks into.

The registry ships as `weights/registry.json` (installed as lavin_cli/weights_data). Entries in
`$LAVIN_HOME/registry.json` are added to it (or replace entries of the same name), which is how
a user or a test registers another source.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from lavin_cli.errors import CheckpointError, UsageError
from lavin_cli.store.home import home, shipped_registry

OFFICIAL_SIZE = 512  # the official model's working size

FORMAT = "lavin-registry/1"
OFFICIAL_LAYOUT = "lavin-dit-3.4b"  # the entry whose files and folder layout a hub id `org/repo` is read with
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?")


@dataclass(frozen=True)
class RemoteFile:
    path: str  # file name in the repo, or a URL for plain HTTPS sources
    sha256: str | None = None
    size: int | None = None
    members: tuple[str, ...] = ()  # archive members allowed, exactly
    member_pattern: str | None = None  # or: a regex every member must match

    def allows(self, member: str) -> bool:
        if member in self.members or member.rstrip("/") + "/" in self.members:
            return True
        return bool(self.member_pattern and re.fullmatch(self.member_pattern, member))


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    source: str  # "hf" | "url" | "bundled"
    repo: str | None = None
    revision: str = "main"
    files: tuple[RemoteFile, ...] = ()
    preset: str | None = None
    size: int = OFFICIAL_SIZE
    dit: str = "dit.safetensors"  # paths inside the model folder once unpacked
    vae: str = "vae.safetensors"
    vae_pickle: str | None = None  # an official stvae.pt to convert into `vae`
    tasks: str | None = None
    extra: dict = field(default_factory=dict)


def _entry(raw: dict, origin: str) -> ModelEntry:
    try:
        src = raw["source"]
        files = tuple(RemoteFile(f["path"] if src["type"] == "hf" else f["url"], f.get("sha256"), f.get("size"),
                                 tuple(f.get("members", ())), f.get("member_pattern")) for f in src.get("files", ()))
        return ModelEntry(raw["name"], raw.get("description", ""), src["type"], src.get("repo"), src.get("revision", "main"),
                          files, raw.get("preset"), int(raw.get("size", OFFICIAL_SIZE)), raw.get("dit", "dit.safetensors"),
                          raw.get("vae", "vae.safetensors"), raw.get("vae_pickle"), raw.get("tasks"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{origin}: malformed registry entry {raw.get('name', '?')!r} ({exc})") from None


def _read(path: Path) -> list[ModelEntry]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable registry ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    models = data.get("models", [])
    if not isinstance(models, list) or not all(isinstance(raw, dict) for raw in models):
        raise CheckpointError(f"{path}: \"models\" must be a list of model objects")
    return [_entry(raw, str(path)) for raw in models]


def load(home_dir=None) -> dict[str, ModelEntry]:
    """Shipped entries, then the user's ($LAVIN_HOME/registry.json) on top."""
    shipped = shipped_registry()
    if shipped is None:
        raise CheckpointError("lavin's registry.json is missing from the installation")
    entries = {e.name: e for e in _read(shipped)}
    user = home(home_dir) / "registry.json"
    if user.is_file():
        entries.update({e.name: e for e in _read(user)})
    return entries


def get(name: str, home_dir=None) -> ModelEntry:
    entries = load(home_dir)
    if name not in entries:
        raise CheckpointError(f"unknown model {name!r}; known: {', '.join(sorted(entries))} (see `lavin models`)")
    return entries[name]


def is_hub_id(spec: str) -> bool:
    """`org/repo` or `org/repo@revision`, as `from_pretrained` takes."""
    return bool(HUB_ID.fullmatch(spec)) and ".." not in spec


def _unpinned(files: tuple[RemoteFile, ...]) -> tuple[RemoteFile, ...]:
    """The files without their hashes and sizes (another repo or revision: not known to match)."""
    return tuple(dataclasses.replace(f, sha256=None, size=None) for f in files)


def entry_for(spec: str, home_dir=None, revision: str | None = None) -> ModelEntry:
    """A registry name or a hub id -> the entry to install or open. A hub id of a registered
    repo is that entry (at the given revision); another repo is read in the official release's
    layout (weights.tar.gz, template.tar.gz), unpinned. `revision` overrides the entry's."""
    entries = load(home_dir)
    if spec in entries:
        entry = entries[spec]
    elif is_hub_id(spec):
        match = HUB_ID.fullmatch(spec)
        if revision and match["revision"] and revision != match["revision"]:
            raise UsageError(f"{spec} names revision {match['revision']} and --revision {revision} another: give one")
        repo, revision = match["repo"], revision or match["revision"]
        known = [e for e in entries.values() if e.source == "hf" and e.repo == repo]
        entry = known[0] if known else dataclasses.replace(
            entries[OFFICIAL_LAYOUT], name=repo.replace("/", "--"), repo=repo,
            description=f"{repo} from the Hugging Face hub, read in the official release's layout", preset=None,
            files=_unpinned(entries[OFFICIAL_LAYOUT].files))
    else:
        raise CheckpointError(f"unknown model {spec!r}; known: {', '.join(sorted(entries))} (see `lavin models`), "
                              "or a Hugging Face repo as org/repo[@revision]")
    if revision and revision != entry.revision:
        if entry.source != "hf":
            raise CheckpointError(f"{spec}: --revision applies to Hugging Face models; {entry.name} is not one")
        entry = dataclasses.replace(entry, name=f"{entry.name}@{revision}", revision=revision,
                                    files=_unpinned(entry.files))
    return entry
