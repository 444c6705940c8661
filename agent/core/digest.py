"""The daily digest per shop (pure): open items, due within 24 h, money at risk, yesterday's losses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from agent.core import markup
from agent.core.models import Item
from agent.core.money import BY_ZH, Refund
from agent.core.render import Line, RenderedMessage, _clean, _html, _page, deadline_zh, remaining_zh, yuan
from agent.core.rules import ItemState


def render_digest(
    shop: str, aftersales: Sequence[Item], evidence: Sequence[Item], missed_yesterday: Sequence[Item | ItemState],
    now: datetime, tz: tzinfo, *, day: date | None = None, max_items: int = 10, max_bytes: int | None = 4096,
    money: Mapping[str, Any] | None = None, quality: Mapping[str, int] | None = None, only_money: bool = False,
    team: Mapping[str, Any] | None = None, dialect: str = "wecom",
) -> RenderedMessage:
    """The daily digest: pending counts, due within 24 h, evidence owed, money at risk, yesterday's missed
    items (the caller picks them: closed as auto_refunded with a deadline yesterday). Lists are cut to
    `max_items` rows, fewer if needed to keep the body in `dialect` (markup.DIALECTS) within `max_bytes`.
    `day` (default: today at `now`) is the day the title names: the digest's own day, even when quiet hours
    held it past midnight.
    `money` (watch.money_json's form, or {"error": …}) adds 退款核对: yesterday's refunds the merchant did not
    agree to and 可联系买家补款; `quality` ({"count", "refunded"}) the week's quality-related requests;
    `only_money`: the money section alone (its own channels). `team` ({"handled": {member: n}, "claimed":
    {item id: member}}) adds what each member handled yesterday and who holds which open item."""
    window = timedelta(hours=24)
    due = sorted((i for i in [*aftersales, *evidence] if i.deadline - now <= window), key=lambda i: i.deadline)
    at_risk = sum({(i.kind, i.id): i.refund_amount_fen for i in [*aftersales, *evidence]}.values())
    lost = sum(m.refund_amount_fen for m in missed_yesterday)
    local = now.astimezone(tz)
    day = day or local.date()
    title = f"【{shop}】{'退款核对' if only_money else '每日售后汇总'} {day.month}月{day.day}日"
    n_due_a, due_fen = sum(i.kind == "aftersale" for i in due), sum(i.refund_amount_fen for i in due)
    summary: list[Line] = [
        [("t", "待商家处理："), ("b", f"{len(aftersales)} 单"), ("t", f"（24 小时内到期 {n_due_a} 单）")],
        [("t", "待举证："), ("b", f"{len(evidence)} 单"), ("t", f"（24 小时内到期 {len(due) - n_due_a} 单）")],
        [("t", "涉及金额："), ("b", yuan(at_risk)), ("t", f"（24 小时内到期 {yuan(due_fen)}）")],
        [("t", "昨日逾期："), ("b", f"{len(missed_yesterday)} 单"), ("t", f"，损失 {yuan(lost)}")],
    ]
    if quality is not None:
        summary.append([("t", "本周品质类售后："), ("b", f"{quality['count']} 单"),
                        ("t", f"（已退款 {quality['refunded']} 单，计入品质退款率）")])
    held = dict((team or {}).get("claimed") or {})
    if team is not None:
        done = "、".join(f"{m} {n} 单" for m, n in sorted((team.get("handled") or {}).items(), key=lambda x: -x[1]))
        summary.append([("t", "昨日处理（按成员）："), ("b", done or "无")])
        open_n = len(aftersales) + len(evidence)
        summary.append([("t", "认领情况："), ("b", f"已认领 {len(held)} 单"),
                        ("t", f"，未认领 {open_n - len(held)} 单")])
    if only_money:
        summary = []

    dialect = dialect if dialect in markup.DIALECTS else "text"

    def build(limit: int) -> list[list[Line]]:
        sections: list[list[Line]] = [summary] if summary else []
        if money is not None:
            sections += money_sections(money, tz, limit)
        if only_money:
            return sections
        if due:
            rows: list[Line] = [[("b", "24 小时内到期")]]
            for n, i in enumerate(due[:limit], start=1):
                tag = "售后" if i.kind == "aftersale" else "待举证"
                left = remaining_zh((i.deadline - now) // timedelta(seconds=1))
                who = f" · 已认领：{held[i.id]}" if i.id in held else ""
                rows.append([("t", f"{n}. 〔{tag}〕{i.type} 订单 {i.order_sn} · {yuan(i.refund_amount_fen)} · "
                                   f"截止 {deadline_zh(i.deadline, tz)} · {left}{who}")])
            if len(due) > limit:
                rows.append([("t", f"…另有 {len(due) - limit} 单")])
            sections.append(rows)
        if missed_yesterday:
            rows = [[("b", "昨日逾期（已自动退款）")]]
            for n, m in enumerate(sorted(missed_yesterday, key=lambda m: m.deadline)[:limit], start=1):
                rows.append([("t", f"{n}. {m.type} 订单 {m.order_sn} · 损失 {yuan(m.refund_amount_fen)} · "
                                   f"截止 {deadline_zh(m.deadline, tz)}")])
            if len(missed_yesterday) > limit:
                rows.append([("t", f"…另有 {len(missed_yesterday) - limit} 单")])
            sections.append(rows)
        return sections

    for limit in range(max_items, -1, -1):
        sections = build(limit)
        if max_bytes is None or markup.size(dialect, title, sections) <= max_bytes:
            break
    return RenderedMessage(
        title=_clean(title), markdown=markup.body("wecom", title, sections), text=markup.body("text", title, sections),
        html=_page(title, [_html(sec) for sec in sections]),
        body=markup.body(dialect, title, sections) if dialect in ("dingtalk", "feishu") else "",
    )


def money_sections(money: Mapping[str, Any], tz: tzinfo, limit: int) -> list[list[Line]]:
    """退款核对: the refunds of the day the merchant did not agree to, with amounts and who agreed; then the 仅退款
    refunds paid after the goods were signed for (可联系买家补款). Buyer reasons stay escaped text."""
    if money.get("error"):
        return [[[("b", "退款核对")], [("t", f"退款记录未能读取（{money['error']}）：请到后台「退款成功」中核对")]]]
    lost = [Refund.from_json(x) for x in money.get("lost", [])]
    back = [Refund.from_json(x) for x in money.get("recoverable", [])]
    head: list[Line] = [[("b", "昨日退款（非商家同意）："), ("b", f"{len(lost)} 单"),
                         ("t", f"，共 {yuan(sum(x.amount_fen for x in lost))}")]]
    for n, x in enumerate(lost[:limit], start=1):
        when = f" · {x.refunded_at.astimezone(tz):%H:%M}" if x.refunded_at else ""
        who = BY_ZH[x.by] + (f"（{x.tag}）" if x.tag and x.by == "helper" else "")
        head.append([("t", f"{n}. {who} · {x.type} 订单 {x.order_sn} · {yuan(x.amount_fen)}{when}")])
        if x.reason:
            head.append([("t", f"   原因：{_clean(x.reason)[:60]}")])
    if len(lost) > limit:
        head.append([("t", f"…另有 {len(lost) - limit} 单")])
    if lost:
        head.append([("t", "请逐单核对：判定有误的可在售后详情中申诉；超时自动退款请检查提醒是否有人跟进")])
    out = [head]
    if back:
        rows: list[Line] = [[("b", "可联系买家补款："), ("b", f"{len(back)} 单"),
                             ("t", f"，共 {yuan(sum(x.amount_fen for x in back))}")]]
        for n, x in enumerate(back[:limit], start=1):
            rows.append([("t", f"{n}. 已签收 · {x.type} 订单 {x.order_sn} · 已退 {yuan(x.amount_fen)}")])
        if len(back) > limit:
            rows.append([("t", f"…另有 {len(back) - limit} 单")])
        rows.append([("t", "商品已签收但钱已退回：可联系买家说明情况、协商补款；"
                           "买家拒绝时保留聊天与签收凭证向平台申诉")])
        out.append(rows)
    return out
