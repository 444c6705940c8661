"""How many shops the schedule can hold: a round's length from the two limits, the request budget and the pacing."""

from __future__ import annotations

from dataclasses import dataclass

from agent.browser.budget import AIM
from agent.config import Config

REQUESTS_PER_CHECK = 4  # a warm check: queryCount, queryWaitHandleCount, two lists (one page each)
PAUSES_PER_CHECK = 3  # paced pauses between them
LATENCY = 0.5  # seconds of answers per check, about


@dataclass(frozen=True, slots=True)
class Capacity:
    shops: int  # enabled
    per_check: float  # seconds one warm check takes (mostly its paced pauses)
    round_seconds: float  # every enabled shop checked once
    bound_by: str  # "budget" or "checks": which limit sets the round
    interval: float | None  # the shortest check interval (None: cron only)
    holds: int | None  # how many warm shops that interval can hold

    @property
    def fits(self) -> bool:
        return self.interval is None or self.round_seconds <= self.interval


def capacity(config: Config) -> Capacity:
    enabled = [s for s in config.shops if s.enabled]
    per_check = PAUSES_PER_CHECK * config.agent.pacing_seconds + LATENCY
    by_budget = REQUESTS_PER_CHECK / (config.agent.max_requests_per_second * AIM)  # seconds of budget per check
    by_checks = per_check / config.browser.max_concurrent_checks  # seconds of the request lane per check
    per_shop = max(by_budget, by_checks)
    intervals = [config.schedule.interval_of(s) for s in enabled if config.schedule.interval_of(s)]
    interval = min(intervals) if intervals else None
    return Capacity(
        shops=len(enabled), per_check=per_check, round_seconds=max(per_check, len(enabled) * per_shop),
        bound_by="budget" if by_budget >= by_checks else "checks", interval=interval,
        holds=int(interval / per_shop) if interval else None,
    )


def capacity_lines(config: Config) -> list[str]:
    """What start-up and `status` say of the schedule (English, then Chinese)."""
    c = capacity(config)
    limit = (f"[agent] max_requests_per_second = {config.agent.max_requests_per_second:g}" if c.bound_by == "budget"
             else f"[browser] max_concurrent_checks = {config.browser.max_concurrent_checks}")
    line = (f"capacity: {c.shops} shop(s), a warm check ≈ {c.per_check:.1f} s, a round ≈ {c.round_seconds:.0f} s "
            f"(bound by {limit}; page work: max_pages = {config.browser.pages})")
    if c.interval is not None:
        line += f"; the {c.interval:.0f} s interval holds about {c.holds} warm shops"
    zh = f"（检查容量：{c.shops} 家店铺一轮约 {c.round_seconds:.0f} 秒"
    zh += f"，检查间隔 {c.interval:.0f} 秒最多约 {c.holds} 家）" if c.interval is not None else "）"
    return [line + zh]


def capacity_warnings(config: Config) -> list[str]:
    """A schedule the limits cannot keep: checks would run late."""
    c = capacity(config)
    if c.fits:
        return []
    return [f"schedule: a round of {c.shops} shops takes about {c.round_seconds:.0f} s, longer than the shortest "
            f"check interval ({c.interval:.0f} s), which holds about {c.holds} shops: checks will run late; raise "
            "[schedule] check_interval, [agent] max_requests_per_second or [browser] max_concurrent_checks "
            "(店铺太多、检查间隔太短，检查会延迟)"]
