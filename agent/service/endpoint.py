"""The service's HTTP endpoint: GET /healthz and GET /metrics from the latest snapshot, on a background thread."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import tzinfo
from http import HTTPStatus
from typing import Any

from loguru import logger

from agent.httpserve import BackgroundServer, QuietHandler, QuietServer
from agent.service.health import Snapshot, healthz, render_metrics

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Server(QuietServer):
    def __init__(self, address: tuple[str, int], owner: HealthServer) -> None:
        super().__init__(address, _Handler)
        self.owner = owner


class _Handler(QuietHandler):
    server: _Server

    def answer(self, method: str) -> None:
        path, _, _ = self.request_parts()
        try:
            if method != "GET":
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"GET only\n", "text/plain; charset=utf-8")
                return
            if path in ("/healthz", "/metrics"):
                self._send(*self._answer(path))
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, path: str) -> tuple[int, bytes, str]:
        owner = self.server.owner
        try:
            snap, now = owner.snapshot(), owner.clock()
            if path == "/metrics":
                return HTTPStatus.OK, render_metrics(snap, now, owner.tz).encode(), METRICS_CONTENT_TYPE
            ok, reasons = healthz(snap, now, owner.tz)
            doc: dict[str, Any] = {"status": "ok" if ok else "unhealthy", "reasons": reasons,
                                   "shops": {s.name: s.state for s in snap.shops}}
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
        except Exception as exc:  # the endpoint keeps answering whatever state the service is in
            logger.warning("health endpoint {}: snapshot failed: {}", path, type(exc).__name__)
            doc = {"status": "error", "reasons": [f"snapshot unavailable: {type(exc).__name__} (无法获取服务状态)"]}
            status = HTTPStatus.INTERNAL_SERVER_ERROR
        return status, json.dumps(doc, ensure_ascii=False).encode(), "application/json; charset=utf-8"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class HealthServer(BackgroundServer):
    """GET /healthz (200 healthy, 503 not, 500 when the snapshot fails) and GET /metrics on a background thread."""

    thread_name = "health"

    def __init__(
        self, snapshot: Callable[[], Snapshot], host: str = "127.0.0.1", port: int = 0,
        clock: Callable[[], float] = time.time, tz: tzinfo | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.clock = clock
        self.tz = tz
        self.httpd = _Server((host, port), self)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])
