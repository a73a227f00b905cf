"""`lavin download / models / verify` against a local hub server (no internet here)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import make_pairs
from hubserver import HubServer

from lavin_cli.config import dit_preset, vae_preset
from lavin_cli.store import weights

REPO = "test/tiny-lavin"


def _tar(entries: list[tuple[str, bytes | None, str]]) -> bytes:
    """entries: (name, data, kind) with kind 'file', 'dir' or 'symlink:TARGET'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind.startswith("symlink:"):
                info.type, info.linkname = tarfile.SYMTYPE, kind.split(":", 1)[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict[str, bytes]:
    """Archives with the official layout: weights/{lavin_dit.safetensors, stvae.pt}, template/<task>/..."""
    root = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    dit = weights.build(dit_preset("tiny"))
    for p in dit.parameters():
        p.data.add_(torch.randn(p.shape) * 0.05)
    weights.export_official(dit, root / "lavin_dit.safetensors")
    weights.export_official(weights.build(vae_preset("tiny")), root / "stvae.pt")
    make_pairs(root / "template" / "noise_task", count=3)
    template = [("template/", None, "dir"), ("template/noise_task/", None, "dir")]
    template += [(f"template/noise_task/{p.name}", p.read_bytes(), "file") for p in sorted((root / "template" / "noise_task").iterdir())]
    return {
        "weights.tar.gz": _tar([("weights/", None, "dir"),
                                ("weights/lavin_dit.safetensors", (root / "lavin_dit.safetensors").read_bytes(), "file"),
                                ("weights/stvae.pt", (root / "stvae.pt").read_bytes(), "file")]),
        "template.tar.gz": _tar(template),
    }


def _register(home: Path, name="tiny-official", sha=None, files=("weights.tar.gz", "template.tar.gz"), source="hf", url=None):
    spec = {"weights.tar.gz": {"members": ["weights/", "weights/lavin_dit.safetensors", "weights/stvae.pt"]},
            "template.tar.gz": {"member_pattern": r"^template(/[^/]+(/[^/]+\.(png|jpe?g))?)?/?$"}}
    entries = []
    for f in files:
        e = {"path": f, **spec[f], "sha256": (sha or {}).get(f)}
        if source == "url":
            e["url"] = f"{url}/files/{f}"
        entries.append(e)
    model = {"name": name, "description": "tiny official-layout release, for tests", "preset": "tiny", "size": 32,
             "source": {"type": source, "repo": REPO, "files": entries}, "dit": "weights/lavin_dit.safetensors",
             "vae_pickle": "weights/stvae.pt", "tasks": "template"}
    home.mkdir(parents=True, exist_ok=True)
    (home / "registry.json").write_text(json.dumps({"format": "lavin-registry/1", "models": [model]}))


@pytest.fixture
def hub(release, tmp_path, monkeypatch):
    with HubServer() as server:
        for name, data in release.items():
            server.files[f"{REPO}/{name}"] = data
            server.files[f"files/{name}"] = data
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("LAVIN_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def test_download_models_verify_run(cli, hub, tmp_path, release):
    home = tmp_path / "home"
    _register(home, sha={"weights.tar.gz": hashlib.sha256(release["weights.tar.gz"]).hexdigest()})
    code, stdout, err = cli("download", "tiny-official")
    assert code == 0, err
    folder = Path(stdout.strip())
    assert folder == home / "models" / "tiny-official"
    assert (folder / "vae.safetensors").is_file() and not (folder / "weights" / "stvae.pt").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "ready" and "weights/lavin_dit.safetensors" in manifest["files"]
    code, stdout, _ = cli("models", "--json")
    assert {"name": "tiny-official", "status": "ready"} in [{k: r[k] for k in ("name", "status")} for r in json.loads(stdout)]
    code, _, err = cli("verify", "tiny-official")
    assert code == 0 and "all" in err
    code, stdout, _ = cli("tasks", "-m", "tiny-official", "--json")
    assert [t["task"] for t in json.loads(stdout) if t["source"] == "model"] == ["noise_task"]
    q = folder / "template" / "noise_task" / "000_input.png"
    code, _, err = cli("run", "-m", "tiny-official", "--task", "noise_task", "-i", q, "-o", tmp_path / "p.png", "--steps", "3")
    assert code == 0, err
    # a second download reuses the ready install; a corrupted file fails verification
    assert cli("download", "tiny-official")[0] == 0
    with open(folder / "vae.safetensors", "r+b") as f:
        f.seek(-3, 2)
        f.write(b"xyz")
    code, _, err = cli("verify", "tiny-official")
    assert code == 4 and "vae.safetensors" in err


def test_interrupted_download_resumes(cli, hub, tmp_path):
    _register(tmp_path / "home")
    hub.drop_once.add(f"{REPO}/weights.tar.gz")
    code, _, err = cli("download", "tiny-official")
    assert code == 0, err
    gets = [r for r in hub.log if r[0] == "GET" and r[1].endswith("weights.tar.gz")]
    assert len(gets) >= 2 and any(r[2].startswith("bytes=") and r[2] != "bytes=0-" for r in gets[1:])
    assert not list((tmp_path / "home" / "models").glob("*.partial"))


def test_wrong_hash_is_rejected_and_quarantined(cli, hub, tmp_path):
    _register(tmp_path / "home", sha={"weights.tar.gz": "0" * 64})
    code, _, err = cli("download", "tiny-official")
    assert code == 4 and "expected 000000000000" in err and "Traceback" not in err
    assert list((tmp_path / "home" / "quarantine").glob("*.why"))
    assert not (tmp_path / "home" / "models" / "tiny-official").exists()
    assert not list((tmp_path / "home" / "models").glob("*.partial"))


@pytest.mark.parametrize("bad", [("weights/../../evil", b"x", "file"), ("weights/link", None, "symlink:/etc/passwd"),
                                 ("/abs/path", b"x", "file"), ("weights/extra.bin", b"x", "file")])
def test_unsafe_archives_are_refused(cli, hub, tmp_path, release, bad):
    with tarfile.open(fileobj=io.BytesIO(release["weights.tar.gz"])) as tar:
        good = [(m.name + ("/" if m.isdir() else ""), None if m.isdir() else tar.extractfile(m).read(),
                 "dir" if m.isdir() else "file") for m in tar.getmembers()]
    hub.files[f"{REPO}/weights.tar.gz"] = _tar(good + [bad])
    _register(tmp_path / "home", files=("weights.tar.gz",))
    code, _, err = cli("download", "tiny-official")
    assert code == 4 and "refused" in err, err
    assert not (tmp_path / "evil").exists() and not (tmp_path / "home" / "evil").exists()
    assert not (tmp_path / "home" / "models" / "tiny-official").exists()


def test_pickle_holding_more_than_tensors_is_refused(cli, hub, tmp_path, release):
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": print}, buf)
    with tarfile.open(fileobj=io.BytesIO(release["weights.tar.gz"])) as tar:
        dit = tar.extractfile("weights/lavin_dit.safetensors").read()
    hub.files[f"{REPO}/weights.tar.gz"] = _tar([("weights/", None, "dir"), ("weights/lavin_dit.safetensors", dit, "file"),
                                                ("weights/stvae.pt", buf.getvalue(), "file")])
    _register(tmp_path / "home", files=("weights.tar.gz",))
    code, _, err = cli("download", "tiny-official")
    assert code == 4 and "refused" in err and "Traceback" not in err


def test_full_disk_is_reported(cli, hub, tmp_path, monkeypatch):
    from collections import namedtuple

    from lavin_cli.store import hub as hub_module

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(hub_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    _register(tmp_path / "home")
    code, _, err = cli("download", "tiny-official")
    assert code == 6 and "not enough disk space" in err


def test_one_copy_on_disk_and_offline_installs_from_the_hf_cache(cli, hub, tmp_path, monkeypatch, release):
    from huggingface_hub import hf_hub_download

    _register(tmp_path / "home")
    assert cli("download", "tiny-official")[0] == 0
    home = tmp_path / "home"
    assert not (home / "downloads").exists()  # the archives went once unpacked: one copy of the model
    installed = sum(p.stat().st_size for p in (home / "models").rglob("*") if p.is_file())
    everything = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file() and "hf-cache" not in p.parts)
    assert everything - installed < 4096  # (the registry file)
    for name in release:  # a user's own HF cache, filled by another tool
        hf_hub_download(REPO, name, cache_dir=tmp_path / "hf-cache", endpoint=hub.url)
    requests = len(hub.log)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = cli("download", "tiny-official")
    assert code == 0, err
    shutil.rmtree(home / "models" / "tiny-official")
    code, _, err = cli("download", "tiny-official")  # from the HF cache, offline, which stays as it was
    assert code == 0, err
    assert all(list((tmp_path / "hf-cache").rglob(name)) for name in release)
    shutil.rmtree(tmp_path / "hf-cache")
    shutil.rmtree(home / "models" / "tiny-official")
    code, _, err = cli("download", "tiny-official", "--offline")
    assert code == 4 and "downloads are off" in err
    assert len(hub.log) == requests  # nothing touched the server


def test_no_network_is_one_line(cli, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("LAVIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _register(tmp_path / "home")
    code, _, err = cli("download", "tiny-official")
    assert code == 4 and "check the network" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "home" / "models").glob("*"))


def test_plain_url_source_resumes_with_range(cli, hub, tmp_path):
    _register(tmp_path / "home", source="url", url=hub.url)
    hub.drop_once.add("files/weights.tar.gz")
    code, _, err = cli("download", "tiny-official")
    assert code == 0, err
    gets = [r for r in hub.log if r[0] == "GET" and r[1] == "/files/weights.tar.gz"]
    assert len(gets) == 2 and gets[0][2] == "" and gets[1][2].startswith("bytes=") and gets[1][2] != "bytes=0-"
    assert (tmp_path / "home" / "models" / "tiny-official" / "manifest.json").is_file()


def test_unknown_and_uninstalled_models(cli, hub, tmp_path, queries, pairs_dir):
    _register(tmp_path / "home")
    code, _, err = cli("download", "no-such-model")
    assert code == 4 and "unknown model" in err
    code, _, err = cli("run", "-m", "tiny-official", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "o.png")
    assert code == 4 and "lavin download tiny-official" in err


def test_token_home_and_checkpoint_file_paths(cli, hub, tmp_path, monkeypatch, queries, pairs_dir):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    other = tmp_path / "elsewhere"
    _register(other)
    monkeypatch.setenv("LAVIN_HOME", str(tmp_path / "unused"))
    code, stdout, err = cli("download", "tiny-official", "--home", other)
    assert code == 0, err
    assert "Bearer hf_secret" in hub.auth
    assert Path(stdout.strip()) == other / "models" / "tiny-official"
    code, stdout, _ = cli("models", "--home", other, "--json")
    assert any(r["name"] == "tiny-official" and r["status"] == "ready" for r in json.loads(stdout))
    # --model also takes the DiT checkpoint file itself (its VAE beside it, as in lavin's layout)
    folder = other / "models" / "tiny-official"
    ours = tmp_path / "ours"
    assert cli("convert", "--dit", folder / "weights" / "lavin_dit.safetensors", "--vae", folder / "vae.safetensors",
               "-o", ours)[0] == 0
    code, _, err = cli("run", "-m", ours / "dit.safetensors", "-c", pairs_dir, "-i", queries[0], "-o", tmp_path / "p.png",
                       "--steps", "3", "--size", "32")
    assert code == 0, err


def test_dit_that_does_not_fit_its_preset_is_refused(cli, hub, tmp_path, release):
    from safetensors.torch import load as load_bytes
    from safetensors.torch import save as save_bytes

    with tarfile.open(fileobj=io.BytesIO(release["weights.tar.gz"])) as tar:
        dit = load_bytes(tar.extractfile("weights/lavin_dit.safetensors").read())
        vae = tar.extractfile("weights/stvae.pt").read()
    dit["x_embedder.0.weight"] = torch.zeros(96, 65)  # wrong in its second dimension
    hub.files[f"{REPO}/weights.tar.gz"] = _tar([("weights/", None, "dir"), ("weights/lavin_dit.safetensors", save_bytes(dit), "file"),
                                                ("weights/stvae.pt", vae, "file")])
    _register(tmp_path / "home", files=("weights.tar.gz",))
    code, _, err = cli("download", "tiny-official")
    assert code == 4 and "target_embed.proj.weight (96, 65) != (96, 64)" in err
    assert not (tmp_path / "home" / "models" / "tiny-official").exists()


def test_disk_full_while_unpacking_leaves_nothing_half_installed(cli, hub, tmp_path, monkeypatch):
    import errno
    import tarfile

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extract", full)
    _register(tmp_path / "home")
    code, _, err = cli("download", "tiny-official")
    assert code == 6 and "disk full" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "home" / "models").glob("*"))


def test_hub_ids_as_from_pretrained_takes_them(cli, hub, tmp_path, release):
    """`-m org/repo[@revision]`: a registered repo is its entry; another repo in the official
    layout installs as org--repo (unpinned, said so); --revision installs NAME@REV."""
    home = tmp_path / "home"
    _register(home, sha={"weights.tar.gz": hashlib.sha256(release["weights.tar.gz"]).hexdigest(),
                         "template.tar.gz": hashlib.sha256(release["template.tar.gz"]).hexdigest()})
    code, _, err = cli("run", "-m", REPO, "--task", "noise_task", "-i", "x.png", "-o", tmp_path / "x.png")
    assert code == 4 and f"{REPO}: not installed" in err and f"lavin download {REPO}" in err, err
    code, stdout, err = cli("download", REPO)
    assert code == 0 and Path(stdout.strip()) == home / "models" / "tiny-official" and "not pinned" not in err, err
    q = home / "models" / "tiny-official" / "template" / "noise_task" / "000_input.png"
    code, _, err = cli("run", "-m", REPO, "--task", "noise_task", "-i", q, "-o", tmp_path / "a.png", "--steps", "2")
    assert code == 0, err

    for name, data in release.items():
        hub.files[f"other/release/{name}"] = data
    code, stdout, err = cli("download", "other/release")
    assert code == 0 and Path(stdout.strip()) == home / "models" / "other--release", err
    assert "other/release@main is not pinned" in err
    manifest = json.loads((home / "models" / "other--release" / "manifest.json").read_text())
    assert manifest["source"] == {"type": "hf", "repo": "other/release", "revision": "main", "pinned": False}
    code, _, err = cli("run", "-m", "other/release", "--task", "noise_task", "-i", q, "-o", tmp_path / "b.png",
                       "--steps", "2", "--size", "32")
    assert code == 0, err

    code, stdout, err = cli("download", "tiny-official", "--revision", "v2")
    assert code == 0 and Path(stdout.strip()) == home / "models" / "tiny-official@v2", err
    assert "tiny-official@v2: test/tiny-lavin@v2 is not pinned" in err
    assert any("/resolve/v2/weights.tar.gz" in path for _, path, _ in hub.log)
    assert cli("run", "-m", f"{REPO}@v2", "--task", "noise_task", "-i", q, "-o", tmp_path / "c.png", "--steps", "2")[0] == 0
    code, _, err = cli("download", "no/such..repo")
    assert code == 4 and "unknown model" in err, err


def test_a_hub_that_always_cuts_the_body_off_is_one_line(cli, hub, tmp_path):
    """huggingface_hub retries and logs each retry; the user sees one line and exit 4."""
    _register(tmp_path / "home")
    hub.truncate.add(f"{REPO}/weights.tar.gz")
    code, _, err = cli("download", "tiny-official", "-q")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 4 and len(lines) == 1 and "weights.tar.gz" in lines[0] and "Traceback" not in err, err
    assert not list((tmp_path / "home" / "models").glob("*.partial"))
