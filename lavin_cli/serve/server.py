"""Running the app: uvicorn on a socket lavin binds itself (so that --port 0 tells the port it
got, and a port in use is a clear error before anything starts), and the drain on SIGTERM or
SIGINT: new work is answered 503, what is queued and running finishes and is answered, then the
server stops with exit 0. A second signal stops it at once."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Callable

import uvicorn

from lavin_cli.errors import OutputError, UsageError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int, unix: Path | None) -> tuple[socket.socket, str]:
    """A listening socket and the address to tell clients (http://HOST:PORT or unix:PATH)."""
    if unix is not None:
        if unix.exists() and not stat.S_ISSOCK(unix.stat().st_mode):
            raise OutputError(f"--socket {unix}: a file that is not a socket is in the way")
        if unix.exists():
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(unix))
                raise UsageError(f"--socket {unix}: another server answers there")
            except (ConnectionRefusedError, FileNotFoundError):
                unix.unlink()  # a socket left by a server that died
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(unix))
        except OSError as exc:
            raise OutputError(f"--socket {unix}: cannot listen there ({exc.strerror})") from None
        os.chmod(unix, 0o600)  # the user's own: a Unix socket is its own access control
        sock.listen(128)
        return sock, f"unix:{unix}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); give another {{{{port}}}} or {{{{host}}}}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"http://{shown}:{bound}"


class DrainingServer(uvicorn.Server):
    """uvicorn whose first SIGTERM / SIGINT drains instead of stopping."""

    def __init__(self, config: uvicorn.Config, service, on_drain: Callable[[], None] | None = None):
        super().__init__(config)
        self.service, self.on_drain = service, on_drain or (lambda: None)

    def handle_exit(self, sig, frame) -> None:
        if self.service.draining:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self.service.drain()
        self.on_drain()
        threading.Thread(target=self._exit_when_idle, name="lavin-serve-drain", daemon=True).start()

    def _exit_when_idle(self) -> None:
        self.service.wait_idle()
        time.sleep(0.25)  # the last answers on their way out
        self.should_exit = True


def run(app, service, sock: socket.socket, on_ready: Callable[[], None], on_drain: Callable[[], None] | None = None,
        access_log: bool = False) -> None:
    config = uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="off",
                            timeout_graceful_shutdown=30)
    server = DrainingServer(config, service, on_drain)
    ready = threading.Thread(target=_when_started, args=(server, on_ready), daemon=True)
    ready.start()
    server.run(sockets=[sock])


def _when_started(server: uvicorn.Server, on_ready: Callable[[], None]) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.01)
    if server.started:
        on_ready()
