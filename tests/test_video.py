"""Video I/O and the 4k+1 frame bookkeeping (the `lavin video` command builds on these)."""

from __future__ import annotations

import numpy as np
import pytest

from lavin_cli.errors import InputError, UsageError
from lavin_cli.inference import frames as frame_rules
from lavin_cli.io import video as video_io
from lavin_cli.models.vae import decoded_frames, latent_frames


@pytest.mark.parametrize("n,latents,generated", [(1, 2, 4), (4, 2, 4), (5, 3, 8), (12, 4, 12), (13, 5, 16)])
def test_prediction_frame_counts(n, latents, generated):
    plan = frame_rules.plan_prediction(n, context_target_frames=21)  # targets long enough for one chunk
    assert plan.chunks == 1 and plan.chunk_latents == latents and plan.generated_frames == generated
    assert decoded_frames(plan.chunk_latents) - 1 == plan.chunk_new_frames  # the anchor frame is dropped
    assert plan.generated_frames >= n


@pytest.mark.parametrize("n,chunks", [(1, 1), (4, 1), (5, 2), (12, 3), (13, 4)])
def test_prediction_chunks_when_context_targets_are_short(n, chunks):
    plan = frame_rules.plan_prediction(n, context_target_frames=5)  # 5 frames: anchor + 4 new per chunk
    assert plan.chunk_latents == 2 and plan.chunks == chunks and plan.generated_frames >= n
    assert "trimmed" in plan.describe()


def test_prediction_needs_a_continuation_in_the_context():
    with pytest.raises(InputError, match="5 or more frames"):
        frame_rules.plan_prediction(4, context_target_frames=1)
    with pytest.raises(UsageError, match="at least 1"):
        frame_rules.plan_prediction(0, context_target_frames=5)


@pytest.mark.parametrize("frames", range(1, 14))
def test_padding_to_the_vae_structure(frames):
    length = frame_rules.padded_length(frames)
    assert length >= frames and (length - 1) % 4 == 0 and length - frames < 4
    assert latent_frames(length) == frame_rules.latents_for(frames) and decoded_frames(frame_rules.latents_for(frames)) == length
    clip = np.arange(frames)[:, None]
    padded = frame_rules.pad(clip, length)
    assert padded.shape[0] == length and (padded[:frames] == clip).all() and (padded[frames:] == frames - 1).all()


def test_chunks_share_one_frame_and_cover_the_clip():
    assert frame_rules.chunks(5, 5) == [(0, 5)]
    assert frame_rules.chunks(9, 5) == [(0, 5), (4, 9)]
    assert frame_rules.chunks(11, 5) == [(0, 5), (4, 9), (6, 11)]
    for total in range(1, 40):
        parts = frame_rules.chunks(total, 5)
        assert parts[0][0] == 0 and parts[-1][1] == total and all(e - s <= 5 for s, e in parts)
        assert all(b[0] < a[1] for a, b in zip(parts, parts[1:]))  # consecutive chunks overlap


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ""])
def test_video_round_trips_keep_frames_size_and_fps(tmp_path, ext):
    y, x = np.mgrid[0:40, 0:56]
    frames = np.stack([np.stack([(x * 4 + 10 * i) % 256, (y * 6) % 256, np.full_like(x, 128)], -1)
                       for i in range(9)]).astype(np.uint8)  # smooth content: lossy codecs keep it
    path = tmp_path / f"clip{ext}"
    video_io.write_video(path, video_io.Clip(frames, 12.0))
    clip = video_io.read_video(path)
    assert clip.frames.shape == frames.shape
    if ext:
        assert abs(clip.fps - 12.0) < 0.6  # gif stores 10 ms units
    assert np.abs(clip.frames.astype(int) - frames).mean() < 12


def test_bad_videos_are_reported(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    with pytest.raises(InputError, match="broken.mp4: unreadable, truncated or unsupported video"):
        video_io.read_video(tmp_path / "broken.mp4")
    with pytest.raises(InputError, match="file not found"):
        video_io.read_video(tmp_path / "absent.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frame images"):
        video_io.read_video(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a video"):
        video_io.read_video(tmp_path / "notes.txt")
    video_io.write_video(tmp_path / "a.mp4", video_io.Clip(np.zeros((5, 16, 16, 3), np.uint8), 8))
    with pytest.raises(Exception, match="exists"):
        video_io.write_video(tmp_path / "a.mp4", video_io.Clip(np.zeros((5, 16, 16, 3), np.uint8), 8))
