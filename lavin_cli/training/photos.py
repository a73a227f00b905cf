"""Real photographs as a training and evaluation source: the tasks whose target follows from the
photo itself (denoising, deblurring, low-light, inpainting, colorization: the generator's own
degradations, `tasks.derived_pair`; edges: the same Sobel detector on the clean photo), on crops
of the photos in some folders; and frame prediction on clips of a camera moving over a photo
(a pan at constant velocity and a steady zoom, sub-pixel: real texture in real motion classes).

    lavin train dit --data photos:/usr/share/backgrounds/mate/nature ...

A crop is a random square of a random scale (from the whole shorter side down to a quarter of
it, never below the working size), resized to the working size: the same photo gives many
pictures. Photos are decoded once, scaled so that the shorter side is at most MAX_SIDE.

Each pair of a sample is cropped from a photo of its own, so the examples tell nothing of the
query's palette; with `same_photo` (`lavin train dit --same-photo P`, or per task as in
`--same-photo colorization=0.5`) that share of the samples (of those tasks) crops all its pairs
from one photo (SamePhoto, a setting the sample's pairs share), as a user's examples often come
from the same shoot or collection as the query. Each pair of such a sample
is cropped (or filmed) inside its own quadrant of the photo, so no two share a pixel: overlapping
crops would let the model copy the query's answer from a context target, a shortcut no user's
examples offer (up to four pairs per sample, --max-pairs 3, are disjoint; more wrap around;
photos under 2 * MIN_SIDE are not split).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lavin_cli.errors import InputError, OptionError
from lavin_cli.training import tasks as gen
from lavin_cli.training.data import Source

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
MAX_SIDE = 1024  # decoded photos are scaled down to this shorter side (memory, speed)
MIN_SIDE = 128  # smaller images (icons, thumbnails) are not photos to learn from
PHOTO_TASKS = ([t for t in gen.TASKS if gen.is_derived(t)]
               + [t for t in gen.TASKS if gen.TASKS[t].metric == "edges"])  # edges: the Sobel detector on the photo
VIDEO_PHOTO_TASKS = [t for t in gen.TASKS if gen.TASKS[t].metric == "frames"]  # a camera moving over a photo
ALL_PHOTO_TASKS = PHOTO_TASKS + VIDEO_PHOTO_TASKS  # what a Photos source makes
MAX_PAN = 0.04  # of the window's side per frame
MAX_ZOOM = 0.03  # window scale change per frame


QUADRANTS = 4  # same-photo pairs: the photo's 2x2 quadrants, one per pair of a sample
RESOLUTION = re.compile(r"\d+x\d+")  # wallpaper sets keep one photo at many sizes: 1920x1080.jpg, ...


def photo_files(roots: list[Path]) -> list[Path]:
    """Every photo below the roots, sorted (so a seed draws the same ones on every machine); of
    the files of one folder named by a resolution (the same photo at several sizes), the largest."""
    found: dict[tuple, Path] = {}
    for root in roots:
        if not Path(root).is_dir():
            raise InputError(f"{root}: photo folder not found")
        for p in sorted(Path(root).rglob("*")):
            if p.is_file() and p.suffix.lower() in EXTENSIONS:
                key = (p.parent, "") if RESOLUTION.fullmatch(p.stem) else (p.parent, p.stem)
                if key not in found or p.stat().st_size > found[key].stat().st_size:
                    found[key] = p
    return sorted(found.values())


@dataclass(frozen=True)
class SamePhoto:
    """What the pairs of one sample share with `same_photo`: the photo they are all cropped from
    (an index into Photos.files; None: each pair its own), the task's own setting (low-light's
    darkening, or None), the order in which the pairs take the photo's quadrants, and (set per
    pair by Photos.member) which pair of the sample this is."""

    photo: int | None
    inner: object = None
    quadrants: tuple[int, ...] = tuple(range(QUADRANTS))
    member: int | None = None

    def region(self, photo: np.ndarray) -> np.ndarray:
        """The part of `photo` this pair is cropped from: its own quadrant (the whole photo before
        a pair is set, or where a quadrant would be smaller than a photo may be)."""
        h, w = photo.shape[:2]
        if self.member is None or min(h, w) < 2 * MIN_SIDE:
            return photo
        row, col = divmod(self.quadrants[self.member % QUADRANTS], 2)
        return photo[row * h // 2:(row + 1) * h // 2, col * w // 2:(col + 1) * w // 2]


def unwrap(setting) -> tuple[SamePhoto | None, object]:
    """(the SamePhoto or None, the task's own setting)."""
    return (setting, setting.inner) if isinstance(setting, SamePhoto) else (None, setting)


class Photos(Source):
    def __init__(self, roots: list[Path], names: list[str] | None = None, same_photo: float = 0.0,
                 same_photo_tasks: Mapping[str, float] | None = None):
        # the share of samples whose pairs are all cropped from one photo: `same_photo` for every task, a task's own over it
        self.same_photo = dict.fromkeys(ALL_PHOTO_TASKS, same_photo) | dict(same_photo_tasks or {})
        unknown = sorted(set(self.same_photo) - set(ALL_PHOTO_TASKS))
        if unknown:
            raise OptionError("same_photo", f"names {unknown[0]!r}, which is not made from photos; these are: "
                              f"{', '.join(ALL_PHOTO_TASKS)}")
        unknown = sorted(set(names or []) - set(ALL_PHOTO_TASKS))
        if unknown:
            raise InputError(f"task(s) {unknown} cannot be made from photos; these can: "
                             f"{', '.join(ALL_PHOTO_TASKS)}")
        self.task_names = list(names or ALL_PHOTO_TASKS)
        if not roots:
            raise InputError("photos: give one or more folders of photos (photos:DIR[,DIR])")
        self.roots = [Path(r) for r in roots]
        self.files = photo_files(self.roots)
        self._decoded: dict[Path, np.ndarray | None] = {}
        if not any(self._photo(p) is not None for p in self.files):
            raise InputError(f"no photo of at least {MIN_SIDE} px in {', '.join(map(str, roots))}")
        self.files = [p for p in self.files if self._photo(p) is not None]

    def kind(self, task: str) -> str:
        return "video" if task in VIDEO_PHOTO_TASKS else "image"

    def _photo(self, path: Path) -> np.ndarray | None:
        """The photo as uint8 RGB, shorter side at most MAX_SIDE; None for what is not one."""
        if path not in self._decoded:
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB")
                    scale = MAX_SIDE / min(image.size)
                    if scale < 1:
                        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
                    array = np.asarray(image, dtype=np.uint8)  # kept as bytes: a quarter of float32
            except (OSError, ValueError, Image.DecompressionBombError):
                array = None
            self._decoded[path] = array if array is not None and min(array.shape[:2]) >= MIN_SIDE else None
        return self._decoded[path]

    def _pick(self, rng: np.random.Generator, shared: SamePhoto | None) -> np.ndarray:
        if shared is None or shared.photo is None:
            return self._photo(self.files[int(rng.integers(len(self.files)))])
        return shared.region(self._photo(self.files[shared.photo]))

    def picture(self, rng: np.random.Generator, size: int, shared: SamePhoto | None = None) -> np.ndarray:
        """A random square crop of a random photo (or of the `shared` photo's region) at a random
        scale, (size, size, 3) in [0, 1]."""
        photo = self._pick(rng, shared)
        h, w = photo.shape[:2]
        short = min(h, w)
        side = int(rng.integers(min(max(size, short // 4), short), short + 1))  # a region under the working size: all of it
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top:top + side, left:left + side])
        picture = np.asarray(crop.resize((size, size), Image.BOX if side >= size else Image.BICUBIC), np.float32)
        return picture / 255.0

    def clip(self, rng: np.random.Generator, size: int, frames: int, shared: SamePhoto | None = None) -> np.ndarray:
        """A camera over a random photo: a square window panning at a constant velocity (up to
        MAX_PAN of its side per frame, any direction) and zooming steadily (up to MAX_ZOOM per
        frame), kept inside the photo; (frames, size, size, 3) in [0, 1]."""
        photo = self._pick(rng, shared)
        h, w = photo.shape[:2]
        side = float(rng.uniform(max(size, min(h, w) / 5), min(h, w) / 1.6))
        zoom = float(np.exp(rng.uniform(-MAX_ZOOM, MAX_ZOOM)))
        velocity = rng.uniform(-MAX_PAN, MAX_PAN, 2) * side
        scale = min(1.0, 1.5 * size / side)  # sample from a copy at most 1.5x the working size (no aliasing)
        image = Image.fromarray(photo)
        if scale < 1:
            image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
        sides = side * zoom ** np.arange(frames)
        centre = np.array([rng.uniform(sides.max() / 2, w - sides.max() / 2), rng.uniform(sides.max() / 2, h - sides.max() / 2)])
        out = []
        for t, s in enumerate(sides):
            c = np.clip(centre + velocity * t, s / 2, [w - s / 2, h - s / 2])  # stops at the photo's edge
            box = tuple(float(v) * scale for v in (c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s / 2))
            out.append(np.asarray(image.transform((size, size), Image.EXTENT, box, Image.BILINEAR), np.float32))
        return np.stack(out) / 255.0

    def draw_setting(self, task, rng):
        inner = gen.draw_setting(task, rng)
        share = self.same_photo.get(task, 0.0)
        if not share:
            return inner
        if rng.random() >= share:
            return SamePhoto(None, inner)
        return SamePhoto(int(rng.integers(len(self.files))), inner, tuple(int(q) for q in rng.permutation(QUADRANTS)))

    def member(self, setting, index):
        return dataclasses.replace(setting, member=index) if isinstance(setting, SamePhoto) else setting

    def pair(self, task, rng, size, setting=None):
        shared, setting = unwrap(setting)
        if gen.TASKS[task].metric == "frames":
            frames = self.clip(rng, size, 9, shared)
            return frames[:5], frames[4:9]
        pic = self.picture(rng, size, shared)
        if gen.TASKS[task].metric == "edges":
            edges = gen.sobel_edges(pic @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
            return pic[None], np.repeat(edges[..., None], 3, -1)[None]
        return gen.derived_pair(task, pic, rng, setting)


class WithPhotos(Source):
    """The generator's tasks, where a task can be made from a photo drawing its picture from
    real photos with probability `share` (else the generator's rendered scene): procedural
    ground truth stays, real texture comes in.

        lavin train vae --data generator+photos:DIR[,DIR]
    """

    def __init__(self, generator: Source, photos: Photos, share: float = 0.5):
        self.generator, self.photos, self.share = generator, photos, share
        self.task_names = list(generator.task_names)

    def kind(self, task: str) -> str:
        return self.generator.kind(task)

    def draw_setting(self, task, rng):
        if task in self.photos.task_names:
            return self.photos.draw_setting(task, rng)
        return self.generator.draw_setting(task, rng)

    def member(self, setting, index):
        return self.photos.member(setting, index)

    def pair(self, task, rng, size, setting=None):
        shared, inner = unwrap(setting)
        one_photo = shared is not None and shared.photo is not None
        if task in self.photos.task_names and (one_photo or rng.random() < self.share):
            return self.photos.pair(task, rng, size, setting)  # a sample sharing a photo takes all its pairs from it
        return self.generator.pair(task, rng, size, inner)
