"""Triggers from [schedule] (crontab weekdays, per-shop overrides), staleness, and the scheduler's misfire policy."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.config import Config, ConfigError, load_config
from agent.config.crontab import cron_trigger, cron_weekdays
from agent.service.scheduler import Service, make_scheduler
from agent.service.triggers import check_trigger, stale_after
from tests.conftest import run_async

TZ = ZoneInfo("Asia/Shanghai")
SUNDAY = datetime(2026, 11, 22, 0, 0, tzinfo=TZ)  # a Sunday


def config(tmp_path: Path, schedule: str = "", shop: str = "") -> Config:
    text = f"""
[[shops]]
name = "甲"
username = "甲"
{shop}
[[shops]]
name = "乙"
username = "乙"
[schedule]
{schedule}
"""
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return load_config(tmp_path / "config.toml")


@pytest.mark.parametrize(("field", "expected"), [
    ("*", "*"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"), ("0-6", "*"), ("5-7", "sun,fri,sat"),
    ("sat,sun", "sun,sat"), ("mon-fri", "mon,tue,wed,thu,fri"), ("*/2", "sun,tue,thu,sat"), ("1/2", "mon,wed,fri"),
])
def test_crontab_weekdays_mean_what_cron_means(field: str, expected: str) -> None:
    assert cron_weekdays(field) == expected


@pytest.mark.parametrize("bad", ["8", "5-1", "x", "1/0"])
def test_bad_weekdays_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        cron_weekdays(bad)


def test_monday_is_monday() -> None:
    # APScheduler's own from_crontab would read "1" as Tuesday
    fire = cron_trigger("0 9 * * 1", TZ).get_next_fire_time(None, SUNDAY)
    assert fire == datetime(2026, 11, 23, 9, 0, tzinfo=TZ) and fire.strftime("%a") == "Mon"
    fire = cron_trigger("*/10 8-23 * * 1-5", TZ).get_next_fire_time(None, datetime(2026, 11, 23, 23, 55, tzinfo=TZ))
    assert fire == datetime(2026, 11, 24, 8, 0, tzinfo=TZ)


def test_bad_crons_name_the_key_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config(tmp_path, schedule='check_cron = "*/10 8-23 * *"\ndigest_cron = "0 25 * * *"')
    text = str(err.value)
    assert "schedule.check_cron" in text and "schedule.digest_cron" in text and "cron 格式无效" in text


def test_intervals_crons_and_per_shop_overrides(tmp_path: Path) -> None:
    cfg = config(tmp_path, schedule='check_interval = "5m"\njitter = "30s"', shop='check_cron = "0 * * * *"')
    a, b = cfg.shops
    ta, tb = check_trigger(cfg, a, TZ), check_trigger(cfg, b, TZ)
    assert isinstance(ta, CronTrigger) and ta.jitter == 30
    assert isinstance(tb, IntervalTrigger) and tb.interval == timedelta(minutes=5) and tb.jitter == 30
    assert cfg.schedule.interval_of(a) == 0 and cfg.schedule.interval_of(b) == 300
    cfg = config(tmp_path, schedule='check_cron = "*/15 * * * *"', shop='check_interval = "2m"')
    a, b = cfg.shops
    assert isinstance(check_trigger(cfg, a, TZ), IntervalTrigger) and cfg.schedule.interval_of(a) == 120
    assert isinstance(check_trigger(cfg, b, TZ), CronTrigger) and cfg.schedule.cron_of(b) == "*/15 * * * *"


def test_a_shop_is_stale_after_two_missed_checks(tmp_path: Path) -> None:
    cfg = config(tmp_path, schedule='check_interval = "10m"\njitter = "60s"')
    ref = datetime(2026, 11, 22, 9, 0, tzinfo=TZ)
    assert stale_after(cfg, cfg.shops[0], ref) == ref + timedelta(minutes=21)
    # a cron with a night gap: not stale over night, but two runs after the evening's last one
    cfg = config(tmp_path, schedule='check_cron = "*/10 8-22 * * *"\njitter = "0"')
    evening = datetime(2026, 11, 22, 22, 50, tzinfo=TZ)
    assert stale_after(cfg, cfg.shops[0], evening) == datetime(2026, 11, 23, 8, 10, tzinfo=TZ)


def test_a_stalled_loop_runs_a_missed_job_once_not_n_times() -> None:
    runs: list[float] = []

    async def main() -> None:
        sched = make_scheduler(TZ)
        sched.add_job(lambda: runs.append(time.monotonic()), "interval", seconds=0.2, id="tick")
        sched.start()
        await asyncio.sleep(0.5)
        before = len(runs)
        time.sleep(1.5)  # the host stalls: ~7 runs are missed
        await asyncio.sleep(0.3)
        after_stall = len(runs) - before
        sched.shutdown(wait=False)
        assert 1 <= after_stall <= 3, runs  # the missed runs coalesce into one, then the schedule goes on
        assert before >= 1

    run_async(main())


def test_skipped_checks_are_summarised_not_logged_per_shop(tmp_path: Path) -> None:
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
    from loguru import logger

    from agent.outbox.store import Store
    from agent.service.scheduler import Service

    cfg = config(tmp_path)
    store = Store(tmp_path / "agent.db")
    service = Service(cfg, store, pool=None, sel={}, notifiers={})  # type: ignore[arg-type]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        for job in ("check:甲", "check:乙", "dispatch", "check:甲"):
            service._skipped(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, job, "default", []))
    finally:
        logger.remove(sink)
        store.close()
    assert len(lines) == 1 and "checks are not keeping up: 1 scheduled check(s) skipped" in lines[0]
    assert "max_concurrent_checks = 100, max_pages = 2" in lines[0]
    assert service.skipped == 2  # reported again in 10 minutes


def test_a_schedule_the_limits_cannot_keep_is_warned_about(tmp_path: Path) -> None:
    from agent.service.capacity import capacity, capacity_lines, capacity_warnings

    shops = "".join(f'[[shops]]\nname = "店{n}"\nusername = "店{n}"\n' for n in range(200))
    (tmp_path / "config.toml").write_text(shops + '[schedule]\ncheck_interval = "60s"\n', encoding="utf-8")
    config = load_config(tmp_path / "config.toml")
    # 10 requests/s by default (aimed at 9); a check makes 3 + 投诉预警 + (counters, two cards) once in 30 min:
    # 4.1 requests at a 60-s interval, and the budget bounds the round; at start-up the repeated reads wait
    c = capacity(config)
    assert c.bound_by == "budget" and round(c.round_seconds) == 91 and c.holds == 131 and c.requests == 4.1
    assert round(c.startup_seconds) == 89
    [warning] = capacity_warnings(config)
    assert "a round of 200 shops takes about 91 s" in warning and "holds about 131 shops" in warning
    (tmp_path / "config.toml").write_text(shops + '[agent]\nmax_requests_per_second = 50\n'
                                          '[schedule]\ncheck_interval = "60s"\n', encoding="utf-8")
    config = load_config(tmp_path / "config.toml")
    assert capacity_warnings(config) == [] and round(capacity(config).round_seconds) == 18
    assert "the 60 s interval holds about 658 warm shops" in capacity_lines(config)[0]
    (tmp_path / "config.toml").write_text(shops + '[agent]\nmax_requests_per_second = 500\n'
                                          '[browser]\nmax_concurrent_checks = 4\n', encoding="utf-8")
    c = capacity(load_config(tmp_path / "config.toml"))  # few request slots: they bound it (4.5 s × 200 / 4)
    assert c.bound_by == "checks" and round(c.round_seconds) == 225 and c.fits  # the 10-min default holds it


def test_the_digest_job_queues_one_digest_per_shop_and_channel(tmp_path: Path) -> None:
    from agent.outbox.store import Store
    from agent.service.scheduler import Service

    text = """
[[shops]]
name = "甲"
username = "甲"
[[shops]]
name = "乙"
username = "乙"
enabled = false
[alerts]
notify = ["ops", "mail"]
[notifiers.ops]
type = "wecom"
webhook_url = "http://127.0.0.1:9/cgi-bin/webhook/send?key=k"
[notifiers.mail]
type = "email"
host = "127.0.0.1"
from = "a@b.c"
to = ["d@e.f"]
"""
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml")
    store = Store(tmp_path / "agent.db")
    service = Service(cfg, store, pool=None, sel={}, notifiers={})  # type: ignore[arg-type]
    service.stopping = True  # no dispatch kicked: only the queueing is looked at
    try:
        run_async(service.digest())
        run_async(service.digest())  # the same day again: nothing new
        rows = store.rows()
    finally:
        store.close()
    assert sorted((r["shop"], r["channel"]) for r in rows) == [("甲", "mail"), ("甲", "ops")]
    assert all(":digest:" in r["dedup_key"] for r in rows)


async def checked_and_booked(service: Service, cfg: Config, later: datetime,
                             rounds: int = 1) -> list[dict[str, datetime]]:
    """Each round: every shop's check job booked at `later`, every shop checked once by `service.check_shop`,
    then when each job runs next (by job id)."""
    service.scheduler.start(paused=True)
    out = []
    try:
        for _ in range(rounds):
            for shop in cfg.shops:
                service.scheduler.add_job(lambda: None, check_trigger(cfg, shop, TZ), id=f"check:{shop.name}",
                                          next_run_time=later, replace_existing=True)
            for shop in cfg.shops:
                await service.check_shop(shop.name)
            out.append({j.id: j.next_run_time for j in service.scheduler.get_jobs()})
    finally:
        service.scheduler.shutdown(wait=False)
    return out


def test_an_interval_shop_is_booked_one_interval_after_its_check_began(tmp_path: Path) -> None:
    import random

    from agent.core.models import ShopResult
    from agent.outbox.store import Store
    from agent.service.triggers import next_check_at

    cfg = config(tmp_path, schedule='check_interval = "10m"\njitter = "10s"', shop='check_cron = "0 * * * *"')
    cron_shop, interval_shop = cfg.shops
    began = datetime(2026, 11, 22, 9, 1, 20, tzinfo=TZ)
    at = next_check_at(cfg, interval_shop, began, random.Random(1))
    assert at is not None and began + timedelta(minutes=10) <= at <= began + timedelta(minutes=10, seconds=10)
    assert next_check_at(cfg, cron_shop, began) is None  # a cron keeps its clock times

    store = Store(tmp_path / "agent.db")
    service = Service(cfg, store, pool=None, sel={}, notifiers={})  # type: ignore[arg-type]

    class Pipeline:  # 乙 began 80 s ago, worked 60 s (the budget's turns); the backend runs 2 h ahead
        async def check(self, shops: list[object]) -> list[ShopResult]:
            return [ShopResult(name=s.name, checked_at=datetime.now(TZ) + timedelta(hours=2),  # type: ignore
                               began=time.time() - 80, duration=60.0) for s in shops]  # 20 s to record it

    service.pipeline = Pipeline()  # type: ignore[assignment]
    later = datetime.now(TZ) + timedelta(hours=3)

    try:
        [booked] = run_async(checked_and_booked(service, cfg, later))
    finally:
        store.close()
    assert booked["check:甲"] == later  # the cron shop: untouched
    wait = (booked["check:乙"] - datetime.now(TZ)).total_seconds()
    assert 600 - 80 - 5 <= wait <= 600 - 80 + 10 + 1, wait  # one interval (+ jitter) after its check began,
    # by our clock: the backend's time (checked_at) would book it two hours late


def test_a_crowded_round_is_spread_over_the_interval_never_later(tmp_path: Path) -> None:
    """Start-up: 1,000 shops begin as fast as a 45 req/s budget lets them (15 a second). Booked from their starts
    alone, the next round keeps that cadence and no slack; spread, it comes earlier, never later, and thinner."""
    import random
    from collections import Counter

    from agent.service.triggers import next_check_at

    cfg = config(tmp_path, schedule='check_interval = "10m"\njitter = "10s"')
    shop, rng, t0 = cfg.shops[0], random.Random(7), datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
    starts = [t0 + timedelta(seconds=i / 15) for i in range(1000)]

    def densest(times: list[datetime]) -> int:
        return max(Counter(int((t - t0).total_seconds()) for t in times).values())

    kept = [next_check_at(cfg, shop, b, rng) for b in starts]
    spread = [next_check_at(cfg, shop, b, rng, spread=True) for b in starts]
    assert all(a is not None for a in kept + spread)
    for b, a, k in zip(starts, spread, kept, strict=True):  # 0.5 s of the jitter left for the check to begin
        assert a is not None and b + timedelta(seconds=300) <= a <= b + timedelta(seconds=609.5)
        assert k is not None and b + timedelta(seconds=600) <= k <= b + timedelta(seconds=609.5)
    assert densest(kept) >= 12  # the crowd's cadence again: the budget is the limit once more
    assert densest(spread) <= 9 and densest(spread) < densest(kept) / 1.5  # ≈ 2.6 a second on average


@pytest.mark.parametrize(("agent", "earliest"), [("", 300 - 5), ("max_requests_per_second = 0.01", 600 - 5)])
def test_a_crowded_check_comes_back_earlier_where_twice_the_load_fits(tmp_path: Path, agent: str,
                                                                     earliest: float) -> None:
    """A check that began in a crowded host is booked up to half an interval earlier, unless the schedule could
    not take the extra load (a round longer than half the interval: then every round would be crowded again)."""
    from agent.core.models import ShopResult
    from agent.outbox.store import Store

    cfg = config(tmp_path, schedule=f'check_interval = "10m"\njitter = "10s"\n[agent]\n{agent}')
    store = Store(tmp_path / "agent.db")
    service = Service(cfg, store, pool=None, sel={}, notifiers={})  # type: ignore[arg-type]
    assert service.spreads is (not agent)

    class Pipeline:
        async def check(self, shops: list[object]) -> list[ShopResult]:
            return [ShopResult(name=s.name, checked_at=datetime.now(TZ), began=time.time(),  # type: ignore
                               crowded=True) for s in shops]

    service.pipeline = Pipeline()  # type: ignore[assignment]

    try:
        rounds = run_async(checked_and_booked(service, cfg, datetime.now(TZ) + timedelta(hours=3), rounds=40))
    finally:
        store.close()
    waits = [(at - datetime.now(TZ)).total_seconds() for booked in rounds for at in booked.values()]
    assert all(earliest <= w <= 610 + 1 for w in waits), (min(waits), max(waits))
    if not agent:
        assert min(waits) < 450  # really earlier, not just allowed to be
