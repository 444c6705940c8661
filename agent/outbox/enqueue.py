"""From a shop's check result to queued alerts: rules, channel routing, one store transaction per check."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config, ShopConfig
from agent.config.durations import parse_duration
from agent.core import notices
from agent.core.models import Item, ShopResult
from agent.core.rules import Alert, ItemState, RulesConfig, evaluate, health_alerts, health_memory
from agent.outbox.store import Store

KEEP_CLOSED = timedelta(days=3)  # closed items are remembered this long (late 1028 confirmations)


def rules_config(config: Config) -> RulesConfig:
    a = config.alerts
    return RulesConfig(
        aftersale_before=tuple(map(parse_duration, a.aftersale_before)),
        evidence_before=tuple(map(parse_duration, a.evidence_before)), confirm_handled=a.confirm_handled,
        health_cooldown=parse_duration(a.health_cooldown), failure_threshold=a.failure_threshold,
    )


def channels(config: Config, shop: ShopConfig, alert: Alert) -> tuple[str, ...]:
    """Item alerts go to the shop's channels, the last stage to every channel (admins too); health to admins."""
    own = config.channels_for(shop)
    admins = config.alerts.admin_notify or own
    if alert.kind == "health":
        return admins
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
    queued_at: float | None = None,
) -> list[Alert]:
    """Evaluate a check and queue its alerts. Item states change only when the shop was read.

    `now` must be in the backend's time (the check's `checked_at` for a read shop) so stages match deadlines.
    """
    cfg = rules_config(config)
    health = store.shop_health(shop.name)
    active = {k: datetime.fromtimestamp(v, now.tzinfo) for k, v in health.health.items()}
    alerts: list[Alert] = []
    states: list[ItemState] = []
    if result.ok:
        previous = {k: ItemState.from_dict(v) for k, v in store.load_items(shop.name).items()}
        closed_1028 = [i.id for i in result.aftersales if 1028 in i.actions]
        alerts, states = evaluate(shop.name, result.aftersales, result.evidence, previous, cfg, now, closed_1028)
    failures = 0 if result.ok else health.consecutive_failures + 1
    found = health_alerts(shop.name, result.state, result.error or "", failures, active, cfg, now,
                          qr_png_available=qr_png is not None)
    alerts += found
    memory = health_memory(active, result.state, found)
    rows = [(a.key, ch, payload(a, qr_png)) for a in alerts for ch in channels(config, shop, a)]
    check = (result.ok, result.state.value, result.error, {k: v.timestamp() for k, v in memory.items()})
    store.commit_check(shop.name, [s.to_dict() for s in states], rows, now.timestamp(),
                       drop_closed_before=(now - KEEP_CLOSED).timestamp(), check=check, queued_at=queued_at)
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


def queue_digest(config: Config, store: Store, shop: ShopConfig, now: datetime, queued_at: float | None = None) -> int:
    """Queue the shop's daily digest (once per local day and channel): the open items and yesterday's losses
    as the store has them now; dispatch renders it for each channel like any alert."""
    tz = ZoneInfo(config.agent.timezone)
    states = [ItemState.from_dict(v) for v in store.load_items(shop.name).values()]
    after, proof = _open_items(states, now)
    yesterday = (now.astimezone(tz) - timedelta(days=1)).date()
    missed = [s for s in states
              if s.closed and s.outcome == "auto_refunded" and s.deadline.astimezone(tz).date() == yesterday]
    day = now.astimezone(tz).date().isoformat()
    key = f"{shop.name}:digest:{day}"
    data = {"digest": {"day": day, "aftersales": [i.to_json() for i in after], "evidence": [i.to_json() for i in proof],
                       "missed": [s.as_item(now).to_json() for s in missed]}}
    at = now.timestamp() if queued_at is None else queued_at
    return store.enqueue([(key, ch, shop.name, data) for ch in config.channels_for(shop)], at)
