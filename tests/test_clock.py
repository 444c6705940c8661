"""The agent's one clock: our time and the backend's, apart by what a read taught it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agent.clock import Clock

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=TZ).timestamp()


def test_the_backend_agrees_until_a_read_says_otherwise() -> None:
    ours = [T0]
    clock = Clock(TZ, source=lambda: ours[0])
    assert clock.now() == clock.backend_now() == T0
    clock.learn(T0 + 3600)  # the sandbox runs an hour ahead
    ours[0] += 10
    assert clock.now() == T0 + 10 and clock.backend_now() == T0 + 3610
    assert clock.backend_local() == datetime(2026, 11, 21, 13, 0, 10, tzinfo=TZ)
    assert clock.local() == datetime(2026, 11, 21, 12, 0, 10, tzinfo=TZ)
    assert clock.from_backend(clock.to_backend(T0)) == T0  # quiet hours end on the backend's clock, due on ours


def test_advance_moves_both_times() -> None:
    clock = Clock(TZ, source=lambda: T0)
    clock.learn(T0 - 60)
    clock.advance(300)
    assert (clock.now(), clock.backend_now()) == (T0 + 300, T0 + 240)
