"""Package hygiene: nothing heavy or networked happens at import, xformers stays away from CPUs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent("""
    import socket, sys
    def refuse(*a, **k):
        raise AssertionError("network access attempted")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    {body}
""")


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # a fake xformers that records being imported: a CPU run must never import it
    fake = tmp_path / "fake" / "xformers"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').write('x')\n")
    (fake / "ops.py").write_text("")
    env = {"PYTHONPATH": f"{tmp_path / 'fake'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", PROBE.format(body=body)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_import_does_not_load_torch_or_xformers_or_touch_the_network(tmp_path):
    res = _run("import lavin_cli, lavin_cli.cli.app\n"
               "assert 'torch' not in sys.modules, 'torch imported at package import'\n"
               "assert 'xformers' not in sys.modules", tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "imported").exists()


def test_cpu_model_run_never_imports_xformers(tmp_path):
    body = textwrap.dedent("""
        import torch
        from lavin_cli.config import dit_preset
        from lavin_cli.runtime import attention, device as devices
        from lavin_cli.store import weights
        dev = devices.pick_device('cpu')  # (what 'auto' is on a machine without CUDA)
        model = weights.build(dit_preset('tiny'))
        kernel = attention.resolve_backend('auto', dev)
        model(torch.zeros(1, 16, 1, 8, 8), torch.zeros(1), torch.zeros(1, 16, 3, 8, 8), attention=kernel)
        devices.describe('cpu', 'auto')
        assert 'xformers' not in sys.modules
    """)
    res = _run(body, tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "imported").exists()


def test_wheel_carries_the_registry_and_bundled_model(tmp_path):
    import zipfile

    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    wheel = next(tmp_path.glob("lavin_cli-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lavin_cli/weights_data/registry.json" in names
    assert "lavin_cli-0.1.0.data/data/share/man/man1/lavin.1" in names  # `man lavin` after pip install
    examples = ROOT / "examples"
    for path in examples.rglob("*"):  # README's quick start: the example task folders and scripts
        if path.is_file() and "__pycache__" not in path.parts:
            assert f"lavin_cli/examples_data/{path.relative_to(examples)}" in names, path
    bundled = ROOT / "weights" / "bundled"
    for path in bundled.rglob("*") if bundled.is_dir() else []:
        if path.is_file():
            assert f"lavin_cli/weights_data/bundled/{path.relative_to(bundled)}" in names, path


def test_installed_wheel_finds_its_registry_and_bundled_model(tmp_path):
    """Build a wheel from a copy of the tree with a (tiny) model in weights/bundled, install it
    elsewhere, and run lavin from there without --model."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_pairs, make_tiny_model, random_image

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", "build", "bundled"))
    make_tiny_model(src / "weights" / "bundled")
    make_pairs(src / "weights" / "bundled" / "tasks" / "shipped_task", count=2)
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(wheels)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                          str(next(wheels.glob("*.whl")))], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    query = random_image(tmp_path / "q.png")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LAVIN_HOME": str(tmp_path / "home")}
    code = ("import lavin_cli, sys; from lavin_cli.store import home;"
            "assert home.bundled_dir().is_relative_to(sys.argv[1]), home.bundled_dir();"
            "assert home.shipped_registry().is_relative_to(sys.argv[1])")
    res = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "--task", "shipped_task", "-i", str(query),
                          "-o", str(tmp_path / "o.png"), "--steps", "2"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "lavin_cli/weights_data/bundled" in res.stderr.replace("\n", "")  # the installed copy ran
    example = target / "lavin_cli" / "examples_data" / "depth_estimation"
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "tasks", "--json"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert res.returncode == 0 and str(example) in res.stdout, res.stdout + res.stderr  # the examples come along
    res = subprocess.run([sys.executable, "-m", "lavin_cli", "run", "--task", "depth_estimation", "-i",
                          str(example / "queries" / "q0.png"), "-o", str(tmp_path / "d.png"), "--steps", "2"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0 and (tmp_path / "d.png").is_file(), res.stderr
