"""The jobs of a server: submitted by requests, run one batch at a time on the device by one
worker thread, their results handed back.

Image jobs that share a context and options are batched together: the worker takes the oldest
job, waits at most `batch_wait` seconds for others of its kind, and runs up to `max_batch`
queries in one model call. A job that asks not to share (`lavin run --server`, which keeps the
batches a local run forms, so that its outputs are the same bytes) runs alone, as one batch. A query's result does not depend on the others of its batch by
construction where it can be (its own VAE pass, its own noise generator; README states the
one-level bound of the DiT's batched products). The queue is bounded; a cancelled job (its
client went away, its time ran out) is dropped if it has not started.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from lavin_cli.errors import LavinError
from lavin_cli.inference import context as ctx
from lavin_cli.inference.options import RunOptions, VideoOptions


class QueueFull(LavinError):
    """The queue holds as many jobs as it may: try again shortly (HTTP 503 with Retry-After)."""

    exit_code = 5


class Draining(LavinError):
    """The server is shutting down: it finishes what it has and takes nothing new (HTTP 503)."""

    exit_code = 5


@dataclass
class Job:
    kind: str  # "image" or "video"
    context: ctx.Context
    context_key: str  # what the context's contents hash to
    options: RunOptions | VideoOptions
    queries: list  # encoded image or clip bytes, decoded arrays
    labels: list[str]
    fmt: str = "png"  # how the answer encodes each prediction (serve/answers.py)
    share: bool = True  # may share a model call with other jobs; False: its queries are one batch, alone
    id: str = ""
    state: str = "queued"  # queued, running, done, failed, cancelled
    stage: str = "queued"
    done: int = 0
    total: int = 0
    predictions: list = field(default_factory=list)
    header: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # the run's, with {{option}} marks
    error: Optional[BaseException] = None
    created: float = field(default_factory=time.monotonic)
    started: float = 0.0
    finished: float = 0.0
    event: threading.Event = field(default_factory=threading.Event)
    on_finish: Optional[Callable[["Job"], None]] = None

    @property
    def batch_key(self) -> tuple:
        """Jobs that may share a model call: shared images with the same context and options (a
        job that does not share has a key of its own)."""
        return (self.kind, self.context_key, self.options) if self.share else (self.id,)

    def progress(self) -> dict:
        return {"state": self.state, "stage": self.stage, "done": self.done, "total": self.total}


class Service:
    """One model, one worker thread, a bounded queue of jobs."""

    def __init__(self, pipe, max_batch: int = 8, batch_wait: float = 0.01, queue_limit: int = 64,
                 on_batch: Callable[[int], None] | None = None):
        self.pipe, self.max_batch, self.batch_wait, self.queue_limit = pipe, max_batch, batch_wait, queue_limit
        self.on_batch = on_batch or (lambda n: None)  # called with each batch's query count
        self.queue: deque[Job] = deque()
        self.jobs: dict[str, Job] = {}  # by id, finished ones kept until `forget`
        self.running: list[Job] = []
        self.draining = False
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._stop = False
        self.worker = threading.Thread(target=self._work, name="lavin-serve-worker", daemon=True)
        self.worker.start()

    # ------------------------------------------------------------------ requests' side

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self.draining:
                raise Draining("the server is shutting down; it takes no new work")
            if len(self.queue) >= self.queue_limit:
                raise QueueFull(f"the queue is full ({self.queue_limit} jobs); try again shortly")
            job.id = f"{next(self._ids):08d}"
            job.total = len(job.queries)
            self.jobs[job.id] = job
            self.queue.append(job)
            self._lock.notify_all()
        return job

    def cancel(self, job: Job) -> None:
        """Drop a job that has not started (its client went away); a running one finishes."""
        with self._lock:
            if job.state == "queued":
                self.queue.remove(job)
                self._finish(job, "cancelled")

    def forget(self, job: Job) -> None:
        with self._lock:
            self.jobs.pop(job.id, None)

    @property
    def depth(self) -> int:
        return len(self.queue)

    @property
    def busy(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return len(self.queue) + len(self.running)

    def drain(self) -> None:
        """Take no new jobs; those queued and running still finish."""
        with self._lock:
            self.draining = True
            self._lock.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self.queue or self.running:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left if left is not None else 0.5)
        return True

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self.worker.join(timeout=5)

    # ------------------------------------------------------------------ the worker

    def _take(self) -> list[Job] | None:
        """The oldest job and, within `batch_wait`, the others that may share its model call."""
        with self._lock:
            while not self.queue and not self._stop:
                self._lock.wait(0.5)
            if self._stop:
                return None
            first = self.queue.popleft()
            batch, count = [first], len(first.queries)
            if first.kind == "image" and first.share:
                deadline = time.monotonic() + self.batch_wait
                while count < self.max_batch:
                    mates = [j for j in self.queue if j.batch_key == first.batch_key
                             and count + len(j.queries) <= self.max_batch]
                    for job in mates:
                        self.queue.remove(job)
                        batch.append(job)
                        count += len(job.queries)
                    left = deadline - time.monotonic()
                    if left <= 0 or count >= self.max_batch:
                        break
                    self._lock.wait(left)
            for job in batch:
                job.state, job.started = "running", time.monotonic()
            self.running = batch
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                if batch[0].kind == "image":
                    self._run_images(batch)
                else:
                    self._run_video(batch[0])
            except BaseException as exc:  # noqa: BLE001 - a job's failure, whatever it is, is its answer
                with self._lock:
                    for job in batch:
                        if job.state == "running":
                            job.error = exc
                            self._finish(job, "failed")
            finally:
                with self._lock:
                    self.running = []
                    self._lock.notify_all()

    def _notify(self, batch: list[Job]):
        def callback(p) -> None:
            for job in batch:
                job.stage, job.done, job.total = p.stage, p.done, p.total
        return callback

    def _run_images(self, batch: list[Job]) -> None:
        queries = [q for job in batch for q in job.queries]
        self.on_batch(len(queries))
        options = RunOptions(**{**_fields(batch[0].options), "batch_size": len(queries)})
        run = self.pipe.stream(batch[0].context, queries, options, self._notify(batch), indices=list(range(len(queries))))
        predictions = iter(run)
        for job in batch:
            job.header, job.warnings = run.header, run.warnings
            job.predictions = [next(predictions) for _ in job.queries]
            for label, prediction in zip(job.labels, job.predictions):
                prediction.query = label
        with self._lock:
            for job in batch:
                self._finish(job, "done")

    def _run_video(self, job: Job) -> None:
        self.on_batch(len(job.queries))
        run = self.pipe.video_stream(job.context, job.queries, job.options, self._notify([job]))
        job.header = run.prepare()
        job.warnings = run.warnings
        job.predictions = list(run)
        for label, prediction in zip(job.labels, job.predictions):
            prediction.query = label
        with self._lock:
            self._finish(job, "done")

    def _finish(self, job: Job, state: str) -> None:
        job.state, job.finished = state, time.monotonic()
        job.event.set()
        if job.on_finish is not None:
            job.on_finish(job)


def _fields(options) -> dict:
    import dataclasses

    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
