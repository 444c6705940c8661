"""Alert rules (pure): deadline stages per item, 已处理 / 自动退款 events, and shop-health alerts with cooldowns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.core.models import Item, ItemKind, ShopState

AlertKind = Literal["aftersale", "evidence", "handled", "auto_refunded", "health", "complaint", "urged", "quality",
                    "platform", "work_orders", "platform_refunds"]
Severity = Literal["info", "warning", "critical"]

LOGIN_STATES = frozenset({ShopState.SMS_REQUIRED, ShopState.CAPTCHA, ShopState.LOGIN_REQUIRED, ShopState.LOGIN_BLOCKED})
FAILING = "failing"  # the one cooldown bucket of transient failures (rate_limited, timeout, …): "the scraper is blind"
RECOVERED = "recovered"
# a deadline must move later by more than this (and out of the alerted stage) to count as a restarted clock
DEADLINE_SHIFT = timedelta(minutes=10)

def _stages(values: Iterable[int], name: str) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}, reverse=True))
    if any(v <= 0 for v in out):
        raise ValueError(f"{name}: every stage must be more than 0 seconds, got {out}")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesConfig:
    """Stage thresholds in seconds before a deadline (normalised: unique, earliest stage first)."""

    aftersale_before: tuple[int, ...] = (24 * 3600, 6 * 3600, 2 * 3600, 30 * 60)
    evidence_before: tuple[int, ...] = (12 * 3600, 4 * 3600, 3600)
    confirm_handled: bool = True
    health_cooldown: int = 6 * 3600
    failure_threshold: int = 3  # consecutive failed checks before a "scraper blind" admin alert

    def __post_init__(self) -> None:
        object.__setattr__(self, "aftersale_before", _stages(self.aftersale_before, "aftersale_before"))
        object.__setattr__(self, "evidence_before", _stages(self.evidence_before, "evidence_before"))
        if self.health_cooldown < 0 or self.failure_threshold < 1:
            raise ValueError("health_cooldown must be >= 0 and failure_threshold >= 1")

    def thresholds(self, kind: str) -> tuple[int, ...]:
        return self.aftersale_before if kind == "aftersale" else self.evidence_before


def current_stage(thresholds: Sequence[int], remaining_seconds: int) -> int | None:
    """Index of the most urgent threshold crossed (remaining <= threshold); None while above the first."""
    crossed = [i for i, t in enumerate(thresholds) if remaining_seconds <= t]
    return crossed[-1] if crossed else None


def severity_of(stage: int, count: int) -> Severity:
    """First stage info, last critical (a single stage is the last), the ones between warning."""
    return "critical" if stage >= count - 1 else "info" if stage == 0 else "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemState:
    """What the store keeps per item between checks. `last_stage` is the last ALERTED stage (0 = earliest).

    `episode` counts restarted clocks (an item that came back or whose deadline was pushed back out of its
    alerted stage); dedup keys of episode n > 0 end in `#n`. `outcome` of a closed item: handled |
    auto_refunded | escalated (an after-sale that moved to the evidence list).
    """

    shop: str
    kind: ItemKind
    item_id: str
    order_sn: str
    last_stage: int | None
    alerted: bool
    deadline: datetime
    refund_amount_fen: int
    last_seen: datetime
    type: str = ""
    status: str = ""
    goods_name: str = ""
    reason: str = ""
    closed: bool = False
    outcome: str = ""
    episode: int = 0
    urged: bool = False  # on the 买家催处理 card at the last check
    quality: bool = False  # its reason is quality-related (品质退款风险)
    first_seen: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO datetimes) plus `last_seen_ts` (epoch seconds) for the store's pruning."""
        d = asdict(self)
        d.update(deadline=self.deadline.isoformat(), last_seen=self.last_seen.isoformat(),
                 last_seen_ts=self.last_seen.timestamp(),
                 first_seen=self.first_seen.isoformat() if self.first_seen else None)
        return d

    def as_item(self, now: datetime) -> Item:
        """The item as the last check saw it, its remaining time counted from `now`."""
        return Item(kind=self.kind, id=self.item_id, order_sn=self.order_sn, type=self.type, status=self.status,
                    reason=self.reason, goods_name=self.goods_name, refund_amount_fen=self.refund_amount_fen,
                    order_amount_fen=self.refund_amount_fen, created_at=self.last_seen, deadline=self.deadline,
                    remaining_seconds=_remaining(self.deadline, now))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ItemState:
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        kw.update(deadline=datetime.fromisoformat(d["deadline"]), last_seen=datetime.fromisoformat(d["last_seen"]),
                  first_seen=datetime.fromisoformat(d["first_seen"]) if d.get("first_seen") else None)
        return cls(**kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One thing to tell people. `key` deduplicates: f"{shop}:{item kind}:{item_id}:{event}" for items
    (event = stage{i} | handled | auto_refunded, + "#episode"), f"{shop}:health:{event}:{epoch}" for health.

    `event` for health is the cooldown bucket: sms_required | captcha | login_required | layout_changed |
    failing | recovered; `state` the scraper's ShopState value. `inferred` marks an auto-refund concluded from
    the deadline alone (not confirmed by actions 1028). `attach_qr`: send the shop's login QR image too.
    """

    key: str
    shop: str
    kind: AlertKind
    severity: Severity
    created_at: datetime
    event: str
    stage_index: int | None = None
    stage_count: int = 0
    threshold_seconds: int | None = None
    is_last_stage: bool = False
    item: Item | None = None
    detail: str = ""
    state: str = ""
    failures: int = 0
    inferred: bool = False
    attach_qr: bool = False
    count: int = 0  # work_orders / platform_refunds: the counter now
    was: int = 0  # … and as last told
    # the team's hold (core.claims.annotate): {"member", "at" (HH:MM), "mobile", "done", "note"}; None: unclaimed
    claim: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO datetimes); `Alert.from_dict` reverses it."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["created_at"] = self.created_at.isoformat()
        d["item"] = self.item.to_json() if self.item is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        kw["created_at"] = datetime.fromisoformat(d["created_at"])
        if d.get("item"):
            kw["item"] = Item.from_json(d["item"])
        return cls(**kw)


def _remaining(deadline: datetime, now: datetime) -> int:
    return (deadline - now) // timedelta(seconds=1)


def _at(item: Item, now: datetime) -> Item:
    """The item as an alert at `now` carries it: its remaining time counted from `now`."""
    return replace(item, remaining_seconds=_remaining(item.deadline, now))


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def evaluate(
    shop: str, aftersales: Iterable[Item], evidence: Iterable[Item],
    previous: Mapping[tuple[str, str], ItemState], cfg: RulesConfig, now: datetime,
    closed_auto_refunded: Iterable[str] = (),
) -> tuple[list[Alert], list[ItemState]]:
    """One check's alerts and the new item states (every previous item, updated or carried, plus new ones).

    Stage alerts: an item alerts when it is in a stage more urgent than its last alerted one — once, for the
    stage it is in now (an item first seen deep in its clock gets only its most urgent stage). Items of
    `previous` missing from the lists close: 「自动退款」 when `now >= deadline` or their id is in
    `closed_auto_refunded` (actions 1028) — always, alerted or not, since money was lost — else 「已处理」 when
    they had been alerted and `cfg.confirm_handled`; otherwise silently. An after-sale that moved to the
    evidence list (same id) closes silently as "escalated". Ids in `closed_auto_refunded` count as closed even
    if listed; unknown ids are ignored (nothing to say about an item never seen).
    """
    _require_aware(now)
    forced = set(closed_auto_refunded)
    current: dict[tuple[str, str], tuple[ItemKind, Item]] = {}
    for kind, items in (("aftersale", aftersales), ("evidence", evidence)):
        for it in items:
            if it.id not in forced:  # the list it came from decides its kind
                current.setdefault((kind, it.id), (kind, replace(it, kind=kind)))
    alerts: dict[str, Alert] = {}
    states: dict[tuple[str, str], ItemState] = {}

    def emit(alert: Alert) -> None:
        alerts.setdefault(alert.key, alert)  # never two alerts for one key

    for k, (kind, it) in current.items():
        prev = previous.get(k)
        thresholds = cfg.thresholds(kind)
        stage = current_stage(thresholds, _remaining(it.deadline, now))
        last, episode = (prev.last_stage, prev.episode) if prev else (None, 0)
        if prev is not None and (prev.closed or (  # it came back, or its clock restarted: a new episode
            last is not None and (stage is None or stage < last) and it.deadline > prev.deadline + DEADLINE_SHIFT
        )):
            last, episode = None, episode + 1
        if stage is not None and (last is None or stage > last):
            suffix = f"#{episode}" if episode else ""
            emit(Alert(key=f"{shop}:{kind}:{it.id}:stage{stage}{suffix}", shop=shop, kind=kind,
                       severity=severity_of(stage, len(thresholds)), created_at=now, event=f"stage{stage}",
                       stage_index=stage, stage_count=len(thresholds), threshold_seconds=thresholds[stage],
                       is_last_stage=stage == len(thresholds) - 1, item=_at(it, now)))
            last = stage
        states[k] = ItemState(shop=shop, kind=kind, item_id=it.id, order_sn=it.order_sn, last_stage=last,
                              alerted=last is not None, deadline=it.deadline, refund_amount_fen=it.refund_amount_fen,
                              last_seen=now, type=it.type, status=it.status, goods_name=it.goods_name,
                              reason=it.reason, episode=episode, urged=it.urged, quality=it.quality_risk,
                              first_seen=prev.first_seen if prev and prev.first_seen else now)

    for k, prev in previous.items():
        if k in current:
            continue
        confirmed = prev.item_id in forced
        suffix = f"#{prev.episode}" if prev.episode else ""
        info = prev.as_item(now)
        if prev.closed and not (confirmed and prev.outcome != "auto_refunded"):
            states[k] = prev  # closed earlier: carried unchanged
        elif prev.kind == "aftersale" and ("evidence", prev.item_id) in current:
            states[k] = replace(prev, closed=True, outcome="escalated")  # the platform stepped in: evidence owed
        elif confirmed or now >= prev.deadline:
            emit(Alert(key=f"{shop}:{prev.kind}:{prev.item_id}:auto_refunded{suffix}", shop=shop, kind="auto_refunded",
                       severity="warning", created_at=now, event="auto_refunded", item=info, inferred=not confirmed))
            states[k] = replace(prev, closed=True, outcome="auto_refunded")
        else:
            if prev.alerted and cfg.confirm_handled:
                emit(Alert(key=f"{shop}:{prev.kind}:{prev.item_id}:handled{suffix}", kind="handled",
                           shop=shop, severity="info", created_at=now, event="handled", item=info))
            states[k] = replace(prev, closed=True, outcome="handled")

    ordered = sorted(alerts.values(), key=lambda a: (a.item.deadline if a.item else now, a.key))
    return ordered, sorted(states.values(), key=lambda s: (s.deadline, s.kind, s.item_id))


def health_bucket(state: ShopState) -> str:
    """The cooldown bucket of a failure state: login states and layout_changed each their own, the rest one."""
    return state.value if state in LOGIN_STATES or state is ShopState.LAYOUT_CHANGED else FAILING


def health_alerts(
    shop: str, state: ShopState | str, detail: str, consecutive_failures: int,
    last_alert_at: Mapping[str, datetime], cfg: RulesConfig, now: datetime, qr_png_available: bool = False,
) -> list[Alert]:
    """Admin alerts for one shop's check result.

    `last_alert_at` is the shop's ACTIVE health alerts: bucket (see `health_bucket`) → when last sent, kept
    until the shop reads OK again (`health_memory` computes the next value). A bucket alerts again only after
    `cfg.health_cooldown`; transient failures only once `consecutive_failures >= cfg.failure_threshold`. An
    OK check with active buckets gives one 「已恢复」 info alert naming them.
    """
    _require_aware(now)
    state = ShopState(state)
    if state is ShopState.OK:
        if not last_alert_at:
            return []
        was = ",".join(sorted(last_alert_at))
        return [Alert(key=f"{shop}:health:{RECOVERED}:{int(now.timestamp())}", shop=shop, kind="health",
                      severity="info", created_at=now, event=RECOVERED, state=state.value, detail=was)]
    bucket = health_bucket(state)
    if bucket == FAILING and consecutive_failures < cfg.failure_threshold:
        return []
    last = last_alert_at.get(bucket)
    if last is not None and (now - last).total_seconds() < cfg.health_cooldown:
        return []
    severity: Severity = "warning" if bucket == FAILING else "critical"
    return [Alert(key=f"{shop}:health:{bucket}:{int(now.timestamp())}", shop=shop, kind="health", severity=severity,
                  created_at=now, event=bucket, state=state.value, detail=detail, failures=consecutive_failures,
                  attach_qr=qr_png_available and state is ShopState.LOGIN_REQUIRED)]


def health_memory(last_alert_at: Mapping[str, datetime], state: ShopState | str,
                  alerts: Iterable[Alert]) -> dict[str, datetime]:
    """The active map to keep after `health_alerts`: emptied by an OK check, else updated with what was sent."""
    if ShopState(state) is ShopState.OK:
        return {}
    out = dict(last_alert_at)
    out.update({a.event: a.created_at for a in alerts if a.kind == "health" and a.event != RECOVERED})
    return out

