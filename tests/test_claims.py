"""Claim semantics: the pure rules (gate, lapse, due stage), then through the store, the enqueue and the dispatcher:
a claimed item skips 6 h and still gets 2 h and 30 min with 「已认领」 and an @; a lapse lets the due stage out at
once; a done mark PDD contradicts still gets the last stage; notes escaped in WeCom markdown and email HTML."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.config import Config, load_config
from agent.core.claims import Claim, TeamRules, annotate, clean_note, due_stage, gate, item_key, lapse_reason
from agent.core.render import render_group
from agent.core.rules import Alert, ItemState, RulesConfig
from agent.outbox import holds
from agent.outbox.dispatch import Dispatcher
from agent.outbox.store import Store
from agent.outbox.team_store import Conflict, Team
from tests.conftest import run_async
from tests.test_dispatch import NOON, TZ, Clock, Scripted, check, item

H = 3600.0
RULES = TeamRules(members=frozenset({"张三", "李四"}))
T = NOON.timestamp()


def stage_alert(threshold: int, last: bool = False, kind: str = "aftersale") -> Alert:
    it = item(1, timedelta(hours=6, seconds=-60))  # the deadline `held` claims were made with
    return Alert(key=f"店:{kind}:1001:stage", shop="店", kind=kind, severity="warning",  # type: ignore[arg-type]
                 created_at=NOON, event="stage", threshold_seconds=threshold, is_last_stage=last, item=it)


def held(member: str | None = "张三", at: float = T, **kw: object) -> Claim:
    deadline = NOON.timestamp() + 6 * H - 60
    return Claim(shop="店", kind="aftersale", item_id="1001", member=member, claimed_at=at, deadline=deadline,
                 **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("threshold", "last", "claim", "expected"), [
    (24 * 3600, False, None, "send"),
    (6 * 3600, False, held(), "quiet"),
    (2 * 3600, False, held(), "claimed"),
    (30 * 60, True, held(), "claimed"),
    (6 * 3600, False, held(at=T - 3 * H), "send"),  # lapsed: TTL 2 h
    (6 * 3600, False, held("王五"), "send"),  # no longer a member
    (6 * 3600, False, held(None, done_by="张三", done_at=T), "quiet"),
    (30 * 60, True, held(None, done_by="张三", done_at=T), "done_last"),
    (6 * 3600, False, held(None), "send"),  # released
])
def test_gate(threshold: int, last: bool, claim: Claim | None, expected: str) -> None:
    assert gate(stage_alert(threshold, last), claim, T, RULES) == expected


def test_evidence_stages_have_their_own_quiet_limit() -> None:
    rules = TeamRules(members=frozenset({"张三"}))  # evidence: 12h quiet, 4h and 1h go out
    assert gate(stage_alert(12 * 3600, kind="evidence"), held(), T, rules) == "quiet"
    assert gate(stage_alert(4 * 3600, kind="evidence"), held(), T, rules) == "claimed"


def test_lapse_reasons() -> None:
    c = held()
    assert lapse_reason(c, T + 2 * H - 1, RULES, c.deadline) is None
    assert lapse_reason(c, T + 2 * H, RULES, c.deadline) == "expired"
    assert lapse_reason(dataclasses.replace(c, renewed_at=T + H), T + 2 * H, RULES, c.deadline) is None
    assert lapse_reason(c, T, RULES, (c.deadline or 0) + 3600) == "deadline_moved"
    assert lapse_reason(held("王五"), T, RULES, c.deadline) == "member_removed"
    assert lapse_reason(held(None), T, RULES, c.deadline) is None


def test_annotation_and_escaped_note_in_markdown_and_html() -> None:
    a = annotate(stage_alert(2 * 3600), held(), "claimed", TZ, "13800001111", "<script>alert(1)</script> @所有人")
    [msg] = render_group("店", [a], dialect="wecom", max_bytes=4096, detail_url=None, tz=TZ, now=NOON)
    assert "已认领：张三 12:00" in msg.markdown and msg.mention_mobiles == ("13800001111",)
    assert "<script>" not in msg.markdown and "＜script＞" in msg.markdown and "@所有人" not in msg.markdown
    assert "&lt;script&gt;" in msg.html and "<script>" not in msg.html


def test_due_stage_has_the_key_evaluate_gives() -> None:
    st = ItemState(shop="店", kind="aftersale", item_id="1001", order_sn="x", last_stage=0, alerted=True,
                   deadline=NOON + timedelta(hours=5), refund_amount_fen=100, last_seen=NOON, episode=2)
    a = due_stage(st, RulesConfig(), NOON)
    assert a is not None and a.key == "店:aftersale:1001:stage1#2" and a.threshold_seconds == 6 * 3600
    assert due_stage(dataclasses.replace(st, closed=True), RulesConfig(), NOON) is None
    assert due_stage(dataclasses.replace(st, deadline=NOON + timedelta(days=2)), RulesConfig(), NOON) is None


def test_notes_are_cleaned_and_bounded() -> None:
    assert clean_note("  好的\x00\u202e  ", 10) == "好的"
    with pytest.raises(ValueError):
        clean_note("   ", 10)
    with pytest.raises(ValueError):
        clean_note("长" * 11, 10)


# ---- through the store, the enqueue and the dispatcher ----------------------------------------
def team_config(tmp_path: Path, ttl: str = "2h") -> Config:
    from tests.test_dispatch import config
    cfg = config(tmp_path)
    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    text += f'[team]\nclaim_ttl = "{ttl}"\n[[team.members]]\nname = "张三"\nmobile = "13800001111"\n'
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    assert cfg.team.members == ()
    return load_config(tmp_path / "config.toml")


def sent_texts(ns: Scripted) -> list[str]:
    return [m.markdown for m in ns.sent]


def test_claimed_item_skips_6h_and_gets_2h_and_30m_with_the_holder(tmp_path: Path, store_at: Path | str) -> None:
    cfg = team_config(tmp_path, ttl="48h")
    store, ops, clock = Store(store_at), Scripted("ops"), Clock(NOON)
    deadline_in = timedelta(hours=23)
    it = item(1, deadline_in)
    check(cfg, store, [it], NOON)  # 24 h stage
    run_async(Dispatcher(cfg, store, {"ops": ops, "mail": Scripted("mail")}, clock=clock).run_once())
    assert len(ops.sent) == 1
    key = item_key("店", "aftersale", it.id)
    holds.act(cfg, store, key, "claim", "张三", NOON, T, expected=0)
    holds.act(cfg, store, key, "note", "张三", NOON, T, text="<b>已联系买家</b>")
    for hours_later, deadline_left in ((18, 5), (21.5, 1.5), (22.6, 0.4)):  # 6 h, 2 h, 30 min
        at = NOON + timedelta(hours=hours_later)
        check(cfg, store, [dataclasses.replace(it, remaining_seconds=int(deadline_left * H))], at)
        clock.t = at.timestamp()
        run_async(Dispatcher(cfg, store, {"ops": ops, "mail": Scripted("mail")}, clock=clock).run_once())
    texts = sent_texts(ops)
    assert len(texts) == 3, texts  # 24 h, then 2 h and 30 min: 6 h was quiet
    assert all("已认领：张三" in t for t in texts[1:]) and "＜b＞已联系买家＜/b＞" in texts[1]
    assert all("13800001111" in m.mention_mobiles for m in ops.sent[1:])
    events = [e.action for e in Team(store).events("店", "aftersale", it.id)]
    assert events == ["claimed", "note", "stage_quiet"]


def test_a_lapsed_claim_lets_the_due_stage_out_at_once(tmp_path: Path, store_at: Path | str) -> None:
    cfg = team_config(tmp_path, ttl="1h")
    store = Store(store_at)
    it = item(1, timedelta(hours=7))
    check(cfg, store, [it], NOON)  # the 24 h stage queued
    key = item_key("店", "aftersale", it.id)
    holds.act(cfg, store, key, "claim", "张三", NOON, T)
    at = NOON + timedelta(minutes=30)  # 6 h 30 min left... then 5 h 30 min: 6 h stage, quiet
    check(cfg, store, [it], at + timedelta(hours=1) - timedelta(minutes=31))
    assert not [r for r in store.rows() if r["dedup_key"].endswith("stage1")]
    assert holds.sweep(cfg, store, NOON + timedelta(minutes=50), T + 50 * 60) == []  # still held
    assert holds.sweep(cfg, store, NOON + timedelta(hours=1), T + H) == [key]  # TTL: lapsed, 6 h queued now
    assert [r["channel"] for r in store.rows() if r["dedup_key"].endswith("stage1")] == ["ops"]
    assert Team(store).events("店", "aftersale", it.id)[-1].action == "lapsed"


def test_done_item_still_listed_gets_the_last_stage_to_everyone(tmp_path: Path, store_at: Path | str) -> None:
    cfg = team_config(tmp_path)
    store = Store(store_at)
    it = item(1, timedelta(hours=3))
    check(cfg, store, [it], NOON)
    holds.act(cfg, store, item_key("店", "aftersale", it.id), "done", "张三", NOON, T)
    later = NOON + timedelta(hours=1, minutes=5)  # 1 h 55 min left: 2 h stage, quiet for a done item
    check(cfg, store, [it], later)
    assert not [r for r in store.rows() if r["dedup_key"].endswith("stage2")]
    last = NOON + timedelta(hours=2, minutes=40)
    check(cfg, store, [it], last)
    rows = [r for r in store.rows() if r["dedup_key"].endswith("stage3")]
    assert sorted(r["channel"] for r in rows) == ["mail", "ops"]  # the last stage: the admins too
    assert '"done": true' in rows[0]["payload"]


def test_stale_version_conflicts_and_closed_items_refuse(tmp_path: Path, store_at: Path | str) -> None:
    cfg = team_config(tmp_path)
    store = Store(store_at)
    it = item(1, timedelta(hours=3))
    check(cfg, store, [it], NOON)
    key = item_key("店", "aftersale", it.id)
    c = holds.act(cfg, store, key, "claim", "张三", NOON, T, expected=0)
    with pytest.raises(Conflict):
        holds.act(cfg, store, key, "claim", "张三", NOON, T, expected=0)
    assert holds.act(cfg, store, key, "release", "张三", NOON, T, expected=c.version).member is None
    check(cfg, store, [], NOON + timedelta(minutes=5))  # left the list: 已处理
    with pytest.raises(ValueError):
        holds.act(cfg, store, key, "claim", "张三", NOON, T)


def test_claims_and_timeline_survive_a_reopened_store(tmp_path: Path, store_at: Path | str) -> None:
    cfg = team_config(tmp_path)
    store = Store(store_at)
    it = item(1, timedelta(hours=3))
    check(cfg, store, [it], NOON)
    holds.act(cfg, store, item_key("店", "aftersale", it.id), "claim", "张三", NOON, T)
    store.close()
    again = Team(Store(store_at))
    assert again.claim_of("店", "aftersale", it.id).member == "张三"
    assert [e.actor for e in again.events("店", "aftersale", it.id)] == ["张三"]


def test_items_keys_are_stable_and_distinct() -> None:
    assert item_key("店", "aftersale", "1") == item_key("店", "aftersale", "1")
    assert item_key("店", "aftersale", "1") != item_key("店2", "aftersale", "1")
    assert "/" not in item_key("a/b", "evidence", "9")


def test_a_claim_from_another_time_zone_is_shown_in_the_agent_zone() -> None:
    a = annotate(stage_alert(2 * 3600), held(at=datetime(2026, 11, 21, 6, 5, tzinfo=TZ).timestamp()), "claimed", TZ)
    assert a.claim is not None and a.claim["at"] == "06:05"


def test_the_digest_shows_who_handled_what_and_who_holds_what(tmp_path: Path, store_at: Path | str) -> None:
    from agent.core.digest import render_digest
    from agent.outbox.enqueue import queue_digest
    cfg = team_config(tmp_path, ttl="48h")
    store = Store(store_at)
    a, b = item(1, timedelta(hours=3)), item(2, timedelta(hours=5))
    check(cfg, store, [a, b], NOON - timedelta(days=1))
    holds.act(cfg, store, item_key("店", "aftersale", a.id), "done", "张三", NOON, T - 20 * H)
    check(cfg, store, [b], NOON - timedelta(days=1) + timedelta(hours=1))  # a left the list: 已处理
    holds.act(cfg, store, item_key("店", "aftersale", b.id), "claim", "张三", NOON, T)
    queue_digest(cfg, store, cfg.shops[0], NOON)
    [row] = [r for r in store.rows() if ":digest:" in r["dedup_key"]]
    import json
    team = json.loads(row["payload"])["digest"]["team"]
    assert team == {"handled": {"张三": 1}, "claimed": {b.id: "张三"}}
    msg = render_digest("店", [dataclasses.replace(b, deadline=NOON + timedelta(hours=4))], [], [], NOON, TZ,
                        team=team)
    assert "昨日处理（按成员）：**张三 1 单**" in msg.markdown and "已认领：张三" in msg.markdown


def test_a_check_says_whether_the_page_needs_a_refetch(tmp_path: Path, store_at: Path | str) -> None:
    from agent.core.models import ShopResult
    from agent.outbox.enqueue import record_result
    cfg = team_config(tmp_path)
    store = Store(store_at)
    a = item(1, timedelta(hours=30))

    def changed(items: list, at: datetime) -> bool:  # type: ignore[type-arg]
        result = ShopResult(name="店", checked_at=at, aftersales=items)
        record_result(cfg, store, cfg.shops[0], result, at)
        return result.changed

    assert changed([a], NOON)  # a new item
    assert not changed([a], NOON + timedelta(minutes=10))  # the same list, later: nothing the page shows moved
    assert changed([a], NOON + timedelta(hours=7))  # its 24 h stage
    assert changed([], NOON + timedelta(hours=7, minutes=10))  # it left the list
