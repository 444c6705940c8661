"""A fake WeCom group-robot webhook server (tests and the demo): errcodes in HTTP 200, byte limits, 20/min, scripts.

Follows ../shared/reference/notify-channels.md §1: observed live are HTTP 200 + `errcode`, 93000 for an unknown key,
40058 `markdown.content exceed max length 4096`; documented are text ≤ 2048 bytes, 45009 beyond 20 a minute, 40008,
40033 for `\\uXXXX` escapes. Assumed (marked below): a sliding rate window counting accepted messages only, the
text-overflow, image and bad-JSON answers. Control (scripts, outages, the `/__fake/` API): `chatfake.ChatFake`,
plus `/__fake/keys` (POST JSON) to add and remove robots.
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
from typing import Any
from urllib.parse import urlencode

from agent.sandbox.chatfake import Answer, ChatFake

SEND_PATH = "/cgi-bin/webhook/send"
MARKDOWN_MAX = 4096
TEXT_MAX = 2048
IMAGE_MAX = 2 * 1024 * 1024
RATE_LIMIT = 20
RATE_WINDOW = 60.0
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


class FakeWeCom(ChatFake):
    """The robot service on loopback; `keys` are the robots that exist. `clock` drives the rate window."""

    thread_name = "fake-wecom"

    def __init__(
        self,
        keys: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
    ) -> None:
        super().__init__(host, port, clock, verbose)
        self._keys = set(keys)
        self._sent: dict[str, deque[float]] = defaultdict(deque)

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

    def messages(self, key: str | None = None) -> list[Received]:
        return self.delivered(key)

    def reset_windows(self, key: str | None = None) -> None:
        with self.lock:
            for k in [k for k in self._sent if key is None or k == key]:
                del self._sent[k]

    def control(self, method: str, route: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "POST" and route == "keys":
            for k in body.get("add", []):
                self.add_key(str(k))
            for k in body.get("remove", []):
                self.remove_key(str(k))
            return {"ok": True}
        return None

    # ---- the webhook -----------------------------------------------------------------------
    def script_key(self, path: str, query: dict[str, str]) -> str:
        return query.get("key", "")

    def failure(self, key: str, code: int, ip: str) -> Answer:
        return 200, self.error(key, code, ip, record=False)

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ip: str) -> Answer:
        if method == "POST" and path == SEND_PATH:
            return 200, self.handle_send(query.get("key", ""), raw, ip)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def error(self, key: str, code: int, client_ip: str, msg: str | None = None,
              record: bool = True) -> dict[str, Any]:
        """A refusal in the live form: `<what>, hint: [...], from ip: ..., more info at ...?e=<code>`."""
        hint = f"[{int(self.clock())}_{threading.get_ident() % 10**6:06d}]"
        text = f"{msg or _ERRMSG.get(code, 'error')}, hint: {hint}, from ip: {client_ip}, "
        text += f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
        if record:
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
                self._delivered.append(Received(key, msgtype, content, mobiles, users, now, image))
        return err(45009) if limited else {"errcode": 0, "errmsg": "ok"}
