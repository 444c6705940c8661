"""Losses beyond the deadlines (pure): 投诉预警, 买家已催, 品质退款风险, 平台已介入, the 工单 and 平台退款 counters."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from agent.core.models import Item
from agent.core.rules import Alert, ItemState

# counter labels (selectors/aftersale_list.toml [counters].labels) the counter rules read
TICKETS_LABEL = "24小时内将逾期工单数"
REFUNDS_LABEL = "24小时内平台同意退款"
# alert kind → the [watch] item that switches it and routes it
WATCH_OF = {"complaint": "complaints", "urged": "urged", "quality": "quality", "platform": "platform",
            "work_orders": "work_orders", "platform_refunds": "platform_refunds"}


def is_quality(reason: str, reasons: Iterable[str]) -> bool:
    """Whether a refund reason counts toward the 品质退款率: one of `reasons` occurs in it."""
    return any(r and r in reason for r in reasons)


def mark(items: Iterable[Item], complaint_ids: Collection[str], urged_ids: Collection[str],
         reasons: Sequence[str]) -> list[Item]:
    """The items with their 投诉预警 / 买家已催 / 品质退款风险 flags set from the cards' ids and the reason."""
    return [replace(i, complaint=i.id in complaint_ids, urged=i.id in urged_ids,
                    quality_risk=is_quality(i.reason, reasons)) for i in items]


def _suffix(states: Mapping[tuple[str, str], ItemState], kind: str, item_id: str) -> str:
    st = states.get((kind, item_id))
    return f"#{st.episode}" if st is not None and st.episode else ""


def item_notices(
    shop: str, aftersales: Iterable[Item], evidence: Iterable[Item], platform: Iterable[Item],
    previous: Mapping[tuple[str, str], ItemState], states: Mapping[tuple[str, str], ItemState],
    watching: Collection[str], now: datetime,
) -> list[Alert]:
    """One check's item notices beyond the stages, each once per item and episode (their keys deduplicate):

    - 投诉预警: an item on the complaint card, at once (critical; never held by quiet hours);
    - 品质退款风险: an item whose reason is quality-related, on first sight;
    - 买家已催: an item already alerted (a stage) that the buyer urged since the last check;
    - 平台已介入: an item on 平台处理中, with its evidence deadline when it is on the 待商家举证 list too.
    `previous` are the item states before this check, `states` after it (for the episode).
    """
    out: list[Alert] = []

    def emit(kind: str, it: Item, severity: str, key_kind: str | None = None) -> None:
        k = key_kind or it.kind
        out.append(Alert(key=f"{shop}:{k}:{it.id}:{kind}{_suffix(states, k, it.id)}", shop=shop,
                         kind=kind, severity=severity, created_at=now, event=kind, item=it))  # type: ignore[arg-type]

    for it in [*aftersales, *evidence]:
        if it.complaint and "complaints" in watching:
            emit("complaint", it, "critical")
        if it.quality_risk and "quality" in watching:
            emit("quality", it, "warning")
        prev = previous.get((it.kind, it.id))
        if it.urged and "urged" in watching and prev is not None and prev.alerted and not prev.urged:
            emit("urged", it, "warning")
    if "platform" in watching:
        owed = {i.id: i for i in evidence}
        for it in platform:
            emit("platform", owed.get(it.id, it), "warning", key_kind="platform")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterMemory:
    """What the counter rules remember per shop: the counts last told, and when."""

    tickets: int = 0
    tickets_at: float | None = None
    refunds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CounterMemory:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def counter_notices(
    shop: str, counters: Mapping[str, int], memory: CounterMemory, watching: Collection[str],
    cooldown_seconds: float, now: datetime, explained_refunds: int = 0,
) -> tuple[list[Alert], CounterMemory]:
    """Notices from the 「售后数据」 header counters, and the memory to keep.

    工单: 「24小时内将逾期工单数」 above zero alerts, again when it rises or after `cooldown_seconds` at the same
    count, and once 「已处理」 when it falls to zero. 平台退款: 「24小时内平台同意退款」 rising by more than the
    `explained_refunds` (the 自动退款 alerts of this check, told already) alerts, naming how many are new. A counter
    the check did not read leaves its memory unchanged.
    """
    out: list[Alert] = []
    ts = now.timestamp()
    tickets, refunds = counters.get(TICKETS_LABEL), counters.get(REFUNDS_LABEL)
    if tickets is not None and "work_orders" in watching:
        again = memory.tickets_at is None or ts - memory.tickets_at >= cooldown_seconds
        if tickets > 0 and (tickets > memory.tickets or again):
            out.append(Alert(key=f"{shop}:work_orders:{tickets}:{int(ts)}", shop=shop, kind="work_orders",
                             severity="warning", created_at=now, event="work_orders", count=tickets,
                             was=memory.tickets))
            memory = replace(memory, tickets=tickets, tickets_at=ts)
        elif tickets == 0 and memory.tickets > 0:
            out.append(Alert(key=f"{shop}:work_orders:cleared:{int(ts)}", shop=shop, kind="work_orders",
                             severity="info", created_at=now, event="work_orders_cleared", count=0, was=memory.tickets))
            memory = replace(memory, tickets=0, tickets_at=None)
        elif tickets < memory.tickets:
            memory = replace(memory, tickets=tickets)
    if refunds is not None and "platform_refunds" in watching:
        if refunds - explained_refunds > memory.refunds:
            out.append(Alert(key=f"{shop}:platform_refunds:{refunds}:{int(ts)}", shop=shop, kind="platform_refunds",
                             severity="warning", created_at=now, event="platform_refunds", count=refunds,
                             was=memory.refunds))
        memory = replace(memory, refunds=refunds)
    return out, memory
