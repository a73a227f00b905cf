"""Video I/O and the 4k+1 frame bookkeeping (the `lavin video` command builds on these)."""

from __future__ import annotations

import numpy as np
import pytest

from lavin_cli.errors import InputError, TooLarge, UsageError
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


def _smooth_frames(count=9, height=40, width=56):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([np.stack([(x * 4 + 10 * i) % 256, (y * 6) % 256, np.full_like(x, 128)], -1)
                     for i in range(count)]).astype(np.uint8)  # smooth content: lossy codecs keep it


@pytest.mark.parametrize("backend", ["ffmpeg", "pyav"])
@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ""])
def test_video_round_trips_keep_frames_size_and_fps(tmp_path, use_video_backend, ext, backend):
    use_video_backend(backend)
    frames = _smooth_frames()
    path = tmp_path / f"clip{ext}"
    video_io.write_video(path, video_io.Clip(frames, 12.0))
    clip = video_io.read_video(path)
    assert clip.frames.shape == frames.shape
    if ext:
        assert abs(clip.fps - 12.0) < 0.6  # gif stores 10 ms units
    assert np.abs(clip.frames.astype(int) - frames).mean() < 12


def test_bad_videos_are_reported(tmp_path, requires_codec):
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


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".avi"])
def test_either_backend_reads_the_other_ones_files(tmp_path, use_video_backend, ext):
    """imageio-ffmpeg and PyAV write with the same codecs and read each other's files to the same frames."""
    for backend in ("ffmpeg", "pyav"):
        use_video_backend(backend)
        video_io.write_video(tmp_path / f"{backend}{ext}", video_io.Clip(_smooth_frames(), 12.0))
    reads = {}
    for reader in ("ffmpeg", "pyav"):
        use_video_backend(reader)
        reads[reader] = [video_io.read_video(tmp_path / f"{writer}{ext}") for writer in ("ffmpeg", "pyav")]
    for by_ffmpeg, by_pyav in zip(reads["ffmpeg"], reads["pyav"]):
        assert np.array_equal(by_ffmpeg.frames, by_pyav.frames) and abs(by_ffmpeg.fps - by_pyav.fps) < 0.01


def test_long_webm_is_measured_from_its_header_with_pyav(tmp_path, use_video_backend):
    """PyAV leaves a WebM's length out of its metadata: the container's duration sizes the clip,
    so the decoded-bytes limit still refuses it before decoding."""
    use_video_backend("pyav")
    path = tmp_path / "long.webm"
    video_io.write_video(path, video_io.Clip(_smooth_frames(count=30), 10.0))
    with pytest.raises(TooLarge, match="30 frames of 56x40"):
        video_io.read_video(path, max_bytes=20 * 56 * 40 * 3)


def test_without_a_codec_backend_video_files_ask_for_one(tmp_path, monkeypatch):
    frames = _smooth_frames(count=5)
    (tmp_path / "clip.mp4").write_bytes(b"refused before it is opened")
    monkeypatch.setattr(video_io, "available", lambda backend: False)  # neither package importable
    assert video_io.video_backend() is None
    for call in (lambda: video_io.read_video(tmp_path / "clip.mp4"), lambda: video_io.probe_video(tmp_path / "clip.mp4"),
                 lambda: video_io.write_video(tmp_path / "new.webm", video_io.Clip(frames, 8))):
        with pytest.raises(UsageError, match=r"\.(mp4|webm) files need ffmpeg: pip install imageio-ffmpeg \(or av\)"):
            call()
    assert not (tmp_path / "new.webm").exists()
    video_io.write_video(tmp_path / "clip.gif", video_io.Clip(frames, 8))  # Pillow and frame folders need neither
    video_io.write_video(tmp_path / "frames", video_io.Clip(frames, 8))
    assert video_io.read_video(tmp_path / "clip.gif").frames.shape == video_io.read_video(tmp_path / "frames").frames.shape
    monkeypatch.setenv(video_io.BACKEND_ENV, "gstreamer")
    with pytest.raises(UsageError, match="LAVIN_VIDEO_BACKEND='gstreamer': use one of ffmpeg, pyav"):
        video_io.read_video(tmp_path / "clip.mp4")
    monkeypatch.setenv(video_io.BACKEND_ENV, "pyav")
    with pytest.raises(UsageError, match="LAVIN_VIDEO_BACKEND=pyav: av is not installed"):
        video_io.read_video(tmp_path / "clip.mp4")
