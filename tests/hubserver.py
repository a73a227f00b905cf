"""A local HTTP server speaking the part of the Hugging Face hub protocol hf_hub_download needs.

HEAD/GET /{owner}/{repo}/resolve/{revision}/{file}: X-Repo-Commit, ETag, Content-Length and
Range requests (206 + Content-Range). Plain files are served under /files/{name} for HTTPS-style
URL sources. A file listed in `drop_once` has its first GET cut off halfway (headers promise the
whole file, 4 KiB before its end), as a dropped connection would; one in `truncate` has every
GET cut so. (huggingface_hub keeps data
in 10 MB chunks, so only a drop after the first chunk can be resumed rather than restarted.)
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}  # "owner/repo/file" or "files/name" -> bytes
        self.drop_once: set[str] = set()
        self.truncate: set[str] = set()  # every GET of these is cut off halfway
        self.log: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self.auth: list[str] = []  # Authorization headers received
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _key(self) -> str | None:
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    return "/".join(parts[:2] + parts[4:])
                if parts[0] == "files":
                    return "/".join(parts)
                return None

            def _headers(self, data: bytes, status: int, start: int = 0) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def do_HEAD(self):
                server.auth.append(self.headers.get("Authorization", ""))
                key = self._key()
                server.log.append(("HEAD", self.path, self.headers.get("Range", "")))
                if key not in server.files:
                    self.send_error(404)
                    return
                self._headers(server.files[key], 200)

            def do_GET(self):
                key = self._key()
                rng = self.headers.get("Range", "")
                server.log.append(("GET", self.path, rng))
                if key not in server.files:
                    self.send_error(404)
                    return
                data = server.files[key]
                start = int(rng.split("=")[1].split("-")[0]) if rng.startswith("bytes=") else 0
                self._headers(data, 206 if start else 200, start)
                body = data[start:]
                if key in server.drop_once or key in server.truncate:
                    server.drop_once.discard(key)
                    self.wfile.write(body[: max(len(body) - 4096, len(body) // 2)])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
