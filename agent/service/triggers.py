"""APScheduler triggers from [schedule]: standard cron (Sunday = 0), intervals with jitter, and staleness."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.config.schema import Config, ShopConfig, seconds

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day(token: str) -> int:
    token = token.strip().lower()
    if token[:3] in _DAYS and not token.isdigit():
        return _DAYS.index(token[:3])
    value = int(token)  # ValueError for garbage
    if not 0 <= value <= 7:
        raise ValueError(f"day of week {token!r} is not 0-7")
    return value % 7


def cron_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday, names allowed) as APScheduler's (names, Monday first).

    APScheduler 3 counts 0 = Monday, so "1-5" passed through unchanged would mean Tuesday to Saturday.
    """
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in {part!r}")
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            lo, hi = _day(a), _day(b)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise ValueError(f"range {base!r} runs backwards")
        else:
            lo = hi = _day(base)
            if step_text:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_DAYS[d] for d in sorted(days))


def cron_trigger(expr: str, tz: tzinfo | str, jitter: float = 0) -> CronTrigger:
    """A 5-field crontab expression ("*/10 8-23 * * 1-5") as a trigger; ValueError when it is not one."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=cron_weekdays(weekday),
                       timezone=tz, jitter=int(jitter) or None)


def check_trigger(config: Config, shop: ShopConfig, tz: tzinfo) -> BaseTrigger:
    """When `shop` is checked: its own interval or cron, else [schedule]'s."""
    spread = seconds(config.schedule.jitter)
    cron = config.schedule.cron_of(shop)
    if cron:
        return cron_trigger(cron, tz, spread)
    return IntervalTrigger(seconds=config.schedule.interval_of(shop), timezone=tz, jitter=int(spread) or None)


def stale_after(config: Config, shop: ShopConfig, ref: datetime) -> datetime:
    """When `shop` counts as not read for too long, given its last read (or the service start) at `ref`:
    two scheduled checks later, plus the jitter either may have been delayed by."""
    spread = timedelta(seconds=seconds(config.schedule.jitter))
    interval = config.schedule.interval_of(shop)
    if interval:
        return ref + timedelta(seconds=2 * interval) + spread
    trigger = cron_trigger(config.schedule.cron_of(shop), ref.tzinfo or "UTC")
    first = trigger.get_next_fire_time(None, ref + timedelta(seconds=1))
    second = trigger.get_next_fire_time(first, (first or ref) + timedelta(seconds=1)) if first else None
    if second is None:  # a cron that never fires again: never stale
        return datetime.max.replace(tzinfo=ref.tzinfo)
    return second + spread
