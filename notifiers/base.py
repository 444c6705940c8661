"""The notifier contract: the message, the error classes (retryable or permanent) and the Notifier base class."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar


@dataclass(frozen=True)
class Message:
    """One notification, rendered by the caller for the channel's `dialect`; each notifier picks its fields.

    `markdown` is the WeCom markdown body, `html` the email body, `text` plain text, and `body` the body in the
    channel's own dialect when it has one (DingTalk markdown, a Feishu post as JSON), all already escaped.
    `mention_mobiles` are the phone numbers to @ (WeCom, DingTalk), `mention_open_ids` the Feishu open_ids;
    `urgent` marks the last stage (a channel's @all goes only there); `image_png` is an image to attach (the
    login QR code), for channels with `images`.
    """

    title: str
    markdown: str
    text: str
    html: str
    mention_mobiles: tuple[str, ...] = ()
    image_png: bytes | None = None
    body: str = ""
    mention_open_ids: tuple[str, ...] = ()
    urgent: bool = False


class NotifyError(Exception):
    """A send failed. `code` is short and machine-friendly ("errcode 45009", "http 500", "smtp 535",
    "network", "too_long"); the message never contains a webhook key, a password or a full webhook URL."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RetryableError(NotifyError):
    """Worth trying again later (network, timeouts, HTTP 5xx, WeCom -1 / 45009, SMTP 4xx).

    `retry_after` is the channel's hint in seconds (45009: the rate window), or None.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """The channel refused this send for its rate limit (WeCom 45009, DingTalk 130101 / 410100, Feishu 11232):
    nothing was delivered; `retry_after` is how long the channel blocks."""


class PermanentError(NotifyError):
    """Trying again will not help: the channel is misconfigured (bad key, wrong password, refused sender)
    or the message itself is unacceptable (too long, bad type)."""


def mask(secret: str) -> str:
    """A recognisable but useless form of a secret: the last 4 characters of a long one, else nothing."""
    if len(secret) >= 16:
        return "…" + secret[-4:]
    return "***"


def redact(text: str, *secrets: str) -> str:
    """`text` with every non-empty secret replaced by its masked form (longest first)."""
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(s, mask(s))
    return text


def secret_hash(*parts: str) -> str:
    """A short stable digest naming a secret without revealing it (rate buckets, logs)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


def utf8_len(s: str) -> int:
    return len(s.encode("utf-8"))


RateLimit = tuple[int, float]  # at most this many messages in any window of this many seconds


class Notifier(ABC):
    """A channel. `send` delivers one Message or raises RetryableError / PermanentError.

    Class attributes describe the channel for the dispatcher: `dialect` (how the caller renders the body:
    "wecom", "dingtalk", "feishu" or "text"), `max_bytes` (largest body in that dialect, UTF-8 bytes, None = no
    limit), `rate_limits` (each (count, seconds) applied to every bucket in `rate_keys`, counted by us before
    sending), `images` (it can carry `Message.image_png`) and `verified` (a success answer proves delivery;
    False when only an HTTP status is read). `rate_keys` name the buckets (e.g. a hash of the webhook key, or
    one per person of a WeCom app), never a secret. `mention_mobiles` / `mention_open_ids` are the people the
    channel @-s on urgent messages (the caller copies them into the Message).

    `Notifier.from_config(table)` builds the channel a config table describes, by its "type".
    """

    kind: ClassVar[str]
    dialect: ClassVar[str] = "text"
    max_bytes: ClassVar[int | None] = None
    rate_limits: ClassVar[tuple[RateLimit, ...]] = ()
    images: ClassVar[bool] = False
    verified: ClassVar[bool] = True
    rate_key: str
    mention_mobiles: tuple[str, ...] = ()
    mention_open_ids: tuple[str, ...] = ()
    types: ClassVar[dict[str, type[Notifier]]] = {}  # the channel types `from_config` builds (notifiers/__init__)

    @property
    def rate_keys(self) -> tuple[str, ...]:
        """The buckets one message counts in (default: the channel's one `rate_key`)."""
        return (self.rate_key,)

    def cost(self, message: Message) -> int:
        """How many of the channel's messages `message` becomes (its rate limits count these)."""
        return 1

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> Notifier:
        """The notifier of one channel table (secrets already resolved: `password`, not `password_env`);
        on `Notifier` itself, the subclass whose `kind` is the table's "type". ValueError for a bad table."""
        if cls is not Notifier:
            raise NotImplementedError(f"{cls.__name__}.from_config")
        sub = Notifier.types.get(str(table.get("type")))
        if sub is None:
            raise ValueError(f"unknown notifier type {table.get('type')!r}; known: {sorted(Notifier.types)}")
        return sub.from_config(table)

    @abstractmethod
    async def send(self, message: Message) -> str:
        """Deliver; returns the channel's answer text (what `notify-test` prints)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections; the notifier must not be used afterwards."""

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
