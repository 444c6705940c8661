"""From a shop's check result to queued alerts: rules, channel routing, one store transaction per check."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config, ShopConfig
from agent.config.durations import parse_duration
from agent.core import losses, notices
from agent.core.claims import LOCAL_MEMBER, TeamRules, annotate, gate, holder
from agent.core.models import Item, ShopResult
from agent.core.money import Refund, money_json
from agent.core.rules import Alert, ItemState, RulesConfig, evaluate, health_alerts, health_memory
from agent.outbox.store import Fence, Store
from agent.outbox.team_store import Team

# closed items (with their claims and timeline) are remembered this long: late 1028s, the digest's week, the team
# page's 历史 of 30 days
KEEP_CLOSED = timedelta(days=31)


def rules_config(config: Config) -> RulesConfig:
    a = config.alerts
    return RulesConfig(
        aftersale_before=tuple(map(parse_duration, a.aftersale_before)),
        evidence_before=tuple(map(parse_duration, a.evidence_before)), confirm_handled=a.confirm_handled,
        health_cooldown=parse_duration(a.health_cooldown), failure_threshold=a.failure_threshold,
    )


def team_rules(config: Config) -> TeamRules:
    t = config.team
    return TeamRules(quiet_until=parse_duration(t.claimed_quiet_until),
                     evidence_quiet_until=parse_duration(t.evidence_claimed_quiet_until),
                     ttl=parse_duration(t.claim_ttl), members=frozenset(
                         [*(m.name for m in t.members), *([LOCAL_MEMBER] if config.web.open_on_loopback else [])]))


Line = tuple[str, str, str, str, str]  # (kind, item_id, actor, action, detail): a timeline line


def apply_claims(config: Config, store: Store, shop: str, alerts: list[Alert], previous: dict[Any, ItemState],
                 states: list[ItemState], ours: float) -> tuple[list[Alert], list[Line]]:
    """The team's holds on this check's alerts (`core.claims.gate`): quiet stages dropped (a timeline line says
    so), claimed ones carrying the holder, the @ and the latest note; and a timeline line per item closed now."""
    team = Team(store)
    claims = team.claims(shop)
    if not claims and not any(s.closed for s in states):
        return alerts, []
    rules, tz = team_rules(config), ZoneInfo(config.agent.timezone)
    out: list[Alert] = []
    lines: list[Line] = []
    held = {k: c for k, c in claims.items() if c.member or c.done_by}
    notes = team.latest_notes(held) if held else {}
    for a in alerts:
        c = claims.get((shop, a.item.kind, a.item.id)) if a.item is not None else None
        decision = gate(a, c, ours, rules)
        if decision == "quiet" and a.item is not None:
            who = (c.member or c.done_by or "") if c else ""
            lines.append((a.item.kind, a.item.id, "系统", "stage_quiet", f"{a.event}:{who}"))
            continue
        if c is not None and decision in ("claimed", "done_last"):
            m = config.team.member(c.member or c.done_by or "")
            a = annotate(a, c, decision, tz, m.mobile if m else "", notes.get((shop, c.kind, c.item_id), ""),
                         m.feishu_open_id if m else "")
        out.append(a)
    for st in states:
        before = previous.get((st.kind, st.item_id))
        if not st.closed or (before is not None and before.closed):
            continue
        lines.append((st.kind, st.item_id, "系统", "closed", st.outcome))
        c = claims.get((shop, st.kind, st.item_id))
        who = holder(c, ours, rules, st.deadline.timestamp()) if c else None
        who = who or (c.done_by if c else None)
        if who and st.outcome == "handled":
            lines.append((st.kind, st.item_id, who, "closed_by", st.outcome))
    return out, lines


def channels(config: Config, shop: ShopConfig, alert: Alert) -> tuple[str, ...]:
    """Item alerts go to the shop's channels, the last stage to every channel (admins too); health to admins;
    the [watch] notices where [watch] routes them (else the shop's channels)."""
    own = config.channels_for(shop)
    admins = config.alerts.admin_notify or own
    if alert.kind == "health":
        return admins
    if alert.kind in losses.WATCH_OF:
        return config.watch_channels(shop, losses.WATCH_OF[alert.kind])
    if alert.is_last_stage:
        return tuple(dict.fromkeys((*own, *admins)))
    return own


def payload(alert: Alert, qr_png: bytes | None) -> dict[str, Any]:
    data = alert.to_dict()
    if alert.attach_qr and qr_png:
        data["qr_png_b64"] = base64.b64encode(qr_png).decode("ascii")
    return data


def record_result(
    config: Config, store: Store, shop: ShopConfig, result: ShopResult, now: datetime, qr_png: bytes | None = None,
    queued_at: float | None = None, fence: Fence | None = None,
) -> list[Alert]:
    """Evaluate a check and queue its alerts. Item states change only when the shop was read.

    `now` must be in the backend's time (the check's `checked_at` for a read shop) so stages match deadlines.
    `fence` (several nodes) runs first inside the commit's transaction and refuses a check whose lease another
    node took over: then nothing of it is written.
    """
    cfg = rules_config(config)
    health = store.shop_health(shop.name)
    active = {k: datetime.fromtimestamp(v, now.tzinfo) for k, v in health.health.items()}
    alerts: list[Alert] = []
    states: list[ItemState] = []
    lines: list[Line] = []
    counters = losses.CounterMemory.from_dict(health.counters)
    if result.ok:
        previous = {k: ItemState.from_dict(v) for k, v in store.load_items(shop.name).items()}
        closed_1028 = [i.id for i in result.aftersales if 1028 in i.actions]
        alerts, states = evaluate(shop.name, result.aftersales, result.evidence, previous, cfg, now, closed_1028)
        watching = config.watching(shop)
        alerts += losses.item_notices(shop.name, result.aftersales, result.evidence, result.platform, previous,
                                      {(s.kind, s.item_id): s for s in states}, watching, now)
        found_counters, counters = losses.counter_notices(shop.name, result.counters, counters, watching,
                                                          parse_duration(config.watch.cooldown), now,
                                                          sum(a.kind == "auto_refunded" for a in alerts))
        alerts += found_counters
        alerts, lines = apply_claims(config, store, shop.name, alerts, previous, states,
                                     now.timestamp() if queued_at is None else queued_at)
    failures = 0 if result.ok else health.consecutive_failures + 1
    found = health_alerts(shop.name, result.state, result.error or "", failures, active, cfg, now,
                          qr_png_available=qr_png is not None)
    alerts += found
    memory = health_memory(active, result.state, found)
    if result.ok:
        def shape(items: Any) -> set[tuple[Any, ...]]:
            return {(s.kind, s.item_id, s.deadline, s.last_stage, s.closed, s.urged) for s in items}
        result.changed = bool(alerts) or shape(previous.values()) != shape(states)
    rows = [(a.key, ch, payload(a, qr_png)) for a in alerts for ch in channels(config, shop, a)]
    check = (result.ok, result.state.value, result.error, {k: v.timestamp() for k, v in memory.items()})
    store.commit_check(shop.name, [s.to_dict() for s in states], rows, now.timestamp(),
                       drop_closed_before=(now - KEEP_CLOSED).timestamp(), check=check, queued_at=queued_at,
                       counters=counters.to_dict(), events=lines, fence=fence)
    return alerts


def queue_new_qr(config: Config, store: Store, shop: ShopConfig, png: bytes, now: datetime) -> int:
    """The shop's login QR was renewed on the page (the one pushed before expired): push the new image."""
    alert = notices.qr_renewed(shop.name, now)
    rows = [(alert.key, ch, shop.name, payload(alert, png)) for ch in channels(config, shop, alert)]
    return store.enqueue(rows, now.timestamp())


def _open_items(states: list[ItemState], now: datetime) -> tuple[list[Item], list[Item]]:
    """The items still waiting, from the stored states (as the last check saw them)."""
    items = [s.as_item(now) for s in states if not s.closed]
    return [i for i in items if i.kind == "aftersale"], [i for i in items if i.kind == "evidence"]


def team_digest(config: Config, store: Store, shop: str, states: list[ItemState], now: datetime,
                tz: ZoneInfo) -> dict[str, Any]:
    """The digest's team lines: what each member handled yesterday (marked done or held when PDD closed it), and
    who holds which open item now."""
    local = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = (local - timedelta(days=1)).timestamp(), local.timestamp()
    team = Team(store)
    rules, ours = team_rules(config), now.timestamp()
    claimed = {}
    for (_, kind, item_id), c in team.claims(shop).items():
        st = next((s for s in states if s.kind == kind and s.item_id == item_id and not s.closed), None)
        who = holder(c, ours, rules, st.deadline.timestamp()) if st else None
        if who:
            claimed[item_id] = who
    return {"handled": team.handled_by(shop, start, end), "claimed": claimed}


def quality_week(states: list[ItemState], now: datetime, refunded_sns: set[str]) -> dict[str, int]:
    """The week's quality-related requests (first seen in the last 7 days) and how many ended as refunds (an
    automatic refund, or on the 退款成功 list)."""
    week = [s for s in states if s.quality and s.first_seen and now - s.first_seen <= timedelta(days=7)]
    refunded = {s.order_sn for s in week if s.outcome == "auto_refunded" or s.order_sn in refunded_sns}
    return {"count": len({s.order_sn for s in week}), "refunded": len(refunded)}


def queue_digest(config: Config, store: Store, shop: ShopConfig, now: datetime, queued_at: float | None = None,
                 refunds: list[Refund] | str | None = None) -> int:
    """Queue the shop's daily digest (once per local day and channel): the open items and yesterday's losses
    as the store has them now; dispatch renders it for each channel like any alert. `refunds`: the shop's
    退款成功 rows as read just now (or why they could not be read) for the money section ([watch].money);
    with [watch].money_notify that section goes to those channels on its own."""
    tz = ZoneInfo(config.agent.timezone)
    states = [ItemState.from_dict(v) for v in store.load_items(shop.name).values()]
    after, proof = _open_items(states, now)
    yesterday = (now.astimezone(tz) - timedelta(days=1)).date()
    missed = [s for s in states
              if s.closed and s.outcome == "auto_refunded" and s.deadline.astimezone(tz).date() == yesterday]
    day = now.astimezone(tz).date().isoformat()
    key = f"{shop.name}:digest:{day}"
    watching = config.watching(shop)
    money: dict[str, Any] | None = None
    if "money" in watching and refunds is not None:
        money = {"error": refunds} if isinstance(refunds, str) else money_json(refunds, yesterday, tz)
    sns = set() if refunds is None or isinstance(refunds, str) else {r.order_sn for r in refunds}
    data: dict[str, Any] = {"digest": {
        "day": day, "aftersales": [i.to_json() for i in after], "evidence": [i.to_json() for i in proof],
        "missed": [s.as_item(now).to_json() for s in missed],
        "quality": quality_week(states, now, sns) if "quality" in watching else None,
        "team": team_digest(config, store, shop.name, states, now, tz) if config.team.members else None}}
    at = now.timestamp() if queued_at is None else queued_at
    apart = config.watch.money_notify if money is not None else ()
    data["digest"]["money"] = None if apart else money
    rows = [(key, ch, shop.name, data) for ch in config.channels_for(shop)]
    if apart:
        alone = {"digest": {**data["digest"], "money": money, "only_money": True}}
        rows += [(f"{shop.name}:money:{day}", ch, shop.name, alone) for ch in apart]
    return store.enqueue(rows, at)
