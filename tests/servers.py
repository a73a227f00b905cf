"""Real `lavin serve` processes for the tests, on 127.0.0.1 (a free port) or a Unix socket."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from lavin_cli.serve.client import Remote, multipart

PYTHON = [sys.executable, "-m", "lavin_cli"]


class Server:
    def __init__(self, *args: str, env: dict | None = None, timeout: float = 120.0):
        self.proc = subprocess.Popen([*PYTHON, "serve", *([] if "--socket" in args else ["--port", "0"]), *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, text=True)
        self.lines: list[str] = []
        line = self._line(timeout)
        if "lavin serve:" not in line:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line}{self.proc.stderr.read()}")
        self.address = line.split(" at ", 1)[1].split(";")[0].strip()
        self.url = self.address

    def _line(self, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if ready:
                line = self.proc.stderr.readline()
                self.lines.append(line)
                return line
            if self.proc.poll() is not None:
                return "exited: "
        return "no startup line"

    def remote(self, token: str | None = None) -> Remote:
        return Remote(self.url, token)

    def post(self, path: str, fields: dict, files: list, token: str | None = None) -> tuple[int, dict, bytes]:
        """A raw request, as curl -F would send it."""
        return self.remote(token).request("POST", path, fields, files)

    def get(self, path: str, token: str | None = None) -> tuple[int, dict, bytes]:
        return self.remote(token).request("GET", path)

    def json(self, path: str) -> dict:
        return json.loads(self.get(path)[2])

    def stop(self, sig: int | None = signal.SIGTERM, timeout: float = 60.0) -> tuple[int, str]:
        """Signal the server (None: wait for it to stop by itself); (exit code, what it said)."""
        if self.proc.poll() is None and sig is not None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, "".join(self.lines) + self.proc.stderr.read()


def query_file(path: Path, name: str | None = None) -> tuple[str, str, bytes]:
    return ("query", name or path.name, path.read_bytes())


__all__ = ["Server", "multipart", "query_file"]
