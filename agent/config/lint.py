"""Warnings about a valid config that will bite at run time (pure): a password variable not set, a channel nobody
uses, a shop routed nowhere, a digest that only ever fires in quiet hours, a shop logged in with its main account."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agent.config.crontab import cron_trigger
from agent.config.schema import Config
from agent.config.toml_lines import KeyPath

Lint = tuple[KeyPath, str]  # (key path, what will go wrong): the caller adds file and line


def lint(config: Config, environ: Mapping[str, str]) -> list[Lint]:
    out: list[Lint] = []
    for i, shop in enumerate(config.shops):
        if shop.password_env and not environ.get(shop.password_env):
            out.append((("shops", i, "password_env"), f"environment variable {shop.password_env} is not set: "
                        f"{shop.name} cannot log in by password (密码环境变量未设置，该店铺无法用密码登录)"))
        if shop.enabled and not config.channels_for(shop):
            out.append((("shops", i, "name"), f"{shop.name} is routed to no channel: set [alerts] notify or the "
                        "shop's notify (该店铺的提醒不会发给任何人)"))
        if ":" not in shop.username:
            out.append((("shops", i, "username"), f"{shop.name} logs in with a main account (主账号): give the "
                        "agent its own sub-account (子账号) with only the after-sales permissions, so no staff "
                        "member's login is pushed out by it (建议使用子账号)"))
    used = {*config.alerts.notify, *config.alerts.admin_notify,
            *(c for s in config.shops for c in s.notify), *(c for v in config.watch.routes().values() for c in v)}
    for name in config.notifiers:
        if name not in used:
            out.append((("notifiers", name), f"channel {name} is used by nothing: add it to [alerts] notify, "
                        "admin_notify or a shop's notify (该通知渠道没有被任何地方使用)"))
    digest = config.schedule.digest_cron
    if digest and config.alerts.quiet_hours and always_quiet(digest, config.alerts.quiet_hours, config.agent.zone):
        out.append((("schedule", "digest_cron"), f"the digest ({digest}) always falls in the quiet hours "
                    f"({config.alerts.quiet_hours}): it waits for their end every day (日报总在免打扰时段内)"))
    return out


def always_quiet(cron: str, quiet: str, tz: ZoneInfo, days: int = 7) -> bool:
    """Every firing of `cron` in the next `days` days falls inside the quiet hours "HH:MM-HH:MM"."""
    start_s, end_s = quiet.split("-")
    start, end = int(start_s[:2]) * 60 + int(start_s[3:]), int(end_s[:2]) * 60 + int(end_s[3:])
    trigger = cron_trigger(cron, tz)
    now = datetime(2026, 1, 5, tzinfo=tz)  # a Monday: a fixed week, the same answer every run
    fire = trigger.get_next_fire_time(None, now)
    while fire is not None and fire < now + timedelta(days=days):
        minute = fire.hour * 60 + fire.minute
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if not inside:
            return False
        fire = trigger.get_next_fire_time(fire, fire + timedelta(minutes=1))
    return True
