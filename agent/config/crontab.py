"""Standard 5-field crontab expressions (Sunday = 0) as APScheduler triggers; ValueError when one is not."""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

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
