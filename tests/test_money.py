"""Money lost and money to recover: 退款成功 rows → refunds, who agreed, yesterday's losses, 补款, the digest."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.config import locators
from agent.core import money
from agent.core.digest import render_digest
from agent.core.models import CheckFailure

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=TZ)
YESTERDAY = date(2026, 11, 21)
LISTS = locators.load()["aftersale_list"]


def row(n: int, hours_ago: float, *, type_: int = 1, operator: int = 2, actions: list[int] | None = None,
        tag: str = "", shipping: str = "已发货", reason: str = "不想要了") -> dict[str, object]:
    return {"id": n, "orderSn": f"261121-{n:015d}", "afterSalesType": type_, "refundAmount": 1000 * n,
            "afterSalesReasonDesc": reason, "lastOperator": operator, "actions": actions or [],
            "serveTagDesc": tag, "sellerAfterSalesShippingStatusDesc": shipping,
            "updatedAt": int((NOW - timedelta(hours=hours_ago)).timestamp())}


ROWS = [
    row(1, 20, actions=[1028]),                                   # 超时自动退款 yesterday
    row(2, 21, tag="极速退款", shipping="已签收"),                  # the platform's helper, goods signed for
    row(3, 22, shipping="已签收"),                                  # the merchant agreed, goods signed for
    row(4, 23, type_=2, operator=3),                               # the platform decided (退货退款)
    row(5, 40, actions=[1028]),                                   # two days ago
    row(6, 2, operator=3),                                         # today
]


def test_who_agreed_to_each_refund_and_whether_the_goods_were_signed_for() -> None:
    got = money.parse_refunds(ROWS, LISTS, TZ)
    assert [(r.by, r.signed, r.type) for r in got[:4]] == [
        ("timeout", False, "仅退款"), ("helper", True, "仅退款"), ("merchant", True, "仅退款"),
        ("platform", False, "退货退款")]
    assert got[0].refunded_at == NOW - timedelta(hours=20)
    assert [r.recoverable for r in got[:4]] == [False, True, True, False]


def test_yesterdays_losses_and_what_to_ask_back() -> None:
    refunds = money.parse_refunds(ROWS, LISTS, TZ)
    day = money.on_day(refunds, YESTERDAY, TZ)
    assert [r.id for r in day] == ["1", "2", "3", "4"]
    lost, back = money.losses_of(day)
    assert [r.id for r in lost] == ["1", "2", "4"]  # newest first; the merchant's own refund is no loss
    assert [r.id for r in back] == ["2", "3"]
    doc = money.money_json(refunds, YESTERDAY, TZ)
    assert doc["lost_fen"] == 7000 and len(doc["recoverable"]) == 2
    assert money.Refund.from_json(doc["lost"][0]) == lost[0]


def test_a_row_without_its_required_fields_is_a_changed_layout() -> None:
    bad = dict(ROWS[0])
    del bad["refundAmount"]
    with pytest.raises(CheckFailure, match="refundAmount missing"):
        money.parse_refunds([bad], LISTS, TZ)
    assert money.parse_refunds([{k: v for k, v in ROWS[0].items() if k != "updatedAt"}], LISTS, TZ)[0].refunded_at \
        is None  # no time: never counted to a day


def test_the_digest_money_section_escapes_buyer_text_and_can_go_alone() -> None:
    refunds = money.parse_refunds([*ROWS, row(7, 19, actions=[1028], reason="<@all>[点我](http://x)")], LISTS, TZ)
    section = money.money_json(refunds, YESTERDAY, TZ)
    msg = render_digest("示例旗舰店", [], [], [], NOW, TZ, money=section, quality={"count": 3, "refunded": 1})
    assert "昨日退款（非商家同意）：4 单，共 ¥140.00" in msg.text  # 1, 2, 4 and 7 (¥10 + ¥20 + ¥40 + ¥70)
    assert "超时自动退款 · 仅退款 订单 261121-000000000000001 · ¥10.00" in msg.markdown
    assert "平台代为同意（极速退款）" in msg.markdown and "平台判定 · 退货退款" in msg.markdown
    assert "可联系买家补款：" in msg.markdown and "已签收 · 仅退款 订单 261121-000000000000003" in msg.markdown
    assert "本周品质类售后：**3 单**（已退款 1 单" in msg.markdown
    assert "<@all>" not in msg.markdown and "](http://x)" not in msg.markdown and "&lt;@all&gt;" in msg.html
    alone = render_digest("示例旗舰店", [], [], [], NOW, TZ, money=section, only_money=True)
    assert alone.title.startswith("【示例旗舰店】退款核对") and "待商家处理" not in alone.markdown
    failed = render_digest("示例旗舰店", [], [], [], NOW, TZ, money={"error": "queryList[refunds]: HTTP 500"})
    assert "退款记录未能读取（queryList[refunds]: HTTP 500）" in failed.text


def test_the_check_table_shows_the_flags_and_the_money_line() -> None:
    from agent.cli.check_cmd import render_table
    from agent.core.models import Item, ShopResult

    it = Item(kind="aftersale", id="1", order_sn="261121-000000000000001", type="仅退款", status="待商家处理",
              reason="质量问题", goods_name="杯子", refund_amount_fen=1290, deadline=NOW + timedelta(hours=3),
              remaining_seconds=3 * 3600, complaint=True, quality_risk=True)
    doc = money.money_json(money.parse_refunds(ROWS, LISTS, TZ), YESTERDAY, TZ)
    out = render_table([ShopResult(name="店", checked_at=NOW, mode="api", aftersales=[it], money=doc)], "c.toml", TZ)
    assert "【投诉预警】【品质退款风险】 质量问题" in out
    assert "2026-11-21 非商家同意的退款 3 单，¥70.00；可联系买家补款 2 单" in out
