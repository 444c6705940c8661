"""What the JSON-over-HTTPS channels share: one httpx client, posting UTF-8 JSON, network errors and answers
classified without leaking a secret, signing helpers, and the check that a webhook URL is https or loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from notifiers.base import Notifier, PermanentError, RetryableError, redact

Answer = tuple[int, Any, str]  # HTTP status, the parsed JSON (None when not JSON), the text (secrets masked)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_webhook(url: str, what: str) -> tuple[str, str]:
    """(scheme, host) of a webhook URL, which must be https (http only on loopback: tests, a local relay).
    ValueError otherwise; the message never repeats the URL (its token is a secret)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https") or not host or port == 0:
        raise ValueError(f"{what} must be a full https:// webhook URL (a host, a port from 1 to 65535)")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"{what} must use https:// (plain http only to a loopback address)")
    return parts.scheme, host


def hmac_b64(key: str, message: str) -> str:
    """base64(HMAC-SHA256(key, message)), both UTF-8: the raw signature DingTalk and Feishu ask for."""
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON (never \\uXXXX escapes, which triple CJK sizes against the byte limits)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class JsonWebhook(Notifier):
    """A channel spoken to with JSON over HTTP(S). Subclasses set `_secrets` (what must never be logged)."""

    timeout: float = 10.0
    _secrets: tuple[str, ...] = ()
    _client: httpx.AsyncClient | None = None
    _own_client: bool = True

    def _use_client(self, client: httpx.AsyncClient | None, timeout: float) -> None:
        self.timeout = timeout
        self._client = client
        self._own_client = client is None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._own_client = True
        return self._client

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
        self._client = None

    def _clean(self, text: str) -> str:
        return redact(text, *self._secrets)

    async def _request(self, method: str, url: httpx.URL | str, payload: Mapping[str, Any] | None = None) -> Answer:
        """One request; network failures and timeouts are RetryableError (the message may or may not have
        arrived: the channel decides what a retry risks). The answer's JSON is parsed whatever the status."""
        content = dumps(payload) if payload is not None else None
        headers = {"Content-Type": "application/json; charset=utf-8"} if payload is not None else {}
        try:
            resp = await self._http().request(method, url, content=content, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise RetryableError("timeout", f"no answer within {self.timeout:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:  # connect / read / protocol errors: the network, not the message
            raise RetryableError("network", self._clean(f"{type(exc).__name__}: {exc}")) from None
        text = self._clean(resp.text)
        try:
            data = json.loads(resp.text)
        except ValueError:
            data = None
        return resp.status_code, data, text

    def _no_json(self, status: int, text: str, service: str) -> RetryableError | PermanentError:
        """The error for an answer that is not the service's JSON: 5xx, 408, 429 and gateways' HTML pages are
        worth another try later; any other status is not."""
        snippet = text[:300]
        if status >= 500 or status in (408, 429) or status == 200:
            return RetryableError(f"http {status}", f"no {service} JSON answer: {snippet!r}")
        return PermanentError(f"http {status}", snippet or f"HTTP {status}")


Clock = Callable[[], float]
