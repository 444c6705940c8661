"""The host's request budget and the two lanes (pure asyncio, a fake clock for the budget)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agent.browser.budget import AIM, BUSY_SECONDS, CALM_SECONDS, Deferrals, RequestBudget
from agent.browser.lanes import Lanes
from tests.conftest import run_async


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_turns_are_spaced_at_the_rate_whoever_asks() -> None:
    clock = Clock()
    budget = RequestBudget(10, clock)
    waits = [budget.reserve() for _ in range(21)]  # 21 shops asking at the same instant
    spacing = 1 / (10 * AIM)
    assert waits[0] == 0 and all(abs(b - a - spacing) < 1e-9 for a, b in zip(waits, waits[1:], strict=False))
    starts = [clock.t + w for w in waits]
    # no one-second window holds more than the budget
    assert max(sum(1 for s in starts if t <= s < t + 1) for t in starts) <= 10


def test_a_rate_limit_halves_the_host_and_calm_minutes_double_it_back() -> None:
    clock = Clock()
    budget = RequestBudget(40, clock)
    budget.slowed_down()
    budget.slowed_down()
    assert budget.rate == 10
    for _ in range(5):
        budget.slowed_down()
    assert budget.rate == 5  # never below 1/8
    clock.t += CALM_SECONDS
    assert budget.rate == 10
    clock.t += 2 * CALM_SECONDS
    assert budget.rate == 40 and budget.slowdowns == 7
    clock.t += 10 * CALM_SECONDS
    assert budget.rate == 40


def test_take_waits_its_turn() -> None:
    async def go() -> float:
        budget = RequestBudget(20)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(budget.take() for _ in range(11)))
        return loop.time() - start

    assert 10 / (20 * AIM) - 0.05 <= run_async(go()) < 10 / (20 * AIM) + 0.3


def test_request_work_never_waits_for_page_work() -> None:
    async def go() -> tuple[list[str], int]:
        lanes = Lanes(checks=3, pages=1)
        order: list[str] = []
        release = asyncio.Event()

        async def page_work(name: str) -> None:
            async with lanes.slot() as slot:
                await slot.need_page()
                order.append(f"page {name}")
                await release.wait()

        async def request_work(name: str) -> None:
            async with lanes.slot():
                order.append(f"api {name}")

        pages = [asyncio.create_task(page_work(str(n))) for n in range(4)]  # one holds the page slot, 3 wait
        await asyncio.sleep(0.01)
        await asyncio.gather(*(request_work(str(n)) for n in range(6)))  # all six get through meanwhile
        waiting = lanes.in_request_lane
        release.set()
        await asyncio.gather(*pages)
        return order, waiting

    order, waiting = run_async(go())
    assert order[:7] == ["page 0", *(f"api {n}" for n in range(6))] and waiting == 0
    assert sorted(order[7:]) == ["page 1", "page 2", "page 3"]


def test_a_stalled_loop_never_releases_a_burst() -> None:
    """Turns booked while the event loop was blocked are counted when they are taken: at most the budget in
    any rolling second, whatever the bookings said."""
    async def go() -> list[float]:
        budget = RequestBudget(20)
        loop = asyncio.get_running_loop()
        taken: list[float] = []

        async def one() -> None:
            await budget.take()
            taken.append(loop.time())

        tasks = [asyncio.create_task(one()) for _ in range(60)]
        await asyncio.sleep(0.3)
        time.sleep(0.6)  # the loop stalls: the turns booked meanwhile are all due at once when it wakes
        await asyncio.gather(*tasks)
        return taken

    taken = run_async(go())
    assert max(sum(1 for s in taken if t <= s < t + 1) for t in taken) <= 18  # floor(20 × 0.9)


def test_non_urgent_reads_wait_only_while_the_host_is_busy_and_never_past_the_limit() -> None:
    clock = Clock()
    budget = RequestBudget(10, clock)
    defer = Deferrals(lambda: budget.backlog() > BUSY_SECONDS, limit_seconds=600, clock=clock)
    assert not defer.skip("店A", "urged")  # an idle host reads everything
    while budget.backlog() <= BUSY_SECONDS:  # a start-up round books turns far ahead
        budget.reserve()
    assert defer.skip("店A", "urged") and defer.skip("店B", "counters")
    def busy() -> None:
        while budget.backlog() <= BUSY_SECONDS:
            budget.reserve()

    clock.t += 599
    busy()
    assert defer.skip("店A", "urged")  # still busy, still within the limit
    clock.t += 1
    busy()
    assert not defer.skip("店A", "urged")  # put off for the whole limit: read now, busy or not
    assert defer.skip("店A", "urged")  # and the next one may wait again
    clock.t += 10_000  # the booked turns are past: calm
    assert budget.backlog() == 0 and not defer.skip("店B", "counters")
    assert defer.deferred == 4


def test_a_repeated_read_is_due_once_per_period_and_waits_while_busy() -> None:
    clock = Clock()
    budget = RequestBudget(10, clock)
    defer = Deferrals(lambda: budget.backlog() > BUSY_SECONDS, limit_seconds=1800, clock=clock)
    assert defer.due("店A", "counters", 1800)  # never read: due
    clock.t += 1799
    assert not defer.due("店A", "counters", 1800)
    clock.t += 1
    while budget.backlog() <= BUSY_SECONDS:
        budget.reserve()
    assert not defer.due("店A", "counters", 1800)  # due, but the host is busy
    clock.t += 10_000
    assert defer.due("店A", "counters", 1800) and not defer.due("店A", "counters", 1800)


def test_a_start_up_round_is_busy_only_when_its_shops_would_fill_the_budget() -> None:
    from agent.browser.budget import first_round_busy

    budget = RequestBudget(10)  # 9 requests/s aimed: 45 in five seconds, about six full checks
    assert not first_round_busy(0, budget) and not first_round_busy(1, budget) and not first_round_busy(6, budget)
    assert first_round_busy(7, budget) and first_round_busy(200, RequestBudget(50))
    assert not first_round_busy(30, RequestBudget(50)) and not first_round_busy(200, None)
    budget.slowed_down()  # a rate-limit answer halves the rate: fewer shops fill it
    assert first_round_busy(6, budget)


def test_the_service_counts_as_busy_until_every_shop_was_read_once_when_the_shops_fill_the_budget(
        tmp_path: Path) -> None:
    from agent.browser.check import Checker
    from agent.config import load_config, locators

    def checker_of(names: list[str]) -> Checker:
        shops = "".join(f'[[shops]]\nname = "{n}"\nusername = "{n}"\n' for n in names)
        (tmp_path / "c.toml").write_text(shops + '[[shops]]\nname = "停"\nusername = "停"\nenabled = false\n',
                                         encoding="utf-8")
        return Checker(load_config(tmp_path / "c.toml"), None, locators.load(), defer_when_busy=True)  # type: ignore

    few = checker_of(["甲", "乙"])
    assert not few.busy() and few.unread == {"甲", "乙"}  # two shops: their first checks read everything
    names = [f"店{i:02}" for i in range(20)]
    checker = checker_of(names)
    assert checker.busy() and checker.unread == set(names)  # the start-up round: deadline lists first
    for name in names[:19]:
        checker.unread.discard(name)
    assert checker.busy()  # until the last shop was read
    checker.unread.clear()
    assert not checker.busy()  # an idle host reads everything
    assert checker.deferrals is not None and not checker.deferrals.skip("店00", "urged")
    checker.lanes.waiting = 3  # checks queued for a request slot
    assert checker.busy() and checker.deferrals.skip("店00", "urged")


def test_requests_on_their_way_count_until_answered_so_a_stalled_loop_never_bunches_them_at_the_wire() -> None:
    budget = RequestBudget(10)  # 9 in any rolling second

    async def main() -> None:
        for _ in range(9):
            await budget.admit()  # nine admitted, none answered yet (held between the turn and the wire)
        tenth = asyncio.ensure_future(budget.admit())
        await asyncio.sleep(0.05)
        assert not tenth.done()  # no room: the nine may still reach the wire together
        t0 = time.monotonic()
        for _ in range(9):
            budget.sent()  # answered: each counts in the rolling second from now
        await asyncio.sleep(0.05)
        assert not tenth.done()  # the second is full
        await asyncio.wait_for(tenth, 1.5)
        assert time.monotonic() - t0 >= 0.99  # room only once the answers are a second old
        budget.sent()
        assert budget.peak_window == 9

    run_async(main())
