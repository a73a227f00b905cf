"""The bundled model's outputs for README's quick start, run_all.sh and two video runs are the
same bytes as recorded (tests/golden_cases.py): restructuring the code must not change them."""

from __future__ import annotations

import json

import golden_cases as golden
import pytest

RECORDED = json.loads(golden.HASHES.read_text())


def test_outputs_are_byte_identical_to_the_recorded_ones(tmp_path, cli):
    if golden.bundled_sha256() != RECORDED.get("bundled_sha256"):
        pytest.fail("the bundled model changed: record the hashes again (python tests/golden_cases.py record)")
    if golden.machine() != RECORDED["machine"]:  # e.g. a GPU machine: the bytes of other kernels
        pytest.skip(f"recorded with {RECORDED['machine']}, this machine runs {golden.machine()}")
    out, clips = tmp_path / "out", tmp_path / "clips"
    golden.write_generator_clips(clips)
    for name, args, stdin in golden.commands(out, clips):
        if stdin:  # binary stdin and stdout: a real process
            golden.run_process(args, stdin, out / "stdin.png")
        else:
            code, _, err = cli(*args)
            assert code == 0, f"{name}: {err}"
    found = golden.hashes_under(out)
    assert sorted(found) == sorted(RECORDED["files"])
    changed = [name for name in found if found[name] != RECORDED["files"][name]]
    assert not changed, f"outputs differ from the recorded ones: {changed}"
