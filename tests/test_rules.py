"""Alert rules: stages across checks, closing events, dedup keys and health cooldowns — pure, fixed clock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.core.models import Item, ShopState
from agent.core.rules import (
    Alert,
    ItemState,
    RulesConfig,
    current_stage,
    evaluate,
    health_alerts,
    health_memory,
    severity_of,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=TZ)
SHOP = "示例旗舰店"
CFG = RulesConfig()  # aftersale 24h/6h/2h/30m, evidence 12h/4h/1h
H = 3600


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def aftersale(item_id: str, deadline: datetime, fen: int = 1290) -> Item:
    return Item(
        kind="aftersale", id=item_id, order_sn=f"261121-{item_id}", type="仅退款", status="买家申请退款，待商家处理",
                     reason="不想要了", goods_name="保温杯", goods_spec="500ml", refund_amount_fen=fen,
                     order_amount_fen=fen, created_at=T0 - timedelta(days=1), deadline=deadline, remaining_seconds=0)


def evidence(item_id: str, deadline: datetime, fen: int = 5000) -> Item:
    return Item(
        kind="evidence", id=item_id, order_sn=f"261121-{item_id}", type="退货退款", status="平台处理中",
                        reason="商品破损", goods_name="玻璃杯", refund_amount_fen=fen, deadline=deadline,
                        remaining_seconds=0)


class Checks:
    """Runs evaluate() check after check, threading the states like the store would."""

    def __init__(self, cfg: RulesConfig = CFG) -> None:
        self.cfg = cfg
        self.states: dict[tuple[str, str], ItemState] = {}
        self.keys: list[str] = []

    def run(self, now: datetime, aftersales: Sequence[Item] = (), tasks: Sequence[Item] = (),
            refunded: Sequence[str] = ()) -> list[Alert]:
        alerts, states = evaluate(SHOP, aftersales, tasks, self.states, self.cfg, now, closed_auto_refunded=refunded)
        self.states = {(s.kind, s.item_id): s for s in states}
        self.keys += [a.key for a in alerts]
        return alerts


# ---- stage config -------------------------------------------------------------------------------

def test_config_normalises_stages() -> None:
    cfg = RulesConfig(aftersale_before=(1800, 86400, 7200, 7200), evidence_before=(60,))
    assert cfg.aftersale_before == (86400, 7200, 1800) and cfg.evidence_before == (60,)
    with pytest.raises(ValueError, match="more than 0"):
        RulesConfig(aftersale_before=(0, 60))


@pytest.mark.parametrize(("remaining", "stage"), [
    (90000, None), (86401, None), (86400, 0), (30000, 0), (21600, 1), (7201, 1), (3600, 2), (1800, 3), (0, 3), (-50, 3),
], ids=["far", "just-above-first", "at-first", "in-first", "at-second", "just-above-third", "in-third", "at-last",
        "zero", "overdue"])
def test_current_stage_is_the_most_urgent_threshold_crossed(remaining: int, stage: int | None) -> None:
    assert current_stage(CFG.aftersale_before, remaining) == stage


@pytest.mark.parametrize(("stage", "count", "severity"), [
    (0, 4, "info"), (1, 4, "warning"), (2, 4, "warning"), (3, 4, "critical"), (0, 1, "critical"), (0, 2, "info"),
    (1, 2, "critical"),
], ids=["first-of-4", "second-of-4", "third-of-4", "last-of-4", "single", "first-of-2", "last-of-2"])
def test_severity_rises_with_the_stage(stage: int, count: int, severity: str) -> None:
    assert severity_of(stage, count) == severity


# ---- stage entry across checks -------------------------------------------------------------------

STAGE_CASES = [
    # (id, kind, deadline in hours from T0, check times in hours, events expected at each check)
    ("walks-every-stage", "aftersale", 30, [0, 7, 8, 25, 28.5, 29.6, 29.9],
     [[], ["stage0"], [], ["stage1"], ["stage2"], ["stage3"], []]),
    ("deep-first-sight-gets-only-its-stage", "aftersale", 1, [0, 0.6, 0.9], [["stage2"], ["stage3"], []]),
    ("first-seen-in-last-stage", "aftersale", 0.25, [0, 0.1], [["stage3"], []]),
    ("down-for-hours-skips-to-the-current-stage", "aftersale", 30, [7, 29], [["stage0"], ["stage2"]]),
    ("overdue-but-still-listed-no-repeat", "aftersale", 0.5, [0, 0.75, 2], [["stage3"], [], []]),
    ("evidence-stages", "evidence", 13, [0, 2, 9.5, 12.2, 12.5], [[], ["stage0"], ["stage1"], ["stage2"], []]),
]


@pytest.mark.parametrize(("kind", "deadline_h", "checks", "expected"), [c[1:] for c in STAGE_CASES],
                         ids=[c[0] for c in STAGE_CASES])
def test_one_alert_per_stage_reached(kind: str, deadline_h: float, checks: list[float],
                                     expected: list[list[str]]) -> None:
    run = Checks()
    thresholds = CFG.thresholds(kind)
    for hours, want in zip(checks, expected, strict=True):
        item = [aftersale("A1", at(deadline_h))] if kind == "aftersale" else []
        task = [evidence("A1", at(deadline_h))] if kind == "evidence" else []
        alerts = run.run(at(hours), item, task)
        assert [a.event for a in alerts] == want, f"check at +{hours}h"
        for a in alerts:
            stage = int(a.event.removeprefix("stage"))
            assert a.key == f"{SHOP}:{kind}:A1:{a.event}" and a.kind == kind and a.stage_index == stage
            assert a.severity == severity_of(stage, len(thresholds))
            assert a.is_last_stage == (stage == len(thresholds) - 1)
            assert a.item is not None and a.item.remaining_seconds == (at(deadline_h) - at(hours)).total_seconds()
        state = run.states[(kind, "A1")]
        assert state.last_seen == at(hours) and not state.closed
    assert len(run.keys) == len(set(run.keys))


@pytest.mark.parametrize(("leaves_at_h", "expected"), [
    (None, ["stage0", "stage1", "stage2", "stage3", "auto_refunded"]),
    (28.0, ["stage0", "stage1", "handled"]),
    (29.8, ["stage0", "stage1", "stage2", "stage3", "handled"]),
], ids=["left-to-expire", "handled-in-stage1", "handled-at-the-last-minute"])
def test_every_five_minutes_for_a_day_and_a_half(leaves_at_h: float | None, expected: list[str]) -> None:
    run, deadline, events = Checks(), at(30), []
    for step in range(0, 31 * 12):  # every 5 minutes until an hour past the deadline
        now = T0 + timedelta(minutes=5 * step)
        listed = now < deadline and (leaves_at_h is None or now < at(leaves_at_h))
        events += [a.event for a in run.run(now, [aftersale("A1", deadline)] if listed else [])]
    assert events == expected
    assert len(run.keys) == len(set(run.keys))


# ---- closing: 已处理 and 自动退款 ------------------------------------------------------------------

CLOSE_CASES = [
    # (id, 1st check h, 2nd check h, deadline h, confirm_handled, refunded ids, listed at 2nd, kind, event, outcome)
    ("alerted-then-handled", 0, 1, 5, True, (), False, "aftersale", "handled", "handled"),
    ("handled-confirmation-off", 0, 1, 5, False, (), False, "aftersale", None, "handled"),
    ("never-alerted-then-handled", 0, 1, 48, True, (), False, "aftersale", None, "handled"),
    ("alerted-then-expired", 0, 6, 5, True, (), False, "aftersale", "auto_refunded", "auto_refunded"),
    ("never-alerted-then-expired", 0, 49, 48, True, (), False, "aftersale", "auto_refunded", "auto_refunded"),
    ("1028-before-deadline", 0, 1, 5, True, ("A1",), False, "aftersale", "auto_refunded", "auto_refunded"),
    ("1028-while-still-listed", 0, 1, 5, True, ("A1",), True, "aftersale", "auto_refunded", "auto_refunded"),
    ("evidence-expired", 0, 4, 3, True, (), False, "evidence", "auto_refunded", "auto_refunded"),
    ("evidence-submitted", 0, 1, 3, True, (), False, "evidence", "handled", "handled"),
]


@pytest.mark.parametrize(("first", "second", "deadline_h", "confirm", "refunded", "listed", "kind", "event", "outcome"),
                         [c[1:] for c in CLOSE_CASES], ids=[c[0] for c in CLOSE_CASES])
def test_items_leaving_the_list(first: float, second: float, deadline_h: float, confirm: bool,
                                refunded: tuple[str, ...], listed: bool, kind: str, event: str | None,
                                outcome: str) -> None:
    run = Checks(RulesConfig(confirm_handled=confirm))

    def lists(present: bool) -> tuple[list[Item], list[Item]]:
        if not present:
            return [], []
        if kind == "aftersale":
            return [aftersale("A1", at(deadline_h))], []
        return [], [evidence("A1", at(deadline_h))]

    run.run(at(first), *lists(True))
    alerts = run.run(at(second), *lists(listed), refunded=refunded)
    assert [a.event for a in alerts] == ([event] if event else [])
    if event:
        a = alerts[0]
        assert a.kind == event and a.key == f"{SHOP}:{kind}:A1:{event}" and a.item is not None
        assert a.item.kind == kind and a.item.refund_amount_fen == (1290 if kind == "aftersale" else 5000)
        assert a.severity == ("warning" if event == "auto_refunded" else "info") and not a.is_last_stage
        assert a.inferred == (event == "auto_refunded" and not refunded)
    state = run.states[(kind, "A1")]
    assert state.closed and state.outcome == outcome and state.last_seen == at(first)
    assert run.run(at(second + 1)) == []  # a closed item says nothing more
    assert run.states[(kind, "A1")] == state


def test_a_handled_item_later_confirmed_as_refunded_gets_the_refund_notice() -> None:
    run = Checks()
    run.run(at(0), [aftersale("A1", at(5))])
    assert [a.event for a in run.run(at(1))] == ["handled"]
    assert [a.event for a in run.run(at(2), refunded=["A1"])] == ["auto_refunded"]
    assert run.run(at(3), refunded=["A1"]) == []


def test_an_after_sale_escalated_to_evidence_is_not_called_handled() -> None:
    run = Checks()
    run.run(at(0), [aftersale("A1", at(5))])
    alerts = run.run(at(1), [], [evidence("A1", at(11))])
    assert [(a.kind, a.event) for a in alerts] == [("evidence", "stage0")]
    assert run.states[("aftersale", "A1")].outcome == "escalated"


def test_a_closed_item_that_comes_back_starts_a_new_episode() -> None:
    run = Checks()
    run.run(at(0), [aftersale("A1", at(5))])
    run.run(at(1))  # handled
    alerts = run.run(at(2), [aftersale("A1", at(22))])
    assert [a.key for a in alerts] == [f"{SHOP}:aftersale:A1:stage0#1"]
    assert [a.key for a in run.run(at(3))] == [f"{SHOP}:aftersale:A1:handled#1"]
    assert len(run.keys) == len(set(run.keys))


@pytest.mark.parametrize(("new_deadline", "expected", "episode"), [
    (at(30), [], 1),  # the clock restarted: stages come again later
    (at(1.5) + timedelta(seconds=1), [], 0),  # jitter of the deadline estimate
    (at(0.4), ["stage3"], 0),  # moved closer: simply more urgent
], ids=["pushed-back", "jitter", "pulled-in"])
def test_deadline_changes(new_deadline: datetime, expected: list[str], episode: int) -> None:
    run = Checks()
    assert [a.event for a in run.run(at(0), [aftersale("A1", at(1.5))])] == ["stage2"]
    assert [a.event for a in run.run(at(0.1), [aftersale("A1", new_deadline)])] == expected
    assert run.states[("aftersale", "A1")].episode == episode
    if episode:
        assert [a.key for a in run.run(at(7), [aftersale("A1", new_deadline)])] == [f"{SHOP}:aftersale:A1:stage0#1"]


def test_duplicates_in_the_lists_alert_once() -> None:
    alerts, states = evaluate(SHOP, [aftersale("A1", at(1)), aftersale("A1", at(1))], [], {}, CFG, at(0))
    assert len(alerts) == 1 and len(states) == 1


def test_same_id_in_both_lists_has_two_keys() -> None:
    alerts, _ = evaluate(SHOP, [aftersale("A1", at(1))], [evidence("A1", at(0.5))], {}, CFG, at(0))
    assert sorted(a.key for a in alerts) == [f"{SHOP}:aftersale:A1:stage2", f"{SHOP}:evidence:A1:stage2"]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(SHOP, [], [], {}, CFG, datetime(2026, 11, 21, 10, 0))


def test_states_and_alerts_survive_json() -> None:
    alerts, states = evaluate(SHOP, [aftersale("A1", at(1))], [], {}, CFG, at(0))
    for s in states:
        d = json.loads(json.dumps(s.to_dict(), ensure_ascii=False))
        assert ItemState.from_dict(d) == s and d["last_seen_ts"] == at(0).timestamp() and d["item_id"] == "A1"
    for a in alerts:
        assert Alert.from_dict(json.loads(json.dumps(a.to_dict(), ensure_ascii=False))) == a


# ---- health --------------------------------------------------------------------------------------

HEALTH_CASES = [
    # (id, state, consecutive failures, active {bucket: hours ago}, qr, expected (event, severity, attach_qr) or None)
    ("sms-first-time", ShopState.SMS_REQUIRED, 1, {}, False, ("sms_required", "critical", False)),
    ("sms-within-cooldown", ShopState.SMS_REQUIRED, 2, {"sms_required": 1}, False, None),
    ("sms-after-cooldown", ShopState.SMS_REQUIRED, 9, {"sms_required": 6}, False, ("sms_required", "critical", False)),
    ("captcha-while-sms-active", ShopState.CAPTCHA, 1, {"sms_required": 1}, False, ("captcha", "critical", False)),
    ("qr-login-with-image", ShopState.LOGIN_REQUIRED, 1, {}, True, ("login_required", "critical", True)),
    ("qr-login-without-image", ShopState.LOGIN_REQUIRED, 1, {}, False, ("login_required", "critical", False)),
    ("qr-only-for-login-required", ShopState.SMS_REQUIRED, 1, {}, True, ("sms_required", "critical", False)),
    ("layout-immediately", ShopState.LAYOUT_CHANGED, 1, {}, False, ("layout_changed", "critical", False)),
    ("layout-within-cooldown", ShopState.LAYOUT_CHANGED, 5, {"layout_changed": 5.9}, False, None),
    ("timeout-below-threshold", ShopState.TIMEOUT, 2, {}, False, None),
    ("timeout-at-threshold", ShopState.TIMEOUT, 3, {}, False, ("failing", "warning", False)),
    ("other-failure-shares-the-bucket", ShopState.RATE_LIMITED, 4, {"failing": 1}, False, None),
    ("failing-after-cooldown", ShopState.BROWSER_ERROR, 20, {"failing": 7}, False, ("failing", "warning", False)),
    ("ok-with-nothing-active", ShopState.OK, 0, {}, False, None),
    ("ok-recovers", ShopState.OK, 0, {"sms_required": 2, "failing": 1}, False, ("recovered", "info", False)),
]


@pytest.mark.parametrize(("state", "failures", "active", "qr", "expected"), [c[1:] for c in HEALTH_CASES],
                         ids=[c[0] for c in HEALTH_CASES])
def test_health_alerts(state: ShopState, failures: int, active: dict[str, float], qr: bool,
                       expected: tuple[str, str, bool] | None) -> None:
    now = at(10)
    last = {bucket: now - timedelta(hours=h) for bucket, h in active.items()}
    alerts = health_alerts(SHOP, state, "detail text", failures, last, CFG, now, qr_png_available=qr)
    if expected is None:
        assert alerts == []
        return
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.event, a.severity, a.attach_qr) == expected
    assert a.kind == "health" and a.item is None and a.state == state.value and a.shop == SHOP
    assert a.key == f"{SHOP}:health:{expected[0]}:{int(now.timestamp())}"
    assert a.detail == ("failing,sms_required" if expected[0] == "recovered" else "detail text")


@pytest.mark.parametrize(("state", "failures_each_check", "expected"), [
    (ShopState.SMS_REQUIRED, False, 4),  # 24 h of checks every 30 min: once per 6 h cooldown
    (ShopState.LAYOUT_CHANGED, False, 4),
    (ShopState.TIMEOUT, True, 4),  # alert at the 3rd failure (+1 h), then each 6 h
], ids=["sms", "layout", "timeouts"])
def test_a_day_of_the_same_failure_is_not_a_flood(state: ShopState, failures_each_check: bool, expected: int) -> None:
    active: dict[str, datetime] = {}
    sent: list[Alert] = []
    for n in range(48):
        now = T0 + timedelta(minutes=30 * n)
        alerts = health_alerts(SHOP, state, "x", n + 1 if failures_each_check else 1, active, CFG, now)
        active = health_memory(active, state, alerts)
        sent += alerts
    assert len(sent) == expected and len({a.key for a in sent}) == expected
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in zip(sent, sent[1:], strict=False)]
    assert all(g >= CFG.health_cooldown for g in gaps)
    ok = health_alerts(SHOP, ShopState.OK, "", 0, active, CFG, at(30))
    assert [a.event for a in ok] == ["recovered"] and health_memory(active, ShopState.OK, ok) == {}
    assert health_alerts(SHOP, ShopState.OK, "", 0, {}, CFG, at(30.5)) == []


def test_health_memory_records_what_was_sent() -> None:
    alerts = health_alerts(SHOP, "captcha", "slider", 1, {"sms_required": at(0)}, CFG, at(1))
    assert health_memory({"sms_required": at(0)}, "captcha", alerts) == {"sms_required": at(0), "captcha": at(1)}
    assert health_memory({"captcha": at(0)}, "captcha", []) == {"captcha": at(0)}
