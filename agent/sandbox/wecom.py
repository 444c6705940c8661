"""A fake WeCom group-robot webhook server (tests and the demo): errcodes in HTTP 200, byte limits, 20/min, scripts.

Follows ../shared/reference/notify-channels.md §1: observed live are HTTP 200 + `errcode`, 93000 for an unknown key,
40058 `markdown.content exceed max length 4096`; documented are text ≤ 2048 bytes, 45009 beyond 20 a minute, 40008,
40033 for `\\uXXXX` escapes. Assumed (marked below): a sliding rate window counting accepted messages only, the
text-overflow, image and bad-JSON answers. Control: Python methods, or `/__fake/{messages,rejections}?key=` (GET)
and `/__fake/{fail,keys,clear}` (POST JSON) from another process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from agent.httpserve import BackgroundServer, QuietHandler, QuietServer

SEND_PATH = "/cgi-bin/webhook/send"
MARKDOWN_MAX = 4096
TEXT_MAX = 2048
IMAGE_MAX = 2 * 1024 * 1024
RATE_LIMIT = 20
RATE_WINDOW = 60.0
_FAIL_KINDS = re.compile(r"^(errcode:-?\d+|http:\d{3}|delay:\d+(\.\d+)?|drop|html|ok)$")
_U_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[0-9a-fA-F]{4}")
_ERRMSG = {  # 40009, 40033, 40035 and 44004 texts are assumed
    -1: "system busy", 93000: "invalid webhook url", 40008: "invalid message type", 40009: "invalid image size",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40035: "Warning: wrong json format. invalid Request Parameter", 44004: "empty content",
    45009: "api freq out of limit",
}


@dataclass(frozen=True)
class Received:
    """One accepted message. `content` is the text / markdown, or the image's md5 for an image."""

    key: str
    msgtype: str
    content: str
    mentioned_mobile_list: tuple[str, ...]
    mentioned_list: tuple[str, ...]
    time: float
    image: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_bytes"] = len(self.image) if self.image is not None else None
        del d["image"]
        return d


class FakeWeCom(BackgroundServer):
    thread_name = "fake-wecom"

    """The robot service on loopback; `keys` are the robots that exist. `clock` drives the rate window."""

    def __init__(
        self,
        keys: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
    ) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self._keys = set(keys)
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._outages: dict[str, tuple[str, float | None]] = {}
        self._sent: dict[str, deque[float]] = defaultdict(deque)
        self._messages: list[Received] = []
        self._rejections: list[tuple[str, int | str]] = []
        self.httpd = _Server((host, port), self, verbose)

    # ---- lifecycle -------------------------------------------------------------------------
    def webhook_url(self, key: str) -> str:
        return f"{self.url}{SEND_PATH}?{urlencode({'key': key})}"


    # ---- control ---------------------------------------------------------------------------
    def add_key(self, key: str) -> None:
        with self.lock:
            self._keys.add(key)

    def remove_key(self, key: str) -> None:
        """The robot was removed from its group: its key answers 93000 from now on."""
        with self.lock:
            self._keys.discard(key)

    def fail(self, key: str, kinds: Iterable[str]) -> None:
        """Queue failures for the next requests on `key`, one per request: "errcode:N" (HTTP 200 with that
        errcode), "http:NNN" (that status), "drop" (close without answering), "html" (HTTP 200, not JSON),
        "delay:S" (answer normally after S seconds), "ok" (no failure: lets a later request fail)."""
        kinds = list(kinds)
        for k in kinds:
            if not _FAIL_KINDS.match(k):
                raise ValueError(f"unknown failure kind {k!r}")
        with self.lock:
            self._scripts[key].extend(kinds)

    def messages(self, key: str | None = None) -> list[Received]:
        with self.lock:
            return [m for m in self._messages if key is None or m.key == key]

    def rejections(self, key: str | None = None) -> list[int | str]:
        """What each refused request got (errcode, "http:NNN", "drop"), in order."""
        with self.lock:
            return [r for k, r in self._rejections if key is None or k == key]

    def clear(self, key: str | None = None) -> None:
        """Forget messages, rejections, scripts and rate windows (of one key, or all)."""
        with self.lock:
            self._messages = [m for m in self._messages if key is not None and m.key != key]
            self._rejections = [r for r in self._rejections if key is not None and r[0] != key]
            for d in (self._scripts, self._sent):
                for k in [k for k in d if key is None or k == key]:
                    del d[k]

    # ---- the webhook -----------------------------------------------------------------------
    def outage(self, key: str, kind: str = "http:503", until: float | None = None) -> None:
        """Every request on `key` fails with `kind` until `until` (real time; None: until `restore`)."""
        if not _FAIL_KINDS.match(kind):
            raise ValueError(f"unknown failure kind {kind!r}")
        with self.lock:
            self._outages[key] = (kind, until)

    def restore(self, key: str) -> None:
        with self.lock:
            self._outages.pop(key, None)

    def next_script(self, key: str) -> str | None:
        with self.lock:
            down = self._outages.get(key)
            if down is not None and (down[1] is None or time.time() < down[1]):
                return down[0]
            q = self._scripts.get(key)
            return q.popleft() if q else None

    def reject(self, key: str, what: int | str) -> None:
        with self.lock:
            self._rejections.append((key, what))

    def error(self, key: str, code: int, client_ip: str, msg: str | None = None) -> dict[str, Any]:
        """A refusal in the live form: `<what>, hint: [...], from ip: ..., more info at ...?e=<code>`."""
        hint = f"[{int(self.clock())}_{threading.get_ident() % 10**6:06d}]"
        text = f"{msg or _ERRMSG.get(code, 'error')}, hint: {hint}, from ip: {client_ip}, "
        text += f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
        self.reject(key, code)
        return {"errcode": code, "errmsg": text}

    def handle_send(self, key: str, raw: bytes, client_ip: str) -> dict[str, Any]:
        """The answer to one POST that reached the robot logic."""

        def err(code: int, msg: str | None = None) -> dict[str, Any]:
            return self.error(key, code, client_ip, msg)

        with self.lock:
            known = key in self._keys
        if not known:
            return err(93000)
        if _U_ESCAPE.search(raw):
            return err(40033)
        try:
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            return err(40035)
        msgtype = body.get("msgtype")
        part = body.get(msgtype) if isinstance(msgtype, str) else None
        if msgtype not in ("text", "markdown", "image") or not isinstance(part, dict):
            # the live service also knows markdown_v2, news, file, voice, template_card: not needed here
            return err(40008)
        image: bytes | None = None
        mobiles: tuple[str, ...] = ()
        users: tuple[str, ...] = ()
        if msgtype == "image":
            try:
                image = base64.b64decode(str(part.get("base64", "")), validate=True)
            except (binascii.Error, ValueError):
                return err(40009, "invalid image, base64 decode failed")  # assumed form
            if len(image) > IMAGE_MAX or not image:
                return err(40009)
            if hashlib.md5(image).hexdigest() != str(part.get("md5", "")).lower():
                return err(40009, "invalid image, md5 not match")  # assumed form
            content = hashlib.md5(image).hexdigest()
        else:
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return err(44004)
            limit = MARKDOWN_MAX if msgtype == "markdown" else TEXT_MAX
            if len(content.encode("utf-8")) > limit:
                # live form for markdown (W9); the text form is assumed to follow it
                return err(40058, f"{msgtype}.content exceed max length {limit}. invalid Request Parameter")
            if msgtype == "text":
                mobiles = tuple(str(m) for m in part.get("mentioned_mobile_list") or ())
                users = tuple(str(u) for u in part.get("mentioned_list") or ())
        with self.lock:
            now = self.clock()
            window = self._sent[key]
            while window and window[0] <= now - RATE_WINDOW:
                window.popleft()
            if len(window) >= RATE_LIMIT:  # sliding window over accepted messages (assumed)
                limited = True
            else:
                limited = False
                window.append(now)
                self._messages.append(Received(key, msgtype, content, mobiles, users, now, image))
        return err(45009) if limited else {"errcode": 0, "errmsg": "ok"}


class _Handler(QuietHandler):
    server: _Server

    def answer(self, method: str) -> None:
        path, query, raw = self.request_parts()
        fake = self.server.fake
        try:
            if method == "POST" and path == SEND_PATH:
                self._send_webhook(query.get("key", ""), raw)
            elif path.startswith("/__fake/"):
                self._control(method, path.removeprefix("/__fake/"), query, raw)
            else:
                self._json({"errcode": 404, "errmsg": "not found"}, HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the fake must answer, never hang a test
            if path == SEND_PATH:
                fake.reject(query.get("key", ""), "http:500")
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _send_webhook(self, key: str, raw: bytes) -> None:
        fake, ip = self.server.fake, self.client_address[0]
        script = fake.next_script(key) or "ok"
        kind, _, arg = script.partition(":")
        if kind in ("drop", "html", "http"):
            fake.reject(key, script)
        if kind == "drop":
            self.close_connection = True
        elif kind == "html":
            self._send(HTTPStatus.OK, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif kind == "http":
            self._json({"errcode": -1, "errmsg": "server error"}, int(arg))
        elif kind == "errcode":
            self._json(fake.error(key, int(arg), ip))
        else:
            if kind == "delay":
                time.sleep(float(arg))
            self._json(fake.handle_send(key, raw, ip))

    def _control(self, method: str, route: str, query: dict[str, str], raw: bytes) -> None:
        fake = self.server.fake
        body = json.loads(raw.decode("utf-8")) if raw else {}
        if method == "GET" and route == "messages":
            self._json({"messages": [m.to_json() for m in fake.messages(query.get("key") or None)]})
        elif method == "GET" and route == "rejections":
            self._json({"rejections": fake.rejections(query.get("key") or None)})
        elif method == "POST" and route == "fail":
            fake.fail(str(body["key"]), [str(k) for k in body["kinds"]])
            self._json({"ok": True})
        elif method == "POST" and route == "keys":
            for k in body.get("add", []):
                fake.add_key(str(k))
            for k in body.get("remove", []):
                fake.remove_key(str(k))
            self._json({"ok": True})
        elif method == "POST" and route == "clear":
            fake.clear(body.get("key"))
            self._json({"ok": True})
        else:
            self._json({"error": "unknown control route"}, HTTPStatus.NOT_FOUND)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=UTF-8")


class _Server(QuietServer):
    def __init__(self, addr: tuple[str, int], fake: FakeWeCom, verbose: bool) -> None:
        super().__init__(addr, _Handler)
        self.fake = fake
        self.verbose = verbose
