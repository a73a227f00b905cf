"""The procedural tasks: (input, target) pairs with exact ground truth, generated from a seed.

Every task returns float32 frames in [0, 1], shaped (F, H, W, 3): F = 1 for image tasks, 5 for
video tasks (4k + 1, the ST-VAE's natural clip length). Scene targets are made on the
supersampled render and box-filtered like the picture (so a mask is soft along its edges).
Target encodings:

image tasks, on rendered scenes (lavin_cli/training/scenes.py)
    depth_estimation         gray = inverse depth, min-max normalised per image (near = white)
    surface_normals          RGB = (n + 1) / 2, camera-space normal (x right, y up, z to camera)
    foreground_segmentation  white = objects, black = floor and sky
image-to-image tasks, derived from any picture (here: rendered scenes)
    edge_detection           white = Sobel gradient magnitude of the luminance above 0.25, else black
    colorization             input = luminance (ITU-R 601) as gray; target = the colour picture
                             (task.json keep "luma": a prediction keeps the query's luminance)
    inpainting               input = picture with a random box filled with mid-gray; target = picture
                             (task.json keep "unmasked": a prediction keeps the pixels outside the box)
    denoising                input = picture + Gaussian noise (sigma 0.08-0.2); target = picture
    deblurring               input = Gaussian blur (sigma 1-2 px); target = picture
    low_light_enhancement    input = (0.12-0.35 x picture) ^ gamma 1.2-1.8; target = picture; the
                             factor and gamma are the task's setting (below)
    super_resolution         input = the picture at 1/4 size (box filter), scaled back up bilinearly
    jpeg_artifact_removal    input = the picture through JPEG at quality 5-20; target = picture
A task's setting is what every pair of one sample shares, context pairs and query alike (Task.setting;
low-light: the darkening factor and gamma), so that the context shows the query's degradation: drawn
per pair, a dim scene darkened a little and a bright one darkened a lot look alike, and nothing would
tell the model how bright to make its answer. A pair made without a given setting draws its own.
video tasks, on moving scenes
    frame_prediction         input = frames 0-4; target = frames 4-8 (the first target frame
                             repeats the last input frame, anchoring the continuation)
    video_depth              input = frames 0-4; target = their inverse depth, normalised over
                             the whole clip so that brightness is consistent in time
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lavin_cli.io.images import to_uint8  # frames in [0, 1] -> uint8 (training code calls it tasks.to_uint8)
from lavin_cli.training import scenes

Frames = np.ndarray  # (F, H, W, 3) float32 in [0, 1]


@dataclass(frozen=True)
class Task:
    """One generator task, whole: adding a task is one entry of TASKS."""

    name: str
    kind: str  # "image" | "video"
    make: Callable[..., tuple[Frames, Frames]]  # (rng, size, setting=None) -> (input, target)
    target: str = "rgb"  # "gray" targets are written as 16-bit PNGs (task.json "target")
    metric: str = "restoration"  # how `lavin eval` scores it: depth, normals, mask, edges, restoration, frames
    keep: str | None = None  # what of the query a prediction keeps (task.json "keep", inference/keep.py)

    @property
    def setting(self) -> Callable[[np.random.Generator], tuple] | None:
        """Draws what one sample's pairs share (None: its pairs are independent)."""
        return getattr(self.make, "setting", None)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _rgb1(x: np.ndarray) -> Frames:
    """(H, W) or (H, W, 3) -> (1, H, W, 3)."""
    x = np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x
    return x[None].astype(np.float32)


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """Depth (..., H, W) -> inverse depth min-max normalised over all given pixels, near = 1."""
    inv = 1.0 / np.maximum(depth, 1e-3)
    lo, hi = inv.min(), inv.max()
    return (inv - lo) / max(hi - lo, 1e-6)


def sobel_edges(gray: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    p = np.pad(gray, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return (np.hypot(gx, gy) > threshold).astype(np.float32)


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(rgb, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    rows = sum(w * p[i:i + rgb.shape[0]] for i, w in enumerate(k))
    return sum(w * rows[:, i:i + rgb.shape[1]] for i, w in enumerate(k)).astype(np.float32)


def _picture(rng: np.random.Generator, size: int) -> np.ndarray:
    return render_scene(rng, size).rgb


def render_scene(rng: np.random.Generator, size: int) -> scenes.Render:
    """The scene behind the scene tasks (the same draws from `rng`, so evaluation can re-render it)."""
    return scenes.render(scenes.random_scene(rng), size)


def _filtered(fine: np.ndarray) -> np.ndarray:
    """A target made on the supersampled render -> the picture's size, box-filtered as its RGB is."""
    if fine.ndim == 2:
        return scenes.box(fine[..., None], scenes.SUPERSAMPLE)[..., 0]
    return scenes.box(fine, scenes.SUPERSAMPLE)


SCENE_TARGETS: dict[str, Callable[[scenes.Render], np.ndarray]] = {
    "depth_estimation": lambda r: _filtered(inverse_depth(r.fine.depth)),
    "surface_normals": lambda r: _filtered((r.fine.normal + 1) / 2),
    "foreground_segmentation": lambda r: _filtered((r.fine.instance > 0).astype(np.float32)),
    "edge_detection": lambda r: sobel_edges(_gray(r.rgb)),
}


def _scene_task(name: str):
    def make(rng: np.random.Generator, size: int, setting=None) -> tuple[Frames, Frames]:
        r = render_scene(rng, size)
        return _rgb1(r.rgb), _rgb1(SCENE_TARGETS[name](r))
    return make


def _derived(degrade: Callable[..., np.ndarray], to_target=None, setting=None):
    """A task derived from a picture: degrade(picture, rng, setting) -> its input; `setting(rng)`
    draws what one sample's pairs share (see the module's docstring)."""
    def make(rng: np.random.Generator, size: int, given=None) -> tuple[Frames, Frames]:
        return derive(make, _picture(rng, size), rng, given)
    make.degrade, make.to_target, make.setting = degrade, to_target, setting  # what other picture sources reuse
    return make


def derive(make, pic: np.ndarray, rng: np.random.Generator, setting=None) -> tuple[Frames, Frames]:
    if setting is None and make.setting is not None:
        setting = make.setting(rng)
    target = pic if make.to_target is None else make.to_target(pic)
    return _rgb1(np.clip(make.degrade(pic, rng, setting), 0, 1)), _rgb1(target)


def derived_pair(task: str, pic: np.ndarray, rng: np.random.Generator, setting=None) -> tuple[Frames, Frames]:
    """The (input, target) of a task derived from any picture (H, W, 3) float32 in [0, 1], e.g. a
    real photo: the same degradation the generator applies to its rendered pictures."""
    make = TASKS[task].make
    if not hasattr(make, "degrade"):
        raise ValueError(f"{task} is not derived from a picture (its target needs a rendered scene)")
    return derive(make, pic.astype(np.float32), rng, setting)


def draw_setting(task: str, rng: np.random.Generator):
    """What every pair of one sample of `task` shares, drawn from `rng`; None for most tasks."""
    setting = TASKS[task].setting
    return None if setting is None else setting(rng)


def is_derived(task: str) -> bool:
    return hasattr(TASKS[task].make, "degrade")


def _inpaint(pic: np.ndarray, rng: np.random.Generator, setting=None) -> np.ndarray:
    h, w = pic.shape[:2]
    bh, bw = int(h * rng.uniform(0.25, 0.45)), int(w * rng.uniform(0.25, 0.45))
    top, left = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
    out = pic.copy()
    out[top:top + bh, left:left + bw] = 0.5
    return out


def _downscaled(pic: np.ndarray, factor: int) -> np.ndarray:
    """What a camera `factor` times coarser sees (box filter), shown at the picture's size (bilinear)."""
    from PIL import Image

    h, w = pic.shape[:2]
    small = pic[:h - h % factor, :w - w % factor].reshape(h // factor, factor, w // factor, factor, 3).mean((1, 3))
    return np.stack([np.asarray(Image.fromarray(small[..., c].astype(np.float32), "F").resize((w, h), Image.BILINEAR))
                     for c in range(3)], -1)


def _jpeg(pic: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(pic)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255.0


def _darkening(rng: np.random.Generator) -> tuple[float, float]:
    return float(rng.uniform(0.12, 0.35)), float(rng.uniform(1.2, 1.8))  # (factor, gamma)


def _low_light(pic: np.ndarray, rng: np.random.Generator, setting: tuple[float, float]) -> np.ndarray:
    factor, gamma = setting
    return (pic * factor) ** gamma


def clip_renders(rng: np.random.Generator, size: int, frames: int) -> list[scenes.Render]:
    """A moving scene rendered at `frames` time steps of 0.25 (the same draws the video tasks make)."""
    scene = scenes.random_scene(rng, moving=True)
    return [scenes.render(scene, size, 0.25 * t) for t in range(frames)]


def _frame_prediction(rng: np.random.Generator, size: int, setting=None) -> tuple[Frames, Frames]:
    frames = np.stack([r.rgb for r in clip_renders(rng, size, 9)])
    return frames[:5], frames[4:9]


def _filtered_stack(fine: np.ndarray) -> np.ndarray:
    return np.stack([_filtered(f) for f in fine])


def _video_depth(rng: np.random.Generator, size: int, setting=None) -> tuple[Frames, Frames]:
    renders = clip_renders(rng, size, 5)
    depth = _filtered_stack(inverse_depth(np.stack([r.fine.depth for r in renders])))
    return np.stack([r.rgb for r in renders]), np.repeat(depth[..., None], 3, -1).astype(np.float32)


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("depth_estimation", "image", _scene_task("depth_estimation"), "gray", "depth"),
    Task("surface_normals", "image", _scene_task("surface_normals"), "rgb", "normals"),
    Task("foreground_segmentation", "image", _scene_task("foreground_segmentation"), "gray", "mask"),
    Task("edge_detection", "image", _scene_task("edge_detection"), "gray", "edges"),
    Task("colorization", "image", _derived(lambda p, rng, _: np.repeat(_gray(p)[..., None], 3, -1)), keep="luma"),
    Task("inpainting", "image", _derived(_inpaint), keep="unmasked"),  # the box: 0.5, i.e. 128 in 8 bits
    Task("denoising", "image", _derived(lambda p, rng, _: p + rng.normal(0, rng.uniform(0.08, 0.2), p.shape))),
    Task("deblurring", "image", _derived(lambda p, rng, _: gaussian_blur(p, rng.uniform(1.0, 2.0)))),
    Task("low_light_enhancement", "image", _derived(_low_light, setting=_darkening)),
    Task("frame_prediction", "video", _frame_prediction, "rgb", "frames"),
    Task("video_depth", "video", _video_depth, "gray", "depth"),
    Task("super_resolution", "image", _derived(lambda p, rng, _: _downscaled(p, 4))),
    Task("jpeg_artifact_removal", "image", _derived(lambda p, rng, _: _jpeg(p, int(rng.integers(5, 21))))),
]}

IMAGE_TASKS = [n for n, t in TASKS.items() if t.kind == "image"]


def task_json(name: str, kind: str = "image") -> dict:
    """What a folder of `name`'s pairs says in its task.json (inference/context.read_task_json):
    its target encoding, its kind and, where the task has one, what a prediction keeps; a task
    the generator does not know (a data folder's own) has RGB targets of `kind`."""
    task = TASKS.get(name)
    if task is None:
        return {"target": "rgb", "kind": kind}
    return {"target": task.target, "kind": task.kind, **({"keep": task.keep} if task.keep else {})}
GRAY_TARGETS = {n for n, t in TASKS.items() if t.target == "gray"}  # task.json "gray"


def pair(task: str, seed: int, size: int = 64, setting=None) -> tuple[Frames, Frames]:
    """One (input, target) pair of `task`, fully determined by `seed` (and the setting, if given)."""
    return TASKS[task].make(np.random.default_rng(seed), size, setting)
