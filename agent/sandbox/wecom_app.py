"""A fake WeCom application API (tests, the demo): gettoken with expiring tokens, message/send to members, the
trusted-IP rule, text cut at 2048 bytes, and the silent drop past 30 a minute / 1,000 an hour per member.

Follows ../shared/reference/notify-channels-2026.md §4: errcode in HTTP 200 bodies; 40014 / 42001 for a bad or
expired token; `invaliduser` with errcode 0 when some recipients are unknown, 81013 when all are; 60020 with
"from ip: …" when trusted IPs are set and the caller is not one of them; the excess of the per-member limits
answered errcode 0 and never delivered; duplicate checks drop an identical body within its interval.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from agent.sandbox.chatfake import Answer, ChatFake, Delivered, Window

TEXT_MAX = 2048
_ERRMSG = {40013: "invalid corpid", 40001: "invalid credential, access_token is invalid or not latest",
           40014: "invalid access_token", 42001: "access_token expired", 40056: "invalid agentid",
           81013: "user & party & tag all invalid", 60020: "not allow to access from your ip", -1: "system busy",
           45009: "api freq out of limit", 40008: "invalid message type"}


class FakeWeComApp(ChatFake):
    """One corp with one app. `users` are the members in the app's visible range; `trusted_ips` (empty: any)
    the 企业可信IP; tokens last `token_seconds` of the fake's clock."""

    thread_name = "fake-wecom-app"

    def __init__(self, corp_id: str, secret: str, agent_id: int, users: Iterable[str], *,
                 trusted_ips: Iterable[str] = (), token_seconds: float = 7200, host: str = "127.0.0.1",
                 port: int = 0, clock: Callable[[], float] | None = None, verbose: bool = False) -> None:
        super().__init__(host, port, **({"clock": clock} if clock else {}), verbose=verbose)
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.users = {u.lower() for u in users}
        self.trusted_ips = set(trusted_ips)
        self.token_seconds = token_seconds
        self.tokens: dict[str, float] = {}  # token → expires at
        self.token_calls = 0
        self.minute, self.hour = Window(30, 60.0), Window(1000, 3600.0)
        self.dropped: list[tuple[str, str]] = []  # (member, content) WeCom dropped for its rate limits
        self._recent: dict[str, float] = {}  # body → when it was last accepted (duplicate check)

    def reset_windows(self, key: str | None = None) -> None:
        with self.lock:
            self.minute.clear()
            self.hour.clear()
            self._recent.clear()
            self.dropped.clear()

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (the next send answers 42001)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def script_key(self, path: str, query: dict[str, str]) -> str:
        return path

    def failure(self, key: str, code: int, ip: str) -> Answer:
        return 200, {"errcode": code, "errmsg": self._text(code, ip)}

    def _text(self, code: int, ip: str) -> str:
        return (f"{_ERRMSG.get(code, 'error')}, hint: [fake], from ip: {ip}, "
                f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}")

    def _err(self, key: str, code: int, ip: str, **extra: Any) -> Answer:
        self.reject(key, code)
        return 200, {"errcode": code, "errmsg": self._text(code, ip), **extra}

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str],
              ip: str) -> Answer:
        if method == "GET" and path == "/cgi-bin/gettoken":
            return self._gettoken(query, ip)
        if method == "POST" and path == "/cgi-bin/message/send":
            return self._send(query.get("access_token", ""), raw, ip)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _gettoken(self, query: dict[str, str], ip: str) -> Answer:
        with self.lock:
            self.token_calls += 1
        if query.get("corpid") != self.corp_id:
            return self._err("/cgi-bin/gettoken", 40013, ip)
        if query.get("corpsecret") != self.secret:
            return self._err("/cgi-bin/gettoken", 40001, ip)
        token = secrets.token_hex(32)
        with self.lock:
            self.tokens[token] = self.clock() + self.token_seconds
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": int(self.token_seconds)}

    def _send(self, token: str, raw: bytes, ip: str) -> Answer:
        key = "/cgi-bin/message/send"
        with self.lock:
            expires = self.tokens.get(token)
            now = self.clock()
        if expires is None:
            return self._err(key, 40014, ip)
        if expires <= now:
            return self._err(key, 42001, ip)
        if self.trusted_ips and ip not in self.trusted_ips:
            return self._err(key, 60020, ip)
        try:
            body = json.loads(raw.decode("utf-8"))
            agent = int(body["agentid"])
            users = [u for u in str(body["touser"]).split("|") if u]
            msgtype = body["msgtype"]
            content = str(body[msgtype]["content"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self._err(key, 40008, ip)
        if agent != self.agent_id:
            return self._err(key, 40056, ip)
        if msgtype not in ("text", "markdown"):
            return self._err(key, 40008, ip)
        known = [u for u in users if u.lower() in self.users]
        invalid = "|".join(u.lower() for u in users if u.lower() not in self.users)
        if not known:
            return self._err(key, 81013, ip, invaliduser=invalid)
        content = raw_cut(content, TEXT_MAX)
        interval = float(body.get("duplicate_check_interval", 1800))
        with self.lock:
            if body.get("enable_duplicate_check") and now - self._recent.get(raw.decode("utf-8"), -1e18) < interval:
                return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": invalid, "msgid": "dup"}
            self._recent[raw.decode("utf-8")] = now
            for u in known:
                bucket = u.lower()
                if self.minute.full(bucket, now) or self.hour.full(bucket, now):
                    self.dropped.append((bucket, content))  # dropped, and errcode 0 all the same
                    continue
                self.minute.add(bucket, now)
                self.hour.add(bucket, now)
                self._delivered.append(Delivered(bucket, msgtype, content, (), now))
        return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": invalid, "msgid": secrets.token_hex(8)}


def raw_cut(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-8 bytes (WeCom truncates longer app text)."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
