"""A server's settings, checked as run's options are, and its start: the model loaded once, the
worker, the app, the socket."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from lavin_cli.errors import OptionError, UsageError

MIN_TOKEN = 16  # characters a token should have where others can reach the server


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    unix: Optional[Path] = None
    allow: tuple[Path, ...] = ()
    token: Optional[str] = None
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    queue: int = 64
    max_body_mb: float = 64.0
    max_pixels: int = 16_000_000
    max_queries: int = 64
    request_timeout: float = 600.0
    cache_mb: float = 512.0

    def __post_init__(self) -> None:
        from lavin_cli.serve.server import is_loopback

        for name, low in (("port", 0), ("max_batch", 1), ("queue", 1), ("max_pixels", 1), ("max_queries", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise OptionError(name, f"must be a whole number of at least {low}, got {value!r}")
        if self.port > 65535:
            raise OptionError("port", f"must be at most 65535, got {self.port}")
        for name in ("batch_wait_ms", "max_body_mb", "request_timeout", "cache_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                    or (value == 0 and name != "batch_wait_ms"):
                raise OptionError(name, f"must be a positive number, got {value!r}")
        for folder in self.allow:
            if not Path(folder).is_dir():
                raise OptionError("allow_dir", f"{folder} is not a folder")
        if self.unix is None and not is_loopback(self.host) and not self.token:
            raise UsageError(f"{{{{host={self.host}}}}} lets other machines in: give {{{{token}}}} (or LAVIN_SERVE_TOKEN), "
                             "which every request must send")

    def warnings(self) -> list[str]:
        from lavin_cli.serve.server import is_loopback

        if self.token and len(self.token) < MIN_TOKEN and not is_loopback(self.host):
            return [f"the token has {len(self.token)} characters; one of {MIN_TOKEN} or more resists guessing"]
        return []


def start(settings: ServeOptions, model: str | None, home, load, access_log: bool,
          on_ready: Callable[[str], None], on_drain: Callable[[], None]) -> None:
    """Load the model, bind, and serve until drained (returns when the server has stopped)."""
    try:
        from lavin_cli.serve import server
        from lavin_cli.serve.app import create_app
        from lavin_cli.serve.state import Limits
        from lavin_cli.serve.contexts import Contexts
        from lavin_cli.serve.service import Service
    except ImportError as exc:
        raise UsageError(f"lavin serve needs the serve extra ({exc.name} is missing): pip install 'lavin-cli[serve]'") \
            from None
    from lavin_cli.inference.cache import ContextCache
    from lavin_cli.inference.pipeline import Pipeline
    from lavin_cli.store import folders
    from lavin_cli.store.home import cache_dir

    folder = folders.resolve(model, home)
    sock, address = server.bind(settings.host, settings.port, settings.unix)  # a port in use fails before loading
    pipe = Pipeline.load(folder, load)
    pipe.context_cache = ContextCache(max_bytes=int(settings.cache_mb * 2**20 / 2))
    service = Service(pipe, settings.max_batch, settings.batch_wait_ms / 1000.0, settings.queue)
    contexts = Contexts(folder, list(settings.allow), max_bytes=int(settings.cache_mb * 2**20 / 2))
    limits = Limits(max_body=int(settings.max_body_mb * 2**20), max_pixels=settings.max_pixels,
                    max_queries=settings.max_queries, request_timeout=settings.request_timeout, token=settings.token,
                    report_dir=cache_dir() / "bug-reports")
    app = create_app(pipe, service, contexts, limits)
    service.on_batch = app.state.lavin.metrics.batch.observe
    from lavin_cli.runtime.device import EMULATED_BF16, dtype_name, emulated_precision

    line = (f"lavin serve: {folder.name} on {pipe.device} ({dtype_name(pipe.dtype)}) at {address}"
            + ("; requests need the token" if settings.token else "")
            + (f"; {EMULATED_BF16}" if emulated_precision(pipe.device, pipe.dtype) else ""))
    try:
        server.run(app, service, sock, lambda: on_ready(line), on_drain, access_log)
    finally:
        service.close()
        contexts.close()
        if settings.unix is not None:
            settings.unix.unlink(missing_ok=True)
