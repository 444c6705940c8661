"""The sandbox's own clock: real time shifted by an offset, sped up, or frozen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClockState:
    """A snapshot of the clock settings, as the control API reports them."""

    now: float
    offset: float
    rate: float
    frozen: bool


class SandboxClock:
    """Sandbox time = anchor + (real - real_anchor) * rate, or a fixed instant when frozen.

    The real clock is injectable so unit tests can drive it.
    """

    def __init__(self, real: Callable[[], float] = time.time) -> None:
        self._real = real
        self._lock = threading.Lock()
        r = real()
        self._real_anchor = r
        self._anchor = r
        self._rate = 1.0
        self._frozen: float | None = None

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> float:
        if self._frozen is not None:
            return self._frozen
        return self._anchor + (self._real() - self._real_anchor) * self._rate

    def _reanchor(self, at: float) -> None:
        self._real_anchor = self._real()
        self._anchor = at

    def set(self, at: float) -> None:
        """Jump to an absolute instant (epoch seconds); keeps running unless frozen."""
        with self._lock:
            self._set_locked(at)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._set_locked(self._now_locked() + seconds)

    def _set_locked(self, at: float) -> None:
        if self._frozen is not None:
            self._frozen = at
        self._reanchor(at)

    def set_offset(self, offset: float) -> None:
        """Real time plus `offset` seconds, running at the current rate from now on."""
        with self._lock:
            self._set_locked(self._real() + offset)

    def freeze(self, at: float | None = None) -> None:
        with self._lock:
            self._frozen = self._now_locked() if at is None else at

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen is not None:
                at = self._frozen
                self._frozen = None
                self._reanchor(at)

    def set_rate(self, rate: float) -> None:
        """Speed: sandbox seconds per real second (the demo accelerates time)."""
        if not rate > 0:  # also refuses NaN
            raise ValueError("rate must be positive")
        with self._lock:
            at = self._now_locked()
            self._rate = rate
            self._reanchor(at)

    def state(self) -> ClockState:
        with self._lock:
            now = self._now_locked()
            return ClockState(now=now, offset=now - self._real(), rate=self._rate, frozen=self._frozen is not None)
