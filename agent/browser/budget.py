"""The host's request budget: every backend request of every shop takes a turn, so more shops never means a burst.

Requests are spaced evenly at the budget's rate (a token bucket holding one token), aimed at 95 % of it so that
the jitter between here and the backend never takes it above. A rate-limit answer anywhere (HTTP 429, 操作太过频繁)
halves the rate for the whole host; it doubles back, step by step, after a calm minute each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

AIM = 0.95  # of the configured rate
CALM_SECONDS = 60.0  # without a rate-limit answer, before the rate steps back up
SLOWEST = 1 / 8  # the rate never falls below this share of the budget


class RequestBudget:
    """`await take()` before each backend request; `slowed_down()` when the backend said "too many"."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self.share = 1.0  # of the budget in use now (1, 1/2, … 1/8 after rate-limit answers)
        self._next = 0.0  # when the next request may go
        self._calm_since = clock()
        self.taken = 0
        self.slowdowns = 0

    @property
    def rate(self) -> float:
        """Requests per second allowed now."""
        self._recover()
        return self.per_second * self.share

    def _recover(self) -> None:
        now = self.clock()
        while self.share < 1.0 and now - self._calm_since >= CALM_SECONDS:
            self.share = min(1.0, self.share * 2)
            self._calm_since += CALM_SECONDS

    def reserve(self) -> float:
        """Book the next turn; the seconds to wait for it (0: go now)."""
        now = self.clock()
        at = max(now, self._next)
        self._next = at + 1.0 / (self.rate * AIM)
        self.taken += 1
        return at - now

    async def take(self) -> None:
        wait = self.reserve()  # booked at once: turns are handed out in the order they were asked for
        if wait > 0:
            await asyncio.sleep(wait)

    def slowed_down(self) -> None:
        """The backend answered with a rate limit: halve the whole host's rate (down to 1/8) for a while."""
        self.share = max(SLOWEST, self.share / 2)
        self._calm_since = self.clock()
        self.slowdowns += 1
