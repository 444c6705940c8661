"""Apprise for the long tail (Server酱, PushPlus, Bark, Telegram, …): an optional extra, delivery unverified.

`pip install 'pdd-agent[apprise]'`. Apprise's plugins for these services read only the HTTP status, so its
success means "the service took the request", not "the person got it": such sends are recorded as
"sent, unverified". Its result is read by truthiness only (v1 returned a bool, v2 an AppriseResult whose
`bool()` is True only for SUCCESS). The channels this project speaks itself are refused here, because Apprise's
versions are worse (../shared/reference/notify-channels-2026.md C1, C2, C5): its DingTalk sign is URL-encoded
twice, its DingTalk markdown body is malformed, its Feishu limit counts characters, and none reads the errcode.
In Apprise `wecom://` means PushPlus, not WeCom.
"""

from __future__ import annotations

import asyncio
import importlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from notifiers.base import Message, Notifier, PermanentError, RetryableError, redact, secret_hash

EXTRA = "pip install 'pdd-agent[apprise]'"
# this project's own channels (and Apprise's wecom://, which is PushPlus, not WeCom): `config check` says what
# to use instead
REFUSED_SCHEMES = frozenset({"dingtalk", "dingtalks", "feishu", "lark", "wecombot", "wxwork", "wechat", "wecom"})


def load_apprise() -> Any:
    """The apprise module, or PermanentError naming the extra to install."""
    try:
        return importlib.import_module("apprise")
    except ImportError:
        raise PermanentError("not_installed", f"Apprise is not installed: {EXTRA}") from None


class AppriseUrls(Notifier):
    """One Apprise channel: every URL in `urls` gets each message (text, with the title)."""

    kind: ClassVar[str] = "apprise"
    dialect: ClassVar[str] = "text"
    max_bytes: ClassVar[int | None] = 4000  # small enough for Bark's and Server酱's pushes; parts are numbered
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ((20, 60.0),)
    verified: ClassVar[bool] = False

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> AppriseUrls:
        """From a table with `urls` (secrets already resolved) and `timeout_seconds`."""
        return cls(tuple(str(u) for u in table.get("urls") or ()), timeout=float(table.get("timeout_seconds") or 15))

    def __init__(self, urls: Sequence[str], timeout: float = 15) -> None:
        if not urls:
            raise ValueError("an apprise channel needs at least one URL in urls")
        for u in urls:
            scheme = u.strip().partition("://")[0].lower()
            if scheme in REFUSED_SCHEMES:
                raise ValueError(f"{scheme}:// is not sent through Apprise here: use this project's own channel type")
        self.urls, self.timeout = tuple(urls), timeout
        self.rate_key = "apprise:" + secret_hash(*self.urls)
        self._apprise: Any = None

    def __repr__(self) -> str:
        return f"AppriseUrls({', '.join(u.partition('://')[0] + '://…' for u in self.urls)})"

    def _instance(self) -> Any:
        if self._apprise is None:
            module = load_apprise()
            ap = module.Apprise()
            with warnings.catch_warnings():  # its plugins' imports (imghdr on 3.11/3.12) warn: not ours to show
                warnings.simplefilter("ignore", DeprecationWarning)
                added = [ap.add(u) for u in self.urls]
            for u, ok in zip(self.urls, added, strict=True):
                if not ok:
                    scheme = u.partition("://")[0]
                    raise PermanentError("bad_url", f"Apprise does not understand a {scheme}:// URL of this channel")
            self._apprise = ap
        return self._apprise

    async def send(self, message: Message) -> str:
        ap = self._instance()
        body = message.text.partition("\n")[2].strip() or message.text
        try:
            result = await asyncio.wait_for(asyncio.to_thread(ap.notify, body=body, title=message.title),
                                            timeout=self.timeout * max(1, len(self.urls)) + 5)
        except TimeoutError:
            raise RetryableError("timeout", f"Apprise did not finish within {self.timeout:g}s per URL") from None
        except Exception as exc:  # a plugin's bug must not stop the dispatcher
            raise RetryableError("apprise", redact(f"{type(exc).__name__}: {exc}", *self.urls)) from None
        if result:  # truthiness only: v1 bool, v2 AppriseResult
            return f"sent, unverified (Apprise accepted it for {len(self.urls)} URL(s); delivery is not confirmed)"
        raise RetryableError("apprise", "Apprise reported a failure for at least one URL (its log says which)")
