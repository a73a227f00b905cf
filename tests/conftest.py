"""Shared fixtures: a tiny random model folder, context folders and query images, all on disk."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lavin_cli.config import dit_preset, vae_preset
from lavin_cli.store import weights

TINY_SIZE = 32


def pytest_configure(config):
    """Compiled kernels (torch.compile) are cached per kernel choice: inductor's cache does not
    tell apart kernels built for another ATEN_CPU_CAPABILITY, and running them crashes."""
    import os
    import tempfile

    key = f"{torch.__version__}-{torch.backends.cpu.get_cpu_capability()}-{os.environ.get('ONEDNN_MAX_CPU_ISA', 'all')}"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"lavin-tests-inductor-{key}"))


def pytest_collection_modifyitems(config, items):
    """The `gpu` marker means "needs a CUDA device": such tests are skipped where torch sees none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A lavin model folder with tiny random weights (the output layer perturbed so that
    predictions depend on their inputs), working size 32."""
    torch.manual_seed(seed)
    dit = weights.build(dit_preset("tiny"))
    gen = torch.Generator().manual_seed(seed)
    for p in dit.parameters():
        p.data.add_(torch.randn(p.shape, generator=gen) * 0.05)
    vae = weights.build(vae_preset("tiny"))
    return weights.save_model_folder(folder, dit, vae, name="tiny-random", size=TINY_SIZE,
                                     description="random weights, for tests")


def random_image(path: Path, hw=(40, 56), seed=0, mode="RGB") -> Path:
    rng = np.random.default_rng(seed)
    arr = (rng.random((*hw, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(arr)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_pairs(folder: Path, count: int = 5, seed: int = 0) -> Path:
    for i in range(count):
        random_image(folder / f"{i:03d}_input.png", seed=seed + 2 * i)
        random_image(folder / f"{i:03d}_target.png", seed=seed + 2 * i + 1, mode="L")
    return folder


def smooth_photo(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with texture (uint8 (h, w, 3)): not something a model reproduces exactly."""
    from lavin_cli.training.tasks import to_uint8

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.4 * np.sin(6 * x + c) * np.cos(4 * y - c) for c in range(3)], -1)
    return to_uint8(base + rng.normal(0, 0.03, base.shape))


def read_record(path: Path) -> dict:
    """A JSON Lines run record as {"runs": [...], "queries": [...], "ends": [...]}."""
    import json

    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {kind + "s": [line for line in lines if line.get("type") == kind] for kind in ("run", "query", "end")} | \
        {"queries": [line for line in lines if line.get("type") == "query"]}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory) -> Path:
    return make_pairs(tmp_path_factory.mktemp("ctx") / "pairs")


@pytest.fixture(scope="session")
def queries(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("queries")
    return [random_image(root / f"q{i}.jpg", hw=(30 + 7 * i, 45), seed=100 + i) for i in range(3)]


@pytest.fixture
def cli(capfd, monkeypatch):
    """Run `lavin ARGS` in this process; returns (exit code, stdout, stderr)."""
    from lavin_cli.cli.app import main

    def invoke(*args: str):
        monkeypatch.setattr(sys, "argv", ["lavin", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capfd.readouterr()
        return code, captured.out, captured.err

    monkeypatch.setenv("COLUMNS", "200")
    return invoke


@pytest.fixture
def use_video_backend(monkeypatch):
    """use_video_backend('ffmpeg' | 'pyav'): video files through that codec backend for this test;
    skipped where its package is missing, except under CI, which installs both (the test extra)."""
    from lavin_cli.io import video as video_io

    def use(backend: str) -> None:
        if not video_io.available(backend):
            _lacking(f"{video_io.PACKAGES[backend]} is not installed here")
        monkeypatch.setenv(video_io.BACKEND_ENV, backend)

    return use


@pytest.fixture
def requires_codec():
    """A test that reads or writes video files other than GIFs: skipped on a machine with no codec
    backend (the GPU image has neither imageio-ffmpeg nor PyAV), except under CI."""
    from lavin_cli.io import video as video_io

    if video_io.video_backend() is None:
        _lacking("no video codec backend here (imageio-ffmpeg or av)")


def _lacking(message: str) -> None:
    pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
