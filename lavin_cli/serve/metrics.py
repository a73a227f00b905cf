"""The server's Prometheus metrics, in a registry of its own (GET /metrics, text format)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()  # the *_created series only clutter a scrape

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self, service, device=None, cache=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("lavin_requests", "HTTP requests answered", ["route", "status"], registry=self.registry)
        self.latency = Histogram("lavin_request_seconds", "Time from a request's arrival to its answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("lavin_predictions", "Predictions made (one per query)", registry=self.registry)
        self.batch = Histogram("lavin_batch_queries", "Queries per model call (batches formed across clients)",
                               buckets=BATCH_BUCKETS, registry=self.registry)
        queue = Gauge("lavin_queue_depth", "Jobs waiting for the model", registry=self.registry)
        queue.set_function(lambda: service.depth)
        busy = Gauge("lavin_jobs_busy", "Jobs queued or running", registry=self.registry)
        busy.set_function(lambda: service.busy)
        rate = Gauge("lavin_predictions_per_second", "Predictions per second over the last minute", registry=self.registry)
        rate.set_function(self.rate)
        self._recent: deque[tuple[float, int]] = deque()
        if cache is not None:
            entries = Gauge("lavin_context_cache_entries", "Encoded contexts kept", registry=self.registry)
            entries.set_function(lambda: len(cache))
            hits = Gauge("lavin_context_cache_hits", "Runs that found their context encoded", registry=self.registry)
            hits.set_function(lambda: cache.hits)
        if device is not None and device.type == "cuda":
            import torch

            memory = Gauge("lavin_gpu_memory_bytes", "GPU memory held by torch", ["kind"], registry=self.registry)
            memory.labels("allocated").set_function(lambda: torch.cuda.memory_allocated(device))
            memory.labels("reserved").set_function(lambda: torch.cuda.memory_reserved(device))

    def predicted(self, count: int) -> None:
        self.predictions.inc(count)
        self._recent.append((time.monotonic(), count))

    def rate(self) -> float:
        now = time.monotonic()
        while self._recent and now - self._recent[0][0] > 60:
            self._recent.popleft()
        return sum(n for _, n in self._recent) / 60.0

    def text(self) -> bytes:
        return generate_latest(self.registry)
