"""Every bad input, fault and limit: one clear line (two at most), the documented exit code, no
traceback, and nothing partial left behind.

One table, run through the real CLI in-process on the tiny random model; tests/faults.py holds
what the cases are made of (faults injected at the deepest I/O lavin calls with monkeypatch;
everything else runs for real).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SIZE, make_pairs, random_image
from faults import (Case, World, animated_gif, appears_during_run, context_copy, error_first, fifo, files_at,
                    nothing_created, output_holding, query_named, stdout_closed, unwritable_folder, whole_output, big_png, bug, chain, closed_port, dit_tensors, encoder_fault, env,
                    file_with, first_tensor, installed_model, mixed_context, mixed_frames, model_copy, model_json,
                    no_cuda, odd_clip, outputs, overflowing, read_fault, record_line_fault, remove_folder_after_first_write,
                    short_targets, signal_after, truncate_dit, truncated_png, unchanged, video_frames, weights_fault,
                    write_fault, no_files_written, oserror)

from lavin_cli.io.video import Clip, write_video
from lavin_cli.training import tasks

RUN = ["run", "-m", "{model}", "-c", "{pairs}", "--steps", "2", "-q"]
VIDEO = ["video", "-m", "{model}", "-c", "{clips}", "--steps", "2", "-q"]
ONE = ["-i", "{query}", "-o", "{out}/o.png"]
BOTH = ["-i", "{query}", "-i", "{query2}", "-o", "{out}/"]

CASES = [
    # ---- option values: exit 2, before anything loads
    Case("steps-0", RUN + ONE + ["--steps", "0"], 2, "--steps must be at least 2"),
    Case("steps-text", RUN + ONE + ["--steps", "abc"], 2, "Invalid value for '--steps'"),
    Case("cfg-nan", RUN + ONE + ["--cfg", "nan"], 2, "--cfg must be a finite number"),
    Case("cfg-huge", RUN + ONE + ["--cfg", "1e30"], 2, "--cfg must be between"),
    Case("seed-negative", RUN + ONE + ["--seed", "-1"], 2, "--seed must be at least 0"),
    Case("seed-overflow", RUN + ONE + ["--seed", "18446744073709551616"], 2, "--seed must be at most"),
    Case("size-odd", RUN + ONE + ["--size", "100"], 2, "--size 100x100"),
    Case("size-text", RUN + ONE + ["--size", "big"], 2, "--size 'big' is not N or WIDTHxHEIGHT"),
    Case("size-enormous", RUN + ONE + ["--size", "100000"], 2, "sides above 8192 are refused"),
    Case("batch-0", RUN + ONE + ["--batch-size", "0"], 2, "--batch-size must be at least 1"),
    Case("pairs-0", RUN + ONE + ["--pairs", "0"], 2, "--pairs must be at least 1"),
    Case("select", RUN + ONE + ["--select", "best"], 2, "--select 'best' is not one of"),
    Case("fit", RUN + ONE + ["--fit", "stretch"], 2, "--fit 'stretch' is not one of"),
    Case("solver", RUN + ONE + ["--solver", "rk4"], 2, "--solver 'rk4' is not one of"),
    Case("device", RUN + ONE + ["--device", "tpu"], 2, "--device 'tpu' is not a device"),
    Case("dtype", RUN + ONE + ["--dtype", "int8"], 2, "--dtype 'int8' is not one of"),
    Case("attention", RUN + ONE + ["--attention", "flash9"], 2, "--attention 'flash9' is not one of"),
    Case("offload", RUN + ONE + ["--offload", "disk"], 2, "--offload 'disk' is not one of"),
    Case("max-pixels-0", RUN + ONE + ["--max-pixels", "0"], 2, "--max-pixels must be at least 1"),
    Case("ext", RUN + BOTH + ["--ext", "wav"], 2, "--ext .wav"),
    # an option the run would drop is refused: folder naming for one output file, --ext where it is unused
    Case("ext-one-file", RUN + ONE + ["--ext", "jpg"], 2, "--ext jpg names the files of an output folder"),
    Case("root-one-file", RUN + ONE + ["--root", "{tmp}"], 2, "names the files of an output folder, and -o"),
    Case("ext-png16", RUN + BOTH + ["--ext", "jpg", "--format", "png16"], 2, "this run writes png16: leave --ext out"),
    Case("video-ext-one-file", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.gif", "--ext", "webm"], 2,
         "--ext webm names the files of an output folder"),
    Case("unknown-option", RUN + ONE + ["--stepz", "3"], 2, "No such option: --stepz"),
    Case("missing-query", RUN + ["-o", "{out}/o.png"], 2, "no queries: give --query (-i) or --files-from"),
    Case("context-and-task", RUN + ONE + ["--task", "x"], 2, "exactly one of --context FOLDER or --task NAME"),
    Case("unknown-task", ["run", "-m", "{model}", "--task", "nope"] + ONE, 2, "unknown task 'nope'"),
    Case("gif-output", RUN + ONE[:2] + ["-o", "{out}/o.gif"], 2, ".gif is not an image format"),
    Case("stdout-and-json", RUN + ["-i", "{query}", "-o", "-", "--json"], 2, "drop --json"),
    Case("stdout-two", RUN + BOTH[:4] + ["-o", "-"], 2, "writes one image to stdout"),
    Case("video-frames-0", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--frames", "0"], 2,
         "--frames must be at least 1"),
    Case("video-mode", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--mode", "both"], 2, "--mode 'both'"),
    Case("video-fps", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--fps", "0"], 2, "--fps must be"),
    Case("video-png-output", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.png"], 2, ".png is an image format"),
    Case("eval-task", ["eval", "-m", "{model}", "-t", "no_such_task"], 2, "unknown task(s) no_such_task"),
    Case("eval-queries", ["eval", "-m", "{model}", "--queries", "0"], 2, "--queries must be at least 1"),
    Case("eval-photos-missing", ["eval", "-m", "{model}", "--photos", "{tmp}/nowhere"], 3, "photo folder not found"),
    Case("eval-photos-none-there", ["eval", "-m", "{model}", "--photos", "{tmp}"], 3, "no photo of at least 128 px"),
    Case("eval-photos-scene-task", ["eval", "-m", "{model}", "--photos", "{tmp}", "-t", "depth_estimation"], 2,
         "the tasks that follow from a photo are"),
    Case("eval-photos-and-truth", ["eval", "-m", "{model}", "--photos", "{tmp}", "--truth", "{tmp}", "-c", "{pairs}"],
         2, "--photos scores crops of photos, --truth your own folders: give one"),
    Case("train-size", ["train", "vae", "-o", "{out}", "--size", "100", "--steps", "1"], 2, "multiple of 16"),
    Case("train-channels", ["train", "vae", "-o", "{out}", "--channels", "a,b", "--steps", "1"], 2,
         "--channels 'a,b' is not"),
    Case("info-device", ["info", "--device", "tpu"], 2, "--device 'tpu' is not a device"),
    Case("train-dit-no-vae", ["train", "dit", "-o", "{out}", "--steps", "1", "-q"], 2, "give --vae"),
    # ---- input files and folders: exit 3 (7 when some items of a batch worked)
    Case("video-query-missing", VIDEO + ["-i", "{tmp}/none.mp4", "-o", "{out}/v.mp4"], 3, "none.mp4: file not found"),
    Case("convert-nothing", ["convert", "-o", "{out}"], 2, "nothing to convert"),
    Case("query-missing", RUN + ["-i", "{tmp}/nope.png", "-o", "{out}/o.png"], 3, "nope.png: file not found"),
    Case("query-not-image", RUN + ["-i", "{tmp}/notes.png", "-o", "{out}/o.png"], 3, "not a readable image",
         setup=file_with("notes.png", b"just text")),
    Case("query-truncated", RUN + ["-i", "{tmp}/cut.png", "-o", "{out}/o.png"], 3, "cut.png: not a readable image",
         setup=truncated_png),
    Case("query-animated", RUN + ["-i", "{tmp}/anim.gif", "-o", "{out}/o.png"], 3, "an animated image (3 frames)",
         setup=animated_gif),
    Case("query-400mp", RUN + ["-i", "{tmp}/big.png", "-o", "{out}/o.png"], 3,
         "is 400 MP, above the limit of 64 MP; pass a larger --max-pixels", setup=big_png),
    Case("query-unreadable", RUN + ONE, 3, "I/O error", setup=read_fault(errno.EIO, "q0")),
    Case("one-bad-of-two", RUN + ["-i", "{query}", "-i", "{tmp}/nope.png", "-o", "{out}/"], 7, "1 of 2 queries failed",
         check=outputs("q0.png")),
    Case("context-missing", ["run", "-m", "{model}", "-c", "{tmp}/none", "-q"] + ONE, 3, "context folder not found"),
    Case("context-empty", ["run", "-m", "{model}", "-c", "{tmp}/empty", "-q"] + ONE, 3, "no complete",
         setup=lambda w: (w.tmp / "empty").mkdir()),
    Case("context-is-file", ["run", "-m", "{model}", "-c", "{query}", "-q"] + ONE, 3, "must be a folder"),
    Case("stdin-empty", RUN + ["-i", "-", "-o", "{out}/o.png"], 3, "stdin: no image data", stdin=b""),
    Case("glob-nothing", RUN + ["-i", "{tmp}/*.webp", "-o", "{out}/"], 3, "no image matches this pattern"),
    Case("video-broken", VIDEO + ["-i", "{tmp}/bad.mp4", "-o", "{out}/v.mp4"], 3, "unreadable, truncated",
         setup=file_with("bad.mp4", b"\x00\x00\x00\x18ftypmp42 not really")),
    Case("video-mixed-frames", VIDEO + ["-i", "{tmp}/mixed", "-o", "{out}/v.mp4"], 3, "frames differ in size",
         setup=mixed_frames),
    Case("video-mixed-context", ["video", "-m", "{model}", "-c", "{tmp}/mix", "--steps", "2", "-q", "-i", "{clip_query}",
                                 "-o", "{out}/v.mp4"], 3, "mixes prediction pairs", setup=mixed_context),
    Case("video-short-targets", ["video", "-m", "{model}", "-c", "{tmp}/short", "--steps", "2", "-q", "-i",
                                 "{clip_query}", "-o", "{out}/v.mp4"], 3, "show no continuation", setup=short_targets),
    # ---- model folders and weights: exit 4
    Case("model-missing", ["run", "-m", "{tmp}/nomodel", "-c", "{pairs}", "-q"] + ONE, 4, "model folder not found"),
    Case("model-empty-folder", ["run", "-m", "{tmp}/empty", "-c", "{pairs}", "-q"] + ONE, 4, "not a model folder",
         setup=lambda w: (w.tmp / "empty").mkdir()),
    Case("model-json-not-json", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "model.json: not valid JSON",
         setup=model_json("{oops")),
    Case("model-json-size", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "'size' must be a positive",
         setup=model_json('{"size": "abc"}')),
    Case("model-json-escape", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "must be a path inside",
         setup=model_json('{"dit": "../x.safetensors", "vae": "vae.safetensors"}')),
    Case("model-json-half", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "give both 'dit' and 'vae'",
         setup=model_json('{"dit": "dit.safetensors"}')),
    Case("config-not-json", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "bad config in the file's metadata",
         setup=dit_tensors(lambda s: None, {"config": "{not json"})),
    Case("config-bad-field", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "hidden_size must be a whole number",
         setup=dit_tensors(lambda s: None, {"config": json.dumps({"hidden_size": "abc", "depth": 2, "num_heads": 4})})),
    Case("weights-truncated", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "dit.safetensors",
         setup=model_copy(truncate_dit)),
    Case("weights-nan", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "hold NaN or infinite values",
         setup=dit_tensors(first_tensor(float("nan")))),
    Case("weights-overflow", ["run", "-m", "{tmp}/m", "-c", "{pairs}", "-q"] + ONE, 4, "non-finite values",
         setup=dit_tensors(overflowing)),
    Case("weights-unreadable", RUN + ONE, 4, "could not be read", setup=weights_fault),
    # ---- environment and devices
    Case("lavin-model-bogus", ["tasks"], 4, "unknown model 'bogus'", setup=env(LAVIN_MODEL="bogus")),
    Case("lavin-home-file", ["download", "lavin-dit-3.4b", "--offline"], 2, "is a file; point it to a folder",
         setup=chain(file_with("afile", b""), env(LAVIN_HOME="{tmp}/afile"))),
    Case("home-option-file", ["models", "--home", "{query}"], 2, "--home"),
    Case("verify-not-installed", ["verify", "ghost"], 4, "ghost: not installed; give an installed model's name",
         setup=env(LAVIN_HOME="{tmp}/home")),
    Case("verify-known-not-installed", ["verify", "lavin-dit-3.4b"], 4, "install it with `lavin download lavin-dit-3.4b`",
         setup=env(LAVIN_HOME="{tmp}/home")),
    Case("verify-folder-without-manifest", ["verify", "{pairs}"], 4, "has no manifest.json (lavin download writes it"),
    Case("registry-broken", ["models"], 4, "unreadable registry",
         setup=chain(file_with("home/registry.json", b"{"), env(LAVIN_HOME="{tmp}/home"))),
    Case("cuda-absent", RUN + ONE + ["--device", "cuda"], 5, "sees no CUDA GPU", setup=no_cuda),
    # ---- network
    Case("no-network", ["download", "remote"], 4, "check the network", setup=closed_port),
    Case("unknown-model-download", ["download", "no-such-model"], 4, "unknown model 'no-such-model'"),
    Case("download-two-revisions", ["download", "org/repo@v1", "--revision", "main", "--offline"], 2,
         "org/repo@v1 names revision v1 and --revision main another: give one"),
    # ---- memory
    # main memory: on a large GPU the tiny model streamed with offload may really fit 8192 px
    Case("size-beyond-memory", RUN + ONE + ["--size", "8192", "--device", "cpu"], 5, "token sequence needs about"),
    # ---- disk and outputs: exit 6, or 7 when other items were written
    Case("output-exists", RUN + ONE, 6, "exists; pass --overwrite", setup=lambda w: random_image(w.out / "o.png", seed=42),
         check=lambda w: unchanged(w.out / "o.png", seed=42)),
    Case("record-is-folder", RUN + ONE + ["--record", "{out}", "--overwrite"], 6, "is a folder, where a file",
         setup=lambda w: w.out.mkdir()),
    Case("disk-full-2nd-of-3", RUN + ["-i", "{query}", "-i", "{query2}", "-i", "{tmp}/q3.png", "-o", "{out}/"], 7,
         "1 of 3 queries failed", setup=chain(lambda w: random_image(w.tmp / "q3.png", seed=3),
                                              write_fault(errno.ENOSPC, lambda p, n: n == 2)),
         check=outputs("q0.png", "q3.png")),
    Case("permission-denied", RUN + ONE, 6, "permission denied", setup=write_fault(errno.EACCES, lambda p, n: True)),
    Case("record-cannot-open", RUN + ONE + ["--record", "{tmp}/run.jsonl"], 6, "run.jsonl: could not be written (disk full)",
         setup=write_fault(errno.ENOSPC, lambda p, n: "run.jsonl" in p)),
    Case("record-disk-full", RUN + ONE + ["--record", "{tmp}/run.jsonl"], 6, "run.jsonl: could not be written (disk full)",
         setup=record_line_fault(errno.ENOSPC, after=2), check=outputs("o.png")),
    Case("folder-vanishes", RUN + BOTH, 0, "", setup=lambda w: remove_folder_after_first_write(w),
         check=outputs("q0.png", "q1.png")),
    Case("video-encoder-full", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4"], 6, "disk full", setup=encoder_fault),
    Case("video-odd-size", VIDEO + ["-i", "{tmp}/odd.gif", "-o", "{out}/v.mp4", "--frames", "4"], 0, "",
         setup=odd_clip, check=lambda w: video_frames(w.out / "v.mp4", 4)),
    Case("convert-disk-full", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}"], 6, "could not be written",
         setup=lambda w: w.monkeypatch.setattr("lavin_cli.store.checkpoints.save_file",
                                               lambda *a, **k: (_ for _ in ()).throw(oserror(errno.ENOSPC)))),
    Case("convert-unreadable", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}"], 4, "could not be read",
         setup=weights_fault),
    Case("train-disk-full", ["train", "vae", "-o", "{out}", "--steps", "1", "--batch", "2", "--size", "32", "-q"], 6,
         "could not be written", setup=lambda w: w.monkeypatch.setattr(
             torch, "save", lambda *a, **k: (_ for _ in ()).throw(oserror(errno.ENOSPC))),
         check=lambda w: not {"vae.safetensors", "vae_state.pt"} & {p.name for p in w.out.iterdir()} or pytest.fail("saved")),
    Case("train-dit-vae-unreadable", ["train", "dit", "-o", "{out}", "--vae", "{model}/vae.safetensors", "--steps", "1",
                                      "--preset", "tiny", "--size", "32", "-q"], 4, "could not be read",
         setup=weights_fault),
    Case("eval-weights-unreadable", ["eval", "-m", "{model}", "-t", "denoising", "--queries", "1"], 4,
         "could not be read", setup=weights_fault),
    Case("verify-unreadable", ["verify", "inst"], 4, "unreadable (I/O error)",
         setup=chain(installed_model, write_fault(errno.EIO, lambda p, n: False),
                     lambda w: w.monkeypatch.setattr("lavin_cli.io.files.open",
                                                     lambda p, m="r", *a, **k: (_ for _ in ()).throw(oserror(errno.EIO, p))
                                                     if "rb" in m else open(p, m, *a, **k), raising=False))),
    # ---- signals: the finished outputs stay, exit 130 / 143
    Case("sigint", RUN + ["-i", "{query}", "-i", "{query2}", "-i", "{tmp}/q3.png", "-o", "{out}/", "-b", "1"], 130,
         "interrupted", setup=chain(lambda w: random_image(w.tmp / "q3.png", seed=3), signal_after(signal.SIGINT, 1)),
         check=outputs("q0.png")),
    Case("sigterm", RUN + ["-i", "{query}", "-i", "{query2}", "-i", "{tmp}/q3.png", "-o", "{out}/", "-b", "1"], 143,
         "terminated", setup=chain(lambda w: random_image(w.tmp / "q3.png", seed=3), signal_after(signal.SIGTERM, 2)),
         check=outputs("q0.png", "q1.png")),
    # ---- a bug: one line naming the report
    Case("internal-error", RUN + ONE, 1, "internal error (KeyError: 'a bug'); details in", setup=bug),
]

LONG = "x" * 246  # + "_grid.png" is 255 bytes, the longest name most file systems take
CASES += [
    # ---- issue 33: -o is a folder by one rule, whatever the format
    Case("npy-into-new-folder", RUN + BOTH[:4] + ["-o", "{out}/raw", "--format", "npy"], 0, "",
         check=files_at("raw/q0.npy", "raw/q1.npy")),
    Case("png16-into-new-folder", RUN + BOTH[:4] + ["-o", "{out}/raw", "--format", "png16"], 0, "",
         check=files_at("raw/q0.png", "raw/q1.png")),
    Case("video-npy-into-new-folder", VIDEO + ["-i", "{clip_query}", "-i", "{tmp}/q2.gif", "-o", "{out}/raw",
                                               "--format", "npy"], 0, "",
         setup=lambda w: shutil.copy(w.clip_query, w.tmp / "q2.gif"),
         check=lambda w: sorted(p.name for p in (w.out / "raw").rglob("*.npy")) == ["q.npy", "q2.npy"] or pytest.fail()),
    Case("png16-named-jpg", RUN + ONE[:2] + ["-o", "{out}/o.jpg", "--format", "png16"], 2, "--format png16 writes .png"),
    Case("npy-named-png", RUN + ONE[:2] + ["-o", "{out}/o.png", "--format", "npy"], 2, "--format npy writes .npy"),
    Case("video-png16-named-mp4", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--format", "png16"], 2,
         "writes a folder of 16-bit frames"),
    Case("two-queries-one-name", RUN + ["-i", "{tmp}/d", "-o", "{out}/"], 0, "",
         setup=lambda w: [random_image(w.tmp / "d" / n, seed=i) for i, n in enumerate(("x.png", "x.jpg"))],
         check=files_at("x.png", "x-1.png")),
    # ---- names the file system cannot take
    Case("grid-name-too-long", RUN + ["-i", "{long}", "-o", "{out}/", "--grid"], 0, "",
         setup=query_named("long", "x" * 250 + ".png"),
         check=lambda w: sorted(len(p.name) for p in w.out.iterdir()) == [254, 255] or pytest.fail("missing")),
    Case("output-name-too-long", RUN + ["-i", "{long}", "-o", "{out}/", "--ext", "jpeg"], 6,
         "its name is 256 bytes, the file system takes at most 255", setup=query_named("long", "y" * 251 + ".png")),
    Case("temporary-name-too-long", RUN + ["-i", "{long}", "-o", "{out}/"], 0, "",
         setup=query_named("long", "z" * 251 + ".png"), check=lambda w: len(next(w.out.iterdir()).name) == 255),
    # ---- FIFOs, devices and sockets
    Case("query-fifo", RUN + ["-i", "{tmp}/f.png", "-o", "{out}/o.png"], 3, "f.png: is a FIFO (named pipe), not a file",
         setup=fifo("f.png")),
    Case("query-fifo-among-others", RUN + ["-i", "{query}", "-i", "{tmp}/f.png", "-o", "{out}/"], 7,
         "1 of 2 queries failed", setup=fifo("f.png"), check=files_at("q0.png")),
    Case("query-dev-zero", RUN + ["-i", "/dev/zero", "-o", "{out}/o.png"], 3, "/dev/zero: is a character device"),
    Case("video-query-fifo", VIDEO + ["-i", "{tmp}/f.mp4", "-o", "{out}/v.mp4"], 3, "is a FIFO", setup=fifo("f.mp4")),
    Case("context-fifo-pair", ["run", "-m", "{model}", "-c", "{tmp}/ctx", "--steps", "2", "-q", "--record",
                               "{tmp}/r.jsonl"] + ONE, 0, "",
         setup=context_copy(lambda c: ((c / "004_target.png").unlink(), os.mkfifo(c / "004_target.png"))),
         check=lambda w: "004_target.png (a FIFO (named pipe))" in json.loads(
             (w.tmp / "r.jsonl").read_text().splitlines()[0])["skipped"] or pytest.fail("not listed")),
    Case("output-dev-null", RUN + ["-i", "{query}", "-o", "/dev/null", "--overwrite"], 6,
         "/dev/null is a character device; lavin writes regular files"),
    Case("model-dev-null", ["run", "-m", "/dev/null", "-c", "{pairs}", "-q"] + ONE, 4, "is a character device, not a model"),
    Case("convert-dev-zero", ["convert", "--dit", "/dev/zero", "-o", "{out}"], 4, "is a character device, not a DiT"),
    # ---- stdout closed, or nobody reading it
    Case("stdout-closed", RUN + ["-i", "{query}", "-o", "-"], 6, "-o -: stdout is closed", setup=stdout_closed),
    Case("json-stdout-closed", RUN + ONE + ["--json"], 6, "--json prints the record on stdout, which is closed",
         setup=stdout_closed),
    Case("tasks-stdout-closed", ["tasks", "-m", "{model}", "--json"], 6, "stdout is closed", setup=stdout_closed),
    # ---- resuming over files that are not whole outputs
    Case("resume-empty-output", RUN + BOTH + ["--skip-existing"], 0, "", setup=output_holding("q0.png", b""),
         check=whole_output("q0.png", "png")),
    Case("resume-foreign-format", RUN + BOTH + ["--skip-existing"], 0, "",
         setup=output_holding("q0.png", b"\xff\xd8\xff\xe0 a JPEG named .png"), check=whole_output("q0.png", "png")),
    Case("resume-cut-npy", RUN + BOTH[:4] + ["-o", "{out}/", "--format", "npy", "--skip-existing"], 0, "",
         setup=output_holding("q0.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (30, 45, 3), }"
                                        + b" " * 51 + b"\n" + b"\x00" * 100),
         check=whole_output("q0.npy", "npy")),
    Case("resume-garbage-video", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--skip-existing"], 0, "",
         setup=output_holding("v.mp4", b"not a video"), check=whole_output("v.mp4", "video")),
    # ---- lists
    Case("list-with-missing-entry", RUN + ["--files-from", "{tmp}/list.txt", "-o", "{out}/"], 7, "1 of 2 queries failed",
         setup=lambda w: (w.tmp / "list.txt").write_text(f"{w.query}\n/nonexistent/nope.png\n"), check=files_at("q0.png")),
    Case("list-with-non-utf8-entry", RUN + ["--files-from", "{tmp}/list.txt", "-o", "{out}/"], 7, "1 of 2 queries failed",
         setup=lambda w: (w.tmp / "list.txt").write_bytes(os.fsencode(str(w.query)) + b"\n/tmp/caf\xe9.png\n"),
         check=files_at("q0.png")),
    Case("list-nul-without-0", RUN + ["--files-from", "{tmp}/list.txt", "-o", "{out}/"], 2, "add -0",
         setup=lambda w: (w.tmp / "list.txt").write_bytes(f"{w.query}\0{w.query2}\0".encode())),
    Case("list-empty", RUN + ["--files-from", "{tmp}/list.txt", "-o", "{out}/"], 2, "no queries",
         setup=lambda w: (w.tmp / "list.txt").write_text("\n\n")),
    # ---- context entries that are not used say so
    Case("context-odd-entries", ["run", "-m", "{model}", "-c", "{tmp}/ctx", "--steps", "2", "-q", "--record",
                                 "{tmp}/r.jsonl"] + ONE, 0, "",
         setup=context_copy(lambda c: ((c / "009_target.png").mkdir(), os.symlink("loop_input.png", c / "loop_input.png"),
                                       os.symlink("nowhere.png", c / "x_target.png"))),
         check=lambda w: json.loads((w.tmp / "r.jsonl").read_text().splitlines()[0])["skipped"] == [
             "009_target.png (a folder, not an image)", "loop_input.png (a link loop)", "x_target.png (a broken link)"]
         or pytest.fail("not listed")),
    Case("context-truncated-target", ["run", "-m", "{model}", "-c", "{tmp}/ctx", "--steps", "2"] + ONE, 3,
         "001_target.png: not a readable image",
         setup=context_copy(lambda c: (c / "001_target.png").write_bytes((c / "001_target.png").read_bytes()[:200])),
         err_check=error_first),
    # ---- outputs and inputs
    Case("output-is-the-query", RUN + ["-i", "{tmp}/q.png", "-o", "{tmp}/q.png", "--overwrite"], 6,
         "is one of this run's inputs", setup=lambda w: shutil.copy(w.query, w.tmp / "q.png"),
         check=lambda w: (w.tmp / "q.png").read_bytes() == w.query.read_bytes() or pytest.fail("overwritten")),
    Case("record-is-a-context-file", RUN + ONE + ["--record", "{pairs}/000_input.png", "--overwrite"], 6,
         "is one of this run's inputs"),
    Case("record-folder-read-only", RUN + ONE + ["--record", "{tmp}/readonly-place/run.jsonl"], 6,
         "run.jsonl: cannot be written, its folder", setup=chain(lambda w: (w.tmp / "readonly-place").mkdir(), unwritable_folder("readonly-place"))),
    Case("output-inside-a-file", RUN + ["-i", "{query}", "-o", "{query}/x.png"], 6, "is a file, not a folder"),
    Case("empty-output", RUN + ["-i", "{query}", "-o", ""], 2, "-o is empty"),
    Case("empty-query", RUN + ["-i", "", "-o", "{out}/"], 2, "--query is empty"),
    Case("missing-query-folder", RUN + ["-i", "{tmp}/data/missing", "-o", "{out}/", "--record", "{tmp}/d.jsonl"], 3,
         "missing: file not found", check=nothing_created("{out}", "{tmp}/d.jsonl")),
    # ---- runs that meet on one output folder
    Case("output-written-meanwhile", RUN + BOTH + ["-b", "1"], 7, "written during this run by another process",
         setup=appears_during_run("q1.png")),
    Case("output-written-meanwhile-resume", RUN + BOTH + ["-b", "1", "--skip-existing"], 0, "",
         setup=appears_during_run("q1.png"), check=files_at("q0.png", "q1.png")),
    Case("output-over-a-file-as-frames", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v", "--overwrite"], 0, "",
         setup=output_holding("v", b"a file where the frames folder goes"),
         check=lambda w: (w.out / "v").is_dir() or pytest.fail("not replaced")),
    Case("convert-into-a-file", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{query}"], 6,
         "exists and is not a folder"),
    # ---- odd names, odd values
    Case("query-name-with-newline", RUN + ["-i", "{tmp}/a\nb.png", "-o", "{out}/o.png"], 3, "a\\nb.png: file not found"),
    Case("query-name-with-escape", RUN + ["-i", "{tmp}/\x1b]0;owned\x07.png", "-o", "{out}/o.png"], 3, "\\x1b]0;owned\\x07",
         err_check=lambda err: "\x1b" not in err or pytest.fail("an escape sequence reached the terminal")),
    Case("root-is-a-file", RUN + ["-i", "{query}", "-o", "{out}/", "--root", "{query}"], 2, "--root"),
    Case("files-from-a-folder", RUN + ["--files-from", "{tmp}", "-o", "{out}/"], 3, "list of files cannot be read"),
    Case("shard-out-of-range", RUN + ONE + ["--shard", "2/2"], 2, "--shard 2/2: K must be 0 to N-1"),
    Case("shard-not-k-of-n", RUN + ONE + ["--shard", "half"], 2, "is not K/N"),
    Case("cfg-interval-reversed", RUN + ONE + ["--cfg-interval", "1,0"], 2, "need 0 <= LO <= HI <= 1"),
    Case("size-zero", RUN + ONE + ["--size", "0"], 2, "positive multiples of 16"),
    Case("steps-huge", RUN + ONE + ["--steps", "100000"], 2, "--steps must be at most 10000"),
    Case("batch-huge", RUN + ONE + ["--batch-size", "100000"], 2, "--batch-size must be at most"),
    Case("pairs-huge", RUN + ONE + ["--pairs", "100000"], 2, "--pairs must be at most"),
    Case("recursive-link-loop", RUN + ["-i", "{tmp}/tree", "-r", "-o", "{out}/"], 0, "",
         setup=lambda w: (random_image(w.tmp / "tree" / "q.png"), os.symlink("..", w.tmp / "tree" / "up")),
         check=files_at("q.png")),
    # ---- environments: torchrun's variables, HOME, caches, terminals
    Case("world-size-not-a-number", RUN + ONE, 2, "WORLD_SIZE='abc' is not a whole number", setup=env(WORLD_SIZE="abc")),
    Case("rank-outside-world", RUN + ONE, 2, "RANK=5 is outside WORLD_SIZE=2", setup=env(WORLD_SIZE="2", RANK="5")),
    Case("torchrun-variables-without-torchrun", RUN + ONE, 2, "cannot join the ranks' process group",
         setup=chain(env(WORLD_SIZE="2", RANK="1"), lambda w: w.monkeypatch.delenv("MASTER_ADDR", raising=False))),
    Case("home-unset", ["tasks", "-m", "{model}"], 0, "", setup=lambda w: w.monkeypatch.delenv("HOME", raising=False)),
    Case("bug-report-cannot-be-written", RUN + ONE, 1, "no report file could be written",
         setup=chain(bug, env(XDG_CACHE_HOME="{query}"))),
    Case("columns-20", RUN + ["-i", "{tmp}/nope.png", "-o", "{out}/o.png"], 3, "nope.png: file not found",
         setup=env(COLUMNS="20")),
    Case("no-color", RUN + ["-i", "{tmp}/nope.png", "-o", "{out}/o.png"], 3, "file not found",
         setup=env(NO_COLOR="1", TERM="dumb"), err_check=lambda err: "\x1b" not in err or pytest.fail("colour codes")),
    Case("eval-stdout-closed", ["eval", "-m", "{model}", "-t", "denoising", "--queries", "1", "--steps", "2", "--json"], 6,
         "stdout is closed", setup=stdout_closed),
    Case("info-stdout-closed", ["info", "--json"], 6, "stdout is closed", setup=stdout_closed),
    Case("models-stdout-closed", ["models", "--json"], 6, "stdout is closed",
         setup=chain(stdout_closed, env(LAVIN_HOME="{tmp}/home"))),
]

TRAIN_VAE = ["train", "vae", "-o", "{tmp}/run", "--batch", "2", "--size", "32", "-q"]
TRAIN_DIT = ["train", "dit", "-o", "{tmp}/run", "--vae", "{model}/vae.safetensors", "--batch", "2", "--size", "32", "-q"]
CASES += [
    # ---- issue 35: train, convert, models, tasks and video held to run's promise
    Case("train-steps-0", TRAIN_VAE + ["--steps", "0"], 2, "--steps must be at least 1, got 0"),
    Case("train-lr-nan", TRAIN_VAE + ["--lr", "nan"], 2, "--lr must be a finite number, got nan"),
    Case("train-batch-0", TRAIN_VAE + ["--batch", "0"], 2, "--batch must be at least 1, got 0"),
    Case("train-channels-odd", TRAIN_VAE + ["--channels", "32,33,64,64"], 2, "--channels must be four widths"),
    Case("train-dit-save-every-0", TRAIN_DIT + ["--steps", "1", "--save-every", "0"], 2,
         "--save-every must be at least 1, got 0"),
    Case("train-dit-ema-2", TRAIN_DIT + ["--ema", "2"], 2, "--ema must be at most"),
    Case("train-dit-bank-under-a-sample", TRAIN_DIT + ["--steps", "1", "--bank-slots", "3"], 2,
         "--bank-slots must be above --max-pairs (3): a sample draws 3 context pairs and a query pair"),
    Case("train-examples-pairs-0", ["train", "examples", "--out", "{tmp}/ex", "--pairs", "0"], 2,
         "--pairs must be at least 1, got 0"),
    Case("train-examples-queries-negative", ["train", "examples", "--out", "{tmp}/ex", "--queries", "-1"], 2,
         "--queries must be at least 0, got -1"),
    Case("train-dit-resume-garbage", TRAIN_DIT + ["--steps", "1", "--resume"], 4, "dit_state.pt: not a training state",
         setup=file_with("run/dit_state.pt", b"\x80\x04garbage")),
    Case("train-over-a-finished-run", TRAIN_VAE + ["--steps", "1"], 6, "holds a run (vae.safetensors); add --resume",
         setup=file_with("run/vae.safetensors", b"weights")),
    Case("train-resume-nothing", TRAIN_VAE + ["--steps", "1", "--resume"], 2, "vae_state.pt: nothing to resume"),
    Case("train-resume-garbage", TRAIN_VAE + ["--steps", "1", "--resume"], 4, "vae_state.pt: not a training state",
         setup=file_with("run/vae_state.pt", b"garbage")),
    Case("train-out-is-a-file", TRAIN_VAE + ["--steps", "1"], 6, "run: is a file; --out names the run folder",
         setup=file_with("run", b"")),
    Case("train-examples-out-is-a-file", ["train", "examples", "--out", "{query}"], 6, "is a file; --out names the folder"),
    Case("convert-dtype-int8", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}", "--dtype", "int8"], 2,
         "--dtype 'int8': choose float32, bfloat16 or float16"),
    Case("convert-preset-unknown", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}", "--preset", "huge"], 2,
         "--preset 'huge': choose one of"),
    Case("convert-preset-without-dit", ["convert", "--vae", "{model}/vae.safetensors", "-o", "{out}", "--preset", "tiny"],
         2, "--preset names the shape of an official DiT file: give it with --dit", check=nothing_created("{out}")),
    Case("convert-preset-of-another-shape", ["convert", "--dit", "{model}/dit.safetensors", "-o", "{out}", "--preset",
                                             "3.4B"], 2, "a lavin file, whose own config", check=nothing_created("{out}")),
    Case("server-and-dtype", ["run", "--server", "127.0.0.1:9", "--dtype", "float32", "-t", "denoising", "-q"] + ONE, 2,
         "--dtype sets how a model loads here; with --server"),
    Case("server-and-offload", ["video", "--server", "127.0.0.1:9", "--offload", "model", "-t", "video_depth", "-q",
                                "-i", "{clip_query}", "-o", "{out}/v.mp4"], 2, "--offload sets how a model loads here"),
    Case("convert-dit-no-preset", ["convert", "--dit", "{tmp}/odd.safetensors", "-o", "{out}"], 4,
         "odd.safetensors: matches no DiT preset (closest", setup=lambda w: _odd_safetensors(w.tmp / "odd.safetensors")),
    Case("convert-vae-missing-keys", ["convert", "--vae", "{tmp}/part.pt", "-o", "{out}"], 4,
         "part.pt: not the official ST-VAE layout (it lacks", setup=lambda w: _partial_vae(w.tmp / "part.pt")),
    Case("convert-pickle-with-code", ["convert", "--vae", "{tmp}/evil.pt", "-o", "{out}"], 4,
         "refused: it holds code or objects", setup=lambda w: _evil_pickle(w.tmp / "evil.pt"),
         err_check=lambda err: "UserWarning" not in err or pytest.fail("torch's warning leaked")),
    Case("registry-models-a-string", ["models", "--json"], 4, "\"models\" must be a list of model objects",
         setup=chain(file_with("home/registry.json", b'{"format": "lavin-registry/1", "models": "oops"}'),
                     env(LAVIN_HOME="{tmp}/home"))),
    Case("train-photos-missing-folder", TRAIN_VAE + ["--steps", "1", "--data", "generator+photos:{tmp}/nowhere"], 3,
         "nowhere: photo folder not found"),
    Case("train-photos-no-folder", TRAIN_VAE + ["--steps", "1", "--data", "photos:"], 3,
         "give one or more folders of photos"),
    Case("video-frames-huge", VIDEO + ["-i", "{clip_query}", "-o", "{out}/v.mp4", "--frames", "100000"], 2,
         "--frames must be at most 4096"),
]


def _odd_safetensors(path: Path) -> None:
    import safetensors.torch
    import torch

    safetensors.torch.save_file({"foo.weight": torch.zeros(2, 2)}, str(path))


def _partial_vae(path: Path) -> None:
    import torch

    from lavin_cli.config import vae_preset
    from lavin_cli.store import weights

    state = weights.build(vae_preset("tiny")).state_dict()
    state.pop("decoder.conv_in.conv.weight", None)
    torch.save({"state_dict": state}, str(path))


def _evil_pickle(path: Path) -> None:
    import pickle

    with open(path, "wb") as f:
        pickle.dump({"state_dict": Exploit()}, f, protocol=4)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lavin-convert-pwned",))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i in range(2):
        a, b = tasks.pair("frame_prediction", i, TINY_SIZE)
        write_video(root / "ctx" / f"{i}_input", Clip(tasks.to_uint8(a), 8))
        write_video(root / "ctx" / f"{i}_target", Clip(tasks.to_uint8(b), 8))
    q, _ = tasks.pair("frame_prediction", 9, TINY_SIZE)
    write_video(root / "q.gif", Clip(tasks.to_uint8(q), 8))
    return root


def test_the_table_covers_at_least_180_cases():  # README says so
    assert len(CASES) >= 180 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, cli, tiny_model, pairs_dir, queries, clips, tmp_path, monkeypatch, request):
    if any(isinstance(a, str) and a.endswith((".mp4", ".webm", ".mkv", ".mov", ".avi")) for a in case.args):
        request.getfixturevalue("requires_codec")
    monkeypatch.delenv("LAVIN_MODEL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # bug reports land here
    world = World(tmp_path, tiny_model, pairs_dir, queries[0], queries[1], tmp_path / "out", clips / "ctx",
                  clips / "q.gif", monkeypatch)
    if case.setup:
        case.setup(world)
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case.stdin)))
    args = [a.format_map(world) if isinstance(a, str) else str(a) for a in case.args]
    code, _, err = cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, err
    assert case.needle in err, err
    assert "Traceback" not in err and len(lines) <= 2, err
    if case.err_check:
        case.err_check(err)
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name], "a partial file was left"
    (case.check or (no_files_written if case.code not in (0, 7, 130, 143) else (lambda w: None)))(world)
    _ = make_pairs  # (the shared fixtures build the pairs)


def test_messages_are_never_wrapped_and_progress_is_plain_off_a_terminal(cli, tiny_model, pairs_dir, queries,
                                                                         tmp_path, monkeypatch):
    from lavin_cli.cli import progress

    monkeypatch.setenv("COLUMNS", "60")
    long_name = tmp_path / ("a-rather-long-folder-name-" * 4) / "missing-query.png"
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", long_name, "-o", tmp_path / "o.png", "-q")
    assert code == 3 and len(err.strip().splitlines()) == 1 and len(err.strip()) > 60  # one long line
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0].parent, "-o", tmp_path / "out",
                       "--steps", "2", "-b", "1")
    assert code == 0 and "queries 3/3" in err and "\x1b[" not in err  # plain lines, no bars or colour codes
    code, _, err = cli("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0].parent, "-o", tmp_path / "out2",
                       "--steps", "2", "-b", "1", "-q")
    assert code == 0 and err == ""


def _lavin(*args: str) -> list[str]:
    return [sys.executable, "-m", "lavin_cli", *map(str, args)]


def test_a_reader_that_goes_away_ends_the_run_quietly(tiny_model, pairs_dir, queries, tmp_path):
    """`lavin run -o - | head -c 0`: exit 141 (as a Unix tool killed by SIGPIPE) and nothing said."""
    for extra in (["-o", "-"], ["-o", tmp_path / "o.png", "--json"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before lavin writes
        res = subprocess.run(_lavin("run", "-m", tiny_model, "-c", pairs_dir, "-i", queries[0], "--steps", "2", "-q", *extra),
                             stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
        os.close(write)
        assert res.returncode == 141 and res.stderr == "", (extra, res.stderr)


def test_killed_run_resumes_to_the_bytes_of_an_uninterrupted_one(tiny_model, pairs_dir, tmp_path):
    """SIGKILL (no chance to clean up) in the middle of a run, then --skip-existing: every
    output exactly as one uninterrupted run writes it, and no partial file in the way."""
    folder = tmp_path / "q"
    for i in range(6):
        random_image(folder / f"q{i}.png", seed=300 + i)
    base = ["run", "-m", tiny_model, "-c", pairs_dir, "-i", folder, "--steps", "2", "-b", "2", "-q"]
    subprocess.run(_lavin(*base, "-o", tmp_path / "whole"), check=True, timeout=300)
    proc = subprocess.Popen(_lavin(*base, "-o", tmp_path / "cut", "--record", tmp_path / "cut.jsonl"))
    deadline = time.monotonic() + 300
    while not (tmp_path / "cut" / "q1.png").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lines = (tmp_path / "cut.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # valid up to its last line
    res = subprocess.run(_lavin(*base, "-o", tmp_path / "cut", "--record", tmp_path / "cut.jsonl", "--skip-existing"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "cut").iterdir()} == whole  # no .partial left either


def test_an_output_that_appears_at_the_last_moment_is_not_replaced(tmp_path, monkeypatch):
    """Without --overwrite, publishing links the finished file into place, which fails where
    another process created the name since it was checked (no window between check and rename)."""
    from lavin_cli.errors import OutputError
    from lavin_cli.io import files

    target = tmp_path / "o.png"
    monkeypatch.setattr(files.Path, "exists", lambda self: False)  # every check says: nothing there
    target.write_bytes(b"the other process's output")
    with pytest.raises(OutputError, match="exists"):
        files.write_atomic(target, b"ours")
    assert target.read_bytes() == b"the other process's output" and len(list(tmp_path.iterdir())) == 1


def test_unused_context_entries_are_a_warning(cli, tiny_model, pairs_dir, queries, tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(pairs_dir, ctx)
    (ctx / "009_target.png").mkdir()
    os.symlink("loop_input.png", ctx / "loop_input.png")
    code, _, err = cli("run", "-m", tiny_model, "-c", ctx, "-i", queries[0], "-o", tmp_path / "o.png", "--steps", "2")
    assert code == 0 and "warning: 2 entries of the context not used: 009_target.png (a folder, not an image), " \
                         "loop_input.png (a link loop)" in err


BAD_ARRAYS = {
    "nan": (np.full((32, 32, 3), np.nan, np.float32), "holds NaN or infinite values"),
    "infinite": (np.full((32, 32, 3), np.inf, np.float32), "holds NaN or infinite values"),
    "negative-floats": (np.full((32, 32, 3), -0.5, np.float32), "outside [0, 1]"),
    "int-too-large": (np.full((32, 32, 3), 1000, np.int64), "outside 0..255"),
    "no-pixels": (np.zeros((0, 0, 3), np.uint8), "has no pixels"),
    "five-channels": (np.zeros((16, 16, 5), np.uint8), "is not an image"),
    "complex": (np.zeros((16, 16, 3), np.complex64), "is not an image"),
    "a-list": ([[1, 2, 3]], "a list is not an image"),
    "none": (None, "a NoneType is not an image"),
}


@pytest.mark.parametrize("name", list(BAD_ARRAYS))
def test_python_queries_that_are_not_images_come_back_failed(name, tiny_model, pairs_dir, queries):
    """Pipeline(...) with a query that is no image: that prediction has its error (a typed
    InputError naming it), the others complete; nothing is clipped into a picture silently."""
    from lavin_cli import Pipeline
    from lavin_cli.errors import InputError

    value, needle = BAD_ARRAYS[name]
    pipe = Pipeline.from_pretrained(str(tiny_model))
    result = pipe(pairs_dir, [value, str(queries[0])], steps=2)
    bad, good = result.predictions
    assert needle in bad.error and isinstance(bad.exception, InputError) and "query #0" in bad.error
    assert good.error is None and good.image is not None


def test_python_takes_the_bytes_of_an_image_file(tiny_model, pairs_dir, queries):
    from lavin_cli import Pipeline

    pipe = Pipeline.from_pretrained(str(tiny_model))
    by_path, by_bytes = pipe(pairs_dir, [str(queries[0]), queries[0].read_bytes()], steps=2).predictions
    assert by_bytes.error is None and np.array_equal(by_path.image, by_bytes.image)
