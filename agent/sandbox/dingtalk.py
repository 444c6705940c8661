"""A fake DingTalk custom-robot webhook (tests, the demo): signature and its 1-hour window, keywords, byte limit,
20 a minute then a 10-minute block, errcodes in HTTP 200 bodies, and mentions only when also written in the text.

Follows ../shared/reference/notify-channels-2026.md §2. Assumed where it says so: a sliding minute; the block
answers 410100 (the current official code) for every request until it ends; the errmsg texts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from agent.sandbox.chatfake import Answer, ChatFake, Delivered, Window

SEND_PATH = "/robot/send"
BODY_MAX = 20_000
BLOCK_SECONDS = 600.0
_ERRMSG = {
    300005: "token is not exist", 310000: "keywords not in content", 40035: "缺少参数 json",
    43004: "无效的HTTP HEADER Content-Type",
    460101: "description: body 大小不合法;solution:请保持大小在 20000bytes 以内;",
    130101: "send too fast, exceed 20 times per minute", 410100: "发送速度太快而限流", -1: "系统繁忙",
}


@dataclass
class Robot:
    """One robot's security settings (None / empty: not enabled)."""

    secret: str = ""
    keywords: tuple[str, ...] = ()
    blocked_until: float = 0.0


class FakeDingTalk(ChatFake):
    thread_name = "fake-dingtalk"

    def __init__(self, robots: dict[str, Robot] | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] | None = None, verbose: bool = False) -> None:
        super().__init__(host, port, **({"clock": clock} if clock else {}), verbose=verbose)
        self.robots: dict[str, Robot] = dict(robots or {})
        self.window = Window(20, 60.0)

    def webhook_url(self, token: str) -> str:
        return f"{self.url}{SEND_PATH}?{urlencode({'access_token': token})}"

    def reset_windows(self, key: str | None = None) -> None:
        with self.lock:
            self.window.clear()
            for r in self.robots.values():
                r.blocked_until = 0.0

    def script_key(self, path: str, query: dict[str, str]) -> str:
        return query.get("access_token", "")

    def failure(self, key: str, code: int, ip: str) -> Answer:
        return 200, {"errcode": code, "errmsg": _ERRMSG.get(code, "error")}

    def _err(self, token: str, code: int, msg: str | None = None) -> Answer:
        self.reject(token, code)
        return 200, {"errcode": code, "errmsg": msg or _ERRMSG.get(code, "error")}

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ip: str) -> Answer:
        if method != "POST" or path != SEND_PATH:
            return 404, {"errcode": 404, "errmsg": "not found"}
        token = query.get("access_token", "")
        robot = self.robots.get(token)
        if robot is None:
            return self._err(token, 300005)
        if robot.secret:
            why = self._signature_problem(robot.secret, query)
            if why:
                return self._err(token, 310000, why)
        if not headers.get("content-type", "").startswith("application/json"):
            return self._err(token, 43004)
        if len(raw) > BODY_MAX:
            return self._err(token, 460101)
        try:
            body = json.loads(raw.decode("utf-8"))
            msgtype = body["msgtype"]
            part = body[msgtype]
            text = str(part["text"] if msgtype == "markdown" else part["content"])
            if msgtype not in ("text", "markdown") or not text or (msgtype == "markdown" and not part.get("title")):
                raise ValueError(msgtype)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self._err(token, 40035)
        title = str(part.get("title", "")) if msgtype == "markdown" else ""
        if robot.keywords and not any(k in text or k in title for k in robot.keywords):
            return self._err(token, 310000)
        at = body.get("at") or {}
        # a number notifies only when it is in atMobiles AND written as @number in the text
        mentions = tuple(m for m in (str(x) for x in at.get("atMobiles") or ()) if f"@{m}" in text)
        if at.get("isAtAll"):
            mentions += ("@all",)
        with self.lock:
            now = self.clock()
            if now < robot.blocked_until:
                limited: int | None = 410100
            elif self.window.full(token, now):
                robot.blocked_until = now + BLOCK_SECONDS
                limited = 130101
            else:
                limited = None
                self.window.add(token, now)
        if limited is not None:
            return self._err(token, limited)
        self.deliver(Delivered(token, msgtype, text, mentions, now, {"title": title,
                                                                       "links": re.findall(r"\]\((.*?)\)", text)}))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _signature_problem(self, secret: str, query: dict[str, str]) -> str:
        ts, got = query.get("timestamp", ""), query.get("sign", "")
        if not ts or not got:
            return "sign not match"  # a signed robot called without the sign (assumed wording)
        if not ts.isdigit() or abs(int(ts) / 1000 - self.clock()) > 3600:
            return "invalid timestamp"
        want = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest())
        return "" if hmac.compare_digest(got.encode(), want) else "sign not match"

