"""What reading a shop's lists yields (RawRead of ListReads), the options, and the pacing both readers share.

Page mode (page_reader) learns each quick filter's request body as a person's visit sends it; API mode
(api_reader) replays the bodies through the context's request API (its cookies, no page). Both return the
same RawRead; parsing into items happens in core.parsers (pure).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

from agent.browser.budget import RequestBudget
from agent.core.models import CheckFailure, Finding, ShopState

ROLES = ("aftersales", "evidence")

@dataclass(slots=True)
class ReadOptions:
    pacing_seconds: float = 1.0  # pause between backend requests (± 30 % jitter)
    backoff_seconds: tuple[float, ...] = (5.0, 15.0, 45.0)  # waits after HTTP 429 before retrying
    timeout_seconds: float = 30.0
    budget: RequestBudget | None = None  # the host's request budget, shared by every shop (None: unlimited)


@dataclass(slots=True)
class ListRead:
    """One list (role) as read: every row of every page, and what the list said its total was."""

    role: str
    body: dict[str, Any]
    total: int
    rows: list[Any]
    dom_rows: list[dict[str, Any]] = field(default_factory=list)
    from_dom: bool = False  # no queryList answer could be captured: the rows are the page's own
    row_times: list[float] = field(default_factory=list)  # per row: the backend time of the answer carrying it


@dataclass(slots=True)
class RawRead:
    mode: str
    server_time: float  # epoch seconds by the backend's Date header
    lists: dict[str, ListRead]
    counters: dict[str, int] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    learned: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> request body


@dataclass(frozen=True, slots=True)
class Answer:
    """One backend answer as a request-only reader sees it: status, headers (lower-case names), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not)."""
        return json.loads(self.body.decode("utf-8"))


@runtime_checkable
class Requester(Protocol):
    """Sends a shop's requests with its cookies, proxy and user agent: the browser context's request API or a
    plain HTTP client (http_client.ShopHttp). Raises TimeoutError, or ConnectionError with a one-line reason."""

    gates_budget: bool  # True: it takes the budget's rolling-second gate itself, just before sending

    async def send(self, method: str, url: str, body: Mapping[str, Any] | None, headers: Mapping[str, str],
                   timeout: float) -> Answer: ...

    async def cookie(self, name: str, url: str) -> str:
        """The value of the shop's cookie `name` that goes with a request to `url` ("" when there is none)."""
        ...


def server_time(headers: Mapping[str, str], fallback: float) -> float:
    """The backend's clock by a response's Date header (whole seconds: its middle), else `fallback`."""
    try:
        return parsedate_to_datetime(headers["date"]).timestamp() + 0.5
    except (KeyError, TypeError, ValueError):
        return fallback


class Pacer:
    """Spaces backend requests by `pacing_seconds` with jitter; retries rate-limited calls (HTTP 429) with
    backoff. A captcha (54001) is never retried: it needs a human."""

    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self._first = True

    async def pause(self, *, gated: bool = False) -> None:
        """Before each backend request: the shop's own pacing, then a turn of the host's budget (`gated`: the
        requester counts the rolling second itself, at the moment the request goes out)."""
        if not self._first and self.options.pacing_seconds > 0:
            p = self.options.pacing_seconds
            await asyncio.sleep(random.uniform(0.7 * p, 1.3 * p))
        self._first = False
        if self.options.budget is not None:
            await (self.options.budget.space() if gated else self.options.budget.take())

    async def retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        for wait in (*self.options.backoff_seconds, None):
            try:
                return await call()
            except CheckFailure as exc:
                if exc.state is not ShopState.RATE_LIMITED:
                    raise
                if self.options.budget is not None:
                    self.options.budget.slowed_down()  # the whole host slows down, not just this shop
                if wait is None:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")
