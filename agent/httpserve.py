"""A loopback HTTP server run in a background thread: the lifecycle the sandbox and the fake WeCom share."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


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
