"""The bundled model's outputs for README's quick start, run_all.sh and two video runs stay what
they were (tests/golden_cases.py): the same bytes on a machine whose kernels were recorded, and
within the stated bound of the reference outputs of the run's dtype on any other machine, so that
restructuring the code cannot change them unnoticed wherever the suite runs."""

from __future__ import annotations

import json
import shutil

import golden_cases as golden
import numpy as np
import pytest
from PIL import Image

RECORDED = json.loads(golden.HASHES.read_text())


def test_outputs_match_the_recorded_ones(tmp_path, cli):
    if golden.bundled_sha256() != RECORDED.get("bundled_sha256"):
        pytest.fail("the bundled model changed: record the hashes again (python tests/golden_cases.py record)")
    here = golden.machine()
    reference = golden.REFERENCES / here["dtype"]
    if here["device"] != "cpu" or not reference.is_dir():
        pytest.skip(f"no reference outputs for {here['device']} {here['dtype']}")
    out, clips = tmp_path / "out", tmp_path / "clips"
    golden.write_generator_clips(clips)
    for name, args, stdin in golden.commands(out, clips):
        if stdin:  # binary stdin and stdout: a real process
            golden.run_process(args, stdin, out / "stdin.png")
        else:
            code, _, err = cli(*args)
            assert code == 0, f"{name}: {err}"
    found = golden.hashes_under(out)
    assert sorted(found) == sorted(golden.hashes_under(reference))
    exact = golden.exact_hashes(RECORDED, here)
    if exact is not None:  # the kernels the hashes were recorded with: every byte
        changed = [name for name in found if found[name] != exact.get(name)]
        assert not changed, f"outputs differ from the ones recorded on this machine: {changed}"
    bound = golden.BOUNDS[here["dtype"]]
    far = {name: round(d, 3) for name, d in golden.differences(out, reference).items() if d > bound}
    assert not far, f"outputs further than {bound} levels (mean) from the {here['dtype']} reference: {far}"


def test_the_bound_catches_a_changed_output(tmp_path):
    """A change of a few levels in one output, as a changed model computation makes, is caught
    by the tolerance check; an identical copy is not."""
    reference = golden.REFERENCES / "bfloat16"
    copy = tmp_path / "out"
    shutil.copytree(reference, copy)
    assert max(golden.differences(copy, reference).values()) == 0.0
    name = "all/denoising/q0.png"
    pixels = np.asarray(Image.open(copy / name)).astype(np.int16)
    Image.fromarray(np.clip(pixels + 3, 0, 255).astype(np.uint8)).save(copy / name)
    found = golden.differences(copy, reference)
    assert found[name] > golden.BOUNDS["bfloat16"] and all(d == 0.0 for n, d in found.items() if n != name)
