"""APScheduler triggers of a shop's checks from [schedule] (its cron or interval with jitter), and staleness."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.config import Config, ShopConfig
from agent.config.crontab import cron_trigger
from agent.config.durations import seconds

FIRING_ALLOWANCE = 0.5  # s: a booked check begins a little after its time (the scheduler, a busy event loop)


def check_trigger(config: Config, shop: ShopConfig, tz: tzinfo) -> BaseTrigger:
    """When `shop` is checked: its own interval or cron, else [schedule]'s."""
    spread = seconds(config.schedule.jitter)
    cron = config.schedule.cron_of(shop)
    if cron:
        return cron_trigger(cron, tz, spread)
    return IntervalTrigger(seconds=config.schedule.interval_of(shop), timezone=tz, jitter=int(spread) or None)


def next_check_at(config: Config, shop: ShopConfig, began: datetime, rng: random.Random | None = None,
                  *, spread: bool = False) -> datetime | None:
    """An interval shop's next check, one interval (plus jitter) after this one really began: no shop waits longer
    than its interval for its turn. With `spread` (the check began in a crowded host, e.g. a start-up round whose
    shops fired at once and began as fast as the budget let them) it comes up to half an interval earlier, at
    random, so the next round is spread over the interval instead of keeping the crowd's cadence, which left no
    slack and made every later round wait for the budget again. The jitter drawn leaves FIRING_ALLOWANCE for the
    check to begin after its time, so it begins within interval + jitter. None for a cron shop."""
    interval = config.schedule.interval_of(shop)
    if config.schedule.cron_of(shop) or not interval:
        return None
    r, jitter = rng or random, seconds(config.schedule.jitter)
    earlier = r.uniform(0, interval / 2) if spread else 0.0
    late = r.uniform(0, jitter - min(FIRING_ALLOWANCE, jitter / 10))  # the check starts within the jitter
    return began + timedelta(seconds=interval - earlier + late)


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
