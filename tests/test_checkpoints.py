"""Checkpoint formats: key plans, round trips, strict loading and safe unpickling."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lavin_cli.config import DiTConfig, dit_preset, vae_preset
from lavin_cli.errors import CheckpointError
from lavin_cli.store import checkpoints as ck
from lavin_cli.store import weights

PARITY = Path(__file__).resolve().parent.parent.parent / "shared" / "parity"
needs_parity = pytest.mark.skipif(not (PARITY / "manifest.json").is_file(), reason="no ../shared/parity")
TINY_DIT = PARITY / "lavin_dit_tiny.safetensors"
TINY_VAE = PARITY / "stvae_tiny.pt"


def _official_key_list() -> dict[str, dict[str, tuple[int, ...]]]:
    """Parse state_dict_keys_3B.txt into {section: {key: shape}}."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in (PARITY / "state_dict_keys_3B.txt").read_text().splitlines():
        header = re.match(r"# (LaVinDiT_3B_2|AutoencoderKLSTVAE): ", line)
        if header:
            current = sections.setdefault(header.group(1), {})
        elif line.strip() and not line.startswith("#") and current is not None:
            key, shape = line.split(None, 1)
            current[key] = tuple(int(n) for n in re.findall(r"\d+", shape))
    return sections


def _official_shapes(model, plan) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in ck.to_official(model.state_dict(), plan).items()}


@needs_parity
def test_3b_preset_maps_exactly_onto_the_official_keys():
    official = _official_key_list()
    dit = weights.build(dit_preset("3.4B"), init=False)
    assert _official_shapes(dit, ck.dit_plan(dit.cfg)) == official["LaVinDiT_3B_2"]
    assert sum(p.numel() for p in dit.parameters()) == 3_398_976_064
    vae = weights.build(vae_preset("official"), init=False)
    assert _official_shapes(vae, ck.vae_plan(vae.cfg)) == official["AutoencoderKLSTVAE"]
    assert sum(p.numel() for p in vae.parameters()) == 215_583_907


@needs_parity
def test_key_mapping_round_trip_is_identity():
    dit_sd = load_file(str(TINY_DIT))
    cfg = dit_preset("tiny")
    plan = ck.dit_plan(cfg)
    ours = ck.from_official(dit_sd.__getitem__, set(dit_sd), plan, "dit")
    back = ck.to_official(ours, plan)
    assert back.keys() == dit_sd.keys() and all(torch.equal(back[k], dit_sd[k]) for k in dit_sd)

    vae_sd = ck.load_torch_state_dict(TINY_VAE)
    vplan = ck.vae_plan(ck.infer_vae_config({k: tuple(v.shape) for k, v in vae_sd.items()}))
    vours = ck.from_official(vae_sd.__getitem__, set(vae_sd), vplan, "vae")
    vback = ck.to_official(vours, vplan)
    assert vback.keys() == vae_sd.keys() and all(torch.equal(vback[k], vae_sd[k]) for k in vae_sd)


@needs_parity
def test_convert_export_and_reload_preserve_outputs(tmp_path):
    dit = weights.load_dit(TINY_DIT)
    weights.save(dit, tmp_path / "dit.safetensors")
    weights.export_official(dit, tmp_path / "lavin_dit.safetensors")
    assert ck.read_metadata(tmp_path / "dit.safetensors")["component"] == "dit"
    g = torch.Generator().manual_seed(0)
    x, cond, t = torch.randn(1, 16, 1, 8, 8, generator=g), torch.randn(1, 16, 3, 8, 8, generator=g), torch.tensor([0.4])
    ref = dit(x, t, cond)
    for path in ("dit.safetensors", "lavin_dit.safetensors"):
        assert torch.equal(weights.load_dit(tmp_path / path)(x, t, cond), ref)

    vae = weights.load_vae(TINY_VAE)
    weights.save(vae, tmp_path / "vae.safetensors")
    weights.export_official(vae, tmp_path / "stvae.pt")
    img = torch.rand(1, 3, 1, 16, 16, generator=g) * 2 - 1
    for path in ("vae.safetensors", "stvae.pt"):
        assert torch.equal(weights.load_vae(tmp_path / path).encode(img).moments, vae.encode(img).moments)
    # the exported pickle is what the official loader reads, and weights_only accepts it
    assert set(torch.load(tmp_path / "stvae.pt", weights_only=True)) == {"state_dict"}


@needs_parity
def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    sd = load_file(str(TINY_DIT))
    dropped = dict(sd)
    del dropped["blocks.1.x_mlp.up_proj.weight"]
    dropped["blocks.7.extra.weight"] = torch.zeros(1)
    save_file(dropped, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing key\(s\): blocks.1.x_mlp.up_proj.weight") as info:
        weights.load_dit(tmp_path / "bad.safetensors", dit_preset("tiny"))
    assert "blocks.7.extra.weight" in str(info.value)

    reshaped = dict(sd)
    reshaped["final_layer.linear.bias"] = torch.zeros(65)
    save_file(reshaped, str(tmp_path / "shape.safetensors"))
    with pytest.raises(CheckpointError, match=r"final.proj.bias \(65,\) != \(64,\)"):
        weights.load_dit(tmp_path / "shape.safetensors", dit_preset("tiny"))

    # an official file loaded with the wrong config is refused, not silently half-loaded
    with pytest.raises(CheckpointError):
        weights.load_dit(TINY_DIT, DiTConfig(hidden_size=96, depth=3, num_heads=4, kv_group=2))


class Exploit:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/lavin-pwned"),))


def test_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker = Path("/tmp/lavin-pwned")
    marker.unlink(missing_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused: it holds code or objects, not only tensors"):
        weights.load_vae(tmp_path / "evil.pt")
    assert not marker.exists()


def test_pickle_with_non_tensor_entries_is_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1), "step": 3}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="non-tensor"):
        ck.load_torch_state_dict(tmp_path / "odd.pt")
    torch.save({"weights": {}}, tmp_path / "nodict.pt")
    with pytest.raises(CheckpointError, match="'state_dict'"):
        ck.load_torch_state_dict(tmp_path / "nodict.pt")


def test_loading_assigns_tensors_without_copying():
    cfg = dit_preset("tiny")
    state = weights.build(cfg).state_dict()
    model = weights.build(cfg, init=False)
    assert all(p.is_meta for p in model.parameters())
    model = weights.assign(model, state, "test")
    assert all(model.state_dict()[k].data_ptr() == v.data_ptr() for k, v in state.items())


def test_our_format_carries_its_config(tmp_path):
    cfg = DiTConfig(hidden_size=48, depth=1, num_heads=2)
    torch.manual_seed(0)
    model = weights.build(cfg)
    weights.save(model, tmp_path / "m.safetensors")
    loaded = weights.load_dit(tmp_path / "m.safetensors")
    assert loaded.cfg == cfg
    with pytest.raises(CheckpointError, match="not a VAE"):
        weights.load_vae(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        weights.load_dit(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        weights.load_dit(tmp_path / "junk.safetensors")


def test_official_dit_config_is_inferred_from_shapes():
    for name in ("tiny", "3.4B"):
        model = weights.build(dit_preset(name), init=False)
        shapes = _official_shapes(model, ck.dit_plan(model.cfg))
        assert ck.infer_dit_config(shapes) == dit_preset(name)


def test_average_script_mixes_two_dits_weight_by_weight(tmp_path):
    """weights/training/average.py, which made the bundled v27 from two runs, run as its README says."""
    root = Path(__file__).resolve().parent.parent
    cfg = DiTConfig(hidden_size=48, depth=1, num_heads=2)
    folders = []
    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        (tmp_path / name).mkdir()
        weights.save(weights.build(cfg), tmp_path / name / "dit.safetensors")
        folders.append(tmp_path / name)
    (tmp_path / "b" / "model.json").write_text('{"name": "b"}')
    script = [sys.executable, str(root / "weights" / "training" / "average.py")]
    res = subprocess.run([*script, *map(str, folders), "--weight", "0.25", "-o", str(tmp_path / "ab")],
                         capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stderr
    a, b = (load_file(f / "dit.safetensors") for f in folders)
    mixed = weights.load_dit(tmp_path / "ab" / "dit.safetensors")
    assert mixed.cfg == cfg and (tmp_path / "ab" / "model.json").read_text() == '{"name": "b"}'
    for name, tensor in mixed.state_dict().items():
        torch.testing.assert_close(tensor, 0.75 * a[name] + 0.25 * b[name])
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the two inputs differ, so the mix shows
    weights.save(weights.build(DiTConfig(hidden_size=48, depth=2, num_heads=2)), tmp_path / "deep.safetensors")
    res = subprocess.run([*script, str(folders[0]), str(tmp_path / "deep.safetensors"), "-o", str(tmp_path / "bad")],
                         capture_output=True, text=True, cwd=root)
    assert res.returncode == 1 and "different architectures" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "bad").exists()
