"""A check's watch cards (投诉预警, 买家催处理, 平台处理中): read by request after the deadline lists."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from loguru import logger
from playwright.async_api import BrowserContext

from agent.browser.api_reader import ApiReader
from agent.browser.plan import card_body, default_body
from agent.browser.reader import ListRead, ReadOptions, Requester
from agent.browser.session import ShopSession
from agent.config import Config, ShopConfig
from agent.config.durations import seconds
from agent.core import losses, money, parsers
from agent.core.models import CheckFailure, Finding, ShopResult

# watch role (selectors [watch] key) → the [watch] config item that needs it
NEEDED_BY = {"complaint": ("complaints",), "urged": ("urged",), "platform": ("platform",)}
EVERY_CHECK = frozenset({"complaint"})  # 投诉预警 must be told at once: read on every check while it shows items
# per shop, per watch card: (the queryCount count it was read at, when, what it listed)
WatchCache = dict[str, tuple[int, float, ListRead]]


def watch_bodies(lists: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The queryList body per watch card, from selectors/ alone (the card's quickSearchType, high)."""
    return {role: card_body(lists, label) for role, label in lists.get("watch", {}).items()}


def wanted(lists: Mapping[str, Any], counts: Mapping[str, Any], watching: Collection[str]) -> list[str]:
    """The watch cards to read: needed by a [watch] item that is on, and showing items on queryCount (a card
    whose count the check did not see is read anyway)."""
    out = []
    for role, label in lists.get("watch", {}).items():
        if not any(w in watching for w in NEEDED_BY.get(role, ())):
            continue
        n = counts.get(lists["count_keys"].get(label, ""))
        if n is None or (isinstance(n, int) and n > 0):
            out.append(role)
    return out


async def read_watch(
    context: BrowserContext | Requester, base_url: str, sel: Mapping[str, Any], options: ReadOptions,
    counts: Mapping[str, Any], watching: Collection[str], shop: str,
    cache: WatchCache | None = None, refresh_seconds: float = 0.0, defer: Callable[[str], bool] | None = None,
) -> tuple[dict[str, ListRead], list[Finding]]:
    """The watch cards' lists through the context's requests; a failure is a finding, never the check's end
    (the deadline lists were read: their alerts must not wait for a watch card). With a `cache`, 买家催处理 and
    平台处理中 are read again only when their queryCount count changed or `refresh_seconds` went by (their
    notices are not urgent; fewer requests at the backend), and `defer` may put them off while the host is busy;
    投诉预警 is read on every check."""
    lists = sel["aftersale_list"]
    bodies = watch_bodies(lists)
    roles = wanted(lists, counts, watching)
    if cache is not None:
        for gone in set(cache) - set(roles):
            del cache[gone]
    if not roles:
        return {}, []
    reader = ApiReader(context, base_url, sel, options)
    out: dict[str, ListRead] = {}
    now = time.monotonic()
    try:
        for role in roles:
            n = counts.get(lists["count_keys"].get(lists["watch"][role], ""))
            kept = cache.get(role) if cache is not None else None
            if (kept is not None and role not in EVERY_CHECK and isinstance(n, int) and kept[0] == n
                    and now - kept[1] < refresh_seconds):
                out[role] = kept[2]
                continue
            if role not in EVERY_CHECK and defer is not None and defer(role):  # the host is busy: a later check
                if kept is not None:
                    out[role] = kept[2]
                continue
            out[role] = await reader.read_list(role, bodies[role])
            if cache is not None and isinstance(n, int):
                cache[role] = (n, now, out[role])
    except CheckFailure as exc:
        logger.warning("shop {}: watch card {} not read: {}", shop, role, exc)
        label = lists["watch"][role]
        return out, [Finding("watch_failed", f"「{label}」 not read ({exc}); its notices wait for the next check")]
    return out, []


def apply_watch(result: ShopResult, read: Mapping[str, ListRead], lists: Mapping[str, Any],
                reasons: list[str], tz: tzinfo) -> None:
    """Flags on the result's items from the watch cards and the reasons; the 平台处理中 items as `platform`."""
    def ids(role: str) -> set[str]:
        lr = read.get(role)
        return parsers.watch_ids(lr.rows, lists, f"queryList[{role}]") if lr else set()

    complaint, urged = ids("complaint"), ids("urged")
    result.aftersales = losses.mark(result.aftersales, complaint, urged, reasons)
    result.evidence = losses.mark(result.evidence, complaint, urged, reasons)
    platform = read.get("platform")
    if platform is not None:
        times = [datetime.fromtimestamp(t, tz) for t in platform.row_times]
        got = parsers.parse_platform(platform.rows, lists, times if len(times) == len(platform.rows)
                                     else result.checked_at)
        result.platform = losses.mark(got, complaint, urged, reasons)


def quality_reasons(config: Config, lists: Mapping[str, Any], watching: Collection[str]) -> list[str]:
    """The reasons that make a 品质退款风险 ([watch].quality_reasons, else selectors'); none when it is off."""
    if "quality" not in watching:
        return []
    return list(config.watch.quality_reasons or lists.get("quality", {}).get("reasons", ()))


async def watch_check(config: Config, sel: Mapping[str, Any], options: ReadOptions, tz: tzinfo, shop: ShopConfig,
                      context: BrowserContext | Requester, counts: Mapping[str, Any], result: ShopResult,
                      refunds: bool = False, cache: WatchCache | None = None,
                      defer: Callable[[str], bool] | None = None) -> None:
    """A check's watch cards by request, their flags on the result's items; with `refunds` (the `check`
    command) 退款成功 too, as `result.money`. What failed is a finding."""
    watching = config.watching(shop)
    if refunds and "money" in watching:
        try:
            got = await read_refunds(context, shop.base_url, sel, options, tz)
            result.money = money.money_json(got, (result.checked_at - timedelta(days=1)).date(), tz)
        except CheckFailure as exc:
            result.findings.append(Finding("refunds_failed", f"退款成功 not read: {exc}"))
    read, found = await read_watch(context, shop.base_url, sel, options, counts, watching, shop.name, cache,
                                   seconds(config.watch.refresh), defer)
    result.findings += found
    lists = sel["aftersale_list"]
    try:
        apply_watch(result, read, lists, quality_reasons(config, lists, watching), tz)
    except CheckFailure as exc:
        result.findings.append(Finding("watch_failed", f"watch cards not understood: {exc.detail}"))


def refunds_body(lists: Mapping[str, Any]) -> dict[str, Any]:
    """queryList's body for 退款成功: the page's default without a card, the status filter set."""
    req, r = lists["request"], lists["refunds"]
    body = {k: v for k, v in default_body(lists).items() if k != req["quick_search_type"]}
    body[r["status_field"]] = [r["refunded_status"]]
    return body


async def read_refunds(context: BrowserContext | Requester, base_url: str, sel: Mapping[str, Any], options: ReadOptions,
                       tz: tzinfo) -> list[money.Refund]:
    """The newest 退款成功 rows (selectors [refunds].max_pages pages) as refunds; failures raise CheckFailure."""
    lists = sel["aftersale_list"]
    read = await ApiReader(context, base_url, sel, options).read_list(
        "refunds", refunds_body(lists), max_pages=int(lists["refunds"]["max_pages"]))
    return money.parse_refunds(read.rows, lists, tz)


async def session_refunds(session: ShopSession, base_url: str, sel: Mapping[str, Any], options: ReadOptions,
                          tz: tzinfo) -> list[money.Refund]:
    """退款成功 through the shop's saved session by plain HTTP (no browser context; cookies saved back)."""
    http = await session.requests()
    got = await read_refunds(http, base_url, sel, options, tz)
    await http.save()
    return got
