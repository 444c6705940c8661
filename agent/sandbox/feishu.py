"""A fake Feishu custom-bot webhook (tests, the demo): body signature and its 1-hour window, keywords in text and
titles only, 20 KB bodies, 100 a minute and 5 a second, codes in 200 and 400 bodies, @ by open_id only.

Follows ../shared/reference/notify-channels-2026.md §3: 19021 / 19022 / 19024 in HTTP 200 bodies, 9499 "too many
request" in an HTTP 400 body, 9499 "Bad Request" for a malformed or oversized body, success with `code` and the
legacy `StatusCode`. Assumed: 19001 for an unknown hook token, 400 for Bad Request, a sliding window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.sandbox.chatfake import Answer, ChatFake, Delivered, Window

HOOK_PATH = "/open-apis/bot/v2/hook/"
BODY_MAX = 20 * 1024
_MSG = {19021: "sign match fail or timestamp is not within one hour from current time", 19022: "Ip Not Allowed",
        19024: "Key Words Not Found", 11232: "frequency limited", 19001: "param invalid: incoming webhook access "
        "token invalid", 9499: "Bad Request", 2200: "Internal Error"}
_NODES = {"text": ("text",), "a": ("text", "href"), "at": ("user_id",), "img": ("image_key",)}


@dataclass
class Bot:
    secret: str = ""
    keywords: tuple[str, ...] = ()
    members: tuple[str, ...] = ()  # open_ids in the group: only they are notified by an @


class FakeFeishu(ChatFake):
    thread_name = "fake-feishu"

    def __init__(self, bots: dict[str, Bot] | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] | None = None, verbose: bool = False) -> None:
        super().__init__(host, port, **({"clock": clock} if clock else {}), verbose=verbose)
        self.bots: dict[str, Bot] = dict(bots or {})
        self.minute, self.second = Window(100, 60.0), Window(5, 1.0)

    def webhook_url(self, token: str) -> str:
        return f"{self.url}{HOOK_PATH}{token}"

    def reset_windows(self, key: str | None = None) -> None:
        with self.lock:
            self.minute.clear()
            self.second.clear()

    def script_key(self, path: str, query: dict[str, str]) -> str:
        return path.removeprefix(HOOK_PATH)

    def failure(self, key: str, code: int, ip: str) -> Answer:
        return 200, {"code": code, "data": {}, "msg": _MSG.get(code, "error")}

    def _err(self, token: str, code: int, status: int = 200, msg: str | None = None) -> Answer:
        self.reject(token, code)
        return status, {"code": code, "data": {}, "msg": msg or _MSG.get(code, "error")}

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ip: str) -> Answer:
        token = path.removeprefix(HOOK_PATH)
        if method != "POST" or not path.startswith(HOOK_PATH):
            return 404, {"code": 404, "msg": "not found"}
        bot = self.bots.get(token)
        if bot is None:
            return self._err(token, 19001, 400)
        if len(raw) > BODY_MAX:
            return self._err(token, 9499, 400)
        try:
            body = json.loads(raw.decode("utf-8"))
            title, texts, ats, links = _post(body)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            return self._err(token, 9499, 400)
        if bot.secret:
            ts = str(body.get("timestamp", ""))
            want = base64.b64encode(hmac.new(f"{ts}\n{bot.secret}".encode(), b"", hashlib.sha256).digest()).decode()
            if not ts.isdigit() or abs(int(ts) - self.clock()) > 3600 or \
                    not hmac.compare_digest(str(body.get("sign", "")), want):
                return self._err(token, 19021)
        if bot.keywords and not any(k in t for k in bot.keywords for t in (title, *texts)):
            return self._err(token, 19024)
        with self.lock:
            now = self.clock()
            limited = self.minute.full(token, now) or self.second.full(token, now)
            if not limited:
                self.minute.add(token, now)
                self.second.add(token, now)
        if limited:
            return self._err(token, 9499, 400, "too many request")
        # an @ of someone not in the group shows the name and notifies nobody
        mentions = tuple(a for a in ats if a == "all" or a in bot.members)
        self.deliver(Delivered(token, "post", "\n".join(texts), mentions, now,
                               {"title": title, "links": links, "at": ats}))
        return 200, {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}


def _post(body: dict[str, Any]) -> tuple[str, list[str], list[str], list[str]]:
    """(title, text values, at user_ids, hrefs) of a `post` body; raises on a malformed one."""
    if body["msg_type"] != "post":
        raise ValueError("only post is faked")
    zh = body["content"]["post"]["zh_cn"]
    texts, ats, links = [], [], []
    for paragraph in zh["content"]:
        for node in paragraph:
            tag = node["tag"]
            if tag not in _NODES or any(not isinstance(node.get(k), str) for k in _NODES[tag]):
                raise ValueError(f"bad node {node!r}")
            if tag == "a":
                if not node["href"].startswith(("http://", "https://")):
                    raise ValueError("an invalid href fails the send")
                links.append(node["href"])
            if tag in ("text", "a"):
                texts.append(node["text"])
            if tag == "at":
                ats.append(node["user_id"])
    return str(zh.get("title", "")), texts, ats, links
