"""The WeCom application (企业微信自建应用) notifier: text to named members, a cached token, per-member limits.

Setup (管理后台 → 应用管理 → 自建 → 创建应用): note the 企业ID (corp_id, 我的企业 page), the app's AgentId and
Secret (corp_secret: keep it in the environment), set the 可见范围 to the members who should receive, and — for
apps created since 2022-06-20 — add this server's public IP under 企业可信IP (which first needs a 可信域名 or a
接收消息服务器URL). `to_users` are the members' 账号 (userid) from the address book.

Facts (../shared/reference/notify-channels-2026.md §4): gettoken answers `expires_in` (7200 s); the token is
cached until 5 minutes before that, fetched by one caller at a time, and fetched again once on 40014 / 42001 /
40001; text is cut by WeCom past 2048 bytes, so the caller splits first; each member gets at most 30 messages a
minute and 1,000 an hour from one app, past which WeCom DROPS the message and still answers errcode 0 — our own
count (one bucket per member) is the only guard; `invaliduser` in a 0 answer means someone did not get it;
60020 names the IP that must be added as 企业可信IP. Text is sent (markdown does not show in WeChat).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from notifiers.base import Message, PermanentError, RateLimitedError, RetryableError, secret_hash, utf8_len
from notifiers.webhook import Clock, JsonWebhook, check_webhook

API_BASE = "https://qyapi.weixin.qq.com"
TEXT_MAX_BYTES = 2048
TOKEN_ERRORS = frozenset({40014, 42001, 40001})  # invalid / expired token: fetch a new one, retry once
_FROM_IP = re.compile(r"from ip:\s*([0-9a-fA-F.:]+)")
HINTS = {
    40013: "corp_id（企业ID）不对",
    40001: "corp_secret 不对（应用的 Secret）",
    81013: "接收人全部无效：请核对 to_users 的账号，以及应用的可见范围",
    60111: "接收人账号不存在",
    60021: "接收人不在应用的可见范围内",
    40003: "接收人账号无效",
    46004: "接收人账号不存在",
    40056: "agent_id 不对",
}


def trusted_ip_hint(errmsg: str) -> str:
    """The merchant's fix for 60020: the server's IP (from WeCom's own words) added as 企业可信IP."""
    m = _FROM_IP.search(errmsg)
    ip = m.group(1) if m else "本服务器的公网出口 IP"
    return (f"企业微信拒绝了来自 {ip} 的调用：请在 管理后台 → 应用管理 → 该应用 → 企业可信IP 中加入 {ip}"
            "（需先设置可信域名或接收消息服务器URL；配置后约 1 分钟生效）")


class WeComApp(JsonWebhook):
    """One WeCom self-built app sending text to `to_users`."""

    kind: ClassVar[str] = "wecom_app"
    dialect: ClassVar[str] = "text"
    max_bytes: ClassVar[int | None] = TEXT_MAX_BYTES
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ((30, 60.0), (1000, 3600.0))

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> WeComApp:
        """From a table with `corp_id`, `corp_secret`, `agent_id`, `to_users`, optional `api_base` and
        `timeout_seconds`."""
        return cls(str(table["corp_id"]), str(table.get("corp_secret") or ""), int(table["agent_id"]),
                   tuple(table.get("to_users") or ()), api_base=str(table.get("api_base") or API_BASE),
                   timeout=float(table.get("timeout_seconds") or 10))

    def __init__(self, corp_id: str, corp_secret: str, agent_id: int, to_users: tuple[str, ...], *,
                 api_base: str = API_BASE, timeout: float = 10, client: httpx.AsyncClient | None = None,
                 clock: Clock = time.monotonic) -> None:
        if not corp_id or not corp_secret:
            raise ValueError("a WeCom app needs corp_id and corp_secret")
        if not to_users or any(not u or "|" in u for u in to_users):
            raise ValueError("to_users must name at least one member's userid (账号), without |")
        check_webhook(api_base, "WeCom api_base")
        self.corp_id, self._secret, self.agent_id = corp_id, corp_secret, int(agent_id)
        self.to_users = tuple(dict.fromkeys(to_users))
        self.api = api_base.rstrip("/")
        self._secrets = (self._secret,)
        app = secret_hash(corp_id, str(agent_id))
        self.rate_key = f"wecom_app:{app}"
        self._keys = tuple(f"wecom_app:{app}:{u.lower()}" for u in self.to_users)  # userids are case-insensitive
        self.clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0  # how often gettoken was called (status, tests)
        self._use_client(client, timeout)

    def __repr__(self) -> str:
        return f"WeComApp(corp_id={self.corp_id}, agent_id={self.agent_id}, to={'|'.join(self.to_users)})"

    @property
    def rate_keys(self) -> tuple[str, ...]:
        """One bucket per member: WeCom's 30 a minute and 1,000 an hour are per member of an app."""
        return self._keys

    def payload(self, message: Message) -> dict[str, Any]:
        text = message.text.strip()
        if not text:
            raise PermanentError("empty", "the message text is empty")
        size = utf8_len(text)
        if size > TEXT_MAX_BYTES:  # WeCom would cut it silently
            raise PermanentError("too_long", f"text is {size} UTF-8 bytes, WeCom apps show {TEXT_MAX_BYTES}")
        return {"touser": "|".join(self.to_users), "msgtype": "text", "agentid": self.agent_id,
                "text": {"content": text}, "safe": 0,
                # a retry after a timeout is dropped by WeCom if the JSON is byte-identical within 30 minutes
                "enable_duplicate_check": 1, "duplicate_check_interval": 1800}

    async def send(self, message: Message) -> str:
        payload = self.payload(message)
        token = await self._access_token()
        status, data, text = await self._post(token, payload)
        if isinstance(data, dict) and _errcode(data) in TOKEN_ERRORS:
            self._drop(token)
            status, data, text = await self._post(await self._access_token(), payload)
        return self._judge(status, data, text)

    # ---- the token --------------------------------------------------------------------------------
    def _drop(self, token: str) -> None:
        if self._token == token:
            self._token, self._token_until = None, 0.0

    async def _access_token(self) -> str:
        async with self._token_lock:  # concurrent sends wait for one gettoken
            if self._token and self.clock() < self._token_until:
                return self._token
            url = httpx.URL(f"{self.api}/cgi-bin/gettoken", params={"corpid": self.corp_id,
                                                                    "corpsecret": self._secret})
            self.token_fetches += 1
            status, data, text = await self._request("GET", url)
            if not isinstance(data, dict) or "errcode" not in data:
                raise self._no_json(status, text, "WeCom gettoken")
            errcode = _errcode(data)
            if errcode != 0 or not data.get("access_token"):
                raise self._error(errcode, self._clean(str(data.get("errmsg", ""))), "gettoken")
            token = str(data["access_token"])
            self._secrets = (self._secret, token, *self._secrets[1:2])  # the new token and the one before
            expires = float(data.get("expires_in") or 7200)
            self._token, self._token_until = token, self.clock() + max(60.0, expires - 300.0)
            return token

    async def _post(self, token: str, payload: Mapping[str, Any]) -> tuple[int, Any, str]:
        url = httpx.URL(f"{self.api}/cgi-bin/message/send", params={"access_token": token})
        return await self._request("POST", url, payload)

    # ---- the answer -------------------------------------------------------------------------------
    def _judge(self, status: int, data: Any, text: str) -> str:
        if not isinstance(data, dict) or "errcode" not in data:
            raise self._no_json(status, text, "WeCom")
        errcode = _errcode(data)
        if errcode != 0:
            raise self._error(errcode, self._clean(str(data.get("errmsg", ""))), "send")
        invalid = str(data.get("invaliduser") or data.get("unlicenseduser") or "")
        if invalid:
            raise PermanentError("invaliduser", f"WeCom did not deliver to {invalid}: not a member the app can "
                                                "reach（接收人账号无效、未授权或不在应用可见范围）")
        return text.strip()

    def _error(self, errcode: int, errmsg: str, step: str) -> RetryableError | PermanentError:
        code = f"errcode {errcode}"
        errmsg = errmsg[:300]
        if errcode == 45009:
            return RateLimitedError(code, errmsg, retry_after=60.0)
        if errcode == -1:
            return RetryableError(code, errmsg)
        if errcode == 60020:
            return PermanentError(code, trusted_ip_hint(errmsg))
        hint = HINTS.get(errcode, "企业微信拒绝了这条消息（不会自动重试）")
        if errcode in TOKEN_ERRORS and step == "send":
            hint = "新取的 access_token 仍被拒绝"
        return PermanentError(code, f"{errmsg}（{step}: {hint}）")


def _errcode(data: Mapping[str, Any]) -> int:
    try:
        return int(data.get("errcode", -1))
    except (TypeError, ValueError):
        return -1
