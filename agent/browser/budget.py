"""The host's request budget: every backend request of every shop takes a turn, so more shops never means a burst.

Requests are spaced evenly at the budget's rate (a token bucket holding one token), aimed at 90 % of it, and no
rolling second ever hands out more turns than that: a turn delayed by a busy event loop is counted when it is
really taken, so a stall never releases a burst. A rate-limit answer anywhere (HTTP 429, 操作太过频繁)
halves the rate for the whole host; it doubles back, step by step, after a calm minute each.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

AIM = 0.9  # of the configured rate: the margin for jitter on the way (the event loop, the network, the server)
CALM_SECONDS = 60.0  # without a rate-limit answer, before the rate steps back up
SLOWEST = 1 / 8  # the rate never falls below this share of the budget


def _wake(waiter: asyncio.Future[None]) -> bool:
    if waiter.done():
        return False
    waiter.set_result(None)
    return True


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
        self._granted: deque[float] = deque()  # when the turns of the last second were really taken
        self.peak_window = 0  # the most turns any rolling second has handed out
        self._on_way = 0  # admitted, not yet answered (see `admit`)
        self._waiters: list[asyncio.Future[None]] = []  # admits waiting for room, first come first woken

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

    def backlog(self) -> float:
        """Seconds of turns already booked ahead of now (0: a request asked now would go at once)."""
        return max(0.0, self._next - self.clock())

    def per_window(self) -> int:
        """The most turns any rolling second may hand out now."""
        return max(1, math.floor(self.rate * AIM))

    async def take(self) -> None:
        """A turn: spaced at the rate, then within the rolling second."""
        await self.space()
        await self.gate()

    async def space(self) -> None:
        """Wait for the next evenly spaced turn (booked at once: turns are handed out in the order asked for)."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    async def gate(self) -> None:
        """Wait until the rolling second has room, and count this request in it at once (a request sent right
        after this call, with no wait between; a plain-HTTP request uses `admit` and `sent` instead)."""
        await self.admit()
        self.sent()

    async def admit(self) -> None:
        """Wait until the rolling second has room for one more request besides those already admitted and not
        yet answered, then count this one as on its way. `sent()` must follow (when its answer came): a request
        is only known to have left once it is answered, so the ones on their way count too, and a busy event
        loop that holds them between the turn and the wire can never push more than a rolling second's worth
        out at once (the budget holds at the wire, not only where turns are handed out)."""
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock()
            while self._granted and self._granted[0] <= now - 1.0:
                self._granted.popleft()
            if len(self._granted) + self._on_way < self.per_window():
                self._on_way += 1
                return
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = (loop.call_later(self._granted[0] + 1.0 - now + 0.001, _wake, waiter)
                     if self._granted else None)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken, then cancelled: the room goes to the next one waiting
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def sent(self) -> None:
        """An admitted request was answered (or failed): it counts in the rolling second from now."""
        self._on_way = max(0, self._on_way - 1)
        self._granted.append(self.clock())
        self.peak_window = max(self.peak_window, len(self._granted))
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            if _wake(self._waiters.pop(0)):
                return

    def slowed_down(self) -> None:
        """The backend answered with a rate limit: halve the whole host's rate (down to 1/8) for a while."""
        self.share = max(SLOWEST, self.share / 2)
        self._calm_since = self.clock()
        self.slowdowns += 1


BUSY_SECONDS = 0.5  # turns booked this far ahead: the host is busy (a burst of requests)
FULL_CHECK_REQUESTS = 7  # a check reading everything: queryCount, the two lists, the four watch cards and counters
FIRST_ROUND_SECONDS = 5.0  # all shops read in full need more budget than this: the start-up round is busy


def first_round_busy(shops: int, budget: RequestBudget | None) -> bool:
    """Whether `shops` checks reading everything would keep the budget busy for more than FIRST_ROUND_SECONDS:
    then a start-up round reads the deadline lists first (a few shops never are: their first checks read it all)."""
    if shops <= 0 or budget is None:
        return False
    return shops * FULL_CHECK_REQUESTS > FIRST_ROUND_SECONDS * budget.rate * AIM


class Deferrals:
    """Which non-urgent reads (the 售后数据 counters, 买家催处理, 平台处理中) a check leaves for a later one: only
    while the host is busy (checks waiting for a request slot, or the budget's turns booked far ahead), and never
    for longer than `limit_seconds` in a row, so the deadline lists of every shop come first when the host is the
    limit (a start-up round) and nothing is put off for long."""

    def __init__(self, busy: Callable[[], bool], limit_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.busy = busy  # whether the host has more work than its budget and lanes take at once
        self.limit = limit_seconds
        self.clock = clock
        self._since: dict[tuple[str, str], float] = {}  # (shop, read) → when it was first put off
        self._read: dict[tuple[str, str], float] = {}  # (shop, read) → when `due` last said "read it"
        self.deferred = 0

    def due(self, shop: str, what: str, every: float) -> bool:
        """Whether a read repeated every `every` seconds is due now and not put off by a busy host (then it
        counts as read now)."""
        key, now = (shop, what), self.clock()
        last = self._read.get(key)
        if last is not None and now - last < every:
            return False
        if self.skip(shop, what):
            return False
        self._read[key] = now
        return True

    def skip(self, shop: str, what: str) -> bool:
        """True: leave `what` for a later check now; False: read it (it no longer counts as put off)."""
        key = (shop, what)
        now = self.clock()
        if not self.busy():
            self._since.pop(key, None)
            return False
        first = self._since.setdefault(key, now)
        if now - first >= self.limit:
            del self._since[key]
            return False
        self.deferred += 1
        return True
