"""What the team page shows, as plain dicts (the templates and the JSON API read the same rows): open items most
urgent first with their stages, holds and notes; an item's timeline; shops, channels and 30 days of history."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from agent.core.claims import LAPSE_ZH, Claim, TeamRules, holder, item_key
from agent.core.rules import ItemState, RulesConfig
from agent.outbox.team_store import Event, Send, Team

KIND_ZH = {"aftersale": "售后", "evidence": "举证"}
FLAG_ZH = {"complaint": "投诉预警", "quality": "品质退款风险", "platform": "平台介入", "urged": "买家已催"}
# the 待办 filter's kinds: 售后 / 举证 / 投诉预警 / 品质退款风险 / 平台介入 / 工单
KINDS = {"aftersale": "售后", "evidence": "举证", "complaint": "投诉预警", "quality": "品质退款风险",
         "platform": "平台介入", "work_orders": "工单"}
ACTION_ZH = {"claimed": "认领", "renewed": "续期认领", "reassigned": "转给", "released": "释放", "done": "标记已处理",
             "note": "备注", "lapsed": "认领失效", "stage_quiet": "已认领，未群发", "closed": "结束",
             "closed_by": "处理完成"}
OUTCOME_ZH = {"handled": "已处理", "auto_refunded": "自动退款", "escalated": "转平台介入（待举证）"}
STATUS_ZH = {"sent": "已发送", "pending": "待发送", "dead": "发送失败"}
SHOP_STATE_ZH = {"ok": "正常", "unknown": "尚未检查", "login_required": "需要登录", "sms_required": "需要登录（短信）",
                 "captcha": "验证码", "login_blocked": "被限制", "layout_changed": "页面变化", "rate_limited": "被限流",
                 "backend_error": "后台出错", "timeout": "超时", "browser_error": "浏览器出错"}
PAGE_SIZE = 100


@dataclass(frozen=True)
class Filters:
    """The 待办 list's filters: shop, kind (KINDS), claimed by (a name, "-" for nobody), mine."""

    shop: str = ""
    kind: str = ""
    claimed: str = ""
    mine: bool = False
    page: int = 1


def stage_label(event: str, thresholds: tuple[int, ...]) -> str:
    """"stage1" → "6h" (the threshold it stands for); notices by their Chinese name."""
    if event.startswith("stage") and event[5:].isdigit() and int(event[5:]) < len(thresholds):
        s = thresholds[int(event[5:])]
        return f"{s // 3600}h" if s % 3600 == 0 else f"{s // 60}m"
    return FLAG_ZH.get(event, OUTCOME_ZH.get(event, event))


def _hhmm(ts: float | None, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%m-%d %H:%M") if ts else ""


class View:
    """Reads for the page over the store, in the given zone; `mms_url(state)` links an item to its mms page;
    `ours(t)` turns the backend's time into ours, so a countdown ticking on the phone's clock is right even when
    the backend's clock is off."""

    def __init__(self, team: Team, rules: RulesConfig, team_rules: TeamRules, tz: tzinfo,
                 mms_url: Callable[[ItemState], str], ours: Callable[[float], float] = lambda t: t) -> None:
        self.team, self.rules, self.team_rules, self.tz, self.mms_url = team, rules, team_rules, tz, mms_url
        self.ours = ours  # a backend time as ours (the browser's clock ticks the countdowns)

    def row(self, st: ItemState, claim: Claim | None, sends: Iterable[Send], notes: int, now: float) -> dict[str, Any]:
        thresholds = self.rules.thresholds(st.kind)
        stages: dict[str, dict[str, Any]] = {}
        flags = {f for f, on in (("urged", st.urged), ("quality", st.quality)) if on}
        for s in sends:
            if s.event in FLAG_ZH:
                flags.add(s.event)
            if not s.event.startswith("stage"):
                continue
            seen = stages.setdefault(s.event, {"label": stage_label(s.event, thresholds), "sent": "", "channels": []})
            if s.status == "sent":
                seen["sent"] = seen["sent"] or _hhmm(s.sent_at, self.tz)
                seen["channels"].append(s.channel)
        deadline = st.deadline.timestamp()
        who = holder(claim, now, self.team_rules, deadline)
        return {
            "key": item_key(st.shop, st.kind, st.item_id), "shop": st.shop, "kind": st.kind,
            "kind_zh": KIND_ZH.get(st.kind, st.kind), "flags": [FLAG_ZH[f] for f in sorted(flags)],
            "flag_keys": sorted(flags), "item_id": st.item_id, "order_sn": st.order_sn, "type": st.type,
            "reason": st.reason, "goods_name": st.goods_name, "amount_fen": st.refund_amount_fen,
            "amount": f"¥{st.refund_amount_fen / 100:,.2f}", "deadline": st.deadline.isoformat(),
            "deadline_ms": int(self.ours(deadline) * 1000),
            "deadline_local": st.deadline.astimezone(self.tz).strftime("%m-%d %H:%M"),
            "stages": list(stages.values()), "claimed_by": who,
            "claimed_at": _hhmm(claim.claimed_at, self.tz) if who and claim else "",
            "claim_until_ms": int(((claim.held_since or 0) + self.team_rules.ttl) * 1000) if who and claim else None,
            "done_by": claim.done_by if claim else None, "notes": notes, "version": claim.version if claim else 0,
            "closed": st.closed, "outcome": st.outcome, "outcome_zh": OUTCOME_ZH.get(st.outcome, ""),
            "mms_url": self.mms_url(st),
        }

    def items(self, f: Filters, me: str, now: float, *, page_size: int = PAGE_SIZE) -> dict[str, Any]:
        """The 待办 list: open items of every shop most urgent first (deadline), filtered, one page of rows. The
        filters run on the index (no item's JSON parsed); only the page's rows are read in full."""
        index = self.team.open_index()
        claims = self.team.claims()
        if f.shop:
            index = [r for r in index if r[0] == f.shop]
        if f.kind in ("aftersale", "evidence"):
            index = [r for r in index if r[1] == f.kind]
        elif f.kind == "quality":
            index = [r for r in index if r[4] or "quality" in {x.event for x in self.team.sends(*r[:3])}]
        elif f.kind in ("complaint", "platform"):
            index = [r for r in index if f.kind in {x.event for x in self.team.sends(*r[:3])}]
        elif f.kind == "work_orders":
            index = []

        def held(r: tuple[str, str, str, float, bool]) -> str | None:
            return holder(claims.get(r[:3]), now, self.team_rules, r[3])

        if f.mine:
            index = [r for r in index if held(r) == me]
        if f.claimed == "-":
            index = [r for r in index if held(r) is None]
        elif f.claimed:
            index = [r for r in index if held(r) == f.claimed]
        total = len(index)
        pages = max(1, -(-total // page_size))
        page = min(max(1, f.page), pages)
        chosen = self.team.states(r[:3] for r in index[(page - 1) * page_size: page * page_size])
        counts = self.team.note_counts()
        rows = [self.row(s, claims.get((s.shop, s.kind, s.item_id)), self.team.sends(s.shop, s.kind, s.item_id),
                         counts.get((s.shop, s.kind, s.item_id), 0), now) for s in chosen]
        return {"items": rows, "total": total, "page": page, "pages": pages, "page_size": page_size}

    def item(self, key: str, now: float) -> dict[str, Any]:
        """One item with its whole timeline: first seen, every alert and its channel, claims, notes, the close."""
        st = self.team.find(key)
        claim = self.team.claim_of(st.shop, st.kind, st.item_id)
        sends = self.team.sends(st.shop, st.kind, st.item_id)
        events = self.team.events(st.shop, st.kind, st.item_id)
        row = self.row(st, claim, sends, sum(e.action == "note" for e in events), now)
        thresholds = self.rules.thresholds(st.kind)
        line: list[dict[str, Any]] = []
        if st.first_seen:
            line.append({"at": st.first_seen.timestamp(), "who": "系统", "what": "首次发现", "text": ""})
        for s in sends:
            at = s.sent_at or s.created_at
            line.append({"at": at, "who": s.channel, "text": "",
                         "what": f"提醒 {stage_label(s.event, thresholds)} · {STATUS_ZH.get(s.status, s.status)}"})
        for e in events:
            line.append(self._event(e, thresholds, st))
        line.sort(key=lambda x: x["at"])
        for x in line:
            x["when"] = _hhmm(x["at"], self.tz)
        return {**row, "timeline": line, "notes_list": [e for e in line if e.get("note")]}

    def _event(self, e: Event, thresholds: tuple[int, ...], st: ItemState) -> dict[str, Any]:
        what, text = ACTION_ZH.get(e.action, e.action), ""
        if e.action == "note":
            text = e.detail
        elif e.action == "stage_quiet":
            event, _, who = e.detail.partition(":")
            what = f"提醒 {stage_label(event, thresholds)} 未群发（{who} 已认领）"
        elif e.action == "lapsed":
            who, _, reason = e.detail.rpartition(":")
            what = f"{who} 的认领失效：{LAPSE_ZH.get(reason, reason)}"
        elif e.action == "closed":
            what = f"结束：{OUTCOME_ZH.get(e.detail, e.detail)}"
            if e.detail == "auto_refunded":
                what += f"，损失 ¥{st.refund_amount_fen / 100:,.2f}"
        elif e.action in ("reassigned", "released") and e.detail:
            what = f"{what} {e.detail}"
        return {"at": e.at, "who": e.actor, "what": what, "text": text, "note": e.action == "note"}

    def history(self, now: float, days: int = 30) -> dict[str, Any]:
        """Items closed in the last `days`: outcome, who handled them; money lost (自动退款) per shop."""
        since = now - days * 86400
        closed = sorted(self.team.closed_since(since), key=lambda s: s.last_seen, reverse=True)
        claims = self.team.claims()
        by: dict[tuple[str, str, str], str] = {}
        for s in closed:
            c = claims.get((s.shop, s.kind, s.item_id))
            by[(s.shop, s.kind, s.item_id)] = (c.member or c.done_by or "") if c else ""
        lost: dict[str, int] = defaultdict(int)
        for s in closed:
            if s.outcome == "auto_refunded":
                lost[s.shop] += s.refund_amount_fen
        rows = [{"key": item_key(s.shop, s.kind, s.item_id), "shop": s.shop, "order_sn": s.order_sn,
                 "kind_zh": KIND_ZH.get(s.kind, s.kind), "outcome": s.outcome,
                 "outcome_zh": OUTCOME_ZH.get(s.outcome, s.outcome), "amount": f"¥{s.refund_amount_fen / 100:,.2f}",
                 "when": s.last_seen.astimezone(self.tz).strftime("%m-%d %H:%M"),
                 "by": by[(s.shop, s.kind, s.item_id)]} for s in closed[:500]]
        per_member = Counter(r["by"] for r in rows if r["by"] and r["outcome"] == "handled")
        return {"rows": rows, "total": len(closed), "lost": [{"shop": k, "amount": f"¥{v / 100:,.2f}", "fen": v}
                                                             for k, v in sorted(lost.items(), key=lambda x: -x[1])],
                "per_member": dict(per_member.most_common())}


def shops_view(snapshot: Any, counts: Mapping[tuple[str, str], int], qr: Mapping[str, bytes],
               tz: tzinfo) -> list[dict[str, Any]]:
    """店铺: each shop's session state, last read, next check, open items ((shop, kind) → count, as the store has
    them), latest finding, a QR waiting for a scan."""
    out = []
    for s in snapshot.shops:
        out.append({"name": s.name, "state": s.state, "state_zh": SHOP_STATE_ZH.get(s.state, s.state),
                    "ok": s.state == "ok", "enabled": s.enabled, "last_ok": _hhmm(s.last_ok, tz),
                    "last_check": _hhmm(s.last_check, tz), "next_run": _hhmm(s.next_run, tz),
                    "aftersale": counts.get((s.name, "aftersale"), 0), "evidence": counts.get((s.name, "evidence"), 0),
                    "error": s.last_error or "", "finding": s.finding or "", "qr": s.name in qr})
    return out


def channels_view(snapshot: Any, tz: tzinfo) -> list[dict[str, Any]]:
    """渠道: each channel's state, last error, rows waiting, messages sent by this run."""
    zh = {"ok": "正常", "failing": "发送失败，重试中", "broken": "配置错误，已停用"}
    return [{"name": n, "state": c["state"], "state_zh": zh.get(c["state"], c["state"]),
             "last_error": c.get("last_error") or "", "waiting": c.get("waiting", 0),
             "failures": c.get("failures", 0), "next_try": _hhmm(c.get("next_try"), tz),
             "sent": snapshot.messages_sent.get(n, 0)} for n, c in sorted(snapshot.channels.items())]
