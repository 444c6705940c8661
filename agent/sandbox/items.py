"""Sandbox after-sales items: their states, deadlines, quick filters and `queryList` row form.

Pure: every function takes the sandbox time `now` (epoch seconds) as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PENDING_STATES = frozenset({"wait_seller", "wait_seller_receive"})
ALL_STATES = PENDING_STATES | {"platform", "wait_buyer", "handled", "refunded", "cancelled"}

TYPE_NAMES = {1: "仅退款", 2: "退货退款", 3: "换货", 4: "补寄"}

# The MMS numeric afterSalesStatus is not the Open Platform enum and no full table is
# known (mms-backend.md §2.3). Assumption: codes below follow xiaoemoxiw's reading
# (seller-pending 1, platform 8) and pawinrain's fixture (11 = 待商家确认收货).
_WAIT_SELLER_TITLES = {
    1: "买家申请退款，待商家处理",
    2: "退货退款，待商家处理",
    3: "买家申请换货，待商家处理",
    4: "买家申请补寄，待商家处理",
}
_HANDLED = {1: (4, "商家同意退款，退款中"), 2: (7, "已同意退货退款，待买家发货")}
_STATIC_STATUS = {
    "wait_seller_receive": (11, "退货退款，待商家确认收货"),
    "platform": (8, "平台处理中"),
    "wait_buyer": (6, "驳回退款，待买家处理"),
    "refunded": (10, "退款成功"),
    "cancelled": (20, "买家撤销，售后关闭"),
}

ACTION_TIMEOUT_REFUND = 1028  # 超时自动退 (mms-backend.md §1.6A, per repo)
DESC_AUTO_REFUND = "系统将自动退款"
DESC_NO_RETURN_TRACK = "物流无退回轨迹，系统将自动退款"
DESC_TIMED_OUT = "超时未处理，系统已自动退款"
DESC_PROOF_TIMED_OUT = "逾期未举证，平台判定退款"
# Evidence (举证) fields are unconfirmed on the live site (sandbox-contract.md §4): assumed names.
PROOF_PENDING = "待商家举证"
PROOF_SUBMITTED = "已举证"

DAY = 86400


@dataclass(slots=True)
class Item:
    """One after-sales order of a shop, with absolute sandbox times."""

    id: int
    order_sn: str
    type: int
    state: str
    created_at: float
    deadline: float | None
    proof_deadline: float | None
    reason: str
    goods_name: str
    goods_spec: str
    goods_number: int
    order_amount: int
    refund_amount: int
    shipped: bool
    tracking: str
    complaint_risk: bool = False
    buyer_urged: bool = False
    mall_remark: str = ""
    proof_status: str | None = None
    actions: list[int] = field(default_factory=list)
    close_time: float | None = None
    closed_desc: str | None = None
    version: int = 1

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def proof_pending(self) -> bool:
        return self.state == "platform" and self.proof_status == PROOF_PENDING

    def status(self) -> tuple[int, str]:
        if self.state == "wait_seller":
            return 1, _WAIT_SELLER_TITLES.get(self.type, "待商家处理")
        if self.state == "handled":
            return _HANDLED.get(self.type, (15, "商家已同意，待买家处理"))
        return _STATIC_STATUS[self.state]

    def no_return_track(self) -> bool:
        return self.state == "wait_seller_receive" and not self.tracking


_ITEM_KEYS = {
    "id", "orderSn", "afterSalesType", "state", "created_ago", "deadline_in", "proof_deadline_in",
    "reason", "goodsName", "goodsSpec", "goodsNumber", "orderAmount", "refundAmount", "shipped",
    "reverseTrackingNumber", "complaint_risk", "buyer_urged", "mallRemark",
}


def item_from_scenario(raw: Mapping[str, Any], now: float) -> Item:
    """Build an item from the scenario's relative form (see scenarios/*.json)."""
    unknown = set(raw) - _ITEM_KEYS
    if unknown:
        raise ValueError(f"item {raw.get('id')}: unknown keys {sorted(unknown)}")
    state = str(raw["state"])
    if state not in ALL_STATES:
        raise ValueError(f"item {raw.get('id')}: unknown state {state!r}")
    deadline_in = raw.get("deadline_in")
    proof_in = raw.get("proof_deadline_in")
    if state in PENDING_STATES and deadline_in is None:
        raise ValueError(f"item {raw['id']}: pending items need deadline_in")
    item = Item(
        id=int(raw["id"]),
        order_sn=str(raw["orderSn"]),
        type=int(raw["afterSalesType"]),
        state=state,
        created_at=now - float(raw.get("created_ago", 3600)),
        deadline=None if deadline_in is None else now + float(deadline_in),
        proof_deadline=None if proof_in is None else now + float(proof_in),
        reason=str(raw.get("reason", "")),
        goods_name=str(raw.get("goodsName", "")),
        goods_spec=str(raw.get("goodsSpec", "")),
        goods_number=int(raw.get("goodsNumber", 1)),
        order_amount=int(raw.get("orderAmount", 0)),
        refund_amount=int(raw.get("refundAmount", 0)),
        shipped=bool(raw.get("shipped", True)),
        tracking=str(raw.get("reverseTrackingNumber", "")),
        complaint_risk=bool(raw.get("complaint_risk", False)),
        buyer_urged=bool(raw.get("buyer_urged", False)),
        mall_remark=str(raw.get("mallRemark", "")),
    )
    if state == "platform" and proof_in is not None:
        item.proof_status = PROOF_PENDING
    if state in {"refunded", "cancelled", "handled"}:
        item.close_time = min(item.created_at + 3600, now)
    return item


def apply_time(item: Item, now: float) -> bool:
    """Close the item as an automatic refund when its deadline has passed. True when it changed."""
    if item.pending and item.deadline is not None and now >= item.deadline:
        _auto_refund(item, item.deadline, DESC_TIMED_OUT)
        return True
    if item.proof_pending and item.proof_deadline is not None and now >= item.proof_deadline:
        _auto_refund(item, item.proof_deadline, DESC_PROOF_TIMED_OUT)
        return True
    return False


def _auto_refund(item: Item, at: float, desc: str) -> None:
    item.state = "refunded"
    item.proof_status = None  # no evidence is owed any more: the platform has decided
    item.actions = [*item.actions, ACTION_TIMEOUT_REFUND]
    item.close_time = at
    item.closed_desc = desc
    item.version += 1


def handle(item: Item, now: float) -> None:
    """The merchant acted: pending items are agreed, evidence is submitted."""
    if item.pending:
        item.state = "handled"
        item.close_time = now
    elif item.proof_pending:
        item.proof_status = PROOF_SUBMITTED
    else:
        raise ValueError(f"item {item.id} is not waiting for the merchant")
    item.version += 1


def remaining(deadline: float | None, now: float) -> int | None:
    if deadline is None:
        return None
    return max(0, int(deadline - now))


# Quick filters: label -> predicate. The labels are confirmed (mms-backend.md §1.5); what
# exactly each card selects on the live site is not, so these predicates are the sandbox's reading.
FILTERS: dict[str, Callable[[Item, float], bool]] = {
    "投诉预警": lambda i, now: i.pending and i.complaint_risk,
    "待处理即将逾期": lambda i, now: i.pending and (remaining(i.deadline, now) or 0) < DAY,
    "待商家处理": lambda i, now: i.pending,
    "待举证即将逾期": lambda i, now: i.proof_pending and (remaining(i.proof_deadline, now) or 0) < DAY,
    "待商家举证": lambda i, now: i.proof_pending,
    "买家催处理": lambda i, now: i.pending and i.buyer_urged,
    "待买家处理": lambda i, now: i.state == "wait_buyer",
    "退货待处理": lambda i, now: i.pending and i.type == 2,
}
FILTER_LABELS = tuple(FILTERS)

# quickSearchType codes: only 18 (the page-load default) is seen in live traffic, and its meaning
# is unknown. Assumption: 18 lists everything; the per-card codes below are invented and can be
# changed per scenario or through the control API, so the agent has to learn them from the page.
DEFAULT_ALL_CODE = 18
DEFAULT_FILTER_CODES = {
    "投诉预警": 11, "待处理即将逾期": 6, "待商家处理": 7, "待举证即将逾期": 16,
    "待商家举证": 15, "买家催处理": 12, "待买家处理": 9, "退货待处理": 10,
}

# queryCount result keys: xiaoemoxiw's names where known; the proof/complaint/urge keys are assumed.
COUNT_KEYS = {
    "待商家处理": "waitSellerHandle", "待处理即将逾期": "expireIn24HoursWaitHandle",
    "待买家处理": "waitBuyerHandle", "退货待处理": "returnedWaitHandle",
    "待商家举证": "waitSellerProof", "待举证即将逾期": "expireIn24HoursWaitProof",
    "投诉预警": "complaintWarning", "买家催处理": "buyerUrgeHandle",
}


def counts(items: list[Item], now: float) -> dict[str, int]:
    out = {COUNT_KEYS[label]: sum(1 for i in items if pred(i, now)) for label, pred in FILTERS.items()}
    out["platformHandling"] = sum(1 for i in items if i.state == "platform")
    return out


def to_row(item: Item, now: float) -> dict[str, Any]:
    """The item as a `queryList` row, field names as on the live site (mms-backend.md §1.6A)."""
    code, title = item.status()
    if item.pending:
        action_desc: str | None = DESC_NO_RETURN_TRACK if item.no_return_track() else DESC_AUTO_REFUND
    else:
        action_desc = item.closed_desc
    row: dict[str, Any] = {
        "id": item.id,
        "orderSn": item.order_sn,
        "afterSalesType": item.type,
        "afterSalesTypeName": TYPE_NAMES.get(item.type, "售后"),
        "afterSalesStatus": code,
        "afterSalesTitle": title,
        "afterSalesReasonDesc": item.reason,
        "createdAt": int(item.created_at),
        "closeTime": None if item.close_time is None else int(item.close_time * 1000),
        "expireRemainTime": remaining(item.deadline, now) if item.pending else None,
        "expireActionDesc": action_desc,
        "refundAmount": item.refund_amount,
        "orderAmount": item.order_amount,
        "goodsName": item.goods_name,
        "goodsSpec": item.goods_spec,
        "goodsNumber": item.goods_number,
        "thumbUrl": f"/static/thumb.svg?id={item.id}",
        "reverseTrackingNumber": item.tracking,
        "sellerAfterSalesShippingStatus": 1 if item.shipped else 0,
        "sellerAfterSalesShippingStatusDesc": "已发货" if item.shipped else "未发货",
        "mallRemark": item.mall_remark,
        "actions": list(item.actions),
        "version": item.version,
        "platformJoined": item.state == "platform",
        "proofStatus": item.proof_status,
        "proofExpireRemainTime": remaining(item.proof_deadline, now) if item.proof_pending else None,
    }
    return row


def dhms(seconds: int) -> str:
    """`6天23时33分2秒`, the countdown form used on rows and the detail page."""
    seconds = max(0, int(seconds))
    d, rest = divmod(seconds, DAY)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}天{h}时{m}分{s}秒"
