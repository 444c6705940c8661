"""What the sandbox saw of backend traffic: the busiest second, and the log of business requests per account."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque

KEEP_SECONDS = 5.0  # an arrival noted up to four seconds late still finds the ones it came in with


class BusiestSecond:
    """Arrival times may be noted out of order (a request read at t waits for the backend's lock while one read
    later goes first); each is placed where it belongs, and the most arrivals any rolling second held is kept."""

    def __init__(self) -> None:
        self._times: list[float] = []  # sorted, the last KEEP_SECONDS
        self.peak = 0

    def add(self, at: float) -> int:
        """Note one arrival at `at`; the busiest second so far."""
        times = self._times
        insort(times, at)
        newest = times[-1]
        drop = bisect_left(times, newest - KEEP_SECONDS)
        if drop:
            del times[:drop]
        # every one-second window [p, p + 1) holding `at` starts at an arrival p in [at - 1, at]
        first = bisect_right(times, at - 1.0)
        last = bisect_right(times, at)
        for i in range(first, last):
            self.peak = max(self.peak, bisect_left(times, times[i] + 1.0) - i)
        return self.peak

    def clear(self) -> None:
        self._times.clear()
        self.peak = 0


class RequestLog:
    """Every business request with a session, in arrival order: account, route, and when it came in and was
    answered (real monotonic seconds); and holds that make an account's next requests wait before answering."""

    def __init__(self, keep: int = 500_000) -> None:
        self.entries: deque[tuple[str, str, float, float]] = deque(maxlen=keep)
        self.dropped = 0  # entries pushed out by `keep`
        self._holds: dict[str, tuple[float, int]] = {}  # account -> (seconds, requests left)

    def add(self, username: str, route: str, start: float, end: float) -> None:
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
        self.entries.append((username, route, start, end))

    def since(self, index: int) -> list[tuple[str, str, float, float]]:
        """Entries from `index` on (counted from the last clear, less what `keep` pushed out)."""
        return list(self.entries)[max(0, index - self.dropped):]

    def hold(self, username: str, seconds: float, count: int) -> None:
        self._holds[username] = (seconds, count)

    def holds_left(self, username: str) -> int:
        """How many of the account's next requests are still armed to wait (0: every hold was taken)."""
        return self._holds.get(username, (0.0, 0))[1]

    def take_hold(self, username: str) -> float:
        """Seconds this request of `username` waits before it is answered (0: none armed)."""
        seconds, left = self._holds.get(username, (0.0, 0))
        if left <= 0:
            return 0.0
        self._holds[username] = (seconds, left - 1)
        return seconds

    def clear(self) -> None:
        self.entries.clear()
        self.dropped = 0
        self._holds.clear()


def busy_overlaps(entries: list[tuple[str, str, float, float]]) -> list[tuple[str, float]]:
    """(account, when) for each request that came in while another request of the same account was still being
    answered: the requests of one check go one after another, so this is two checks of one shop at once."""
    open_until: dict[str, float] = {}
    out = []
    for user, _route, start, end in sorted(entries, key=lambda e: e[2]):
        if start < open_until.get(user, float("-inf")):
            out.append((user, start))
        open_until[user] = max(open_until.get(user, float("-inf")), end)
    return out


def start_gaps(entries: list[tuple[str, str, float, float]], route: str) -> dict[str, list[float]]:
    """Per account, the seconds between consecutive requests to `route` (the one request every check starts
    with): how often each shop was checked."""
    last: dict[str, float] = {}
    gaps: dict[str, list[float]] = {}
    for user, r, start, _end in sorted(entries, key=lambda e: e[2]):
        if r != route:
            continue
        if user in last:
            gaps.setdefault(user, []).append(start - last[user])
        last[user] = start
    return gaps
