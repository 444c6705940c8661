"""The DingTalk (钉钉) custom-robot notifier: signed markdown with @-by-mobile, its 20-a-minute limit and errcodes.

Setup (群设置 → 机器人 → 添加机器人 → 自定义): pick 「加签」 as the security setting and copy both the webhook
`https://oapi.dingtalk.com/robot/send?access_token=…` and the `SEC…` secret (or pick 「自定义关键词」 and set the
same word as `keyword`). The access token and the secret are credentials: keep them in the environment.

Facts (../shared/reference/notify-channels-2026.md §2): the sign is `timestamp` (ms) and
base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), added to the URL's query once-encoded next to
`access_token` (httpx's `params=` would replace the query and drop the token, so the params are merged); answers
are HTTP 200 with `errcode` (0 or "0" is success); 20 messages a minute per robot, past which the robot is
blocked for 10 minutes (130101 / 410100) — so we send at most 20 in any 65 s; the body is at most 20,000 bytes
(460101); a mention needs the number in `at.atMobiles` AND written as `@number` in the text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

from notifiers.base import Message, PermanentError, RateLimitedError, RetryableError, secret_hash
from notifiers.webhook import Clock, JsonWebhook, check_webhook, dumps, hmac_b64

BODY_MAX_BYTES = 20_000
BLOCK_SECONDS = 600.0  # DingTalk blocks a robot for 10 minutes past 20 a minute
RATE_LIMITED = frozenset({130101, 410100, 90030})  # send too fast (old, new), webhook over limit
# 系统繁忙 (the effect is unknown: a retry may repeat the message); 90020: the organisation's monthly API quota
RETRYABLE = {-1: None, 90020: 3600.0}
HINTS = {
    310000: "安全设置校验失败：请核对加签密钥（SEC 开头）、关键词、IP 白名单，以及服务器时间是否准确",
    300005: "机器人不存在或 access_token 错误（机器人被移除，或是外部群）",
    300001: "机器人不存在或 access_token 错误",
    400101: "access_token 不存在",
    400102: "机器人已停用",
    400106: "机器人不存在",
    460101: "消息超过 20000 字节",
    40035: "请求参数错误",
    43004: "Content-Type 错误",
}


def sign(secret: str, timestamp_ms: int) -> str:
    """The raw (not URL-encoded) base64 signature of `timestamp_ms` for a robot's `SEC…` secret."""
    return hmac_b64(secret, f"{timestamp_ms}\n{secret}")


class DingTalkRobot(JsonWebhook):
    """One DingTalk group robot (webhook), optionally signed (加签)."""

    kind: ClassVar[str] = "dingtalk"
    dialect: ClassVar[str] = "dingtalk"
    # the markdown's budget: the JSON around it, its escapes and the @ line stay well inside BODY_MAX_BYTES
    max_bytes: ClassVar[int | None] = 18_000
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ((20, 65.0),)

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> DingTalkRobot:
        """From a table with `webhook_url`, optional `secret`, `keyword`, `mention_mobiles`, `at_all` and
        `timeout_seconds`."""
        return cls(str(table["webhook_url"]), secret=str(table.get("secret") or ""),
                   keyword=str(table.get("keyword") or ""), mention_mobiles=tuple(table.get("mention_mobiles") or ()),
                   at_all=bool(table.get("at_all")), timeout=float(table.get("timeout_seconds") or 10))

    def __init__(self, webhook_url: str, *, secret: str = "", keyword: str = "", mention_mobiles: tuple[str, ...] = (),
                 at_all: bool = False, timeout: float = 10, client: httpx.AsyncClient | None = None,
                 clock: Clock = time.time) -> None:
        check_webhook(webhook_url, "DingTalk webhook_url")
        tokens = parse_qs(urlsplit(webhook_url).query).get("access_token", [])
        if len(tokens) != 1 or not tokens[0].strip():
            raise ValueError("DingTalk webhook_url must carry ?access_token=…")
        if secret and not secret.startswith("SEC"):
            raise ValueError("a DingTalk secret starts with SEC (the 加签 secret of the robot's security settings)")
        self._url, self._token, self._secret = webhook_url.strip(), tokens[0], secret
        self._secrets = (self._url, self._token, self._secret)
        self.keyword, self.at_all = keyword, at_all
        self.mention_mobiles = tuple(mention_mobiles)
        self.rate_key = "dingtalk:" + secret_hash(self._token)
        self.clock = clock
        self._use_client(client, timeout)

    def __repr__(self) -> str:
        return f"DingTalkRobot(token={self._clean(self._token)})"

    def payload(self, message: Message) -> dict[str, Any]:
        """The JSON body for `message` (markdown; the mentions in `at` and written in the text)."""
        text = message.body or message.markdown
        if not text.strip():
            raise PermanentError("empty", "the message body is empty")
        title = message.title.strip() or "售后提醒"
        if self.keyword and self.keyword not in text:  # 自定义关键词: every message must contain one
            text = f"{self.keyword}  \n{text}"
        mobiles = [m for m in dict.fromkeys(message.mention_mobiles) if m]
        if mobiles:
            text += "\n\n" + " ".join(f"@{m}" for m in mobiles)
        at = {"atMobiles": mobiles, "isAtAll": bool(self.at_all and message.urgent)}
        return {"msgtype": "markdown", "markdown": {"title": title[:64], "text": text}, "at": at}

    def url(self) -> httpx.URL:
        """The send URL, signed now when the robot has a secret (merged into the query: the token stays)."""
        url = httpx.URL(self._url)
        if not self._secret:
            return url
        ts = int(self.clock() * 1000)
        return url.copy_merge_params({"timestamp": str(ts), "sign": sign(self._secret, ts)})

    async def send(self, message: Message) -> str:
        payload = self.payload(message)
        size = len(dumps(payload))
        if size > BODY_MAX_BYTES:
            raise PermanentError("too_long", f"body is {size} UTF-8 bytes, DingTalk allows {BODY_MAX_BYTES}")
        status, data, text = await self._request("POST", self.url(), payload)
        if not isinstance(data, dict) or "errcode" not in data:
            raise self._no_json(status, text, "DingTalk")
        try:
            errcode = int(data["errcode"])
        except (TypeError, ValueError):
            raise RetryableError("bad_answer", f"errcode is not a number: {text[:200]!r}") from None
        errmsg = self._clean(str(data.get("errmsg", "")))[:300]
        code = f"errcode {errcode}"
        if errcode == 0:
            return text.strip()
        if errcode in RATE_LIMITED:
            raise RateLimitedError(code, f"{errmsg}（钉钉限流：该机器人暂停 10 分钟）", retry_after=BLOCK_SECONDS)
        if errcode in RETRYABLE:
            raise RetryableError(code, errmsg, retry_after=RETRYABLE[errcode])
        hint = HINTS.get(errcode, "钉钉拒绝了这条消息（未知错误码，不会自动重试）")
        raise PermanentError(code, f"{errmsg}（{hint}）")
