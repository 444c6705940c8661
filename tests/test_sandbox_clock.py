"""SandboxClock driven by a fake real clock: offset, jumps, freezing, speed and the reported state."""

from __future__ import annotations

import dataclasses

import pytest

from agent.sandbox.clock import ClockState, SandboxClock

T0 = 1_700_000_000.0


class FakeReal:
    """A real clock that only moves when the test says so."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def tick(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def real() -> FakeReal:
    return FakeReal()


@pytest.fixture
def clock(real: FakeReal) -> SandboxClock:
    return SandboxClock(lambda: real.t)


def test_starts_at_real_time_and_follows_it(real: FakeReal, clock: SandboxClock) -> None:
    assert clock.now() == T0
    real.tick(42)
    assert clock.now() == T0 + 42
    assert clock.state() == ClockState(now=T0 + 42, offset=0.0, rate=1.0, frozen=False)


@pytest.mark.parametrize(
    "offset", [3600.0, -86400.0, 0.0, 6 * 86400 + 0.5], ids=["plus-hour", "minus-day", "zero", "days"]
)
def test_set_offset_is_real_time_plus_offset(real: FakeReal, clock: SandboxClock, offset: float) -> None:
    real.tick(100)
    clock.set_offset(offset)
    assert clock.now() == real.t + offset
    assert clock.state().offset == offset
    real.tick(10)
    assert clock.now() == real.t + offset  # keeps running with real time


def test_set_offset_runs_at_the_current_rate(real: FakeReal, clock: SandboxClock) -> None:
    clock.set_rate(3)
    clock.set_offset(1000)
    assert clock.now() == real.t + 1000
    real.tick(10)
    assert clock.now() == real.t - 10 + 1000 + 30
    assert clock.state().rate == 3


@pytest.mark.parametrize("seconds", [60.0, 86400.0, -30.0, 0.0], ids=["minute", "day", "backwards", "zero"])
def test_advance_moves_now_and_keeps_running(real: FakeReal, clock: SandboxClock, seconds: float) -> None:
    real.tick(5)
    before = clock.now()
    clock.advance(seconds)
    assert clock.now() == before + seconds
    real.tick(7)
    assert clock.now() == before + seconds + 7


def test_advances_accumulate(clock: SandboxClock) -> None:
    clock.advance(3600)
    clock.advance(3600)
    clock.advance(-600)
    assert clock.now() == T0 + 6600
    assert clock.state().offset == 6600


def test_set_jumps_to_an_absolute_instant(real: FakeReal, clock: SandboxClock) -> None:
    at = T0 + 12345.0
    real.tick(50)
    clock.set(at)
    assert clock.now() == at
    real.tick(5)
    assert clock.now() == at + 5
    assert clock.state().offset == at - T0 - 50


def test_frozen_time_stands_still(real: FakeReal, clock: SandboxClock) -> None:
    real.tick(10)
    clock.freeze()
    assert clock.state().frozen is True
    real.tick(1000)
    assert clock.now() == T0 + 10
    real.tick(86400)
    assert clock.now() == T0 + 10


def test_unfreeze_resumes_from_the_frozen_instant(real: FakeReal, clock: SandboxClock) -> None:
    clock.freeze()
    real.tick(500)
    clock.unfreeze()
    assert clock.state().frozen is False
    assert clock.now() == T0  # no jump forward by the 500 s spent frozen
    real.tick(7)
    assert clock.now() == T0 + 7


def test_freeze_at_an_explicit_instant(real: FakeReal, clock: SandboxClock) -> None:
    at = T0 + 999.0
    clock.freeze(at)
    real.tick(60)
    assert clock.now() == at
    clock.unfreeze()
    real.tick(1)
    assert clock.now() == at + 1


@pytest.mark.parametrize(
    ("op", "seconds"),
    [("advance", 3600.0), ("set", T0 + 7200.0), ("set_offset", 1800.0)],
    ids=["advance", "set", "set_offset"],
)
def test_moving_a_frozen_clock_keeps_it_frozen(real: FakeReal, clock: SandboxClock, op: str, seconds: float) -> None:
    clock.freeze()
    real.tick(100)
    getattr(clock, op)(seconds)
    expected = {"advance": T0 + 3600, "set": T0 + 7200, "set_offset": real.t + 1800}[op]
    assert clock.now() == expected
    assert clock.state().frozen is True
    real.tick(100)
    assert clock.now() == expected
    clock.unfreeze()
    real.tick(3)
    assert clock.now() == expected + 3


def test_unfreeze_when_running_is_a_no_op(real: FakeReal, clock: SandboxClock) -> None:
    clock.advance(10)
    clock.unfreeze()
    real.tick(2)
    assert clock.now() == T0 + 12
    assert clock.state().frozen is False


@pytest.mark.parametrize("rate", [2.0, 60.0, 0.5, 1.0], ids=["double", "minute-per-second", "half", "normal"])
def test_rate_runs_sandbox_time_n_times_real(real: FakeReal, clock: SandboxClock, rate: float) -> None:
    clock.set_rate(rate)
    assert clock.now() == T0
    real.tick(10)
    assert clock.now() == T0 + 10 * rate
    assert clock.state().rate == rate


def test_set_rate_keeps_now_continuous(real: FakeReal, clock: SandboxClock) -> None:
    clock.set_rate(2)
    real.tick(10)
    assert clock.now() == T0 + 20
    clock.set_rate(5)
    assert clock.now() == T0 + 20  # no jump at the switch
    real.tick(10)
    assert clock.now() == T0 + 20 + 50
    clock.set_rate(1)
    assert clock.now() == T0 + 70
    real.tick(1)
    assert clock.now() == T0 + 71


def test_set_rate_while_frozen_applies_after_unfreeze(real: FakeReal, clock: SandboxClock) -> None:
    clock.freeze()
    clock.set_rate(10)
    real.tick(100)
    assert clock.now() == T0
    clock.unfreeze()
    real.tick(2)
    assert clock.now() == T0 + 20


@pytest.mark.parametrize("rate", [0.0, -1.0], ids=["zero", "negative"])
def test_set_rate_rejects_non_positive(real: FakeReal, clock: SandboxClock, rate: float) -> None:
    clock.set_rate(4)
    with pytest.raises(ValueError, match="positive"):
        clock.set_rate(rate)
    assert clock.state().rate == 4
    real.tick(1)
    assert clock.now() == T0 + 4


def test_state_reports_all_fields(real: FakeReal, clock: SandboxClock) -> None:
    clock.set_offset(3600)
    clock.set_rate(2)
    real.tick(10)
    state = clock.state()
    assert state == ClockState(now=T0 + 3600 + 20, offset=3600 + 10, rate=2.0, frozen=False)
    clock.freeze()
    real.tick(5)
    frozen = clock.state()
    assert frozen == ClockState(now=T0 + 3620, offset=3620 - 15, rate=2.0, frozen=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.now = 0.0  # type: ignore[misc]
