"""What the fake chat services share (DingTalk, Feishu, WeCom app): scripted failures, outages, what was delivered
and refused, sliding rate windows, JSON answers, and a `/__fake/` control API for tests in another process."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from agent.httpserve import BackgroundServer, QuietHandler, QuietServer

FAIL_KINDS = re.compile(r"^((err)?code:-?\d+|http:\d{3}|(delay|late):\d+(\.\d+)?|drop|html|ok)$")
Answer = tuple[int, dict[str, Any]]  # HTTP status, JSON body


class Record(Protocol):
    """What a fake keeps of one accepted message: at least the robot (or member) and a JSON form."""

    key: str

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Delivered:
    """One message the fake service accepted: on which robot (or to which member), its type, its text, who it
    really @-ed (a mention the service would notify), and anything else the service keeps (title, links)."""

    key: str
    msgtype: str
    content: str
    mentions: tuple[str, ...]
    time: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Window:
    """A sliding window of accepted sends per bucket: `full(bucket, now)` when `count` already fell within
    `seconds`."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.seconds = count, seconds
        self._at: dict[str, deque[float]] = defaultdict(deque)

    def full(self, bucket: str, now: float) -> bool:
        q = self._at[bucket]
        while q and q[0] <= now - self.seconds:
            q.popleft()
        return len(q) >= self.count

    def add(self, bucket: str, now: float) -> None:
        self._at[bucket].append(now)

    def clear(self) -> None:
        self._at.clear()


class ChatFake(BackgroundServer):
    """A fake service on loopback. Subclasses implement `route(method, path, query, raw, headers, ip)` returning
    (status, JSON), call `deliver` for what is accepted and `reject` for what is refused; `script_key(path,
    query)` names the robot a scripted failure applies to, and `failure(kind, code)` answers a scripted code."""

    thread_name = "fake-chat"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time,
                 verbose: bool = False) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._outages: dict[str, tuple[str, float | None]] = {}
        self._delivered: list[Any] = []  # Record: Delivered, or a subclass's own form
        self._rejections: list[tuple[str, int | str]] = []
        self.requests = 0
        self.httpd = _Server((host, port), self, verbose)

    # ---- control ---------------------------------------------------------------------------
    def fail(self, key: str, kinds: Iterable[str]) -> None:
        """Queue failures for the next requests on `key`, one per request: "code:N" (or "errcode:N": the
        service's own error N, as it answers it), "http:NNN", "drop" (close without answering), "html" (200,
        not JSON), "delay:S" (answer normally after S seconds), "late:S" (take the message at once, answer after S
        seconds: a sender that dies meanwhile never learns it was delivered), "ok" (no failure)."""
        kinds = list(kinds)
        for k in kinds:
            if not FAIL_KINDS.match(k):
                raise ValueError(f"unknown failure kind {k!r}")
        with self.lock:
            self._scripts[key].extend(kinds)

    def outage(self, key: str, kind: str = "http:503", until: float | None = None) -> None:
        """Every request on `key` fails with `kind` until `until` (real time; None: until `restore`)."""
        if not FAIL_KINDS.match(kind):
            raise ValueError(f"unknown failure kind {kind!r}")
        with self.lock:
            self._outages[key] = (kind, until)

    def restore(self, key: str) -> None:
        with self.lock:
            self._outages.pop(key, None)

    def delivered(self, key: str | None = None) -> list[Any]:
        with self.lock:
            return [m for m in self._delivered if key is None or m.key == key]

    def rejections(self, key: str | None = None) -> list[int | str]:
        """What each refused request got (the service's code, "http:NNN", "drop"), in order."""
        with self.lock:
            return [r for k, r in self._rejections if key is None or k == key]

    def clear(self, key: str | None = None) -> None:
        """Forget what was delivered and refused, the scripts and the rate windows (of one key, or all)."""
        with self.lock:
            self._delivered = [m for m in self._delivered if key is not None and m.key != key]
            self._rejections = [r for r in self._rejections if key is not None and r[0] != key]
            for k in [k for k in self._scripts if key is None or k == key]:
                del self._scripts[k]
            if key is None:
                self.requests = 0
        self.reset_windows(key)

    def reset_windows(self, key: str | None = None) -> None:
        """Forget the rate windows (the subclass's)."""

    # ---- for subclasses ----------------------------------------------------------------------
    def deliver(self, message: Any) -> None:
        with self.lock:
            self._delivered.append(message)

    def reject(self, key: str, what: int | str) -> None:
        with self.lock:
            self._rejections.append((key, what))

    def next_script(self, key: str) -> str | None:
        with self.lock:
            self.requests += 1
            down = self._outages.get(key)
            if down is not None and (down[1] is None or time.time() < down[1]):
                return down[0]
            q = self._scripts.get(key)
            return q.popleft() if q else None

    def script_key(self, path: str, query: dict[str, str]) -> str:
        return path

    def failure(self, key: str, code: int, ip: str) -> Answer:
        raise NotImplementedError

    def control(self, method: str, route: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A subclass's own `/__fake/` route (None: not one)."""
        return None

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ip: str) -> Answer:
        raise NotImplementedError


class _Handler(QuietHandler):
    server: _Server

    def answer(self, method: str) -> None:
        path, query, raw = self.request_parts()
        fake = self.server.fake
        try:
            if path.startswith("/__fake/"):
                self._control(method, path.removeprefix("/__fake/"), query, raw)
                return
            key = fake.script_key(path, query)
            script = fake.next_script(key) or "ok"
            kind, _, arg = script.partition(":")
            if kind in ("drop", "html", "http"):
                fake.reject(key, script)
            if kind == "drop":
                self.close_connection = True
            elif kind == "html":
                self._send(HTTPStatus.OK, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            elif kind == "http":
                self._json({"error": "server error"}, int(arg))
            elif kind in ("code", "errcode"):
                fake.reject(key, int(arg))
                status, body = fake.failure(key, int(arg), self.client_address[0])
                self._json(body, status)
            else:
                if kind == "delay":
                    time.sleep(float(arg))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = fake.route(method, path, query, raw, headers, self.client_address[0])
                if kind == "late":
                    time.sleep(float(arg))
                self._json(body, status)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the fake must answer, never hang a test
            if not path.startswith("/__fake/"):
                fake.reject(fake.script_key(path, query), "http:500")
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _control(self, method: str, route: str, query: dict[str, str], raw: bytes) -> None:
        fake = self.server.fake
        body = json.loads(raw.decode("utf-8")) if raw else {}
        if method == "GET" and route == "messages":
            self._json({"messages": [m.to_json() for m in fake.delivered(query.get("key") or None)]})
        elif method == "GET" and route == "rejections":
            self._json({"rejections": fake.rejections(query.get("key") or None)})
        elif method == "POST" and route == "fail":
            fake.fail(str(body["key"]), [str(k) for k in body["kinds"]])
            self._json({"ok": True})
        elif method == "POST" and route == "clear":
            fake.clear(body.get("key"))
            self._json({"ok": True})
        elif (answer := fake.control(method, route, body)) is not None:
            self._json(answer)
        else:
            self._json({"error": "unknown control route"}, HTTPStatus.NOT_FOUND)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")


class _Server(QuietServer):
    def __init__(self, addr: tuple[str, int], fake: ChatFake, verbose: bool) -> None:
        super().__init__(addr, _Handler)
        self.fake = fake
        self.verbose = verbose
