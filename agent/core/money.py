"""Money lost and money to recover (pure): 退款成功 rows → refunds, who agreed to each, yesterday's losses, 补款."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, tzinfo
from typing import Any, Literal

from agent.core.models import CheckFailure, ShopState

# who agreed to a refund: the merchant, the clock (超时自动退款), the platform after intervening, or the
# platform's helpers (极速退款 / 售后小助手, by the row's tag)
RefundedBy = Literal["merchant", "timeout", "platform", "helper"]
BY_ZH = {"merchant": "商家同意", "timeout": "超时自动退款", "platform": "平台判定", "helper": "平台代为同意"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    """One refund already paid (退款成功), as the list shows it."""

    id: str
    order_sn: str
    type: str
    amount_fen: int
    reason: str
    refunded_at: datetime | None
    by: RefundedBy
    tag: str = ""  # the row's tag (极速退款 / 售后小助手), when it shows one
    signed: bool = False  # the goods were signed for (发货状态)

    @property
    def recoverable(self) -> bool:
        """仅退款 paid out although the buyer signed for the goods: the merchant may ask the buyer to pay (补款)."""
        return self.signed and self.type == "仅退款"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["refunded_at"] = self.refunded_at.isoformat(timespec="seconds") if self.refunded_at else None
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Refund:
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        kw["refunded_at"] = datetime.fromisoformat(d["refunded_at"]) if d.get("refunded_at") else None
        return cls(**kw)


def _layout(detail: str) -> CheckFailure:
    return CheckFailure(ShopState.LAYOUT_CHANGED, detail)


def parse_refunds(rows: Iterable[Any], lists: Mapping[str, Any], tz: tzinfo,
                  where: str = "queryList[refunds]") -> list[Refund]:
    """退款成功 rows → refunds. The id, order number, type and amount are required (layout_changed names a
    missing one); who refunded, when, the tag and the shipping text are read where the row carries them."""
    f, r = lists["fields"], lists["refunds"]
    names = f.get("type_names", {})
    out = []
    for n, row in enumerate(rows):
        at = f"{where}.list[{n}]"
        if not isinstance(row, Mapping):
            raise _layout(f"{at}: row is not an object")
        for key in (f["id"], f["order_sn"], f["type"], f["refund_amount"]):
            if key not in row:
                raise _layout(f"{at}.{key} missing (renamed? see selectors/aftersale_list.toml [fields])")
        tag = str(row.get(r["tag_field"]) or "")
        actions = row.get(f["actions"]) or []
        operator = row.get(r["last_operator"])
        if f["timeout_refund_action"] in actions:
            by: RefundedBy = "timeout"
        elif any(t in tag for t in r["not_merchant_tags"]):
            by = "helper"
        elif operator == r["platform_operator"]:
            by = "platform"
        else:
            by = "merchant"
        when = row.get(r["time_field"])
        out.append(Refund(
            id=str(row[f["id"]]), order_sn=str(row[f["order_sn"]]),
            type=str(names.get(str(row[f["type"]]), row[f["type"]])), amount_fen=int(row[f["refund_amount"]] or 0),
            reason=str(row.get(f["reason"]) or ""), tag=tag, by=by,
            refunded_at=datetime.fromtimestamp(when, tz) if isinstance(when, int | float) else None,
            signed=any(t in str(row.get(r["shipping"]) or "") for t in r["signed_texts"]),
        ))
    return out


def on_day(refunds: Iterable[Refund], day: date, tz: tzinfo) -> list[Refund]:
    """The refunds made on `day` (local); one without a time is never counted to a day."""
    return [x for x in refunds if x.refunded_at is not None and x.refunded_at.astimezone(tz).date() == day]


def losses_of(refunds: Sequence[Refund]) -> tuple[list[Refund], list[Refund]]:
    """(refunds the merchant did not agree to, 仅退款 paid after the goods were signed for) — the money lost and
    the money to ask back, newest first."""
    newest = sorted(refunds, key=lambda x: (x.refunded_at is None, -(x.refunded_at.timestamp()
                                                                       if x.refunded_at else 0), x.order_sn))
    return [x for x in newest if x.by != "merchant"], [x for x in newest if x.recoverable]


def money_json(refunds: Sequence[Refund], day: date, tz: tzinfo) -> dict[str, Any]:
    """The money section (`check --json`, the digest): `day`'s refunds the merchant did not agree to, and those
    to ask back."""
    lost, recoverable = losses_of(on_day(refunds, day, tz))
    return {"day": day.isoformat(), "lost": [x.to_json() for x in lost],
            "lost_fen": sum(x.amount_fen for x in lost), "recoverable": [x.to_json() for x in recoverable]}
