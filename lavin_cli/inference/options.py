"""Run options: frozen, validated once where they are built (from CLI flags or Python keywords),
before any model weights are read.

    RunOptions     an image run: pairs, selection, working size, sampling, batch size
    VideoOptions   a clip run: the same, plus new frames, task kind and frame rate
    LoadOptions    how the model is loaded: device, dtype, attention, offload, compile

A bad value raises `OptionError` naming the option (`steps must be at least 2`); the CLI shows
the same message with the flag (`--steps must be at least 2`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from lavin_cli import choices
from lavin_cli.errors import OptionError, UsageError
from lavin_cli.inference import keep as keep_rules
from lavin_cli.inference import masks
from lavin_cli.io.images import DEFAULT_MAX_PIXELS

SELECTIONS = ("first", "random", "nearest")
FITS = ("squash", "pad", "crop")
SOLVERS = tuple(choices.SOLVERS)
VIDEO_MODES = ("auto", "clip", "predict")
OFFLOADS = ("none", "model", "sequential", "auto")
QUANTIZE = ("none", "int8")  # int8: the DiT blocks' matrices in one byte per weight (models/int8.py)
ATTENTIONS = ("auto", *choices.ATTENTION_KERNELS)
DTYPES = ("auto", "float32", "bfloat16", "float16")
MAX_SEED = 2**63 - 1
MAX_CFG = 100.0
MAX_SIZE = 8192  # working-size side; memory is checked against the machine before sampling

Size = Optional[tuple[int, int]]  # (height, width); None: the model's own working size


def parse_size(size: int | str | tuple[int, int] | None) -> Size:
    """512 | '512' | '512x384' (width x height) | (h, w) -> (height, width), multiples of 16."""
    if size is None:
        return None
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            size = (int(parts[1]), int(parts[0])) if len(parts) == 2 else int(parts[0])
        except (ValueError, IndexError):
            raise OptionError("size", f"{size!r} is not N or WIDTHxHEIGHT (e.g. 512 or 768x512)") from None
    if isinstance(size, bool) or not isinstance(size, (int, tuple, list)):
        raise OptionError("size", f"{size!r} is not N, 'WIDTHxHEIGHT' or (height, width)")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 16 or w < 16 or h % 16 or w % 16:
        raise OptionError("size", f"{w}x{h}: width and height must be positive multiples of 16 (e.g. 256, 512)")
    if max(h, w) > MAX_SIZE:
        raise OptionError("size", f"{w}x{h}: sides above {MAX_SIZE} are refused (the model works at 512)")
    return int(h), int(w)


def parse_interval(value) -> tuple[float, float]:
    """'LO,HI' | (lo, hi) with 0 <= lo <= hi <= 1."""
    if isinstance(value, str):
        try:
            value = tuple(float(v) for v in value.split(","))
        except ValueError:
            raise OptionError("cfg_interval", f"{value!r} is not LO,HI (e.g. 0.1,1)") from None
    if not isinstance(value, (tuple, list)) or len(value) != 2 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise OptionError("cfg_interval", f"{value!r} is not LO,HI (e.g. 0.1,1)")
    lo, hi = float(value[0]), float(value[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise OptionError("cfg_interval", f"{lo:g},{hi:g}: need 0 <= LO <= HI <= 1 (times run from 0, noise, to 1, data)")
    return lo, hi


def check_device_name(name: str) -> None:
    """auto, cpu, cuda or cuda:N (whether that device exists is known only when loading)."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", name):
        raise OptionError("device", f"{name!r} is not a device; use auto, cpu, cuda or cuda:N")


def check_number(name: str, value: Any, low: float, high: float | None = None, above: bool = False) -> None:
    """A finite real number in [low, high] (or (low, high] with `above`), else an OptionError
    naming `name`. Shared by every command's option dataclasses."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(name, f"must be a finite number, got {value!r}")
    if value < low or (above and value == low):
        raise OptionError(name, f"must be {'above' if above else 'at least'} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise OptionError(name, f"must be at most {high:g}, got {value:g}")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """A whole number in [low, high], else an OptionError naming `name`."""
    _int(name, value, low, high)


def check_size(name: str, value: Any, high: int = 4096) -> None:
    """A square working size of training: a multiple of 16 from 16 to `high`."""
    _int(name, value, 16, high)
    if value % 16:
        raise OptionError(name, f"must be a multiple of 16, got {value}")


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(name, f"must be a whole number, got {value!r}")
    if value < low:
        raise OptionError(name, f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise OptionError(name, f"must be at most {high}, got {value}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(name, f"{value!r} is not one of {', '.join(choices)}")


@dataclass(frozen=True)
class SamplingOptions:
    """How the target latents are sampled: the flow solver, its grid, guidance and the seed."""

    # 11 time points = 10 model evaluations per branch: on lavin-small's eval (every task, two
    # fresh seeds) as good as the official 20-point grid: equal or better on every metric on v8
    # (docs/performance.md, "CPU speed: fewer steps, bf16")
    steps: int = 11
    cfg: float = 1.5
    seed: int = 0
    solver: str = "euler"
    cfg_interval: tuple[float, float] = (0.0, 1.0)  # guidance only for times t in [lo, hi]
    cond_refresh: int = 1  # compute the condition tokens every n-th model pass (1: every pass, exact)

    def __post_init__(self) -> None:
        _int("steps", self.steps, 2, 10_000)
        _int("cond_refresh", self.cond_refresh, 1, 10_000)
        object.__setattr__(self, "cfg_interval", parse_interval(self.cfg_interval))
        if isinstance(self.cfg, bool) or not isinstance(self.cfg, (int, float)) or not math.isfinite(self.cfg):
            raise OptionError("cfg", f"must be a finite number, got {self.cfg!r}")
        if abs(self.cfg) > MAX_CFG:
            raise OptionError("cfg", f"must be between -{MAX_CFG:g} and {MAX_CFG:g}, got {self.cfg:g} (typical: 1 to 5)")
        _int("seed", self.seed, 0, MAX_SEED)
        _choice("solver", self.solver, SOLVERS)


@dataclass(frozen=True)
class ContextOptions:
    """Which context pairs each query sees and how images meet the working size."""

    pairs: Optional[int] = None  # None: the model's default (folders.ModelFolder.default_pairs)
    select: str = "first"
    size: Size = None
    fit: str = "squash"
    max_pixels: int = DEFAULT_MAX_PIXELS  # inputs larger than this are refused before decoding
    raw: bool = False  # also return the decoded float32 values (Prediction.raw) besides uint8 pixels

    def __post_init__(self) -> None:
        if self.pairs is not None:
            _int("pairs", self.pairs, 1, 1024)
        _int("max_pixels", self.max_pixels, 1)
        if not isinstance(self.raw, bool):
            raise OptionError("raw", f"must be True or False, got {self.raw!r}")
        _choice("select", self.select, SELECTIONS)
        _choice("fit", self.fit, FITS)
        object.__setattr__(self, "size", parse_size(self.size))

    def working_size(self, default: int) -> tuple[int, int]:
        return self.size or (default, default)

    def for_model(self, default_pairs: int):
        """These options with `pairs` settled: the model's default where none was asked for."""
        return self if self.pairs is not None else dataclasses.replace(self, pairs=default_pairs)


@dataclass(frozen=True)
class RunOptions(ContextOptions, SamplingOptions):
    """Everything an image run needs besides the model, the context and the queries."""

    batch_size: int = 4
    keep: str = "auto"  # what of the query the prediction keeps exactly (inference/keep.py)
    # the pixels to fill, beside the queries: a file, a 'masks/{stem}.png' pattern, an array, or a list of files
    # or arrays, one per query (inference/masks.py)
    mask: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        SamplingOptions.__post_init__(self)
        ContextOptions.__post_init__(self)
        _int("batch_size", self.batch_size, 1, 4096)
        object.__setattr__(self, "mask", masks.check(self.mask))
        try:
            keep_rules.parse(self.keep)
        except ValueError as exc:
            raise OptionError("keep", str(exc)) from None

    @property
    def sampling(self) -> SamplingOptions:
        return SamplingOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SamplingOptions)})


DEFAULT_NEW_FRAMES = 12  # the paper's
MAX_FRAMES = 4096  # new frames per run: 1024 chunks of 4 (about 3 minutes at 24 fps); longer runs go in parts


@dataclass(frozen=True)
class VideoOptions(ContextOptions, SamplingOptions):
    """A clip run: `frames` new frames for prediction tasks (None: 12, the paper's; given to a clip
    task, the run warns that it makes none), the task kind, the output frame rate."""

    frames: Optional[int] = None
    mode: str = "auto"
    fps: Optional[float] = None
    keep: str = "auto"  # a prediction's new frames: the query's last frame plus the model's change (inference/keep.py)

    def __post_init__(self) -> None:
        SamplingOptions.__post_init__(self)
        ContextOptions.__post_init__(self)
        try:
            keep_rules.parse_video(self.keep)
        except ValueError as exc:
            raise OptionError("keep", str(exc)) from None
        if self.frames is not None:
            _int("frames", self.frames, 1, MAX_FRAMES)
        _choice("mode", self.mode, VIDEO_MODES)
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                                     or not math.isfinite(self.fps) or not 0 < self.fps <= 1000):
            raise OptionError("fps", f"must be a frame rate above 0 and at most 1000, got {self.fps!r}")

    @property
    def new_frames(self) -> int:
        """How many frames a prediction task makes."""
        return DEFAULT_NEW_FRAMES if self.frames is None else self.frames

    @property
    def sampling(self) -> SamplingOptions:
        return SamplingOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SamplingOptions)})


@dataclass(frozen=True)
class LoadOptions:
    """How a model is loaded: names are checked here, availability when it loads."""

    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    offload: str = "none"
    compile: bool = False
    quantize: str = "none"

    def __post_init__(self) -> None:
        check_device_name(self.device)
        _choice("dtype", self.dtype, DTYPES)
        _choice("attention", self.attention, ATTENTIONS)
        _choice("offload", self.offload, OFFLOADS)
        _choice("quantize", self.quantize, QUANTIZE)


def build(cls, base=None, **keywords):
    """`cls` from keywords (on top of `base`, an instance, when given); unknown keywords are
    refused by name, so that a typo never passes silently."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(keywords) - known)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; {cls.__name__} takes {', '.join(sorted(known))}")
    if base is not None:
        return dataclasses.replace(base, **keywords)
    return cls(**keywords)
