"""Rendering (pure): alerts as each channel's message (markdown, post, text, email HTML) — escaped, ordered, split."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from agent.core import markup
from agent.core.markup import DIALECTS, Line, _clean, _html, html_escape, md_escape, safe_url, text_escape
from agent.core.markup import page as _page
from agent.core.rules import FAILING, RECOVERED, Alert

__all__ = ["Line", "RenderedMessage", "_clean", "_html", "_page", "deadline_zh", "group_title", "html_escape",
           "md_escape", "remaining_zh", "render_group", "safe_url", "text_escape", "yuan"]

_RANK = {"critical": 0, "warning": 1, "info": 2}
_SECTION = {"health": 0, "complaint": 1, "quality": 2, "platform": 2, "urged": 2, "aftersale": 3, "evidence": 3,
            "work_orders": 4, "platform_refunds": 4, "auto_refunded": 5, "handled": 6}
# item notices beyond the stages: kind → (badge, what to do)
_NOTICE = {
    "complaint": ("投诉预警", "买家可能向平台投诉：请立即联系买家协商解决，投诉成立会扣分并影响店铺"),
    "quality": ("品质退款风险", "原因计入品质退款率（超标会降权、禁止上新、下架商品）：请立即主动联系买家协商，"
                              "赔一单也比一笔品质退款划算"),
    "urged": ("买家已催", "买家在催促处理：请尽快处理，避免投诉"),
    "platform": ("平台已介入，请准备凭证", "请准备聊天记录、发货与签收凭证、商品照片，在举证截止前上传，"
                                     "逾期未举证将判定商家责任并直接退款"),
}
URGED_TAG = "买家已催"
_LABEL = {"critical": "紧急", "warning": "注意", "info": "提醒"}
_HEALTH = {  # event → (title label, what happened)
    "sms_required": ("需要登录（短信验证码）", "需要登录：新设备需要短信验证码"),
    "captcha": ("需要人工验证（滑块）", "需要人工验证：登录或查询时出现安全验证（滑块）"),
    "login_blocked": ("登录被平台拦截", "登录被平台拦截：需要人工处理后才能继续监控"),
    "login_required": ("需要登录（扫码）", "需要登录：账号需要扫码登录，或密码被拒绝"),
    "layout_changed": ("页面结构变化", "页面结构变化，无法读取售后列表"),
    FAILING: ("检查连续失败", "检查连续失败，期间无法预警"),
    RECOVERED: ("已恢复", "已恢复：店铺可以正常读取"),
    "channel_broken": ("通知渠道故障", "通知渠道故障：消息发不出去，请检查配置"),
    "channel_failing": ("通知渠道发送失败", "通知渠道连续发送失败：紧急提醒改由本渠道发送"),
    "channel_recovered": ("通知渠道已恢复", "通知渠道已恢复：积压的提醒正在补发"),
}
_HINT = {  # event → (text, command, text); {shop} is shell-quoted
    "sms_required": ("请运行 ", "pdd-agent login --shop {shop}", " 并输入短信验证码"),
    "captcha": ("请运行 ", "pdd-agent login --shop {shop} --headed", " 在打开的浏览器窗口中手动完成验证"),
    "login_blocked": ("按下方详情处理后运行 ", "pdd-agent login --shop {shop}", " 重新登录"),
    "login_required": ("请运行 ", "pdd-agent login --shop {shop} --qr", " 扫码登录"),
    "layout_changed": ("请运行 ", "pdd-agent doctor --shop {shop}", " 查看哪些选择器失效"),
}


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One message, notifier-agnostic: the caller maps it to the channel's Message (and mention numbers)."""

    title: str
    markdown: str
    text: str
    html: str
    mention: bool = False
    keys: tuple[str, ...] = ()  # the alerts this part carries: the dispatcher marks exactly these sent
    mention_mobiles: tuple[str, ...] = ()  # members who claimed an item of this part: @ them too
    body: str = ""  # the body in the channel's dialect (DingTalk markdown, a Feishu post as JSON); "" for the rest
    mention_open_ids: tuple[str, ...] = ()  # the same members' Feishu open_ids (Feishu cannot @ by phone)


def _span(seconds: int) -> str:
    days, rest = divmod(seconds // 60, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{minutes}分" if minutes else f"{hours}小时"
    return f"{minutes}分" if minutes else "不到1分"


def remaining_zh(seconds: int) -> str:
    """「剩余 1小时23分」, 「剩余 2天3小时」, 「剩余 45分」, 「已超时 10分」 (rounded down to the minute)."""
    return f"剩余 {_span(seconds)}" if seconds >= 0 else f"已超时 {_span(-seconds)}"


def yuan(fen: int) -> str:
    """Fen → 「¥12.90」 (「¥1,234.50」), exact integer arithmetic."""
    sign, fen = ("-" if fen < 0 else ""), abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def deadline_zh(dt: datetime, tz: tzinfo) -> str:
    """「11月22日 08:00」 in the shop's time zone."""
    local = dt.astimezone(tz)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _cut(text: str, n: int | None) -> tuple[str, bool]:
    text = _clean(text).strip()
    return (text, False) if n is None or len(text) <= n else (text[:n] + "…", True)


@dataclass(frozen=True, slots=True)
class _Ctx:
    shop: str
    tz: tzinfo
    now: datetime | None
    detail_url: Callable[[Alert], str] | None
    page_url: Callable[[Alert], str] | None = None
    qr_links: Mapping[str, str] | None = None  # None: the channel shows the QR image; else alert key → QR page


def _item_lines(a: Alert, n: int, ctx: _Ctx, reason_cut: int | None, goods_cut: int | None,
                extra: Sequence[Alert] = ()) -> list[Line]:
    """One item's block; `extra` are the item's other alerts of the message (their tags and advice merged in)."""
    it = a.item
    assert it is not None
    evidence = it.kind == "evidence"
    remaining = it.remaining_seconds if ctx.now is None else (it.deadline - ctx.now) // timedelta(seconds=1)
    if a.kind in ("aftersale", "evidence"):
        colour = "comment" if a.severity == "info" else "warning"
        badge = f"【{_LABEL[a.severity]}·{'待举证' if evidence else '售后'}】"
    elif a.kind in _NOTICE:
        colour, badge = "warning", f"【{_NOTICE[a.kind][0]}】"
    elif a.kind == "handled":
        colour, badge = "info", "【已处理】"
    else:
        colour = "warning"
        badge = f"【已超时自动退款{'（逾期未举证）' if evidence else ''}，损失 {yuan(it.refund_amount_fen)}】"
    tags = [_NOTICE[e.kind][0] for e in extra if e.kind in _NOTICE and e.kind != a.kind]
    if it.urged and a.kind != "urged" and a.kind not in ("handled", "auto_refunded") and URGED_TAG not in tags:
        tags.append(URGED_TAG)
    lines: list[Line] = [[("t", f"{n}. "), ("c", badge, colour), *(("c", f"【{t}】", "warning") for t in tags),
                          ("b", it.type or "售后"), ("t", f" 订单 {it.order_sn}")]]
    reason, cut_r = _cut(it.reason, reason_cut)
    goods, cut_g = _cut(it.goods_name, goods_cut)
    note = "（过长已截断，完整内容见详情页）"
    if reason and a.kind != "handled":
        lines.append([("t", f"原因：{reason}{note if cut_r else ''}")])
    if goods:
        lines.append([("t", f"商品：{goods}{note if cut_g else ''}")])
    when = f"{'举证截止' if evidence else '截止'} {deadline_zh(it.deadline, ctx.tz)}"
    if a.kind == "platform" and not it.expire_action:
        lines.append([("t", f"退款 {yuan(it.refund_amount_fen)} · 举证截止：平台尚未给出（出现后按举证阶段提醒）")])
    elif a.kind in ("aftersale", "evidence", *_NOTICE):
        lines.append([("t", f"退款 {yuan(it.refund_amount_fen)} · {when} · "), ("c", remaining_zh(remaining), colour)])
    elif a.kind == "handled":
        lines.append([("t", f"退款 {yuan(it.refund_amount_fen)} · 原{when}")])
    else:
        lines.append([("t", when + ("（未在后台确认，按截止时间推断，请核实）" if a.inferred else ""))])
    for k in dict.fromkeys([a.kind, *(e.kind for e in extra)]):
        if k in _NOTICE:
            lines.append([("t", f"{_NOTICE[k][0]}：{_NOTICE[k][1]}")])
    lines += _claim_lines(a.claim)
    url = safe_url(ctx.detail_url(a)) if ctx.detail_url else ""
    page = safe_url(ctx.page_url(a)) if ctx.page_url and a.kind not in ("handled", "auto_refunded") else ""
    links: Line = [*([("l", "查看详情", url)] if url and a.kind != "handled" else []),
                   *([("t", " · ")] if url and page and a.kind != "handled" else []),
                   *([("l", "认领 / 查看", page)] if page else [])]
    if links:
        lines.append(links)
    return lines


def _claim_lines(claim: Mapping[str, object] | None) -> list[Line]:
    """The team's hold on the item: 「已认领：张三 14:05」 (or a done mark PDD contradicts) and the latest note."""
    if not claim:
        return []
    who, at = str(claim.get("member") or ""), str(claim.get("at") or "")
    if claim.get("done"):
        lines: list[Line] = [[("c", f"{who} {at} 已标记处理，但平台仍显示待处理：请立即核实", "warning")]]
    else:
        lines = [[("c", f"已认领：{who} {at}".rstrip(), "info")]]
    note = str(claim.get("note") or "")
    if note:
        lines.append([("t", f"备注：{_cut(note, 200)[0]}")])
    return lines


def _counter_lines(a: Alert, n: int, ctx: _Ctx) -> list[Line]:
    """工单 and 平台退款 counter notices: the count, what changed, what to do, where."""
    if a.event == "work_orders_cleared":
        return [[("t", f"{n}. "), ("c", "【工单已处理】", "info"),
                 ("t", f"24小时内将逾期工单已清零（此前 {a.was} 单）")]]
    if a.kind == "work_orders":
        rise = f"（此前 {a.was} 单）" if 0 < a.was < a.count else ""
        lines: list[Line] = [[("t", f"{n}. "), ("c", "【工单即将逾期】", "warning"), ("t", "24小时内将逾期工单 "),
                              ("b", f"{a.count} 单"), ("t", rise)],
                             [("t", "请到「工单管理」处理（打款补券、退运费申诉等），逾期将按平台规则处理")]]
    else:
        new = a.count - a.was
        lines = [[("t", f"{n}. "), ("c", "【平台同意退款】", "warning"), ("t", "24小时内平台同意退款 "),
                  ("b", f"{a.count} 单"), ("t", f"（新增 {new} 单）" if a.was else "")],
                 [("t", "请核对这些退款：商品已签收却已退款的，可联系买家补款；平台判定有误的，可在售后详情中申诉")]]
    url = safe_url(ctx.detail_url(a)) if ctx.detail_url else ""
    if url:
        lines.append([("l", "工单管理" if a.kind == "work_orders" else "查看售后列表", url)])
    return lines


def _health_lines(a: Alert, n: int, ctx: _Ctx) -> list[Line]:
    what = _HEALTH.get(a.event, ("店铺状态异常", "店铺状态异常"))[1]
    colour = "info" if a.event in (RECOVERED, "channel_recovered") else "warning"
    lines: list[Line] = [[("t", f"{n}. "), ("c", f"【{what}】", colour)]]
    before, command, after = _HINT.get(a.event, ("", "", ""))
    shop = ctx.shop if re.fullmatch(r"[\w.:+=,@%/-]+", ctx.shop) else shlex.quote(ctx.shop)  # 示例旗舰店 stays bare
    hint: Line = [("t", before), ("k", command.format(shop=shop)), ("t", after)] if command else []
    if a.event == "login_required" and a.attach_qr:
        link = safe_url(ctx.qr_links.get(a.key, "")) if ctx.qr_links is not None else ""
        if ctx.qr_links is None:
            hint[0] = ("t", "请扫描随后发送的二维码，或运行 ")
        elif link:  # a channel that cannot carry the image: a short-lived link to it
            hint = [("t", "请用手机打开 "), ("l", "登录二维码", link), ("t", "（15 分钟内有效）扫码，或运行 "),
                    *hint[1:]]
    elif a.event == FAILING:
        hint = [("t", f"已连续失败 {a.failures} 次（{a.state}），截图与页面见数据目录下的 "),
                ("k", f"shops/{ctx.shop}/captures/")]
    elif a.event == RECOVERED:
        was = "、".join(_HEALTH.get(e, (e, e))[0] for e in a.detail.split(",") if e)
        hint = [("t", f"此前：{was}")] if was else []
    if hint:
        lines.append(hint)
    if a.detail and a.event != RECOVERED:
        lines.append([("t", f"详情：{_cut(a.detail, 300)[0]}")])  # the scraper's words, bounded
    return lines


def _urgency(a: Alert) -> tuple[int, int, datetime, str]:
    return _SECTION[a.kind], _RANK[a.severity], a.item.deadline if a.item else a.created_at, a.key


def group_title(shop: str, alerts: Sequence[Alert]) -> str:
    """「【示例旗舰店】售后预警：3 单即将逾期（1 单紧急）」 and the like, from the alerts' kinds and counts."""
    count = {k: sum(a.kind == k for a in alerts) for k in _SECTION}
    urgent = sum(a.severity == "critical" for a in alerts if a.kind in ("aftersale", "evidence"))
    pieces = [_HEALTH.get(a.event, ("店铺状态异常",))[0] for a in alerts if a.kind == "health"]
    for kind in ("complaint", "quality", "platform", "urged"):
        if count[kind]:
            pieces.append(f"{count[kind]} 单{_NOTICE[kind][0].split('，')[0]}")
    if count["aftersale"]:
        pieces.append(f"{count['aftersale']} 单即将逾期")
    if count["evidence"]:
        pieces.append(f"{count['evidence']} 单待举证")
    if urgent and pieces:
        pieces[-1] += f"（{urgent} 单紧急）"
    if count["auto_refunded"]:
        pieces.append(f"{count['auto_refunded']} 单已超时自动退款")
    if count["handled"]:
        pieces.append(f"{count['handled']} 单已处理")
    for a in alerts:
        if a.kind == "work_orders":
            pieces.append("工单已清零" if a.event == "work_orders_cleared" else f"{a.count} 个工单即将逾期")
        elif a.kind == "platform_refunds":
            pieces.append(f"平台24小时内同意退款 {a.count} 单")
    if any(count[k] for k in ("aftersale", "evidence", "auto_refunded", "complaint", "quality", "platform", "urged",
                              "platform_refunds")) or any(a.event == "work_orders" for a in alerts):
        prefix = "售后预警"
    else:
        prefix = "售后通知" if count["handled"] or any(a.kind == "work_orders" for a in alerts) else "店铺监控"
    return f"【{shop}】{prefix}：{'，'.join(dict.fromkeys(pieces))}"


def render_group(
    shop: str, alerts: Sequence[Alert], *, dialect: str, max_bytes: int | None,
    detail_url: Callable[[Alert], str] | None, tz: tzinfo, now: datetime | None = None,
    page_url: Callable[[Alert], str] | None = None, qr_links: Mapping[str, str] | None = None,
) -> list[RenderedMessage]:
    """One shop's alerts of one cycle for one channel: one message, or parts split on item boundaries.

    Most urgent first (health, then item alerts critical first and by deadline, then auto-refunds, then 已处理).
    `max_bytes` bounds the UTF-8 size of the body in `dialect` (markup.DIALECTS: WeCom markdown, DingTalk
    markdown, a Feishu post; anything else is plain text); parts get 「(i/n)」
    titles and an item is never split — one too large alone has its reason (then goods name) cut with 「…」,
    saying so. `now` (when given) recomputes time left, so a late send reads 「已超时」. Only the caller's
    http(s) URLs become links (`detail_url` on mms, `page_url` the team page's 「认领 / 查看」). `qr_links` (alert key →
    URL) is for channels that cannot carry the login QR image: its link, or none (then the command to run).
    """
    if not alerts:
        return []
    ordered, extras = _merge_items(sorted(alerts, key=_urgency))
    ctx = _Ctx(shop, tz, now, detail_url, page_url, qr_links)
    title = group_title(shop, alerts)
    dialect = dialect if dialect in DIALECTS else "text"

    def size(lines: list[Line]) -> int:  # one block's share of a body
        return markup.size(dialect, "", [lines]) - markup.size(dialect, "", [])

    budget = None
    if max_bytes is not None:
        budget = max_bytes - markup.size(dialect, f"{title} ({len(ordered)}/{len(ordered)})", [])

    def block(a: Alert, n: int) -> list[Line]:
        if a.kind in ("work_orders", "platform_refunds"):
            return _counter_lines(a, n, ctx)
        if a.item is None:
            return _health_lines(a, n, ctx)
        extra = extras.get(a.key, ())
        lines = _item_lines(a, n, ctx, None, None, extra)
        if budget is None or size(lines) <= budget:
            return lines
        reason_len, goods_len = len(_clean(a.item.reason).strip()), len(_clean(a.item.goods_name).strip())
        for which in ("reason", "goods"):
            top = reason_len if which == "reason" else goods_len
            lo, hi, best = 0, top, None
            while lo <= hi:  # the longest cut that fits
                mid = (lo + hi) // 2
                trial = (_item_lines(a, n, ctx, mid, None, extra) if which == "reason"
                         else _item_lines(a, n, ctx, 0, mid, extra))
                if size(trial) <= budget:
                    best, lo = trial, mid + 1
                else:
                    hi = mid - 1
            if best is not None:
                return best
        raise ValueError(f"max_bytes={max_bytes} is too small for one item of {shop}")

    parts: list[list[tuple[Alert, list[Line]]]] = [[]]
    longest = f"{title} ({len(ordered)}/{len(ordered)})"
    for n, a in enumerate(ordered, start=1):
        lines = block(a, n)
        if max_bytes is not None and parts[-1] and \
                markup.size(dialect, longest, [*(b for _, b in parts[-1]), lines]) > max_bytes:
            parts.append([])
        parts[-1].append((a, lines))
    out = []
    for i, part in enumerate(parts, start=1):
        marker = f" ({i}/{len(parts)})" if len(parts) > 1 else ""
        blocks = [lines for _, lines in part]
        out.append(RenderedMessage(
            title=_clean(title + marker),
            markdown=markup.body("wecom", title + marker, blocks),
            text=markup.body("text", title + marker, blocks),
            html=_page(title + marker, [_html(lines) for lines in blocks]),
            mention=any(a.is_last_stage for a, _ in part),
            keys=tuple(k for a, _ in part for k in (a.key, *(e.key for e in extras.get(a.key, ())))),
            mention_mobiles=_claimers(part, "mobile"),
            body=markup.body(dialect, title + marker, blocks) if dialect in ("dingtalk", "feishu") else "",
            mention_open_ids=_claimers(part, "open_id"),
        ))
    return out


def _claimers(part: Sequence[tuple[Alert, list[Line]]], field: str) -> tuple[str, ...]:
    """The `field` (mobile, open_id) of each member holding an item of `part`, once each."""
    return tuple(dict.fromkeys(str(a.claim[field]) for a, _ in part if a.claim and a.claim.get(field)))


def _merge_items(ordered: Sequence[Alert]) -> tuple[list[Alert], dict[str, tuple[Alert, ...]]]:
    """One block per item: its notices (投诉预警, 品质退款风险, 买家已催, 平台已介入) ride on its stage alert when the
    message has one, else on its most urgent notice; the block sits where the item's most urgent alert does.
    Returns the alerts that get a block, and per lead key the alerts merged into it."""
    groups: dict[tuple[str, str], list[Alert]] = {}
    slots: list[Alert | tuple[str, str]] = []
    for a in ordered:
        if a.item is None or a.kind in ("handled", "auto_refunded"):
            slots.append(a)
            continue
        k = (a.item.kind, a.item.id)
        if k not in groups:
            groups[k] = []
            slots.append(k)
        groups[k].append(a)
    kept: list[Alert] = []
    extras: dict[str, tuple[Alert, ...]] = {}
    for slot in slots:
        if isinstance(slot, Alert):
            kept.append(slot)
            continue
        group = groups[slot]
        lead = next((a for a in group if a.kind in ("aftersale", "evidence")), group[0])
        kept.append(lead)
        if len(group) > 1:
            extras[lead.key] = tuple(a for a in group if a is not lead)
    return kept, extras
