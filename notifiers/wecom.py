"""The WeCom (企业微信) group-robot notifier: markdown, @-by-mobile text and image messages over the webhook.

Setup: in a WeCom *internal* group (robots do not work in 【外部】 groups), open the group's settings →
「消息推送」 (formerly 「群机器人」) → 「添加」, name the robot, and copy its webhook URL
`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`. The key in it is the robot's only credential:
anyone holding it can post to the group, so keep it out of git, tickets and logs (put it in an environment
variable and reference it as `${ENV}` in the config). Removing the robot from the group invalidates the
key (errcode 93000).

WeCom answers HTTP 200 even for failures; only `errcode == 0` is success. Limits are UTF-8 bytes
(markdown 4096, text 2048) and 20 messages a minute per robot (`rate_limits`; the dispatcher enforces
it). Markdown cannot @ by phone number, so mentions go in a following `text` message with
`mentioned_mobile_list`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from notifiers.base import (
    Message,
    Notifier,
    PermanentError,
    RateLimitedError,
    RetryableError,
    redact,
    secret_hash,
    utf8_len,
)

WECOM_SEND_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
IMAGE_MAX_BYTES = 2 * 1024 * 1024
RETRYABLE_ERRCODES = frozenset({-1, 45009})  # 系统繁忙, api freq out of limit
RATE_WINDOW_S = 60.0
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MEMO_SIZE = 256


def parse_webhook(value: str) -> tuple[str, str]:
    """(send URL, key) from a full webhook URL (any host: tests use loopback) or a bare key.

    Errors never echo the value, which is a secret.
    """
    value = value.strip()
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        keys = parse_qs(parts.query).get("key", [])
        if not parts.netloc or len(keys) != 1 or not keys[0].strip():
            raise ValueError("WeCom webhook URL must look like https://host/cgi-bin/webhook/send?key=KEY")
        return value, keys[0]
    if not value or any(c.isspace() or c in "/?&=#:" for c in value):
        raise ValueError("WeCom webhook must be a full webhook URL or the bare key")
    return f"{WECOM_SEND_URL}?{urlencode({'key': value})}", value


class WeComRobot(Notifier):
    """One WeCom group robot (webhook)."""

    kind: ClassVar[str] = "wecom"
    dialect: ClassVar[str] = "wecom"
    max_bytes: ClassVar[int | None] = MARKDOWN_MAX_BYTES
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ((20, RATE_WINDOW_S),)
    images: ClassVar[bool] = True

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> WeComRobot:
        """From a table with `webhook_url`, optional `mention_mobiles` and `timeout_seconds`."""
        return cls(str(table["webhook_url"]), mention_mobiles=tuple(table.get("mention_mobiles") or ()),
                   timeout=float(table.get("timeout_seconds") or 10))

    def __init__(
        self,
        webhook_url: str,
        mention_mobiles: tuple[str, ...] = (),
        timeout: float = 10,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url, self._key = parse_webhook(webhook_url)
        # The channel's configured @ list; callers copy it into urgent messages (Message.mention_mobiles),
        # which alone decides who is @-ed.
        self.mention_mobiles = tuple(mention_mobiles)
        self.timeout = timeout
        self.rate_key = "wecom:" + secret_hash(self._key)
        self._client = client
        self._own_client = client is None
        # Parts already delivered per message, so a retry after a partial failure (markdown sent, image
        # failed) does not post the markdown twice. In memory only: a restart may repeat one part.
        self._done: OrderedDict[str, set[str]] = OrderedDict()

    def __repr__(self) -> str:
        return f"WeComRobot(key={redact(self._key, self._key)})"

    # ---- public ------------------------------------------------------------------------------
    async def send(self, message: Message) -> str:
        parts = self._parts(message)
        memo_key = self._memo_key(message)
        done = self._done.setdefault(memo_key, set())
        self._done.move_to_end(memo_key)
        while len(self._done) > _MEMO_SIZE:
            self._done.popitem(last=False)
        answers: list[str] = []
        for name, payload in parts:
            if name in done:
                answers.append(f"{name}: (already sent)")
                continue
            answers.append(f"{name}: {await self._post(payload)}")
            done.add(name)
        self._done.pop(memo_key, None)
        return "\n".join(answers)

    def cost(self, message: Message) -> int:
        """The markdown, the image and the @ text are each a message of the robot's 20 a minute."""
        return 1 + (message.image_png is not None) + bool(message.mention_mobiles)

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
        self._client = None

    # ---- building ----------------------------------------------------------------------------
    def _parts(self, message: Message) -> list[tuple[str, dict[str, Any]]]:
        """The payloads to post, in order, after checking every limit (nothing is sent if one fails)."""
        if not message.markdown.strip():
            raise PermanentError("empty", "the markdown body is empty")
        size = utf8_len(message.markdown)
        if size > MARKDOWN_MAX_BYTES:
            raise PermanentError(
                "too_long", f"markdown is {size} UTF-8 bytes, WeCom allows {MARKDOWN_MAX_BYTES}; split it first"
            )
        parts: list[tuple[str, dict[str, Any]]] = [
            ("markdown", {"msgtype": "markdown", "markdown": {"content": message.markdown}})
        ]
        if message.image_png is not None:
            data = message.image_png
            if not data.startswith(_PNG_MAGIC):
                raise PermanentError("bad_image", "image_png is not a PNG image")
            if len(data) > IMAGE_MAX_BYTES:
                raise PermanentError("too_long", f"image is {len(data)} bytes, WeCom allows {IMAGE_MAX_BYTES}")
            image = {"base64": base64.b64encode(data).decode("ascii"), "md5": hashlib.md5(data).hexdigest()}
            parts.append(("image", {"msgtype": "image", "image": image}))
        if message.mention_mobiles:
            # the ping is mentioned_mobile_list; a `<@…>` in the title (text supports it) must not add one
            title = message.title.strip().replace("<@", "< @") or "请查看上面的消息"
            content = _truncate_bytes(title, TEXT_MAX_BYTES)
            text = {"content": content, "mentioned_mobile_list": list(message.mention_mobiles)}
            parts.append(("text", {"msgtype": "text", "text": text}))
        return parts

    @staticmethod
    def _memo_key(message: Message) -> str:
        h = hashlib.sha256()
        for field in (message.title, message.markdown, "\x00".join(message.mention_mobiles)):
            h.update(field.encode("utf-8") + b"\x00\x01")
        h.update(message.image_png or b"")
        return h.hexdigest()

    # ---- transport ---------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._own_client = True
        return self._client

    async def _post(self, payload: dict[str, Any]) -> str:
        # Raw UTF-8, never \uXXXX escapes (WeCom's global error 40033 rejects those).
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            resp = await self._http().post(self._url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            msg = f"no answer within {self.timeout:g}s ({type(exc).__name__})"
            raise RetryableError("timeout", self._clean(msg)) from None
        except httpx.HTTPError as exc:  # connect / read / protocol errors: the network, not the message
            raise RetryableError("network", self._clean(f"{type(exc).__name__}: {exc}")) from None
        return self._judge(resp)

    def _judge(self, resp: httpx.Response) -> str:
        text = resp.text
        snippet = self._clean(text[:300])
        if resp.status_code != 200:
            code = f"http {resp.status_code}"
            if resp.status_code >= 500 or resp.status_code in (408, 429):
                raise RetryableError(code, snippet or resp.reason_phrase)
            raise PermanentError(code, snippet or resp.reason_phrase)
        try:
            data = json.loads(text)
            errcode = int(data["errcode"])
        except (ValueError, TypeError, KeyError):
            raise RetryableError("bad_answer", f"HTTP 200 without a WeCom JSON answer: {snippet!r}") from None
        if errcode == 0:
            return self._clean(text.strip())
        errmsg = self._clean(str(data.get("errmsg", "")))
        code = f"errcode {errcode}"
        if errcode == 45009:
            raise RateLimitedError(code, errmsg, retry_after=RATE_WINDOW_S)
        if errcode in RETRYABLE_ERRCODES:
            raise RetryableError(code, errmsg)
        raise PermanentError(code, errmsg)

    def _clean(self, text: str) -> str:
        return redact(text, self._url, self._key)


def _truncate_bytes(s: str, limit: int) -> str:
    raw = s.encode("utf-8")
    if len(raw) <= limit:
        return s
    return raw[: limit - 3].decode("utf-8", errors="ignore") + "…"
