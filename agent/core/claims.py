"""Claim rules (pure): item keys, when a claim lapses, what a claim or a 「已处理」 mark does to a stage alert."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.core.rules import Alert, ItemState, RulesConfig, current_stage, severity_of

# a deadline that moved by more than this since the claim means a new clock: the claim (or done mark) lapses
DEADLINE_MOVED = 60.0
NOTE_SHOWN = 200  # characters of the latest note an alert carries
LOCAL_MEMBER = "本机"  # who acts on an open loopback page ([web] open_on_loopback) when the team is not one member

Gate = Literal["send", "quiet", "claimed", "done_last"]
LapseReason = Literal["expired", "member_removed", "deadline_moved"]
LAPSE_ZH = {"expired": "认领超时未续期", "member_removed": "认领人已不在团队中", "deadline_moved": "截止时间已变化",
            "released": "已释放"}


def item_key(shop: str, kind: str, item_id: str) -> str:
    """The item's id in URLs and the API: kind, after-sales id and a short digest of the shop (names may hold any
    character). Stable across restarts and versions."""
    return f"{kind}-{item_id}-{hashlib.sha256(shop.encode('utf-8')).hexdigest()[:8]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """The team's hold on one item. `member` None: open. `done_by`: a member marked it 已处理 (the backend has the
    last word: it stays on the list until PDD drops it). Times are epoch seconds by our clock; `deadline` is the
    item's deadline (epoch) when claimed or marked, to notice a moved deadline. `version` grows with every change
    (409 for a stale page)."""

    shop: str
    kind: str
    item_id: str
    member: str | None = None
    claimed_at: float | None = None
    renewed_at: float | None = None
    deadline: float | None = None
    done_by: str | None = None
    done_at: float | None = None
    version: int = 0

    @property
    def key(self) -> str:
        return item_key(self.shop, self.kind, self.item_id)

    @property
    def held_since(self) -> float | None:
        """When the claim was last taken or renewed (its TTL counts from here)."""
        return self.renewed_at or self.claimed_at


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamRules:
    """[team] in seconds: stages further than `quiet_until` before the deadline are quiet while claimed."""

    quiet_until: int = 2 * 3600
    evidence_quiet_until: int = 4 * 3600
    ttl: int = 2 * 3600
    members: frozenset[str] = frozenset()

    def quiet_for(self, kind: str) -> int:
        return self.evidence_quiet_until if kind == "evidence" else self.quiet_until


def lapse_reason(claim: Claim, now: float, rules: TeamRules, deadline: float | None) -> LapseReason | None:
    """Why a held claim no longer holds at `now` (None: it holds, or there is none). A done mark lapses only when
    the deadline moved (a new clock: the mark was about the old one)."""
    moved = deadline is not None and claim.deadline is not None and abs(deadline - claim.deadline) > DEADLINE_MOVED
    if claim.member is not None:
        if claim.member not in rules.members:
            return "member_removed"
        if moved:
            return "deadline_moved"
        if now - (claim.held_since or now) >= rules.ttl:
            return "expired"
    elif claim.done_by is not None and moved:
        return "deadline_moved"
    return None


def holder(claim: Claim | None, now: float, rules: TeamRules, deadline: float | None) -> str | None:
    """Who holds the item at `now`, or None."""
    if claim is None or claim.member is None or lapse_reason(claim, now, rules, deadline):
        return None
    return claim.member


def gate(alert: Alert, claim: Claim | None, now: float, rules: TeamRules) -> Gate:
    """What the team's hold does to one alert: "send" as ever; "quiet" — not broadcast (a stage further than
    `quiet_until` while claimed, or any stage but the last of an item marked done); "claimed" — broadcast with
    「已认领」 and an @ of the holder; "done_last" — the last stage of an item marked done that PDD still lists,
    broadcast to everyone saying so. Only stage alerts are gated; notices, closes and health always go."""
    if alert.kind not in ("aftersale", "evidence") or claim is None or alert.item is None:
        return "send"
    deadline = alert.item.deadline.timestamp()
    if lapse_reason(claim, now, rules, deadline):
        return "send"
    if claim.done_by is not None and claim.member is None:
        return "done_last" if alert.is_last_stage else "quiet"
    if claim.member is None:
        return "send"
    if (alert.threshold_seconds or 0) > rules.quiet_for(alert.kind):
        return "quiet"
    return "claimed"


def annotate(alert: Alert, claim: Claim, decision: Gate, tz: Any, mobile: str = "", note: str = "",
             open_id: str = "") -> Alert:
    """The alert carrying the hold: who, since when (local HH:MM), whose phone (and Feishu open_id) to @, the
    latest note (raw: rendering escapes it)."""
    if decision == "claimed":
        who, at = claim.member or "", claim.claimed_at
    elif decision == "done_last":
        who, at = claim.done_by or "", claim.done_at
    else:
        return alert
    when = datetime.fromtimestamp(at or 0, tz).strftime("%H:%M") if at else ""
    info = {"member": who, "at": when, "mobile": mobile, "done": decision == "done_last",
            "note": note[:NOTE_SHOWN], "open_id": open_id}
    return replace(alert, claim=info)


def due_stage(state: ItemState, cfg: RulesConfig, now: datetime) -> Alert | None:
    """The stage alert an open item is in at `now` (the key `evaluate` gives it, so it is never queued twice):
    what goes out at once when a claim lapses or is released. None before its first stage or once closed."""
    if state.closed:
        return None
    thresholds = cfg.thresholds(state.kind)
    remaining = (state.deadline - now) // timedelta(seconds=1)
    stage = current_stage(thresholds, remaining)
    if stage is None:
        return None
    suffix = f"#{state.episode}" if state.episode else ""
    return Alert(key=f"{state.shop}:{state.kind}:{state.item_id}:stage{stage}{suffix}", shop=state.shop,
                 kind=state.kind, severity=severity_of(stage, len(thresholds)), created_at=now, event=f"stage{stage}",
                 stage_index=stage, stage_count=len(thresholds), threshold_seconds=thresholds[stage],
                 is_last_stage=stage == len(thresholds) - 1, item=state.as_item(now))


def clean_note(text: str, limit: int) -> str:
    """A note as stored: control characters out, trimmed; ValueError when empty or longer than `limit`."""
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable()).strip()
    if not text:
        raise ValueError("备注不能为空 / the note is empty")
    if len(text) > limit:
        raise ValueError(f"备注最多 {limit} 个字 / a note holds at most {limit} characters")
    return text
