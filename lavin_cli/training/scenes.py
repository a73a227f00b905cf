"""Procedural 3D scenes with exact ground truth, rendered by ray casting (numpy, CPU).

A scene is a few textured primitives (spheres and boxes rotated about the vertical axis) on a
textured floor, seen by a pinhole camera at the origin looking down +z, lit by one directional
light with hard shadows. Rendering returns, per pixel: RGB, depth (z distance), the camera-space
surface normal, and the instance id (0 = floor/background). Objects may move: `render(scene, t)`
places every object at center + t * velocity, which makes clips for video tasks.

Each pixel averages SUPERSAMPLE x SUPERSAMPLE rays (a box filter, as a camera pixel integrates
the light that falls on it): one ray per pixel aliases the floor's checkerboard into sub-pixel
noise that no picture of that size could hold. The render keeps its supersampled source
(`Render.fine`), from which targets are made and box-filtered the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAR = 12.0
FLOOR_Y = -1.0
FOV = np.deg2rad(55)
SUPERSAMPLE = 2


@dataclass
class Object:
    kind: str  # "sphere" | "box"
    center: np.ndarray  # (3,)
    size: np.ndarray  # sphere: (r, r, r); box: half extents (3,)
    angle: float  # rotation about the y axis (boxes)
    color: np.ndarray  # (3,) in [0, 1]
    color2: np.ndarray
    texture: str  # "solid" | "stripes" | "checker" | "dots"
    velocity: np.ndarray  # (3,) per unit of time


@dataclass
class Scene:
    objects: list[Object]
    light: np.ndarray  # unit vector towards the light
    floor_colors: tuple[np.ndarray, np.ndarray]
    floor_scale: float
    sky: tuple[np.ndarray, np.ndarray]


@dataclass
class Render:
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    depth: np.ndarray  # (H, W) float32, z distance, FAR where nothing is hit (mean over the pixel)
    normal: np.ndarray  # (H, W, 3) float32 unit vectors, camera space (x right, y up, z towards the camera)
    instance: np.ndarray  # (H, W) int32, 0 = floor / sky, k = object k (the pixel's majority)
    fine: "Render | None" = None  # the supersampled render this one was filtered from

    @property
    def surface(self) -> np.ndarray:
        """Pixels whose every ray hits a surface (normals are defined there)."""
        if self.fine is None:
            return self.depth < FAR
        return box((self.fine.depth < FAR).astype(np.float32)[..., None], SUPERSAMPLE)[..., 0] == 1


def box(x: np.ndarray, factor: int) -> np.ndarray:
    """(..., H*f, W*f, C) -> (..., H, W, C): the mean of each f x f block (a box filter)."""
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // factor, factor, w // factor, factor, c).mean(axis=(-4, -2)).astype(x.dtype)


def random_scene(rng: np.random.Generator, moving: bool = False) -> Scene:
    objects = []
    for _ in range(rng.integers(1, 4)):
        kind = "sphere" if rng.random() < 0.5 else "box"
        z = rng.uniform(3.0, 7.0)
        size = np.full(3, rng.uniform(0.45, 0.9)) if kind == "sphere" else rng.uniform(0.3, 0.8, 3)
        center = np.array([rng.uniform(-1.3, 1.3) * z / 4, FLOOR_Y + size[1], z])
        velocity = np.array([rng.uniform(-0.6, 0.6), 0.0, rng.uniform(-0.8, 0.8)]) if moving else np.zeros(3)
        objects.append(Object(kind, center, size, float(rng.uniform(0, np.pi)), rng.uniform(0.15, 1.0, 3),
                              rng.uniform(0.0, 1.0, 3), str(rng.choice(["solid", "stripes", "checker", "dots"])), velocity))
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.6, 1.2), rng.uniform(-0.9, 0.2)])
    floor = (rng.uniform(0.2, 0.8, 3), rng.uniform(0.2, 0.8, 3))
    sky = (rng.uniform(0.4, 1.0, 3), rng.uniform(0.1, 0.6, 3))
    return Scene(objects, light / np.linalg.norm(light), floor, float(rng.uniform(0.5, 1.5)), sky)


def _rays(size: int) -> np.ndarray:
    f = 0.5 / np.tan(FOV / 2)
    coords = (np.arange(size) + 0.5) / size - 0.5
    x, y = np.meshgrid(coords, -coords)
    d = np.stack([x, y, np.full_like(x, f)], axis=-1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _hit_sphere(o: np.ndarray, d: np.ndarray, obj: Object, center: np.ndarray):
    oc = o - center
    b = (oc * d).sum(-1)
    c = (oc * oc).sum(-1) - obj.size[0] ** 2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0))
    t = np.where((disc > 0) & (t > 1e-4), t, np.inf)
    p = o + d * t[..., None]
    n = (p - center) / obj.size[0]
    return t, n, p - center


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _hit_box(o: np.ndarray, d: np.ndarray, obj: Object, center: np.ndarray):
    r = _rot(obj.angle)
    lo, ld = (o - center) @ r, d @ r  # into the box frame
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(ld) < 1e-9, 1e-9, ld)
        t1, t2 = (-obj.size - lo) * inv, (obj.size - lo) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    near, far = tmin.max(-1), tmax.min(-1)
    t = np.where((near < far) & (near > 1e-4), near, np.inf)
    local = lo + ld * t[..., None]
    axis = np.argmax(np.abs(local) / obj.size, axis=-1)
    n_local = np.zeros_like(local)
    np.put_along_axis(n_local, axis[..., None], np.sign(np.take_along_axis(local, axis[..., None], -1)), -1)
    return t, n_local @ r.T, local


def _intersect(scene: Scene, o: np.ndarray, d: np.ndarray, time: float):
    """Nearest object hit: (t, normal, local point, object index 1..k; 0 = none)."""
    best = np.full(d.shape[:-1], np.inf)
    normal = np.zeros(d.shape)
    local = np.zeros(d.shape)
    index = np.zeros(d.shape[:-1], np.int32)
    for k, obj in enumerate(scene.objects, start=1):
        center = obj.center + time * obj.velocity
        t, n, p = (_hit_sphere if obj.kind == "sphere" else _hit_box)(o, d, obj, center)
        closer = t < best
        best = np.where(closer, t, best)
        normal[closer], local[closer], index[closer] = n[closer], p[closer], k
    return best, normal, local, index


def _pattern(kind: str, p: np.ndarray, scale: float) -> np.ndarray:
    """0/1 (or smooth) texture mask from a local 3D position."""
    if kind == "stripes":
        return (np.floor(p[..., 1] * 4 / scale) % 2).astype(np.float64)
    if kind == "checker":
        return (np.floor(p[..., 0] * 3 / scale) + np.floor(p[..., 1] * 3 / scale) + np.floor(p[..., 2] * 3 / scale)) % 2
    if kind == "dots":
        q = p * 3 / scale
        return (np.linalg.norm(q - np.round(q), axis=-1) < 0.3).astype(np.float64)
    return np.zeros(p.shape[:-1])


def _render_rays(scene: Scene, size: int, time: float) -> Render:
    """One ray per pixel."""
    d = _rays(size)
    o = np.zeros(3)
    t_obj, n_obj, local, inst = _intersect(scene, o, d, time)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[..., 1] < -1e-6, (FLOOR_Y - o[1]) / d[..., 1], np.inf)
    floor = (t_floor < t_obj) & np.isfinite(t_floor)
    t = np.where(floor, t_floor, t_obj)
    hit = np.isfinite(t)
    p = o + d * np.where(hit, t, 0)[..., None]
    normal = np.where(floor[..., None], np.array([0.0, 1.0, 0.0]), n_obj)
    inst = np.where(floor | ~hit, 0, inst)

    base = np.zeros(d.shape)
    for k, obj in enumerate(scene.objects, start=1):
        m = inst == k
        mix = _pattern(obj.texture, local[m], 1.0)[..., None]
        base[m] = obj.color * (1 - mix) + obj.color2 * mix
    fmix = _pattern("checker", np.stack([p[..., 0], np.zeros_like(p[..., 0]), p[..., 2]], -1), scene.floor_scale)[..., None]
    base = np.where(floor[..., None], scene.floor_colors[0] * (1 - fmix) + scene.floor_colors[1] * fmix, base)

    shadow_t, _, _, _ = _intersect(scene, p + normal * 1e-3, np.broadcast_to(scene.light, d.shape), time)
    lit = ~np.isfinite(shadow_t)
    lambert = np.clip((normal * scene.light).sum(-1), 0, 1) * lit
    rgb = base * (0.3 + 0.7 * lambert)[..., None]
    sky = scene.sky[0] * (1 - np.clip(d[..., 1:2] * 2 + 0.5, 0, 1)) + scene.sky[1] * np.clip(d[..., 1:2] * 2 + 0.5, 0, 1)
    rgb = np.where(hit[..., None], rgb, sky)
    normal_cam = normal * np.array([1.0, 1.0, -1.0])  # camera looks down +z; report z towards the camera
    normal_cam = np.where(hit[..., None], normal_cam, np.array([0.0, 0.0, 1.0]))
    depth = np.where(hit, t * d[..., 2], FAR).clip(max=FAR)
    return Render(rgb.clip(0, 1).astype(np.float32), depth.astype(np.float32), normal_cam.astype(np.float32),
                  inst.astype(np.int32))


def render(scene: Scene, size: int = 64, time: float = 0.0) -> Render:
    """The scene at `size` pixels, each the box-filtered mean of SUPERSAMPLE x SUPERSAMPLE rays;
    the instance of a pixel is the one most of its rays hit."""
    fine = _render_rays(scene, size * SUPERSAMPLE, time)
    f = SUPERSAMPLE
    normal = box(fine.normal, f)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    ids = fine.instance.reshape(size, f, size, f).transpose(0, 2, 1, 3).reshape(size, size, f * f)
    counts = np.stack([(ids == k).sum(-1) for k in range(int(fine.instance.max()) + 1)], axis=-1)
    return Render(box(fine.rgb, f), box(fine.depth[..., None], f)[..., 0], normal.astype(np.float32),
                  counts.argmax(-1).astype(np.int32), fine)
