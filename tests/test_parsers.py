"""Parsers on captured fixture files: pure, no browser, no network."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent import locators, parsers
from agent.models import CheckFailure, ShopState

FIX = Path(__file__).parent / "fixtures" / "querylist"
SEL = locators.load()
SITE, LISTS, EVIDENCE = SEL["site"], SEL["aftersale_list"], SEL["evidence"]
CST = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 21, 10, 0, 0, tzinfo=CST)


def fixture(name: str) -> Any:
    return json.loads((FIX / f"{name}.json").read_text(encoding="utf-8"))


def test_pending_rows_become_items_with_absolute_deadlines() -> None:
    total, rows = parsers.result_page(fixture("pending_demo"), SITE, LISTS, "queryList")
    items, findings = parsers.parse_aftersales(rows, LISTS, AT)
    assert total == len(rows) == len(items) == 7 and findings == []
    for row, item in zip(rows, items, strict=True):
        assert item.id == str(row["id"]) and item.order_sn == row["orderSn"]
        assert item.deadline == AT + timedelta(seconds=row["expireRemainTime"] + 0.5)
        assert item.deadline.utcoffset() == timedelta(hours=8)
        assert item.remaining_seconds == row["expireRemainTime"]
        assert item.refund_amount_fen == row["refundAmount"] and isinstance(item.refund_amount_fen, int)
        assert item.type == row["afterSalesTypeName"] and item.status == row["afterSalesTitle"]
    hostile = [i for i in items if "<script>" in i.reason]
    assert len(hostile) == 1  # kept verbatim: escaping is the renderer's job


def test_evidence_rows_become_tasks() -> None:
    _, rows = parsers.result_page(fixture("evidence_demo"), SITE, LISTS, "queryList")
    tasks, findings = parsers.parse_evidence(rows, LISTS, EVIDENCE, AT)
    assert len(tasks) == 2 and findings == []
    for row, task in zip(rows, tasks, strict=True):
        assert task.deadline == AT + timedelta(seconds=row["proofExpireRemainTime"] + 0.5)
        assert task.status == "平台处理中"


def test_closed_rows_in_a_mixed_list_are_left_out_with_a_finding() -> None:
    _, rows = parsers.result_page(fixture("all_demo"), SITE, LISTS, "queryList")
    items, findings = parsers.parse_aftersales(rows, LISTS, AT)
    pending = [r for r in rows if r["expireRemainTime"] is not None and 1028 not in r["actions"]]
    assert {i.order_sn for i in items} == {r["orderSn"] for r in pending}
    assert len(findings) == len(rows) - len(pending)


@pytest.mark.parametrize(
    ("name", "state", "text"),
    [
        ("rate_limited", ShopState.RATE_LIMITED, "54001"),
        ("logged_out", ShopState.LOGIN_REQUIRED, "43001"),
    ],
    ids=["54001", "43001"],
)
def test_error_envelopes_are_typed(name: str, state: ShopState, text: str) -> None:
    with pytest.raises(CheckFailure) as exc:
        parsers.result_page(fixture(name), SITE, LISTS, "queryList")
    assert exc.value.state is state and text in exc.value.detail


def _renamed(field: str) -> list[Any]:
    data = copy.deepcopy(fixture("pending_demo"))
    for row in data["result"]["list"]:
        row[field + "V2"] = row.pop(field)
    return list(data["result"]["list"])


@pytest.mark.parametrize("field", ["expireRemainTime", "orderSn", "refundAmount", "afterSalesTitle", "createdAt"])
def test_a_renamed_field_is_layout_changed_naming_it(field: str) -> None:
    with pytest.raises(CheckFailure) as exc:
        parsers.parse_aftersales(_renamed(field), LISTS, AT)
    assert exc.value.state is ShopState.LAYOUT_CHANGED
    assert f"queryList.list[0].{field} missing" in exc.value.detail


def test_a_renamed_evidence_field_is_layout_changed() -> None:
    data = fixture("evidence_demo")
    for row in data["result"]["list"]:
        row["proofExpireTime"] = row.pop("proofExpireRemainTime")
    with pytest.raises(CheckFailure, match="proofExpireRemainTime missing"):
        parsers.parse_evidence(data["result"]["list"], LISTS, EVIDENCE, AT)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("result"), "result missing"),
        (lambda d: d["result"].pop("total"), "result.total missing"),
        (lambda d: d["result"].__setitem__("list", "x"), "result.list missing or not a list"),
        (lambda d: d.update(success=False, errorCode=50000, errorMsg="系统异常"), "errorCode 50000"),
    ],
    ids=["no-result", "no-total", "list-not-list", "backend-error"],
)
def test_envelope_changes(mutate: Any, match: str) -> None:
    data = fixture("pending_demo")
    mutate(data)
    with pytest.raises(CheckFailure, match=match):
        parsers.result_page(data, SITE, LISTS, "queryList")


def test_wrong_type_is_reported() -> None:
    rows = fixture("pending_demo")["result"]["list"]
    rows[2]["refundAmount"] = "25.80"
    with pytest.raises(CheckFailure, match=r"list\[2\]\.refundAmount: unexpected value '25.80'"):
        parsers.parse_aftersales(rows, LISTS, AT)


@pytest.mark.parametrize(
    ("text", "kind", "seconds"),
    [
        ("（6天23时33分2秒未处理，系统将自动退款）", "aftersale", 603182),
        ("申请时间: 2026-09-29 07:00:00 （6天2时3分30秒物流无退回轨迹，系统将自动退款）", "aftersale", 525810),
        ("（0天0时50分0秒内未举证，平台将判定商家责任）", "evidence", 3000),
        ("（0天0时50分0秒内未举证，平台将判定商家责任）", "aftersale", None),
        ("（1天0时0分0秒未处理，系统将自动退款）", "evidence", None),
    ],
)
def test_countdown_seconds(text: str, kind: str, seconds: int | None) -> None:
    assert parsers.countdown_seconds(text, LISTS["countdown"][kind]) == seconds


def test_counters_and_yuan() -> None:
    text = "售后数据 24小时内将逾期订单数 3单 24小时内待商家举证 2单 投诉预警1"
    assert parsers.parse_counters(text, LISTS) == {"24小时内将逾期订单数": 3, "24小时内待商家举证": 2}
    assert parsers.parse_yuan("退款：¥25.80") == 2580
    assert parsers.parse_yuan("¥129") == 12900
    assert parsers.parse_yuan("退款：¥0.5") == 50


def test_consistency_findings() -> None:
    assert parsers.consistency(7, 7, "x", 3, 3, "c") == []
    kinds = [f.kind for f in parsers.consistency(8, 7, "x", 2, 3, "c")]
    assert kinds == ["rows_vs_total", "counter_vs_items"]
    rx = LISTS["countdown"]["aftersale"]
    rows = [{"order_sn": "a", "countdown": "（0天1时0分0秒未处理，系统将自动退款）"},
            {"order_sn": "b", "countdown": "（0天1时0分0秒未处理，系统将自动退款）"},
            {"order_sn": "c", "countdown": "garbled"}]
    found = parsers.countdown_findings(rows, {"a": 3601, "b": 3700, "c": 10}, rx)
    assert [f.kind for f in found] == ["countdown_vs_api", "countdown_unparsed"]
