"""Rendering: escaping of hostile buyer text, Chinese times and money, ordering, byte-limited splitting, digest."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.core.digest import render_digest
from agent.core.models import Item, ShopState
from agent.core.render import (
    RenderedMessage,
    deadline_zh,
    group_title,
    html_escape,
    md_escape,
    remaining_zh,
    render_group,
    safe_url,
    text_escape,
    yuan,
)
from agent.core.rules import Alert, ItemState, RulesConfig, health_alerts

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=TZ)
SHOP = "示例旗舰店"
HOSTILE = "质量太差了<@all> <script>alert(1)</script> [点我领红包](http://evil.example) **差评**"
BASE = "http://127.0.0.1:8765/aftersales-ssr/detail"


def url(a: Alert) -> str:
    assert a.item is not None
    return f"{BASE}?id={a.item.id}&orderSn={a.item.order_sn}"


def alert(sn: str, kind: str = "aftersale", severity: str = "info", hours: float = 20, stage: int = 0,
          reason: str = "不想要了", goods: str = "保温杯 500ml", fen: int = 1290, item_kind: str = "aftersale",
          inferred: bool = False) -> Alert:
    deadline = T0 + timedelta(hours=hours)
    info = Item(kind=item_kind, id=f"id-{sn}", order_sn=sn, type="仅退款", status="待商家处理",  # type: ignore[arg-type]
                    reason=reason, goods_name=goods, refund_amount_fen=fen, deadline=deadline,
                    remaining_seconds=int(hours * 3600))
    event = f"stage{stage}" if kind in ("aftersale", "evidence") else kind
    return Alert(key=f"{SHOP}:{item_kind}:id-{sn}:{event}", shop=SHOP, kind=kind, severity=severity,  # type: ignore[arg-type]
                 created_at=T0, event=event, stage_index=stage if event.startswith("stage") else None,
                 stage_count=4, is_last_stage=severity == "critical" and kind in ("aftersale", "evidence"),
                 item=info, inferred=inferred)


def health(state: ShopState, failures: int = 1, active: dict[str, datetime] | None = None,
           qr: bool = False) -> Alert:
    [a] = health_alerts(SHOP, state, "queryList[aftersales].list[0].expireRemainTime missing", failures,
                        active or {}, RulesConfig(), T0, qr_png_available=qr)
    return a


def wecom(alerts: list[Alert], max_bytes: int | None = 4096, **kw: object) -> list[RenderedMessage]:
    return render_group(SHOP, alerts, dialect="wecom", max_bytes=max_bytes, detail_url=url, tz=TZ, **kw)  # type: ignore[arg-type]


# ---- escaping ------------------------------------------------------------------------------------

HOSTILE_TEXTS = [
    HOSTILE, "<@all>", "@all 快来", "<@zhangsan>", '<font color="warning">假警报</font>', "# 标题", "> 引用",
    "`code`", "[点我](http://evil.example)", "**粗体**", "第一行\n# 第二行\n> 第三行", "a\u202eb\u200bc",
    "&lt;@all&gt;",
]
HOSTILE_IDS = ["demo-reason", "at-all-tag", "bare-at-all", "at-user", "font-tag", "heading", "quote", "backticks",
               "link", "bold", "multiline", "bidi-zero-width", "entities"]


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=HOSTILE_IDS)
def test_md_escape_leaves_nothing_wecom_interprets(text: str) -> None:
    out = md_escape(text)
    assert not set(out) & set("<>[]*`#@&\n\r\u202e\u200b"), out
    assert "<@all>" not in out and "](http" not in out and "<script" not in out


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=HOSTILE_IDS)
def test_html_and_text_escapes(text: str) -> None:
    out = html_escape(text)
    assert "<" not in out and ">" not in out and "\n" not in out and '"' not in out
    plain = text_escape(text)
    assert "@" not in plain and "\n" not in plain


def test_hostile_demo_reason_keeps_its_words() -> None:
    assert md_escape(HOSTILE) == (
        "质量太差了＜＠all＞ ＜script＞alert(1)＜/script＞ ［点我领红包］(http://evil.example) ＊＊差评＊＊")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_escape(HOSTILE)


@pytest.mark.parametrize(("given", "expected"), [
    (f"{BASE}?id=1&orderSn=2", f"{BASE}?id=1&orderSn=2"),
    ("https://mms.pinduoduo.com/x?a=(1)", "https://mms.pinduoduo.com/x?a=%281%29"),
    ("http://h/a b]<x>", "http://h/a%20b%5D%3Cx%3E"),
    ("javascript:alert(1)", ""),
    ("  ", ""),
], ids=["plain", "parentheses", "space-bracket-tag", "javascript", "blank"])
def test_safe_url(given: str, expected: str) -> None:
    assert safe_url(given) == expected


# ---- Chinese times and money ----------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (83 * 60, "剩余 1小时23分"), (83 * 60 + 59, "剩余 1小时23分"), ((2 * 24 + 3) * 3600, "剩余 2天3小时"),
    ((2 * 24 + 3) * 3600 + 1800, "剩余 2天3小时"), (45 * 60, "剩余 45分"), (3600, "剩余 1小时"), (86400, "剩余 1天"),
    (59, "剩余 不到1分"), (0, "剩余 不到1分"), (-600, "已超时 10分"), (-(3600 + 60), "已超时 1小时1分"),
], ids=["h-m", "rounds-down", "d-h", "d-h-drops-minutes", "minutes", "whole-hour", "whole-day", "seconds", "zero",
        "overdue", "overdue-hours"])
def test_remaining_zh(seconds: int, text: str) -> None:
    assert remaining_zh(seconds) == text


@pytest.mark.parametrize(("fen", "text"), [
    (1290, "¥12.90"), (5, "¥0.05"), (0, "¥0.00"), (123450, "¥1,234.50"), (-1290, "-¥12.90"),
], ids=["typical", "fen-only", "zero", "thousands", "negative"])
def test_yuan(fen: int, text: str) -> None:
    assert yuan(fen) == text


@pytest.mark.parametrize(("dt", "text"), [
    (datetime(2026, 11, 22, 0, 0, tzinfo=UTC), "11月22日 08:00"),
    (datetime(2026, 1, 5, 23, 7, tzinfo=TZ), "1月5日 23:07"),
    (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), "1月1日 00:30"),
], ids=["utc-to-shanghai", "local", "new-year"])
def test_deadline_zh(dt: datetime, text: str) -> None:
    assert deadline_zh(dt, TZ) == text


# ---- one group message ---------------------------------------------------------------------------

def test_hostile_reason_in_every_format() -> None:
    [msg] = wecom([alert("261121-000000001", reason=HOSTILE, goods=HOSTILE)])
    for forbidden in ("<@all>", "<script", "](http://evil", "**差评**"):
        assert forbidden not in msg.markdown
    assert re.findall(r"\]\((.*?)\)", msg.markdown) == [f"{BASE}?id=id-261121-000000001&orderSn=261121-000000001"]
    assert "<script" not in msg.html and "&lt;script&gt;" in msg.html
    assert re.findall(r'href="(.*?)"', msg.html) == [f"{BASE}?id=id-261121-000000001&amp;orderSn=261121-000000001"]
    assert "<@all>" not in msg.text and "@all" not in msg.text


def test_the_title_counts_and_the_item_fields() -> None:
    alerts = [alert("S1", severity="critical", hours=0.4, stage=3), alert("S2", severity="warning", hours=1.5, stage=2),
              alert("S3", hours=20)]
    [msg] = wecom(alerts)
    assert msg.title == "【示例旗舰店】售后预警：3 单即将逾期（1 单紧急）"
    assert msg.markdown.startswith("### 【示例旗舰店】售后预警：3 单即将逾期（1 单紧急）\n\n")
    assert msg.mention  # a last-stage item is in it
    first = msg.markdown.split("\n\n")[1]
    assert "订单 S1" in first and "原因：不想要了" in first and "商品：保温杯 500ml" in first
    assert "退款 ¥12.90" in first and "截止 11月21日 10:24" in first and "剩余 24分" in first
    assert not wecom([alerts[2]])[0].mention


@pytest.mark.parametrize(("alerts", "title"), [
    ([alert("H1", kind="handled"), alert("H2", kind="handled")], "【示例旗舰店】售后通知：2 单已处理"),
    ([alert("R1", kind="auto_refunded", hours=-1)], "【示例旗舰店】售后预警：1 单已超时自动退款"),
    ([alert("E1", kind="evidence", item_kind="evidence", severity="critical", stage=2)],
     "【示例旗舰店】售后预警：1 单待举证（1 单紧急）"),
    ([alert("A1"), alert("E1", kind="evidence", item_kind="evidence"), alert("H1", kind="handled")],
     "【示例旗舰店】售后预警：1 单即将逾期，1 单待举证，1 单已处理"),
    ([health(ShopState.SMS_REQUIRED)], "【示例旗舰店】店铺监控：需要登录（短信验证码）"),
    ([health(ShopState.TIMEOUT, failures=3)], "【示例旗舰店】店铺监控：检查连续失败"),
], ids=["handled-only", "auto-refund-only", "evidence-urgent", "mixed", "health-sms", "health-failing"])
def test_titles(alerts: list[Alert], title: str) -> None:
    assert group_title(SHOP, alerts) == title
    assert wecom(alerts)[0].title == title


def test_most_urgent_first() -> None:
    alerts = [
        alert("HANDLED", kind="handled", hours=3),
        alert("INFO_SOON", hours=0.5),
        alert("REFUNDED", kind="auto_refunded", hours=-2),
        alert("WARN_LATE", severity="warning", hours=5, stage=1),
        alert("CRIT_LATE", severity="critical", hours=0.45, stage=3),
        alert("CRIT_SOON", severity="critical", hours=0.1, stage=3),
        alert("WARN_SOON", severity="warning", hours=4, stage=1),
    ]
    [msg] = wecom([*alerts, health(ShopState.LAYOUT_CHANGED)])
    order = ["页面结构变化", "CRIT_SOON", "CRIT_LATE", "WARN_SOON", "WARN_LATE", "INFO_SOON", "REFUNDED", "HANDLED"]
    positions = [msg.markdown.index(s) for s in order]
    assert positions == sorted(positions)
    assert [int(n) for n in re.findall(r"^(\d+)\. ", msg.markdown, re.M)] == list(range(1, 9))


@pytest.mark.parametrize(("build", "must", "must_not"), [
    (lambda: alert("H1", kind="handled", hours=3),
     ["【已处理】", "订单 H1", "原截止 11月21日 13:00"], ["原因：", "剩余"]),
    (lambda: alert("R1", kind="auto_refunded", hours=-1),
     ["【已超时自动退款，损失 ¥12.90】", "截止 11月21日 09:00", "查看详情"], ["核实"]),
    (lambda: alert("R2", kind="auto_refunded", hours=-1, inferred=True), ["已超时自动退款", "请核实"], []),
    (lambda: alert("R3", kind="auto_refunded", hours=-1, item_kind="evidence", fen=5000),
     ["【已超时自动退款（逾期未举证），损失 ¥50.00】", "举证截止"], []),
    (lambda: alert("E1", kind="evidence", item_kind="evidence", severity="warning", hours=3.5, stage=1),
     ["【注意·待举证】", "举证截止 11月21日 13:30", "剩余 3小时30分"], []),
    (lambda: health(ShopState.SMS_REQUIRED),
     ["需要登录：新设备需要短信验证码", "`pdd-agent login --shop 示例旗舰店`"], ["查看详情"]),
    (lambda: health(ShopState.CAPTCHA),
     ["需要人工验证：登录或查询时出现安全验证", "`pdd-agent login --shop 示例旗舰店 --headed`"], []),
    (lambda: health(ShopState.LOGIN_REQUIRED, qr=True), ["请扫描随后发送的二维码", "--qr`"], []),
    (lambda: health(ShopState.LOGIN_REQUIRED), ["需要登录", "--qr`"], ["二维码，"]),
    (lambda: health(ShopState.LAYOUT_CHANGED),
     ["页面结构变化", "`pdd-agent doctor --shop 示例旗舰店`", "expireRemainTime missing"], []),
    (lambda: health(ShopState.BACKEND_ERROR, failures=4), ["检查连续失败", "已连续失败 4 次（backend_error）"], []),
    (lambda: health(ShopState.OK, active={"sms_required": T0 - timedelta(hours=1), "failing": T0}),
     ["已恢复：店铺可以正常读取", "此前：检查连续失败、需要登录（短信验证码）"], ["详情："]),
], ids=["handled", "auto-refunded", "auto-refunded-inferred", "evidence-refunded", "evidence-stage", "sms", "captcha",
        "qr-with-image", "qr-without-image", "layout", "failing", "recovered"])
def test_wording_of_each_kind(build: object, must: list[str], must_not: list[str]) -> None:
    [msg] = wecom([build()])  # type: ignore[operator]
    for s in must:
        assert s in msg.markdown, s
    for s in must_not:
        assert s not in msg.markdown, s


def test_a_late_render_reads_overdue() -> None:
    [msg] = wecom([alert("S1", severity="critical", hours=0.4, stage=3)], now=T0 + timedelta(minutes=34))
    assert "已超时 10分" in msg.markdown and "剩余" not in msg.markdown


# ---- byte limits ---------------------------------------------------------------------------------

def forty() -> list[Alert]:
    severities = ["critical", "warning", "info"]
    return [alert(f"261121-{n:09d}", severity=severities[n % 3], hours=0.2 + n * 0.5, stage=3 - n % 3,
                  reason=f"第{n}单：{'商品与描述不符，' * 8}{HOSTILE}", goods=f"加厚保温杯 {n} 号 " * 3)
            for n in range(40)]


@pytest.mark.parametrize(("kind", "limit", "field"), [
    ("wecom", 4096, "markdown"), ("wecom", 2500, "markdown"), ("text", 2048, "text"),
], ids=["wecom-4096", "wecom-2500", "wecom-text-2048"])
def test_a_big_group_splits_on_item_boundaries(kind: str, limit: int, field: str) -> None:
    alerts = forty()
    parts = render_group(SHOP, alerts, dialect=kind, max_bytes=limit, detail_url=url, tz=TZ)
    n = len(parts)
    assert n >= 3
    joined = ""
    for i, part in enumerate(parts, start=1):
        body = getattr(part, field)
        assert len(body.encode("utf-8")) <= limit
        assert part.title.endswith(f" ({i}/{n})") and body.splitlines()[0].endswith(f"({i}/{n})")
        assert "…" not in body  # nothing was truncated
        for a in alerts:  # the three formats carry the same items
            assert (f"订单 {a.item.order_sn}" in part.markdown) == (f"订单 {a.item.order_sn}" in part.text)  # type: ignore[union-attr]
        joined += body
    for a in alerts:
        assert joined.count(f"订单 {a.item.order_sn}") == 1  # type: ignore[union-attr]
    assert [int(x) for x in re.findall(r"^(\d+)\. ", joined, re.M)] == list(range(1, 41))
    assert [p.mention for p in parts][0] and not parts[-1].mention  # critical items come first


def test_email_is_one_message() -> None:
    parts = render_group(SHOP, forty(), dialect="email", max_bytes=None, detail_url=url, tz=TZ)
    assert len(parts) == 1 and "(1/" not in parts[0].title and parts[0].html.count("<a href=") == 40


def test_an_item_too_big_alone_has_only_its_reason_cut() -> None:
    huge = "退货理由" * 1200  # 14 400 bytes
    alerts = [alert("BIG", severity="critical", hours=0.3, stage=3, reason=huge), alert("SMALL", reason="不想要了")]
    parts = wecom(alerts)
    assert all(len(p.markdown.encode("utf-8")) <= 4096 for p in parts)
    text = "".join(p.markdown for p in parts)
    assert "原因：退货理由" in text and "…（过长已截断，完整内容见详情页）" in text and "原因：不想要了" in text
    assert "订单 BIG" in text and "订单 SMALL" in text and "剩余 18分" in text and "查看详情" in text
    assert text.count("…") == 1


def test_a_limit_smaller_than_any_item_is_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        wecom([alert("S1")], max_bytes=200)


def test_nothing_to_render() -> None:
    assert wecom([]) == []


# ---- digest --------------------------------------------------------------------------------------

def pending(n: int, hours: float, fen: int = 1000) -> Item:
    return Item(
        kind="aftersale", id=f"a{n}", order_sn=f"261121-{n:09d}", type="仅退款", status="待商家处理", reason=HOSTILE,
                     goods_name="杯", goods_spec="", refund_amount_fen=fen, order_amount_fen=fen, created_at=T0,
                     deadline=T0 + timedelta(hours=hours), remaining_seconds=int(hours * 3600))


def owed(n: int, hours: float, fen: int = 5000) -> Item:
    return Item(
        kind="evidence", id=f"e{n}", order_sn=f"261120-{n:09d}", type="退货退款", status="平台处理中", reason="",
                        goods_name="杯", refund_amount_fen=fen, deadline=T0 + timedelta(hours=hours),
                        remaining_seconds=int(hours * 3600))


def missed(n: int, fen: int) -> ItemState:
    return ItemState(shop=SHOP, kind="aftersale", item_id=f"m{n}", order_sn=f"261119-{n:09d}", last_stage=3,
                     alerted=True, deadline=T0 - timedelta(hours=20 + n), refund_amount_fen=fen,
                     last_seen=T0 - timedelta(hours=21), type="仅退款", closed=True, outcome="auto_refunded")


def test_digest_counts_and_money() -> None:
    msg = render_digest(SHOP, [pending(1, 2), pending(2, 30), pending(3, 23)], [owed(1, 10), owed(2, 40)],
                        [missed(1, 1290)], T0, TZ)
    assert msg.title == "【示例旗舰店】每日售后汇总 11月21日" and not msg.mention
    md = msg.markdown
    assert "待商家处理：**3 单**（24 小时内到期 2 单）" in md
    assert "待举证：**2 单**（24 小时内到期 1 单）" in md
    assert "涉及金额：**¥130.00**（24 小时内到期 ¥70.00）" in md
    assert "昨日逾期：**1 单**，损失 ¥12.90" in md
    due = md[md.index("24 小时内到期**"):md.index("昨日逾期（")]
    assert [due.index(s) for s in ("000000001", "261120-000000001", "000000003")] == sorted(
        due.index(s) for s in ("000000001", "261120-000000001", "000000003"))
    assert "000000002" not in due and "剩余 2小时" in due
    assert "261119-000000001 · 损失 ¥12.90 · 截止 11月20日 13:00" in md
    assert "<@all>" not in md and "<script" not in msg.html


def test_a_big_digest_stays_within_the_wecom_limit() -> None:
    msg = render_digest(SHOP, [pending(n, 0.1 * n) for n in range(300)], [owed(n, 5) for n in range(50)],
                        [missed(n, 100) for n in range(40)], T0, TZ)
    assert len(msg.markdown.encode("utf-8")) <= 4096
    assert "…另有 " in msg.markdown and "待商家处理：**300 单**" in msg.markdown


def test_an_empty_digest() -> None:
    msg = render_digest(SHOP, [], [], [], T0, TZ)
    assert "待商家处理：**0 单**" in msg.markdown and "涉及金额：**¥0.00**" in msg.markdown
    assert "24 小时内到期**" not in msg.markdown


@pytest.mark.parametrize(("dialect", "limit"), [("dingtalk", 6000), ("feishu", 8000)])
def test_dingtalk_and_feishu_bodies_split_within_their_bytes_and_keep_every_item(dialect: str, limit: int) -> None:
    import json

    alerts = forty()
    parts = render_group(SHOP, alerts, dialect=dialect, max_bytes=limit, detail_url=url, tz=TZ)
    assert len(parts) >= 3
    seen = []
    for i, part in enumerate(parts, start=1):
        assert len(part.body.encode("utf-8")) <= limit and part.title.endswith(f"({i}/{len(parts)})")
        text = part.body
        if dialect == "feishu":
            post = json.loads(part.body)["zh_cn"]
            assert post["title"].endswith(f"({i}/{len(parts)})")
            text = "\n".join(n.get("text", "") for p in post["content"] for n in p)
        seen += re.findall(r"订单 (261121-\d{9})", text)
    assert sorted(seen) == sorted(a.item.order_sn for a in alerts)  # type: ignore[union-attr]


def test_hostile_buyer_text_in_dingtalk_markdown_and_feishu_posts() -> None:
    import json

    nasty = HOSTILE + " @13800001111 ![img](http://evil.example/x.png) _斜体_ <at user_id=\"all\">所有人</at>"
    a = alert("261121-000000001", reason=nasty, goods=nasty)
    [ding] = render_group(SHOP, [a], dialect="dingtalk", max_bytes=None, detail_url=url, tz=TZ)
    for bad in ("<@all>", "<script>", "[点我领红包]", "](http://evil", "**差评**", "@13800001111", "![", "_斜体_",
                "<at "):
        assert bad not in ding.body
    assert f"[查看详情]({BASE}" in ding.body and "<font" not in ding.body  # our link; no colour (not in its subset)
    [fs] = render_group(SHOP, [a], dialect="feishu", max_bytes=None, detail_url=url, tz=TZ)
    post = json.loads(fs.body)["zh_cn"]
    nodes = [n for p in post["content"] for n in p]
    assert {n["tag"] for n in nodes} == {"text", "a"}  # buyer text cannot become an @ or a link node
    assert [n["href"] for n in nodes if n["tag"] == "a"] == [url(a)]
    assert not any("<at" in n["text"] or "@" in n["text"] for n in nodes)


def test_wecom_app_text_cannot_carry_a_link_tag_or_an_at() -> None:
    a = alert("261121-000000001", reason='<a href="http://evil.example">点我</a> <@all> @13800001111')
    [msg] = render_group(SHOP, [a], dialect="text", max_bytes=2048, detail_url=url, tz=TZ)
    assert "<a href" not in msg.text and "<@all>" not in msg.text and "@13800001111" not in msg.text


def test_dingtalk_markdown_never_puts_two_bold_runs_side_by_side() -> None:
    parts = render_group(SHOP, forty(), dialect="dingtalk", max_bytes=None, detail_url=url, tz=TZ)
    assert "****" not in parts[0].body and "【紧急·售后】**仅退款**" in parts[0].body
