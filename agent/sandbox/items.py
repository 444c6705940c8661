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

# MMS afterSalesStatus codes and titles, from the live status filter (mms-live-2026.md §D, high):
# 1 买家申请退款 / 11 用户已发货 / 14 换货·补寄 are 「待商家处理」; 2 and 3 平台处理中; 4 退款中; 5 退款成功;
# 6 买家撤销; 9 商家驳回 (待买家处理); 10 同意退货退款，待买家发货.
_WAIT_SELLER = {1: 1, 2: 1, 3: 14, 4: 14}
_TITLES = {
    1: "买家申请退款，待商家处理", 11: "用户已发货，待商家处理", 14: "换货/补寄 待商家处理",
    2: "平台处理中", 4: "退款中", 5: "退款成功", 6: "买家撤销", 9: "商家驳回退款，待买家处理",
    10: "商家同意退货退款，待买家发货", 15: "商家已同意换货，待商家发货",
}
_HANDLED = {1: 4, 2: 10, 3: 15, 4: 15}
_STATIC_STATUS = {"wait_seller_receive": 11, "platform": 2, "wait_buyer": 9, "refunded": 5, "cancelled": 6}
LAST_OPERATOR_MERCHANT, LAST_OPERATOR_PLATFORM = 2, 3  # lastOperator on 退款中 (§D, high)

ACTION_TIMEOUT_REFUND = 1028  # 超时自动退 (mms-backend.md §1.6A, per repo; not in the 2026-03 bundle)
# expireActionDesc: the front end renders `expireActionDesc.replace("${time}", "")` after the time span
# (mms-live-2026.md §C, high). Assumption (the exact strings are unknown): the backend's value starts with the
# `${time}` placeholder, followed by the wording the project saw on live rows.
TIME_PLACEHOLDER = "${time}"
DESC_AUTO_REFUND = TIME_PLACEHOLDER + "未处理，系统将自动退款"
DESC_NO_RETURN_TRACK = TIME_PLACEHOLDER + "物流无退回轨迹，系统将自动退款"
# Evidence rows carry their deadline like every row (§E, medium); their wording is unknown: assumed.
DESC_PROOF = TIME_PLACEHOLDER + "内未举证，平台将根据现有凭证判定"
# Evidence state is internal to the sandbox: the live list renders no proof field (§E, high).
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
    version: int = 1
    platform_refunded: bool = False  # the platform decided for the buyer (refunded, lastOperator 3)
    signed: bool = False  # the buyer signed for the goods (发货状态 「已签收」)
    refund_tag: str = ""  # 极速退款 / 售后小助手: who agreed to the refund, shown in serveTagDesc (assumed)

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def proof_pending(self) -> bool:
        return self.state == "platform" and self.proof_status == PROOF_PENDING

    def status(self) -> tuple[int, str]:
        """(afterSalesStatus, afterSalesTitle) by the live codes."""
        if self.state == "wait_seller":
            code = _WAIT_SELLER.get(self.type, 1)
        elif self.state == "handled":
            code = _HANDLED.get(self.type, 15)
        else:
            code = _STATIC_STATUS[self.state]
        return code, _TITLES[code]

    def clock(self) -> float | None:
        """The deadline the merchant is on: the handling deadline, or the evidence deadline."""
        if self.pending:
            return self.deadline
        if self.proof_pending:
            return self.proof_deadline
        return None

    def no_return_track(self) -> bool:
        return self.state == "wait_seller_receive" and not self.tracking


_ITEM_KEYS = {
    "id", "orderSn", "afterSalesType", "state", "created_ago", "deadline_in", "proof_deadline_in",
    "reason", "goodsName", "goodsSpec", "goodsNumber", "orderAmount", "refundAmount", "shipped",
    "reverseTrackingNumber", "complaint_risk", "buyer_urged", "mallRemark", "signed", "refundTag", "refunded_ago",
    "refundedBy",
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
        signed=bool(raw.get("signed", False)),
        refund_tag=str(raw.get("refundTag", "")),
    )
    if state == "platform" and proof_in is not None:
        item.proof_status = PROOF_PENDING
    if state in {"refunded", "cancelled", "handled"}:
        item.close_time = min(item.created_at + 3600, now)
    if state == "refunded" and raw.get("refunded_ago") is not None:
        item.close_time = now - float(raw["refunded_ago"])
    by = raw.get("refundedBy")  # refunded items: "merchant" (default), "timeout" (1028) or "platform"
    if state == "refunded" and by == "timeout":
        item.actions = [ACTION_TIMEOUT_REFUND]
    elif state == "refunded" and by == "platform":
        item.platform_refunded = True
    elif by not in (None, "merchant"):
        raise ValueError(f"item {item.id}: unknown refundedBy {by!r}")
    return item


def apply_time(item: Item, now: float, lag: float = 0.0) -> bool:
    """Close the item as an automatic refund once its deadline is `lag` seconds past. True when it changed.

    Assumption: the platform's refund job runs a little after the deadline (`lag`, a sandbox setting); in
    between the row is overdue and the page shows 「（已逾期）」 (mms-live-2026.md §C).
    """
    if item.pending and item.deadline is not None and now >= item.deadline + lag:
        _auto_refund(item, item.deadline)
        return True
    if item.proof_pending and item.proof_deadline is not None and now >= item.proof_deadline + lag:
        _auto_refund(item, item.proof_deadline)
        return True
    return False


def _auto_refund(item: Item, at: float) -> None:
    item.state = "refunded"
    item.proof_status = None  # no evidence is owed any more: the platform has decided
    item.actions = [*item.actions, ACTION_TIMEOUT_REFUND]
    item.close_time = at
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


def _due_24h(i: Item, now: float) -> bool:
    return (remaining(i.clock(), now) or 0) < DAY


@dataclass(frozen=True, slots=True)
class Card:
    """One quick-filter card of the workbench (mms-live-2026.md §A, high)."""

    label: str
    code: int  # quickSearchType
    count_key: str  # its queryCount result key
    expire_sort: bool  # the card click adds orderByExpireTimeAsc: true
    select: Callable[[Item, float], bool]  # the sandbox's reading of what the card lists


# The 9 cards in page order. Codes, count keys and sort flags are PDD's (high); the predicates are the
# sandbox's reading: 待处理即将逾期 follows the old list code (statuses 1/11/14/21/32, due within 86399 s).
CARDS = (
    Card("投诉预警", 18, "complainWarning", False, lambda i, now: i.pending and i.complaint_risk),
    Card("待处理即将逾期", 4, "expireIn24HoursWaitHandle", True, lambda i, now: i.pending and _due_24h(i, now)),
    Card("待商家处理", 7, "waitSellerHandle", True, lambda i, now: i.pending),
    Card("待举证即将逾期", 15, "expireIn24HoursWaitSellerProof", True,
         lambda i, now: i.proof_pending and _due_24h(i, now)),
    Card("待商家举证", 19, "waitSellerProof", True, lambda i, now: i.proof_pending),
    Card("买家催处理", 20, "remindRefund", False, lambda i, now: i.pending and i.buyer_urged),
    Card("平台处理中", 6, "platformHandling", False, lambda i, now: i.state == "platform"),
    Card("待买家处理", 8, "waitBuyerHandle", False, lambda i, now: i.state == "wait_buyer"),
    Card("退货待处理", 2, "returnedWaitHandle", True, lambda i, now: i.pending and i.type == 2),
)
BY_LABEL = {c.label: c for c in CARDS}
FILTER_LABELS = tuple(BY_LABEL)
DEFAULT_FILTER_CODES = {c.label: c.code for c in CARDS}
PAGE_LOAD_CODE = 18  # page load sends `+URL searchType || 18` (§A, high)


def counts(items: list[Item], now: float) -> dict[str, int]:
    """queryCount's result: every card's count key, plus 24小时内平台同意退款 (§B)."""
    out = {c.count_key: sum(1 for i in items if c.select(i, now)) for c in CARDS}
    out["refundedByPlatformLast24Hours"] = refunded_last_day(items, now)
    return out


def refunded_last_day(items: list[Item], now: float) -> int:
    """24小时内平台同意退款. Assumption: the platform's timeout refunds and its decisions after intervening."""
    return sum(1 for i in items if (ACTION_TIMEOUT_REFUND in i.actions or i.platform_refunded)
               and i.close_time and now - i.close_time < DAY)


def escalate(item: Item, now: float, proof_deadline_in: float | None) -> None:
    """The buyer asked the platform in: a pending item moves to 平台处理中, evidence owed when a deadline is given."""
    if not item.pending:
        raise ValueError(f"item {item.id} is not waiting for the merchant")
    item.state = "platform"
    item.deadline = None
    if proof_deadline_in is not None:
        item.proof_deadline = now + proof_deadline_in
        item.proof_status = PROOF_PENDING
    item.version += 1


def platform_refund(item: Item, now: float) -> None:
    """The platform decided for the buyer: refunded (退款成功), its last operator the platform."""
    if item.state != "platform":
        raise ValueError(f"item {item.id} is not in 平台处理中")
    item.state, item.proof_status, item.platform_refunded, item.close_time = "refunded", None, True, now
    item.version += 1


def wait_handle_counts(items: list[Item], now: float, tickets: int = 0) -> dict[str, int]:
    """queryWaitHandleCount's result, the 「售后数据」 header counters (§B, high). Assumption: expiringNum
    counts the same items as the 待处理即将逾期 card (the live endpoints differ and may disagree); work orders
    are a number the control API sets."""
    return {
        "expiringNum": sum(1 for i in items if BY_LABEL["待处理即将逾期"].select(i, now)),
        "expireIn24HoursWaitSellerProof": sum(1 for i in items if BY_LABEL["待举证即将逾期"].select(i, now)),
        "refundedByPlatformLast24Hours": refunded_last_day(items, now),
        "expireIn24HoursTicketNum": tickets,
    }


def to_row(item: Item, now: float) -> dict[str, Any]:
    """The item as a `queryList` row: the fields the live renderer reads (mms-live-2026.md §C)."""
    code, title = item.status()
    clock = item.clock()
    remain = remaining(clock, now)
    if item.pending:
        action_desc = DESC_NO_RETURN_TRACK if item.no_return_track() else DESC_AUTO_REFUND
    elif item.proof_pending:
        action_desc = DESC_PROOF
    else:
        action_desc = ""
    # Assumption: urgentType 1 = due within 24 h, 2 = within 6 h, 3 = overdue (the front end only tells
    # that 1-3 turn the countdown red).
    urgent = 0
    if remain is not None:
        urgent = 3 if remain == 0 else 2 if remain < 6 * 3600 else 1 if remain < DAY else 0
    row: dict[str, Any] = {
        "id": item.id,
        "uid": 7_000_000_000 + item.id * 7919 % 1_000_000_000,  # the buyer's id (assumed form)
        "orderSn": item.order_sn,
        "version": item.version,
        "afterSalesType": item.type,
        "afterSalesStatus": code,
        "afterSalesTitle": title,
        "afterSalesReasonDesc": item.reason,
        "createdAt": int(item.created_at),
        "expireRemainTime": remain or 0,
        "expireActionDesc": action_desc,
        "urgentType": urgent,
        "actions": list(item.actions),
        "thumbUrl": f"/static/thumb.svg?id={item.id}",
        "goodsName": item.goods_name,
        "goodsNumber": item.goods_number,
        "goodsSpec": item.goods_spec,
        "tagTipList": [],
        "receiveAmount": item.order_amount,
        "refundAmount": item.refund_amount,
        "serveTagDesc": item.refund_tag,
        "sellerAfterSalesShippingStatusDesc": "已签收" if item.signed else "已发货" if item.shipped else "未发货",
        "rejectChatTipDesc": "",
        "rejectChatTipExpireRemainTime": 0,
        "reverseTrackingNumber": item.tracking,
        "mallRemark": item.mall_remark,
    }
    if code == 4:
        row["lastOperator"] = LAST_OPERATOR_MERCHANT
    if code == 5:  # assumption: 退款成功 rows say who refunded like 退款中 rows, and when (updatedAt, seconds)
        platform = ACTION_TIMEOUT_REFUND in item.actions or item.platform_refunded
        row["lastOperator"] = LAST_OPERATOR_PLATFORM if platform else LAST_OPERATOR_MERCHANT
    if item.close_time is not None:
        row["updatedAt"] = int(item.close_time)
    return row


def dhms(seconds: int) -> str:
    """`6天23时33分2秒`, the countdown form used on rows and the detail page."""
    seconds = max(0, int(seconds))
    d, rest = divmod(seconds, DAY)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}天{h}时{m}分{s}秒"
