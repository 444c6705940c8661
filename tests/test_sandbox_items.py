"""Sandbox items: scenario form, deadlines, merchant actions, quick filters, queryList rows and countdowns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.sandbox import items as it

NOW = 1_700_000_000.0
HOUR = 3600
DAY = it.DAY
FILTERS = {c.label: c.select for c in it.CARDS}


def raw_item(**over: Any) -> dict[str, Any]:
    """A scenario item (relative times) waiting for the merchant; keyword arguments override fields."""
    raw: dict[str, Any] = {
        "id": 1001,
        "orderSn": "261121-000000000001",
        "afterSalesType": 1,
        "state": "wait_seller",
        "created_ago": 2 * HOUR,
        "deadline_in": 3 * DAY,
        "reason": "拍错了/多拍了",
        "goodsName": "袜子10双装",
        "goodsSpec": "黑色;均码",
        "goodsNumber": 2,
        "orderAmount": 3990,
        "refundAmount": 3990,
        "shipped": True,
        "reverseTrackingNumber": "",
    }
    raw.update(over)
    return {k: v for k, v in raw.items() if v is not None or k in {"deadline_in", "proof_deadline_in"}}


def make(now: float = NOW, **over: Any) -> it.Item:
    return it.item_from_scenario(raw_item(**over), now)


def evidence(proof_in: float = 13 * HOUR, **over: Any) -> it.Item:
    """Platform intervened; the merchant owes evidence within `proof_in` seconds."""
    return make(state="platform", deadline_in=None, proof_deadline_in=proof_in, **over)


# ---- item_from_scenario ---------------------------------------------------------------------------


def test_relative_times_become_absolute() -> None:
    item = make(created_ago=7200, deadline_in=90000, proof_deadline_in=None)
    assert item.created_at == NOW - 7200
    assert item.deadline == NOW + 90000
    assert item.proof_deadline is None
    assert item.pending
    assert (item.id, item.order_sn, item.type, item.goods_number) == (1001, "261121-000000000001", 1, 2)


def test_proof_deadline_becomes_absolute_and_marks_proof_pending() -> None:
    item = evidence(proof_in=50 * 60)
    assert item.proof_deadline == NOW + 3000
    assert item.deadline is None
    assert item.proof_status == it.PROOF_PENDING
    assert item.proof_pending


def test_platform_without_proof_deadline_owes_nothing() -> None:
    item = make(state="platform", deadline_in=None)
    assert item.proof_status is None
    assert not item.proof_pending


def test_created_ago_defaults_to_an_hour() -> None:
    raw = raw_item()
    del raw["created_ago"]
    assert it.item_from_scenario(raw, NOW).created_at == NOW - 3600


@pytest.mark.parametrize(
    "key", ["deadline", "expireRemainTime", "complaintRisk"], ids=["deadline", "live-name", "camel"]
)
def test_unknown_key_is_rejected_by_name(key: str) -> None:
    raw = raw_item()
    raw[key] = 1
    with pytest.raises(ValueError, match=f"'{key}'"):
        it.item_from_scenario(raw, NOW)


@pytest.mark.parametrize("state", sorted(it.PENDING_STATES))
def test_pending_item_needs_deadline_in(state: str) -> None:
    raw = raw_item(state=state)
    del raw["deadline_in"]
    with pytest.raises(ValueError, match="deadline_in"):
        it.item_from_scenario(raw, NOW)
    with pytest.raises(ValueError, match="deadline_in"):
        it.item_from_scenario(raw_item(state=state, deadline_in=None), NOW)


@pytest.mark.parametrize("state", ["pending", "WAIT_SELLER", "closed", ""], ids=["pending", "upper", "closed", "empty"])
def test_unknown_state_is_rejected(state: str) -> None:
    with pytest.raises(ValueError, match="unknown state"):
        it.item_from_scenario(raw_item(state=state), NOW)


@pytest.mark.parametrize("state", ["refunded", "cancelled", "handled"])
def test_closed_items_get_a_close_time(state: str) -> None:
    assert make(state=state, deadline_in=None).close_time is not None


# ---- apply_time -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(it.PENDING_STATES))
def test_pending_item_past_deadline_is_refunded(state: str) -> None:
    item = make(state=state, deadline_in=HOUR)
    assert it.apply_time(item, NOW + HOUR + 1) is True
    assert item.state == "refunded"
    assert not item.pending
    assert it.ACTION_TIMEOUT_REFUND in item.actions
    assert item.actions == [1028]
    assert item.close_time == NOW + HOUR  # the deadline, not the moment it was noticed
    assert item.version == 2
    row = it.to_row(item, NOW + 2 * HOUR)
    assert row["expireActionDesc"] == ""  # off the clock: the page shows no countdown
    assert row["actions"] == [1028]
    assert (row["afterSalesStatus"], row["afterSalesTitle"]) == (5, "退款成功")
    assert row["expireRemainTime"] == 0


def test_refund_lag_leaves_an_overdue_row_on_the_list() -> None:
    item = make(deadline_in=HOUR)
    assert it.apply_time(item, NOW + HOUR + 30, lag=60) is False
    row = it.to_row(item, NOW + HOUR + 30)
    assert (row["expireRemainTime"], row["expireActionDesc"], row["urgentType"]) == (0, it.DESC_AUTO_REFUND, 3)
    assert it.apply_time(item, NOW + HOUR + 60, lag=60) is True


def test_evidence_item_past_proof_deadline_is_refunded() -> None:
    item = evidence(proof_in=50 * 60)
    assert it.apply_time(item, NOW + DAY) is True
    assert item.state == "refunded"
    assert item.actions == [it.ACTION_TIMEOUT_REFUND]
    assert item.close_time == NOW + 3000
    assert not item.proof_pending
    row = it.to_row(item, NOW + DAY)
    assert (row["expireActionDesc"], row["expireRemainTime"], row["afterSalesStatus"]) == ("", 0, 5)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: make(deadline_in=HOUR),
        lambda: make(state="wait_seller_receive", afterSalesType=2, deadline_in=HOUR),
        lambda: evidence(proof_in=HOUR),
    ],
    ids=["wait_seller", "wait_seller_receive", "evidence"],
)
@pytest.mark.parametrize("before", [1.0, 0.001, float(HOUR)], ids=["1s", "1ms", "1h"])
def test_before_the_deadline_nothing_changes(factory: Any, before: float) -> None:
    item: it.Item = factory()
    snapshot = copy.deepcopy(item)
    assert it.apply_time(item, NOW + HOUR - before) is False
    assert item == snapshot


@pytest.mark.parametrize(
    "factory", [lambda: make(deadline_in=HOUR), lambda: evidence(proof_in=HOUR)], ids=["pending", "evidence"],
)
def test_exactly_at_the_deadline_is_refunded(factory: Any) -> None:
    item: it.Item = factory()
    assert it.apply_time(item, NOW + HOUR) is True
    assert (item.state, item.actions, item.close_time) == ("refunded", [1028], NOW + HOUR)


def test_apply_time_is_idempotent() -> None:
    item = make(deadline_in=HOUR)
    assert it.apply_time(item, NOW + DAY) is True
    snapshot = copy.deepcopy(item)
    assert it.apply_time(item, NOW + 2 * DAY) is False
    assert item == snapshot
    assert item.actions == [1028]


@pytest.mark.parametrize(
    "factory",
    [
        lambda: make(state="wait_buyer", deadline_in=HOUR),
        lambda: make(state="refunded", deadline_in=None),
        lambda: make(state="cancelled", deadline_in=None),
        lambda: make(state="handled", deadline_in=HOUR),
        lambda: make(state="platform", deadline_in=None),
    ],
    ids=["wait_buyer", "refunded", "cancelled", "handled", "platform-no-proof"],
)
def test_items_not_waiting_for_the_merchant_never_time_out(factory: Any) -> None:
    item: it.Item = factory()
    snapshot = copy.deepcopy(item)
    assert it.apply_time(item, NOW + 30 * DAY) is False
    assert item == snapshot


# ---- handle ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(it.PENDING_STATES))
def test_handle_pending_item(state: str) -> None:
    item = make(state=state, afterSalesType=2, deadline_in=HOUR)
    it.handle(item, NOW + 60)
    assert item.state == "handled"
    assert item.close_time == NOW + 60
    assert item.version == 2
    assert not item.pending
    assert not FILTERS["待商家处理"](item, NOW + 60)
    assert it.apply_time(item, NOW + DAY) is False  # handled in time: no automatic refund
    assert it.to_row(item, NOW + 60)["expireActionDesc"] == ""


def test_handle_proof_pending_submits_evidence() -> None:
    item = evidence(proof_in=HOUR)
    assert FILTERS["待商家举证"](item, NOW)
    it.handle(item, NOW + 60)
    assert item.proof_status == it.PROOF_SUBMITTED == "已举证"
    assert item.state == "platform"
    assert item.version == 2
    assert not FILTERS["待商家举证"](item, NOW + 60)
    assert not FILTERS["待举证即将逾期"](item, NOW + 60)
    row = it.to_row(item, NOW + 60)
    assert "proofStatus" not in row and row["expireActionDesc"] == ""
    assert it.apply_time(item, NOW + DAY) is False


@pytest.mark.parametrize(
    "factory",
    [
        lambda: make(state="wait_buyer", deadline_in=HOUR),
        lambda: make(state="refunded", deadline_in=None),
        lambda: make(state="cancelled", deadline_in=None),
        lambda: make(state="handled", deadline_in=None),
        lambda: make(state="platform", deadline_in=None),
    ],
    ids=["wait_buyer", "refunded", "cancelled", "handled", "platform-no-proof"],
)
def test_handle_other_items_raises(factory: Any) -> None:
    item: it.Item = factory()
    snapshot = copy.deepcopy(item)
    with pytest.raises(ValueError, match="not waiting"):
        it.handle(item, NOW)
    assert item == snapshot


def test_handle_twice_raises() -> None:
    for item in (make(), evidence()):
        it.handle(item, NOW)
        with pytest.raises(ValueError, match=str(item.id)):
            it.handle(item, NOW)


# ---- quick filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "labels"),
    [
        ({"deadline_in": 3 * DAY}, {"待商家处理"}),
        ({"deadline_in": DAY - 1}, {"待处理即将逾期", "待商家处理"}),
        ({"deadline_in": DAY}, {"待商家处理"}),
        ({"deadline_in": DAY + 0.5}, {"待商家处理"}),
        ({"deadline_in": 0}, {"待处理即将逾期", "待商家处理"}),
        ({"complaint_risk": True}, {"投诉预警", "待商家处理"}),
        ({"buyer_urged": True}, {"买家催处理", "待商家处理"}),
        ({"afterSalesType": 2}, {"退货待处理", "待商家处理"}),
        ({"afterSalesType": 3}, {"待商家处理"}),
        (
            {"state": "wait_seller_receive", "afterSalesType": 2, "deadline_in": 5 * HOUR},
            {"待处理即将逾期", "待商家处理", "退货待处理"},
        ),
        (
            {"afterSalesType": 2, "complaint_risk": True, "buyer_urged": True, "deadline_in": HOUR},
            {"投诉预警", "待处理即将逾期", "待商家处理", "买家催处理", "退货待处理"},
        ),
        (
            {"state": "platform", "deadline_in": None, "proof_deadline_in": DAY - 1},
            {"待举证即将逾期", "待商家举证", "平台处理中"},
        ),
        ({"state": "platform", "deadline_in": None, "proof_deadline_in": DAY}, {"待商家举证", "平台处理中"}),
        ({"state": "platform", "deadline_in": None}, {"平台处理中"}),
        ({"state": "wait_buyer"}, {"待买家处理"}),
        (
            {
                "state": "wait_buyer",
                "afterSalesType": 2,
                "complaint_risk": True,
                "buyer_urged": True,
                "deadline_in": HOUR,
            },
            {"待买家处理"},
        ),
        ({"state": "handled", "afterSalesType": 2, "complaint_risk": True, "buyer_urged": True}, set()),
        ({"state": "refunded", "afterSalesType": 2, "deadline_in": None}, set()),
        ({"state": "cancelled", "deadline_in": None}, set()),
    ],
    ids=[
        "pending-3d",
        "pending-86399s",
        "pending-86400s",
        "pending-86400.5s",
        "pending-due-now",
        "complaint",
        "urged",
        "return",
        "exchange",
        "wait-receive-5h",
        "every-flag",
        "proof-86399s",
        "proof-86400s",
        "platform-no-proof",
        "wait_buyer",
        "wait_buyer-flags-ignored",
        "handled",
        "refunded",
        "cancelled",
    ],
)
def test_filter_membership(over: dict[str, Any], labels: set[str]) -> None:
    item = make(**over)
    assert {label for label, pred in FILTERS.items() if pred(item, NOW)} == labels


def test_filter_boundary_moves_with_time() -> None:
    item = make(deadline_in=DAY + 10)
    assert not FILTERS["待处理即将逾期"](item, NOW)
    assert not FILTERS["待处理即将逾期"](item, NOW + 10)
    assert FILTERS["待处理即将逾期"](item, NOW + 11)


def test_the_nine_live_cards() -> None:
    """Codes, count keys and sort flags as PDD's bundle has them (mms-live-2026.md §A)."""
    table = [(c.label, c.code, c.count_key, c.expire_sort) for c in it.CARDS]
    assert table == [
        ("投诉预警", 18, "complainWarning", False),
        ("待处理即将逾期", 4, "expireIn24HoursWaitHandle", True),
        ("待商家处理", 7, "waitSellerHandle", True),
        ("待举证即将逾期", 15, "expireIn24HoursWaitSellerProof", True),
        ("待商家举证", 19, "waitSellerProof", True),
        ("买家催处理", 20, "remindRefund", False),
        ("平台处理中", 6, "platformHandling", False),
        ("待买家处理", 8, "waitBuyerHandle", False),
        ("退货待处理", 2, "returnedWaitHandle", True),
    ]
    assert it.PAGE_LOAD_CODE == 18


# ---- to_row ---------------------------------------------------------------------------------------

ROW_FIELDS = {  # the fields PDD's row renderer reads (mms-live-2026.md §C)
    "id", "uid", "orderSn", "version", "createdAt", "expireRemainTime", "expireActionDesc", "urgentType",
    "actions", "thumbUrl", "goodsName", "goodsNumber", "goodsSpec", "tagTipList", "receiveAmount",
    "refundAmount", "afterSalesType", "afterSalesStatus", "serveTagDesc",
}


def test_row_has_the_live_field_names_and_values() -> None:
    item = make(created_ago=7200, deadline_in=90000, mallRemark="已联系")
    row = it.to_row(item, NOW + 1000)
    assert ROW_FIELDS <= set(row)
    assert not {"proofStatus", "proofExpireRemainTime", "platformJoined", "afterSalesTypeName"} & set(row)
    assert row["id"] == 1001
    assert row["orderSn"] == "261121-000000000001"
    assert row["afterSalesType"] == 1
    assert (row["afterSalesStatus"], row["afterSalesTitle"]) == (1, "买家申请退款，待商家处理")
    assert row["afterSalesReasonDesc"] == "拍错了/多拍了"
    assert row["createdAt"] == int(NOW - 7200)
    assert row["expireRemainTime"] == 89000
    assert row["expireActionDesc"] == it.DESC_AUTO_REFUND == "${time}未处理，系统将自动退款"
    assert row["urgentType"] == 0
    assert (row["refundAmount"], row["receiveAmount"]) == (3990, 3990)
    assert (row["goodsName"], row["goodsSpec"], row["goodsNumber"]) == ("袜子10双装", "黑色;均码", 2)
    assert row["sellerAfterSalesShippingStatusDesc"] == "已发货"
    assert row["mallRemark"] == "已联系"
    assert row["actions"] == []
    assert row["version"] == 1


@pytest.mark.parametrize(("left", "urgent"), [(2 * DAY, 0), (DAY - 1, 1), (6 * HOUR - 1, 2)])
def test_urgent_type(left: int, urgent: int) -> None:
    assert it.to_row(make(deadline_in=left), NOW)["urgentType"] == urgent


def test_row_actions_is_a_copy() -> None:
    item = make(deadline_in=HOUR)
    it.apply_time(item, NOW + HOUR)
    row = it.to_row(item, NOW + HOUR)
    row["actions"].append(1)
    assert item.actions == [1028]


@pytest.mark.parametrize(
    ("over", "remain", "on_clock"),
    [
        ({"deadline_in": 5 * HOUR}, 5 * HOUR - 100, True),
        ({"state": "wait_seller_receive", "afterSalesType": 2, "deadline_in": 5 * HOUR}, 5 * HOUR - 100, True),
        ({"deadline_in": 50}, 0, True),
        ({"state": "wait_buyer", "deadline_in": 5 * HOUR}, 0, False),
        ({"state": "handled", "deadline_in": 5 * HOUR}, 0, False),
        ({"state": "refunded", "deadline_in": None}, 0, False),
        ({"state": "platform", "deadline_in": None, "proof_deadline_in": 5 * HOUR}, 5 * HOUR - 100, True),
    ],
    ids=["wait_seller", "wait_seller_receive", "overdue-clamped", "wait_buyer", "handled", "refunded", "evidence"],
)
def test_every_row_carries_its_clock_in_expire_remain_time(over: dict[str, Any], remain: int, on_clock: bool) -> None:
    row = it.to_row(make(**over), NOW + 100)
    assert row["expireRemainTime"] == remain and bool(row["expireActionDesc"]) is on_clock


@pytest.mark.parametrize(
    ("tracking", "desc"),
    [("", "${time}物流无退回轨迹，系统将自动退款"), ("SF1234567890", "${time}未处理，系统将自动退款")],
    ids=["no-tracking", "tracking"],
)
def test_wait_receive_action_desc_depends_on_tracking(tracking: str, desc: str) -> None:
    item = make(state="wait_seller_receive", afterSalesType=2, deadline_in=5 * HOUR, reverseTrackingNumber=tracking)
    row = it.to_row(item, NOW)
    assert row["expireActionDesc"] == desc
    assert (row["afterSalesStatus"], row["afterSalesTitle"]) == (11, "用户已发货，待商家处理")
    assert row["reverseTrackingNumber"] == tracking


def test_wait_seller_with_empty_tracking_is_not_no_return_track() -> None:
    row = it.to_row(make(reverseTrackingNumber=""), NOW)
    assert row["expireActionDesc"] == it.DESC_AUTO_REFUND


def test_proof_pending_row() -> None:
    row = it.to_row(evidence(proof_in=50 * 60), NOW + 600)
    assert row["expireRemainTime"] == 2400 and row["expireActionDesc"] == it.DESC_PROOF
    assert (row["afterSalesStatus"], row["afterSalesTitle"]) == (2, "平台处理中")


@pytest.mark.parametrize(
    ("state", "type_", "status"),
    [
        ("wait_seller", 1, (1, "买家申请退款，待商家处理")),
        ("wait_seller", 2, (1, "买家申请退款，待商家处理")),
        ("wait_seller", 3, (14, "换货/补寄 待商家处理")),
        ("wait_seller_receive", 2, (11, "用户已发货，待商家处理")),
        ("platform", 1, (2, "平台处理中")),
        ("handled", 1, (4, "退款中")),
        ("handled", 2, (10, "商家同意退货退款，待买家发货")),
        ("handled", 3, (15, "商家已同意换货，待商家发货")),
        ("wait_buyer", 1, (9, "商家驳回退款，待买家处理")),
        ("refunded", 1, (5, "退款成功")),
        ("cancelled", 1, (6, "买家撤销")),
    ],
    ids=["refund", "return", "exchange", "returned", "platform", "handled-refund", "handled-return",
         "handled-other", "wait_buyer", "refunded", "cancel"],
)
def test_row_status_code_and_title_follow_the_live_codes(state: str, type_: int, status: tuple[int, str]) -> None:
    deadline = None if state in ("refunded", "cancelled", "platform") else HOUR
    row = it.to_row(make(state=state, afterSalesType=type_, deadline_in=deadline), NOW)
    assert (row["afterSalesStatus"], row["afterSalesTitle"]) == status
    assert ("lastOperator" in row) is (status[0] in (4, 5))  # 5: the sandbox says who refunded (assumed)


# ---- counts ---------------------------------------------------------------------------------------


def test_counts_agree_with_filters() -> None:
    items = [
        make(id=1, deadline_in=3 * DAY),
        make(id=2, deadline_in=HOUR, complaint_risk=True),
        make(id=3, deadline_in=DAY - 1, buyer_urged=True, afterSalesType=2),
        make(id=4, state="wait_seller_receive", afterSalesType=2, deadline_in=5 * HOUR),
        evidence(id=5, proof_in=50 * 60),
        evidence(id=6, proof_in=2 * DAY),
        make(id=7, state="platform", deadline_in=None),
        make(id=8, state="wait_buyer"),
        make(id=9, state="refunded", deadline_in=None),
        make(id=10, state="handled", deadline_in=None),
    ]
    counts = it.counts(items, NOW)
    assert set(counts) == {c.count_key for c in it.CARDS} | {"refundedByPlatformLast24Hours"}
    for card in it.CARDS:
        assert counts[card.count_key] == sum(1 for i in items if card.select(i, NOW)), card.label
    assert counts == {
        "complainWarning": 1,
        "expireIn24HoursWaitHandle": 3,
        "waitSellerHandle": 4,
        "expireIn24HoursWaitSellerProof": 1,
        "waitSellerProof": 2,
        "remindRefund": 1,
        "platformHandling": 3,
        "waitBuyerHandle": 1,
        "returnedWaitHandle": 2,
        "refundedByPlatformLast24Hours": 0,
    }
    assert it.wait_handle_counts(items, NOW) == {
        "expiringNum": 3, "expireIn24HoursWaitSellerProof": 1, "refundedByPlatformLast24Hours": 0,
        "expireIn24HoursTicketNum": 0,
    }


def test_counts_of_nothing_are_zero() -> None:
    counts = it.counts([], NOW)
    assert set(counts.values()) == {0}
    assert len(counts) == 10


# ---- dhms -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0天0时0分0秒"),
        (59, "0天0时0分59秒"),
        (60, "0天0时1分0秒"),
        (3600, "0天1时0分0秒"),
        (7410, "0天2时3分30秒"),
        (86399, "0天23时59分59秒"),
        (86400, "1天0时0分0秒"),
        (603182, "6天23时33分2秒"),
        (-5, "0天0时0分0秒"),
    ],
    ids=["zero", "59s", "minute", "hour", "2h3m30s", "86399s", "day", "6d23h33m2s", "negative"],
)
def test_dhms(seconds: int, text: str) -> None:
    assert it.dhms(seconds) == text


def test_dhms_truncates_fractions() -> None:
    assert it.dhms(59.9) == "0天0时0分59秒"  # type: ignore[arg-type]
