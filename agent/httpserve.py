"""A loopback HTTP server run in a background thread: the lifecycle the sandbox and the fake WeCom share."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


class QuietServer(ThreadingHTTPServer):
    """Daemon request threads, a reusable port, request logs only when `verbose`."""

    daemon_threads = True
    allow_reuse_address = True
    verbose = False


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive with TCP_NODELAY (no Nagle delay per request); logs only on a verbose server."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: QuietServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self.answer("GET")

    def do_POST(self) -> None:
        self.answer("POST")

    def answer(self, method: str) -> None:
        """Answer one request (GET or POST): the subclass's routing."""
        self.send_error(501, f"{method} is not served here")

    def request_parts(self) -> tuple[str, dict[str, str], bytes]:
        """The request's path, its query (last value of each name) and its body."""
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}, body


class BackgroundServer:
    """Owns `self.httpd`; `start()` serves it from a daemon thread, `stop()` shuts it down."""

    httpd: ThreadingHTTPServer
    thread_name = "server"

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=5)
