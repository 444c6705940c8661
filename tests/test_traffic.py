"""The sandbox's busiest second: arrivals noted out of order still counted in the right windows."""

from __future__ import annotations

from agent.sandbox.traffic import BusiestSecond


def test_in_order_arrivals_count_per_rolling_second() -> None:
    w = BusiestSecond()
    for i in range(10):
        w.add(i * 0.2)  # five per second
    assert w.peak == 5
    w.add(1.85)
    assert w.peak == 6  # 1.0, 1.2, 1.4, 1.6, 1.8, 1.85 lie within [1.0, 2.0)


def test_an_arrival_noted_late_lands_where_it_came_in() -> None:
    w = BusiestSecond()
    for at in (0.0, 0.5, 1.6, 2.2, 0.9):  # 0.9 came in early but waited for the lock
        w.add(at)
    assert w.peak == 3  # 0.0, 0.5, 0.9 — not 1.6, 2.2, 0.9
    late = BusiestSecond()
    for at in (10.0, 10.1, 10.2, 16.0, 9.5):  # noted long after the kept seconds: counted alone
        late.add(at)
    assert late.peak == 3
    late.clear()
    assert late.peak == 0 and late.add(5.0) == 1
