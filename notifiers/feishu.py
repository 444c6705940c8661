"""The Feishu / Lark (飞书) custom-bot notifier: signed `post` rich text, @ by open_id, its limits and error codes.

Setup (群设置 → 群机器人 → 添加机器人 → 自定义机器人): copy the webhook
`https://open.feishu.cn/open-apis/bot/v2/hook/…`; under 安全设置 pick 「签名校验」 and copy the secret (or
「自定义关键词」 and set the same word as `keyword`). A custom bot cannot @ by phone: mentions need each member's
open_id (`ou_…`).

Facts (../shared/reference/notify-channels-2026.md §3): the sign is base64(HMAC-SHA256(key=f"{ts}\\n{secret}",
msg="")) with `timestamp` in seconds, both top-level fields of the JSON body; success is `code == 0` (the
legacy `StatusCode` is not read), and error codes come in HTTP 200 and 400 bodies alike; the body is at most
20 KB (9499 Bad Request past it); 100 requests a minute and 5 a second per bot; keywords are looked for in text
and title values only, never in a link.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from notifiers.base import Message, PermanentError, RateLimitedError, RetryableError, secret_hash
from notifiers.webhook import Clock, JsonWebhook, check_webhook, dumps, hmac_b64

BODY_MAX_BYTES = 20_000  # "20 KB"; counted as the smaller reading
HINTS = {
    19021: "签名校验失败：请核对签名密钥，以及服务器时间是否准确（误差须在 1 小时内）",
    19022: "IP 不在机器人的 IP 白名单内",
    19024: "消息不含机器人设置的关键词：请把关键词填入 keyword",
    19036: "消息体过大",
    9499: "请求格式错误或消息超过 20KB",
}


def sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature of `timestamp_s`: the key is "timestamp\\nsecret", the message empty."""
    return hmac_b64(f"{timestamp_s}\n{secret}", "")


def text_post(text: str) -> dict[str, Any]:
    """A `post` of plain text lines (a message rendered without a post body): the first line is the title."""
    first, _, rest = text.partition("\n")
    return {"zh_cn": {"title": first, "content": [[{"tag": "text", "text": line}] for line in rest.splitlines()]}}


class FeishuBot(JsonWebhook):
    """One Feishu (or Lark) group bot (webhook), optionally signed."""

    kind: ClassVar[str] = "feishu"
    dialect: ClassVar[str] = "feishu"
    max_bytes: ClassVar[int | None] = 18_000  # the post's budget; the envelope and mentions stay inside 20 KB
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ((100, 60.0), (5, 1.0))

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> FeishuBot:
        """From a table with `webhook_url`, optional `secret`, `keyword`, `mention_open_ids`, `at_all` and
        `timeout_seconds`."""
        return cls(str(table["webhook_url"]), secret=str(table.get("secret") or ""),
                   keyword=str(table.get("keyword") or ""),
                   mention_open_ids=tuple(table.get("mention_open_ids") or ()), at_all=bool(table.get("at_all")),
                   timeout=float(table.get("timeout_seconds") or 10))

    def __init__(self, webhook_url: str, *, secret: str = "", keyword: str = "",
                 mention_open_ids: tuple[str, ...] = (), at_all: bool = False, timeout: float = 10,
                 client: httpx.AsyncClient | None = None, clock: Clock = time.time) -> None:
        check_webhook(webhook_url, "Feishu webhook_url")
        path = urlsplit(webhook_url).path.rstrip("/")
        token = path.rpartition("/")[2]
        if "/hook/" not in path or not token:
            raise ValueError("Feishu webhook_url must look like https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN")
        self._url, self._token, self._secret = webhook_url.strip(), token, secret
        self._secrets = (self._url, self._token, self._secret)
        self.keyword, self.at_all = keyword, at_all
        self.mention_open_ids = tuple(mention_open_ids)
        self.rate_key = "feishu:" + secret_hash(self._token)
        self.clock = clock
        self._use_client(client, timeout)

    def __repr__(self) -> str:
        return f"FeishuBot(token={self._clean(self._token)})"

    def payload(self, message: Message) -> dict[str, Any]:
        """The JSON body for `message`: its post, the keyword in the title when needed, mentions at the end."""
        post = json.loads(message.body) if message.body else text_post(message.text)
        zh = post["zh_cn"]
        if not zh.get("title") and not zh.get("content"):
            raise PermanentError("empty", "the message body is empty")
        texts = [zh.get("title", "")] + [n.get("text", "") for p in zh["content"] for n in p if n.get("tag") == "text"]
        if self.keyword and not any(self.keyword in t for t in texts):
            zh["title"] = f"【{self.keyword}】{zh.get('title', '')}"
        ats = [{"tag": "at", "user_id": oid} for oid in dict.fromkeys(message.mention_open_ids) if oid]
        if self.at_all and message.urgent:
            ats.append({"tag": "at", "user_id": "all", "user_name": "所有人"})
        if ats:
            zh["content"] = [*zh["content"], ats]
        body: dict[str, Any] = {"msg_type": "post", "content": {"post": post}}
        if self._secret:
            ts = int(self.clock())
            body = {"timestamp": str(ts), "sign": sign(self._secret, ts), **body}
        return body

    async def send(self, message: Message) -> str:
        payload = self.payload(message)
        size = len(dumps(payload))
        if size > BODY_MAX_BYTES:
            raise PermanentError("too_long", f"body is {size} UTF-8 bytes, Feishu allows {BODY_MAX_BYTES}")
        status, data, text = await self._request("POST", self._url, payload)
        if not isinstance(data, dict) or "code" not in data:
            raise self._no_json(status, text, "Feishu")
        try:
            code_n = int(data["code"])
        except (TypeError, ValueError):
            raise RetryableError("bad_answer", f"code is not a number: {text[:200]!r}") from None
        msg = self._clean(str(data.get("msg", "")))[:300]
        code = f"code {code_n}"
        if code_n == 0:
            return text.strip()
        if code_n == 11232 or (code_n == 9499 and "too many" in msg.lower()):
            raise RateLimitedError(code, f"{msg}（飞书限流）", retry_after=60.0)
        if code_n == 2200 or status >= 500:
            raise RetryableError(code, msg)
        raise PermanentError(code, f"{msg}（{HINTS.get(code_n, '飞书拒绝了这条消息（不会自动重试）')}）")
