"""The busiest second of backend requests the sandbox saw: arrivals counted at the time they came in."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort

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
