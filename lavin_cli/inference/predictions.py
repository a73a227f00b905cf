"""What a run hands back, without torch (a client of a server builds them too): progress
events, one image prediction, one clip prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Protocol

import numpy as np

from lavin_cli.errors import LavinError
from lavin_cli.inference import records
from lavin_cli.io.video import Clip


@dataclass(frozen=True)
class Progress:
    stage: str  # "context", "sample", "query" (and "tokens" for video)
    done: int
    total: int


ProgressCallback = Optional[Callable[[Progress], None]]
SkipBatch = Optional[Callable[[list[int]], bool]]  # positions of a batch -> True to leave it out


class Run(Protocol):
    """What every run is, image or clip, here or on a server (ImageRun, VideoRun, RemoteImageRun,
    RemoteVideoRun): `prepare()` does the work before the first prediction (a clip run encodes its
    context there) and returns the record's header, also kept as `header`; then iterate for the
    predictions in order. `warnings` (of the options against the model) are known after prepare."""

    header: dict
    warnings: list[str]
    context_seconds: float  # encoding the context
    input_wait: float  # the model waiting for queries to be read

    def prepare(self) -> dict: ...

    def __iter__(self) -> Iterator: ...


@dataclass
class Prediction:
    query: str
    image: Optional[np.ndarray] = None  # RGB uint8 at the query's original size
    pairs: list[str] = field(default_factory=list)
    error: Optional[str] = None
    code: int = 0  # exit code of the error, 0 when it succeeded
    seconds: float = 0.0
    working: Optional[np.ndarray] = None  # the query as the model saw it
    context: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    index: int = 0  # position in the query list
    raw: Optional[np.ndarray] = None  # with options.raw: float32 (H, W, 3) in [0, 1] at the query's size
    exception: Optional[LavinError] = field(default=None, repr=False)  # what `error` says, for re-rendering
    skipped: bool = False  # not computed: the caller's `skip` said its batch was done already
    warnings: list[str] = field(default_factory=list)  # about this prediction alone (inference/keep.py)

    @property
    def entry(self) -> dict:
        """This query's line of the run record."""
        return records.entry(self)


@dataclass
class VideoPrediction:
    query: str
    clip: Optional[Clip] = None  # frames at the query's size, its fps
    pairs: list[str] = field(default_factory=list)
    error: Optional[str] = None
    code: int = 0
    seconds: float = 0.0
    tokens: int = 0  # joint sequence length of one DiT call
    index: int = 0
    raw: Optional[np.ndarray] = None  # with options.raw: float32 (F, H, W, 3) in [0, 1] at the query's size
    exception: Optional[LavinError] = field(default=None, repr=False)  # what `error` says, for re-rendering
    skipped: bool = False  # not computed: the caller's `skip` said it was done already

    @property
    def entry(self) -> dict:
        return records.entry(self)
