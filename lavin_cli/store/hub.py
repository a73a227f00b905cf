"""Downloading, unpacking, converting and verifying models into lavin's store.

    install("lavin-dit-3.4b")   ->  $LAVIN_HOME/models/lavin-dit-3.4b/  (ready to run)

Files come through huggingface_hub (its cache, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE and resume
of interrupted downloads) or plain HTTPS (resumed with Range requests). Every downloaded file is
hashed; a hash the registry knows must match, or the file is moved to quarantine. Archives are
unpacked with tarfile's `data` filter and an allowlist of members. The VAE pickle is converted
to safetensors through weights_only loading, the DiT is checked against its preset, and a
manifest of sha256 hashes is written last: a model folder with a manifest is complete.
Work happens in `<name>.partial/`, renamed into place at the end, so a failure leaves nothing
half-installed where a good model is expected.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.errors import CheckpointError, LavinError, OutputError
from lavin_cli.io import files
from lavin_cli.store import folders, registry
from lavin_cli.store.manifest import installed, write_manifest
from lavin_cli.store.home import bundled_dir
from lavin_cli.store.home import home as store_home


@dataclass(frozen=True)
class Event:
    stage: str  # "download", "unpack", "convert", "check", "verify"
    item: str
    done: int
    total: int


Callback = Optional[Callable[[Event], None]]


def offline(flag: bool = False) -> bool:
    return flag or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256(path: Path, callback: Callback = None) -> str:
    """The file's sha256, reporting progress as "verify" events."""
    report = (lambda done, total: callback(Event("verify", path.name, done, total))) if callback else None
    return files.sha256(path, report)


def check_free(folder: Path, needed: int, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write here ({files.describe_os_error(exc)})") from None
    if needed and free < needed * 1.05 + (64 << 20):
        raise OutputError(f"not enough disk space for {what}: {needed / 1e9:.2f} GB needed, "
                          f"{free / 1e9:.2f} GB free in {folder}")


# ------------------------------------------------------------------ fetching


def _hf_cache() -> Path:
    """The Hugging Face cache, as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME,
    XDG_CACHE_HOME); HF_HUB_CACHE is read again here so that a value set after import counts."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def _progress_class(callback: Callback, name: str):
    from tqdm.auto import tqdm

    class Reporter(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(file=io.StringIO(), disable=False)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            super().update(n)
            if callback and self.total:
                callback(Event("download", name, int(self.n), int(self.total)))

    return Reporter


@dataclass(frozen=True)
class Fetched:
    path: Path
    owned: bool  # downloaded by lavin (removed once installed); False: a file of the user's HF cache


def fetch_hf(entry: registry.ModelEntry, f: registry.RemoteFile, downloads: Path, is_offline: bool,
             callback: Callback) -> Fetched:
    """A file of a Hugging Face repo: the copy in the user's HF cache when there is one, else
    downloaded (resumably) into `downloads`."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT") or None
    token = os.environ.get("HF_TOKEN") or None
    cached = try_to_load_from_cache(entry.repo, f.path, cache_dir=_hf_cache(), revision=entry.revision)
    if isinstance(cached, str) and Path(cached).is_file():
        return Fetched(Path(cached), owned=False)
    if is_offline:
        raise CheckpointError(f"{entry.name}: {f.path} is neither installed nor in the Hugging Face cache, and "
                              "downloads are off (HF_HUB_OFFLINE / {{offline}})")
    retries: list[str] = []
    try:
        with _hub_log_kept(retries):
            meta = get_hf_file_metadata(hf_hub_url(entry.repo, f.path, revision=entry.revision, endpoint=endpoint),
                                        token=token)
            check_free(downloads, meta.size or f.size or 0, f"downloading {f.path}")
            path = hf_hub_download(entry.repo, f.path, revision=entry.revision, local_dir=downloads, endpoint=endpoint,
                                   token=token, tqdm_class=_progress_class(callback, f.path))
    except LavinError:
        raise
    except HfHubHTTPError as exc:
        raise CheckpointError(f"{entry.name}: download of {f.path} from {entry.repo} failed: {str(exc).splitlines()[0]}") from None
    except LocalEntryNotFoundError:
        raise CheckpointError(f"{entry.name}: cannot reach {endpoint or 'https://huggingface.co'} to download {f.path}: "
                              "check the network (or HF_ENDPOINT), or install offline from a copy") from None
    except Exception as exc:  # the HTTP stack's connection errors, timeouts, ... as one line
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        tries = sum("resume" in line for line in retries)
        raise CheckpointError(f"{entry.name}: cannot download {f.path} from {endpoint or 'https://huggingface.co'} "
                              f"({reason}{f'; {tries} retries' if tries else ''}): check the network (or HF_ENDPOINT)"
                              ) from None
    return Fetched(Path(path), owned=True)


@contextlib.contextmanager
def _hub_log_kept(kept: list[str]):
    """huggingface_hub's log lines (a line per retry) kept in `kept` instead of stderr, where the
    one-line error says what happened; LAVIN_DEBUG=1 lets them through."""
    import logging

    if os.environ.get("LAVIN_DEBUG"):
        yield
        return

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record.getMessage())

    logger = logging.getLogger("huggingface_hub")
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [Keep()], False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = handlers, propagate


def fetch_url(entry: registry.ModelEntry, f: registry.RemoteFile, downloads: Path, is_offline: bool,
              callback: Callback) -> Fetched:
    """Plain HTTPS into `downloads`, resuming a .part file with a Range request."""
    name = f.path.rstrip("/").rsplit("/", 1)[-1]
    dest = downloads / name
    if dest.is_file():
        return Fetched(dest, owned=True)
    if is_offline:
        raise CheckpointError(f"{entry.name}: {name} is not downloaded and downloads are off (--offline)")
    part = dest.with_name(name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(f.path, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if have and response.status != 206:
                    have = 0  # the server ignored Range: start over
                total = have + int(response.headers.get("Content-Length", 0))
                check_free(dest.parent, total - have, f"downloading {name}")
                with open(part, "ab" if have else "wb") as out:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        have += len(block)
                        if callback:
                            callback(Event("download", name, have, total))
                if have < total:  # urllib returns a short body silently when the peer hangs up
                    raise ConnectionError(f"connection closed after {have} of {total} bytes")
            os.replace(part, dest)
            return Fetched(dest, owned=True)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, LavinError):
                raise
            if attempt == 4:
                reason = getattr(exc, "reason", None) or exc
                raise CheckpointError(f"{entry.name}: cannot download {f.path} ({reason}): check the network") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ unpacking


def unpack(archive: Path, dest: Path, f: registry.RemoteFile, callback: Callback = None) -> list[str]:
    """Extract an allow-listed tar archive: regular files and folders only, nothing outside `dest`."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise CheckpointError(f"{archive.name}: refused: {m.name!r} is a link or special file")
                if m.name.startswith("/") or ".." in Path(m.name).parts or not f.allows(m.name + ("/" if m.isdir() else "")):
                    raise CheckpointError(f"{archive.name}: refused: unexpected member {m.name!r}")
            check_free(dest, sum(m.size for m in members), f"unpacking {archive.name}")
            for n, m in enumerate(members):
                tar.extract(m, dest, filter="data")
                if callback:
                    callback(Event("unpack", archive.name, n + 1, len(members)))
            return [m.name for m in members if m.isfile()]
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise CheckpointError(f"{archive.name}: truncated or unreadable archive ({exc})") from None


def quarantine(path: Path, home: Path, reason: str) -> Path:
    target = home / "quarantine" / f"{path.name}.{int(time.time())}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path.resolve()), target)
    (target.with_name(target.name + ".why")).write_text(reason + "\n")
    return target


# ------------------------------------------------------------------ installing


def _check_dit(path: Path, preset: str | None) -> None:
    """The loader's own key and shape checks, on meta tensors: nothing of the file is loaded."""
    import torch

    from lavin_cli.config import dit_preset
    from lavin_cli.store import checkpoints as ck
    from lavin_cli.store import weights

    shapes, _ = ck.safetensors_reader(path, torch.device("cpu"), None)
    meta = ck.read_metadata(path)
    ours = meta.get("format") == ck.FORMAT
    cfg = ck.config_from_metadata(meta, path) if ours else dit_preset(preset) if preset else ck.infer_dit_config(shapes, path)
    empty = lambda name: torch.empty(shapes[name], device="meta")  # noqa: E731
    state = {k: empty(k) for k in shapes} if ours else ck.from_official(empty, set(shapes), ck.dit_plan(cfg), path.name)
    ck.check_shapes(weights.build(cfg, init=False), state, path.name)


def _finalize(entry: registry.ModelEntry, staging: Path, downloads: dict, callback: Callback) -> None:
    from lavin_cli.store import weights

    if entry.vae_pickle:
        if callback:
            callback(Event("convert", entry.vae_pickle, 0, 1))
        vae = weights.load_vae(staging / entry.vae_pickle)  # weights_only; tensors only
        weights.save(vae, staging / entry.vae)
        (staging / entry.vae_pickle).unlink()
        if callback:
            callback(Event("convert", entry.vae_pickle, 1, 1))
    if callback:
        callback(Event("check", entry.dit, 0, 1))
    _check_dit(staging / entry.dit, entry.preset)
    model = {"name": entry.name, "description": entry.description, "size": entry.size, "dit": entry.dit,
             "vae": entry.vae, "preset": entry.preset}
    if entry.tasks:
        model["tasks_dir"] = entry.tasks
    folders.write_model_json(staging, model)
    pinned = bool(entry.files) and all(f.sha256 for f in entry.files)
    write_manifest(staging, entry.name, {"type": entry.source, "repo": entry.repo, "revision": entry.revision,
                                         "pinned": pinned}, downloads)


def install(spec: str, home=None, offline_flag: bool = False, force: bool = False, callback: Callback = None,
            revision: str | None = None) -> folders.ModelFolder:
    """Download, verify, unpack and convert a registry model or a hub id `org/repo[@revision]`
    (`revision` overrides the registry's); a ready install is reused."""
    entry = registry.entry_for(spec, home, revision)
    name = entry.name
    if entry.source == "bundled":
        bundled = bundled_dir()
        if bundled is None:
            raise CheckpointError(f"{name} ships with lavin, but this installation lacks it")
        return folders.open_folder(bundled, name)
    root = store_home(home)
    done = installed(name, home)
    if done and not force:
        return folders.open_folder(done, name)
    is_offline = offline(offline_flag)
    staging = root / "models" / f"{name}.partial"
    downloads_dir = root / "downloads" / name
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        hashes, used = {}, []
        for f in entry.files:
            fetch = fetch_hf if entry.source == "hf" else fetch_url
            got = fetch(entry, f, downloads_dir, is_offline, callback)
            digest = sha256(got.path, callback)
            if f.sha256 and digest != f.sha256:
                moved = quarantine(got.path, root, f"sha256 {digest} != expected {f.sha256}")
                raise CheckpointError(f"{name}: {f.path} has sha256 {digest[:12]}..., expected {f.sha256[:12]}...; "
                                      f"moved to {moved}")
            hashes[f.path] = {"sha256": digest, "size": got.path.stat().st_size}
            if f.members or f.member_pattern:
                unpack(got.path, staging, f, callback)
                used.append(got)
            else:
                _take(got, staging / Path(f.path).name)
        _finalize(entry, staging, hashes, callback)
        final = root / "models" / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except OSError as exc:  # the store's disk: full, read-only, not a folder, ...
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"{name}: cannot install into {root} ({files.describe_os_error(exc)})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for got in used:  # unpacked and installed: the archive itself is not kept (one copy on disk)
        if got.owned:
            got.path.unlink(missing_ok=True)
    shutil.rmtree(downloads_dir / ".cache", ignore_errors=True)
    _remove_empty(downloads_dir)
    return folders.open_folder(final, name)


def _take(got: Fetched, dest: Path) -> None:
    """Put a downloaded file into the model folder without a second copy: moved when lavin
    downloaded it, hard-linked from the user's HF cache (copied where linking is impossible)."""
    if got.owned:
        os.replace(got.path, dest)
        return
    try:
        os.link(got.path.resolve(), dest)
    except OSError:
        shutil.copyfile(got.path, dest)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
        folder.parent.rmdir()
    except OSError:
        pass
