"""The one clock: our time (when rows are due, retries, rate windows, staleness) and the backend's (stages,
remaining times, quiet hours and what messages say), apart by the skew learned from the last read."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, tzinfo


class Clock:
    """`now()` is ours, `backend_now()` the backend's, both epoch seconds. On the live site they agree (the
    skew stays near 0); the sandbox's clock may be frozen or run ahead, and its items follow it. `learn` takes
    the backend's time from a read; `source` is our time (tests move it on)."""

    def __init__(self, tz: tzinfo, source: Callable[[], float] = time.time) -> None:
        self.tz = tz
        self._source = source
        self.skew = 0.0  # the backend's time minus ours
        self._ahead = 0.0  # advance(): seconds this clock runs ahead of its source

    def now(self) -> float:
        return self._source() + self._ahead

    def advance(self, seconds: float) -> None:
        """Run ahead by `seconds`, both times (a test or the demo skipping ahead)."""
        self._ahead += seconds

    def local(self) -> datetime:
        """Our time in the configured zone."""
        return datetime.fromtimestamp(self.now(), self.tz)

    def backend_now(self) -> float:
        return self.to_backend(self.now())

    def backend_local(self, ours: float | None = None) -> datetime:
        """The backend's time (of our time `ours`, default now) in the configured zone."""
        return datetime.fromtimestamp(self.to_backend(self.now() if ours is None else ours), self.tz)

    def to_backend(self, ours: float) -> float:
        return ours + self.skew

    def from_backend(self, backend: float) -> float:
        """Our time when the backend's clock shows `backend` (e.g. the end of quiet hours)."""
        return backend - self.skew

    def learn(self, backend: float) -> None:
        """The backend's time now, as a read just saw it (the Date of its answers)."""
        self.skew = backend - self.now()
