"""Parsers on captured fixture files: pure, no browser, no network."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent.config import locators
from agent.core import parsers
from agent.core.models import CaptchaRequired, CheckFailure, ShopState

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
        assert item.type == LISTS["fields"]["type_names"][str(row["afterSalesType"])]
        assert item.status == row["afterSalesTitle"] and not item.overdue
        assert item.expire_action and "${time}" not in item.expire_action
    hostile = [i for i in items if "<script>" in i.reason]
    assert len(hostile) == 1  # kept verbatim: escaping is the renderer's job


def test_evidence_rows_in_the_live_shape_become_tasks() -> None:
    _, rows = parsers.result_page(fixture("evidence_demo"), SITE, LISTS, "queryList")
    assert all("proofStatus" not in r and "proofExpireRemainTime" not in r for r in rows)  # the live list has none
    tasks, findings = parsers.parse_evidence(rows, LISTS, EVIDENCE, AT)
    assert len(tasks) == 2 and findings == []
    for row, task in zip(rows, tasks, strict=True):
        assert task.deadline == AT + timedelta(seconds=row["expireRemainTime"] + 0.5)
        assert task.status == "平台处理中"


def test_evidence_rows_in_the_older_guessed_shape_still_parse() -> None:
    _, rows = parsers.result_page(fixture("evidence_old_guess"), SITE, LISTS, "queryList")
    tasks, findings = parsers.parse_evidence(rows, LISTS, EVIDENCE, AT)
    assert len(tasks) == 2 and findings == []
    for row, task in zip(rows, tasks, strict=True):
        assert task.deadline == AT + timedelta(seconds=row["proofExpireRemainTime"] + 0.5)


def test_an_evidence_row_with_neither_shape_names_the_fields_it_lacked() -> None:
    rows = fixture("evidence_demo")["result"]["list"]
    for row in rows:
        row["expireRemainTimeV2"] = row.pop("expireRemainTime")
    with pytest.raises(CheckFailure) as exc:
        parsers.parse_evidence(rows, LISTS, EVIDENCE, AT)
    assert exc.value.state is ShopState.LAYOUT_CHANGED
    assert "no deadline field (expireRemainTime / proofExpireRemainTime)" in exc.value.detail


def test_closed_rows_in_a_mixed_list_are_left_out_with_a_finding() -> None:
    _, rows = parsers.result_page(fixture("all_demo"), SITE, LISTS, "queryList")
    items, findings = parsers.parse_aftersales(rows, LISTS, AT)
    on_clock = [r for r in rows if r["expireActionDesc"] and 1028 not in r["actions"]]
    assert {i.order_sn for i in items} == {r["orderSn"] for r in on_clock}
    assert len(findings) == len(rows) - len(on_clock) > 0


def _row(**kw: Any) -> dict[str, Any]:
    row = dict(fixture("pending_demo")["result"]["list"][0])
    row.update(kw)
    return row


def test_remaining_zero_with_a_description_is_overdue_not_due_later() -> None:
    items, findings = parsers.parse_aftersales([_row(expireRemainTime=0)], LISTS, AT)
    assert findings == [] and items[0].overdue and items[0].remaining_seconds == 0 and items[0].deadline == AT


@pytest.mark.parametrize("remain", [0, 3600])
def test_an_empty_description_is_no_deadline(remain: int) -> None:
    items, findings = parsers.parse_aftersales([_row(expireRemainTime=remain, expireActionDesc="")], LISTS, AT)
    assert items == [] and [f.kind for f in findings] == ["no_deadline"]
    assert "expireActionDesc is empty" in findings[0].message


def test_each_row_takes_the_time_of_the_answer_that_carried_it() -> None:
    rows = [_row(expireRemainTime=100), _row(expireRemainTime=100, orderSn="261121-000000000000002")]
    later = AT + timedelta(seconds=29)
    items, _ = parsers.parse_aftersales(rows, LISTS, [AT, later])
    assert [i.deadline for i in items] == [AT + timedelta(seconds=100.5), later + timedelta(seconds=100.5)]


@pytest.mark.parametrize(
    ("name", "status", "headers", "state", "text"),
    [
        ("captcha", 200, {}, ShopState.CAPTCHA, "54001"),
        ("rate_limited", 429, {}, ShopState.RATE_LIMITED, "HTTP 429"),
        ("logged_out", 200, {"checklogin": "false"}, ShopState.LOGIN_REQUIRED, "43001"),
        ("logged_out", 200, {}, ShopState.LOGIN_REQUIRED, "43001"),
    ],
    ids=["54001-captcha", "429", "43001-header", "43001"],
)
def test_error_envelopes_are_typed(
    name: str, status: int, headers: dict[str, str], state: ShopState, text: str
) -> None:
    with pytest.raises(CheckFailure) as exc:
        parsers.result_page(fixture(name), SITE, LISTS, "queryList", status, headers)
    assert exc.value.state is state and text in exc.value.detail


def test_54001_is_a_captcha_with_its_token_never_a_rate_limit() -> None:
    with pytest.raises(CaptchaRequired) as exc:
        parsers.result_page(fixture("captcha"), SITE, LISTS, "queryList")
    assert exc.value.state is ShopState.CAPTCHA and exc.value.token == "0f" * 16


def test_40001_with_http_403_is_a_lost_session() -> None:
    data = {"success": False, "errorCode": 40001, "errorMsg": "", "result": None}
    with pytest.raises(CheckFailure) as exc:
        parsers.result_page(data, SITE, LISTS, "queryList", 403)
    assert exc.value.state is ShopState.LOGIN_REQUIRED


def _renamed(field: str) -> list[Any]:
    data = copy.deepcopy(fixture("pending_demo"))
    for row in data["result"]["list"]:
        row[field + "V2"] = row.pop(field)
    return list(data["result"]["list"])


@pytest.mark.parametrize("field", ["orderSn", "refundAmount", "afterSalesTitle", "createdAt"])
def test_a_renamed_field_is_layout_changed_naming_it(field: str) -> None:
    with pytest.raises(CheckFailure) as exc:
        parsers.parse_aftersales(_renamed(field), LISTS, AT)
    assert exc.value.state is ShopState.LAYOUT_CHANGED
    assert f"queryList.list[0].{field} missing" in exc.value.detail


def test_a_renamed_deadline_field_is_layout_changed_naming_it() -> None:
    with pytest.raises(CheckFailure, match=r"no deadline field \(expireRemainTime\)"):
        parsers.parse_aftersales(_renamed("expireRemainTime"), LISTS, AT)


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
    ("text", "seconds"),
    [("6天23时33分2秒", 603182), ("0天0时50分0秒", 3000), ("（已逾期）", None), ("", None)],
)
def test_countdown_seconds_of_the_bare_time_span(text: str, seconds: int | None) -> None:
    assert parsers.countdown_seconds(text, LISTS["countdown"]["time"]) == seconds


@pytest.mark.parametrize(
    ("row", "seconds"),
    [
        ({"countdown": "（6天2时3分30秒物流无退回轨迹，系统将自动退款）", "countdown_time": "6天2时3分30秒"}, 525810),
        ({"countdown": "（已逾期）", "countdown_time": ""}, 0),
        ({"countdown": "", "countdown_time": ""}, None),
    ],
    ids=["running", "overdue", "none"],
)
def test_dom_remaining(row: dict[str, str], seconds: int | None) -> None:
    assert parsers.dom_remaining(row, LISTS) == seconds


def test_wait_handle_counters_by_label() -> None:
    result = {"expiringNum": 3, "expireIn24HoursWaitSellerProof": 1, "refundedByPlatformLast24Hours": 0,
              "expireIn24HoursTicketNum": True}
    assert parsers.wait_counters(result, LISTS) == {
        "24小时内将逾期订单数": 3, "24小时内待商家举证": 1, "24小时内平台同意退款": 0,
    }


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
    shown = {"countdown": "（0天1时0分0秒未处理，系统将自动退款）", "countdown_time": "0天1时0分0秒"}
    rows = [{"order_sn": "a", **shown}, {"order_sn": "b", **shown},
            {"order_sn": "c", "countdown": "garbled", "countdown_time": ""}]
    found = parsers.countdown_findings(rows, {"a": 3601, "b": 3700, "c": 10}, LISTS)
    assert [f.kind for f in found] == ["countdown_vs_api", "countdown_unparsed"]


def test_login_state_reads_checklogin_by_site_toml() -> None:
    assert parsers.login_state({"success": True, "result": {"login": True}}, SITE) is True
    assert parsers.login_state({"success": True, "result": {"login": False}}, SITE) is False
    assert parsers.login_state({"success": False, "errorCode": 43001, "errorMsg": "会话已过期"}, SITE) is False
    with pytest.raises(CheckFailure) as info:
        parsers.login_state({"success": True, "result": {"logged": True}}, SITE)
    assert info.value.state is ShopState.LAYOUT_CHANGED and "result.login" in info.value.detail
    with pytest.raises(CheckFailure) as info:
        parsers.login_state({"success": False, "errorCode": 42900, "errorMsg": "操作太过频繁"}, SITE)
    assert info.value.state is ShopState.RATE_LIMITED
    with pytest.raises(CheckFailure) as info:  # 54001 is a captcha, never a rate limit, whatever the text says
        parsers.login_state({"success": False, "errorCode": 54001, "errorMsg": "操作太过频繁"}, SITE)
    assert info.value.state is ShopState.CAPTCHA
    renamed = {**SITE, "api": {**SITE["api"], "check_login_field": "isLogin"}}  # a new build renames the flag
    assert parsers.login_state({"success": True, "result": {"isLogin": True}}, renamed) is True
