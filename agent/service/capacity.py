"""How many shops the schedule can hold: a round's length from the two limits, the request budget and the pacing."""

from __future__ import annotations

from dataclasses import dataclass

from agent.browser.budget import AIM
from agent.config import Config
from agent.config.durations import seconds

BASE_REQUESTS = 3  # a warm check: queryCount and the two deadline lists (one page each)
LATENCY = 0.5  # seconds of answers per check, about


@dataclass(frozen=True, slots=True)
class Capacity:
    shops: int  # enabled
    per_check: float  # seconds one warm check takes (mostly its paced pauses)
    requests: float  # backend requests of a routine warm check, at most (watch cards showing items)
    round_seconds: float  # every enabled shop checked once, in routine
    startup_seconds: float  # the first round after start-up: the non-urgent reads wait while the budget is busy
    bound_by: str  # "budget" or "checks": which limit sets the round
    interval: float | None  # the shortest check interval (None: cron only)
    holds: int | None  # how many warm shops that interval can hold

    @property
    def fits(self) -> bool:
        return self.interval is None or self.round_seconds <= self.interval


def requests_per_check(watching: frozenset[str], interval: float | None, refresh: float) -> tuple[float, float]:
    """(routine, first round) requests of a warm check in the service: queryCount and the two deadline lists,
    投诉预警 on every check while it shows items, the 「售后数据」 counters, 买家催处理 and 平台处理中 again after
    `refresh` (the cards also on a count change); at start-up those three wait (budget.Deferrals)."""
    complaint = 1.0 if "complaints" in watching else 0.0
    share = min(1.0, (interval or refresh) / refresh) if refresh > 0 else 1.0
    repeated = 1 + sum(1 for w in ("urged", "platform") if w in watching)
    return BASE_REQUESTS + complaint + share * repeated, BASE_REQUESTS + complaint


def capacity(config: Config) -> Capacity:
    enabled = [s for s in config.shops if s.enabled]
    intervals = [config.schedule.interval_of(s) for s in enabled if config.schedule.interval_of(s)]
    interval = min(intervals) if intervals else None
    rate = config.agent.max_requests_per_second * AIM
    refresh = seconds(config.watch.refresh)
    routine, first = [0.0], [0.0]
    for shop in enabled:
        r, f = requests_per_check(config.watching(shop), interval, refresh)
        routine.append(r)
        first.append(f)
    per_request = max(routine) if enabled else float(BASE_REQUESTS)
    per_check = (per_request - 1) * config.agent.pacing_seconds + LATENCY
    by_checks = per_check / config.browser.max_concurrent_checks  # seconds of the request lane per check
    by_budget = per_request / rate  # seconds of budget per check
    per_shop = max(by_budget, by_checks)
    return Capacity(
        shops=len(enabled), per_check=per_check, requests=per_request,
        round_seconds=max(per_check, max(sum(routine) / rate, len(enabled) * by_checks)),
        startup_seconds=max(per_check, max(sum(first) / rate, len(enabled) * by_checks)),
        bound_by="budget" if by_budget >= by_checks else "checks", interval=interval,
        holds=int(interval / per_shop) if interval else None,
    )


def capacity_status_lines(config: Config) -> list[str]:
    """What `status` says of the schedule, for the operator: Chinese first, like the rest of `status`."""
    c = capacity(config)
    limit = (f"[agent] max_requests_per_second = {config.agent.max_requests_per_second:g}" if c.bound_by == "budget"
             else f"[browser] max_concurrent_checks = {config.browser.max_concurrent_checks}")
    line = f"检查容量：{c.shops} 家店铺一轮约 {c.round_seconds:.0f} 秒，启动后首轮约 {c.startup_seconds:.0f} 秒"
    if c.interval is not None:
        line += f"，检查间隔 {c.interval:.0f} 秒最多约 {c.holds} 家"
    out = [f"{line}（受 {limit} 限制）"]
    if not c.fits:
        out.append(f"  注意：一轮比最短检查间隔（{c.interval:.0f} 秒）长，检查会延迟；可调大 [schedule] "
                   "check_interval、[agent] max_requests_per_second 或 [browser] max_concurrent_checks")
    return out


def capacity_lines(config: Config) -> list[str]:
    """What start-up logs of the schedule (English, then Chinese)."""
    c = capacity(config)
    limit = (f"[agent] max_requests_per_second = {config.agent.max_requests_per_second:g}" if c.bound_by == "budget"
             else f"[browser] max_concurrent_checks = {config.browser.max_concurrent_checks}")
    line = (f"capacity: {c.shops} shop(s), a warm check ≈ {c.per_check:.1f} s and ≤ {c.requests:.1f} requests, "
            f"a round ≈ {c.round_seconds:.0f} s, the first after start-up ≈ {c.startup_seconds:.0f} s "
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
