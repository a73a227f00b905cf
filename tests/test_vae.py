"""ST-VAE behaviour beyond the parity fixtures: frame counts, causality, tiling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lavin_cli.config import vae_preset
from lavin_cli.models.vae import decoded_frames, latent_frames
from lavin_cli.models.vae_tiling import frame_chunks, tiled_decode, tiled_encode
from lavin_cli.store import weights

TINY = vae_preset("tiny")


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return weights.build(TINY).eval()


@pytest.fixture(scope="module")
def causal_vae(vae):
    model = weights.build(dataclasses.replace(TINY, causal_norm=True), init=False)
    model.load_state_dict(vae.state_dict(), assign=True)
    return model.eval()


def _video(frames, size=32, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("frames", range(1, 14))
def test_frames_to_latents_mapping(vae, frames):
    """4k+1 -> k+1; other counts as the official code (8 -> 2 -> 5 decoded; 2, 3, 4 -> 1)."""
    official = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 2, 9: 3, 10: 3, 11: 3, 12: 3, 13: 4}
    assert latent_frames(frames) == official[frames]
    with torch.no_grad():
        z = vae.encode(_video(frames, size=16)).mean
        assert z.shape[2] == official[frames]
        assert vae.decode(z).shape[2] == decoded_frames(z.shape[2]) == 4 * (z.shape[2] - 1) + 1


def test_image_is_a_one_frame_video(vae):
    """The image path (N, 3, H, W) is the 1-frame video path, whatever else is in the batch."""
    from lavin_cli.inference import codec

    x = _video(1, seed=3)
    other = _video(1, seed=4)
    noise = torch.randn(2, 16, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        video = codec.normalize(vae.encode(x).sample(noise=noise[:1]), vae.cfg)[:, :, 0]
        images = codec.sample(vae.encode(torch.cat([x, other])[:, :, :1]), vae.cfg, noise=noise)[:1, :, 0]
    assert images.shape == (1, 16, 4, 4)
    assert torch.allclose(video, images, atol=1e-5)


def test_causal_vae_later_frames_never_change_earlier_latents(causal_vae):
    x = _video(9, seed=5)
    with torch.no_grad():
        full = causal_vae.encode(x).moments
        for frames, lat in ((1, 1), (5, 2)):
            assert torch.allclose(causal_vae.encode(x[:, :, :frames]).moments, full[:, :, :lat], atol=1e-5)
        z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(6))
        decoded = causal_vae.decode(z)
        assert torch.allclose(causal_vae.decode(z[:, :, :2]), decoded[:, :, :5], atol=1e-5)
        assert torch.allclose(causal_vae.decode(z[:, :, :1]), decoded[:, :, :1], atol=1e-5)


def test_official_vae_convolutions_are_causal(vae):
    """Official semantics: every conv and pooling is causal; only clip-wide GroupNorm
    statistics let later frames in. Perturbing a later frame changes the first latent only
    through those statistics, which the causal-norm variant removes (test above)."""
    conv = vae.encoder.conv_in
    x = _video(9, seed=7)
    y = conv(x)
    x2 = x.clone()
    x2[:, :, 5:] += 1.0
    assert torch.equal(conv(x2)[:, :, :5], y[:, :, :5])


def test_causal_norm_matches_official_on_images(vae, causal_vae):
    x = _video(1, seed=8)
    with torch.no_grad():
        assert torch.allclose(vae.encode(x).moments, causal_vae.encode(x).moments, atol=1e-5)


def test_frame_chunks_share_one_boundary_frame():
    assert frame_chunks(9, 81) == [(0, 9)]
    assert frame_chunks(161, 81) == [(0, 81), (80, 161)]
    assert frame_chunks(200, 81) == [(0, 81), (80, 161), (160, 200)]


def test_tiling_is_identity_when_one_tile_covers_the_input(vae):
    x = _video(5, size=32, seed=9)
    with torch.no_grad():
        assert torch.equal(tiled_encode(vae, x, tile=32, tile_frames=9).moments, vae.encode(x).moments)
        z = vae.encode(x).mean
        assert torch.equal(tiled_decode(vae, z, tile=32, tile_frames=9), vae.decode(z))


def test_tiled_encode_and_decode_of_large_inputs(vae):
    """Spatial tiles and frame chunks: right shapes, seams blended, close to the untiled result."""
    x = _video(9, size=64, seed=10)
    with torch.no_grad():
        post = tiled_encode(vae, x, tile=32, tile_frames=5)
        ref = vae.encode(x)
        assert post.moments.shape == ref.moments.shape
        z = ref.mean
        dec = tiled_decode(vae, z, tile=32, tile_frames=5)
        full = vae.decode(z)
    assert dec.shape == full.shape
    assert torch.isfinite(dec).all() and torch.isfinite(post.moments).all()
    # tiles see less context than the whole image, so they differ, but not wildly
    rel = (dec - full).abs().mean() / full.abs().mean()
    assert rel < 0.5, rel
