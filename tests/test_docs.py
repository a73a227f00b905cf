"""README, CI script and manual page stay true to the code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from lavin_cli.cli.app import app

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_exactly_the_readme_setup_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(first_block) == 3 and first_block[-1] == "python -m pytest -q", \
        "README opens with the install commands and the test command"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == first_block


def _commands() -> dict:
    """'run' -> command, 'train vae' -> command: every leaf command of the app."""
    found: dict = {}

    def walk(prefix: str, command) -> None:
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found[prefix] = command

    walk("", typer.main.get_command(app))
    return found


def test_man_page_documents_every_command_and_option():
    man = (ROOT / "man" / "lavin.1").read_text().replace("\\-", "-")
    commands = _commands()
    assert {"run", "tasks", "train vae", "train dit", "eval"} <= set(commands)
    for name, command in commands.items():
        assert re.search(rf"^\.SS lavin {name}\b", man, re.M), f"man page lacks command {name}"
        for param in command.params:
            for opt in param.opts + getattr(param, "secondary_opts", []):
                if opt.startswith("-"):
                    assert opt in man, f"man page lacks {name} {opt}"
    documented = set(re.findall(r"^\.SS lavin ([a-z]+(?: [a-z]+)?)(?=\s|$)", man, re.M))
    assert documented == set(commands), f"man page and app disagree: {documented ^ set(commands)}"
    for opt in ("--version", "--install-completion", "--show-completion"):
        assert opt in man


def test_example_script_runs(tmp_path):
    out = tmp_path / "pred.png"
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "model_stack.py"), "--steps", "4", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    from PIL import Image

    assert Image.open(out).size == (64, 64)


def _block_after(heading: str, lang: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_readme_quick_start_runs(tmp_path):
    from lavin_cli.store.home import bundled_dir

    if bundled_dir() is None:
        import pytest

        pytest.skip("the quick start uses the bundled model")
    script = _block_after("## Quick start", "bash").replace("/tmp/", f"{tmp_path}/")
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "depth.png").is_file() and (tmp_path / "normals_grid.png").is_file()
    assert sorted(p.name for p in (tmp_path / "edges").iterdir()) == ["q0.png", "q1.png"]
    from lavin_cli.io.video import read_video

    assert read_video(tmp_path / "depth.mp4").frames.shape == (5, 64, 64, 3)
    assert (tmp_path / "clean.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "all").iterdir())) >= 8
    python = _block_after("From Python, everything the CLI does", "python").replace("/tmp/", f"{tmp_path}/")
    python += "\nassert result.predictions[0].image.shape == (64, 64, 3) and len(result.predictions[0].pairs) == 3\n"
    res = subprocess.run([sys.executable, "-c", python], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_run_all_examples_script(tmp_path, tiny_model):
    res = subprocess.run(["bash", str(ROOT / "examples" / "run_all.sh"), str(tmp_path / "out"), "--model", str(tiny_model),
                          "--steps", "2"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    tasks = sorted(p.name for p in ROOT.joinpath("examples").iterdir() if p.is_dir() and any(p.glob("*_input.*")))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == tasks
    assert all(any((tmp_path / "out" / t).iterdir()) for t in tasks)


def test_readme_video_commands_run_as_written(tmp_path):
    from lavin_cli.io.video import read_video

    script = _block_after("## Video: `lavin video`", "bash").replace("/tmp/", f"{tmp_path}/")
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert read_video(tmp_path / "vdepth.mp4").frames.shape[0] == 5 and (tmp_path / "vdepth_grid.png").is_file()
    assert read_video(tmp_path / "next.mp4").frames.shape[0] == 12


@pytest.mark.parametrize("columns", [80, 100])
def test_every_help_reads_at_80_and_100_columns(columns, cli, monkeypatch):
    """Each command's --help fits the width, cuts nothing off ('…') and shows every example of
    its docstring whole, on a line of its own."""
    from lavin_cli.cli.help import split_docstring

    root = typer.main.get_command(app)
    commands = {"": root, "train": root.commands["train"], **_commands()}
    for name, command in commands.items():
        monkeypatch.setenv("COLUMNS", str(columns))
        code, out, err = cli(*name.split(), "--help")
        assert code == 0, err
        lines = out.splitlines()
        assert "…" not in out, f"lavin {name} --help cuts text off"
        assert max(len(line) for line in lines) <= columns, f"lavin {name} --help is wider than {columns}"
        for example in split_docstring(command.help or "")[1]:
            assert example.strip() in [line.strip() for line in lines], f"lavin {name} --help wraps {example!r}"
        assert "Options" in out or "Inputs" in out


def test_an_option_shows_the_same_metavar_on_every_command():
    """--device DEVICE, --seed N, ... read the same wherever they appear (train's once differed)."""
    from lavin_cli.cli.options import metavar_of

    seen: dict[str, dict[str, str]] = {}
    for name, command in _commands().items():
        for param in command.params:
            if getattr(param, "is_flag", False) or not param.opts or not param.opts[0].startswith("-"):
                continue
            shown = param.metavar or metavar_of(param)
            for opt in param.opts:
                seen.setdefault(opt, {})[name] = shown
    # the same letters for different things: a count or images, a file or a folder, a square or any size
    exceptions = {"--queries", "-i", "--output", "-o", "--size", "--init"}
    differing = {opt: where for opt, where in seen.items() if len(set(where.values())) > 1 and opt not in exceptions}
    assert not differing, differing


def test_the_cli_takes_names_and_defaults_from_the_library():
    """A solver, an attention kernel or a default is written once: lavin_cli/choices.py registers
    the names, the implementations (sampling.SOLVERS, ops.FUNCTIONS), the option dataclasses'
    choices and --help follow from it, and every flag's default comes from the dataclasses."""
    import dataclasses

    from lavin_cli.inference import options as lib
    from lavin_cli.inference import sampling
    from lavin_cli.models import ops
    from lavin_cli.runtime import attention

    from lavin_cli import choices as registry

    assert tuple(sampling.SOLVERS) == lib.SOLVERS == tuple(registry.SOLVERS)
    assert ("auto", *ops.FUNCTIONS) == lib.ATTENTIONS == attention.BACKENDS == ("auto", *registry.ATTENTION_KERNELS)
    run = typer.main.get_command(app).commands["run"]
    params = {p.name: p for p in run.params}
    fields = {f.name: f.default for cls in (lib.RunOptions, lib.LoadOptions) for f in dataclasses.fields(cls)}
    for name in ("steps", "cfg", "seed", "solver", "cond_refresh", "select", "fit", "max_pixels", "batch_size",
                 "dtype", "attention", "offload"):
        assert params[name].default == fields[name], name
    assert params["cfg_interval"].default == ",".join(f"{v:g}" for v in fields["cfg_interval"])
    for name, choices in (("solver", lib.SOLVERS), ("attention", lib.ATTENTIONS), ("dtype", lib.DTYPES),
                          ("offload", lib.OFFLOADS), ("select", lib.SELECTIONS), ("fit", lib.FITS)):
        assert all(choice in params[name].help for choice in choices), (name, params[name].help)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_renders_without_roff_warnings():
    """A line that roff reads as a request (one starting with '.' or "'") is dropped from the
    page without a word: groff -ww names it."""
    done = subprocess.run(["groff", "-man", "-ww", "-z", str(ROOT / "man" / "lavin.1")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
