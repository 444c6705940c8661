"""The dispatcher under a fake clock with a scripted notifier: retries, dedup, rates, quiet hours, broken channels."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from agent.clock import Clock as AgentClock
from agent.config import Config, load_config
from agent.core.models import Item, ShopResult, ShopState
from agent.outbox.dispatch import Dispatcher, in_quiet_hours
from agent.outbox.enqueue import record_result
from agent.outbox.store import Store
from notifiers.base import Message, Notifier, PermanentError, RetryableError
from tests.conftest import run_async

TZ = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 21, 12, 0, tzinfo=TZ)


class Scripted(Notifier):
    """Records what it sends; raises the queued errors first."""

    kind: ClassVar[str] = "wecom"
    max_bytes: ClassVar[int | None] = 4096
    rate_limits: ClassVar[tuple[tuple[int, float], ...]] = ((20, 60.0),)

    def __init__(self, name: str) -> None:
        self.rate_key = f"wecom:{name}"
        self.mention_mobiles = ("13800000000",)
        self.sent: list[Message] = []
        self.errors: list[Exception] = []
        self.tries = 0

    async def send(self, message: Message) -> str:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message)
        return '{"errcode":0}'


class Clock(AgentClock):
    """The agent's clock on a time the test sets (`t`); the backend agrees with us."""

    def __init__(self, at: datetime) -> None:
        super().__init__(TZ, source=lambda: self.t)
        self.t = at.timestamp()


def config(tmp_path: Path, quiet: str = "") -> Config:
    text = f"""
[agent]
data_dir = "data"
[[shops]]
name = "店"
username = "店"
[alerts]
notify = ["ops"]
admin_notify = ["mail"]
quiet_hours = "{quiet}"
[notifiers.ops]
type = "wecom"
webhook_url = "http://127.0.0.1:9/x?key=k"
[notifiers.mail]
type = "email"
host = "127.0.0.1"
username = "a@x"
to = ["b@x"]
"""
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return load_config(tmp_path / "config.toml")


def item(n: int, remaining: timedelta, at: datetime = NOON) -> Item:
    return Item(kind="aftersale",
        id=str(1000 + n), order_sn=f"261121-{n:015d}", type="仅退款", status="买家申请退款，待商家处理",
        reason="不想要了" * (n % 3 + 1), goods_name="商品" * 20, goods_spec="", refund_amount_fen=1290 + n,
        order_amount_fen=1290 + n, created_at=at - timedelta(days=1), deadline=at + remaining,
        remaining_seconds=int(remaining.total_seconds()),
    )


def check(cfg: Config, store: Store, items: list[Item], at: datetime) -> None:
    record_result(cfg, store, cfg.shops[0], ShopResult(name="店", checked_at=at, aftersales=items), at)


Env = tuple[Config, Store, dict[str, Scripted], Clock]


@pytest.fixture
def env(tmp_path: Path, store_at: Path | str) -> Env:
    cfg = config(tmp_path)
    return cfg, Store(store_at), {"ops": Scripted("ops"), "mail": Scripted("mail")}, Clock(NOON)


def run(d: Dispatcher) -> object:
    return run_async(d.run_once())


def test_one_message_per_shop_and_channel_and_nothing_twice(env: Env) -> None:
    cfg, store, ns, clock = env
    check(cfg, store, [item(1, timedelta(hours=20)), item(2, timedelta(hours=5))], NOON)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    assert len(ns["ops"].sent) == 1 and ns["mail"].sent == []
    body = ns["ops"].sent[0].markdown
    assert "261121-000000000000001" in body and "261121-000000000000002" in body
    check(cfg, store, [item(1, timedelta(hours=20)), item(2, timedelta(hours=5))], NOON + timedelta(minutes=10))
    run(d)
    assert len(ns["ops"].sent) == 1  # same stages: nothing new


def test_retryable_failures_back_off_per_channel_and_deliver_once(env: Env) -> None:
    cfg, store, ns, clock = env
    ns["ops"].errors = [RetryableError("errcode -1", "系统繁忙"), RetryableError("http 500", "x"),
                        RetryableError("errcode 45009", "freq", retry_after=60)]
    check(cfg, store, [item(1, timedelta(hours=3))], NOON)
    d = Dispatcher(cfg, store, ns, clock=clock)
    waits = []
    for _ in range(3):
        run(d)
        st = store.channel_states()["ops"]
        waits.append((st.next_try or 0) - clock.t)
        tries = ns["ops"].tries
        run(d)  # not due yet: nothing happens
        assert ns["ops"].tries == tries
        clock.t += waits[-1]
    assert waits[0] <= 5 and waits[0] < waits[1] <= 30 and waits[2] == 60  # short, doubling; the hint wins
    assert store.rows("pending")[0]["attempts"] == 3  # the record, while the next try is the channel's
    run(d)
    run(d)
    assert len(ns["ops"].sent) == 1 and store.depth() == {"sent": 1}
    assert not store.channel_states()["ops"].failing


def test_permanent_failure_marks_dead_and_tells_the_admin_elsewhere(
    env: Env,
) -> None:
    cfg, store, ns, clock = env
    ns["ops"].errors = [PermanentError("errcode 93000", "invalid webhook url")]
    check(cfg, store, [item(1, timedelta(hours=3))], NOON)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    assert store.depth()["dead"] == 1 and store.broken() == {"ops": "errcode 93000: invalid webhook url"}
    run(d)
    [notice] = ns["mail"].sent
    assert "通知渠道故障" in notice.text and "ops" in notice.text


def _nineteen_sent(tmp_path: Path, store_at: Path | str) -> tuple[Config, dict[str, Scripted], Clock, Store]:
    """A config, its two channels, the clock at noon and a store whose robot sent 19 messages 30 to 12 s ago."""
    clock = Clock(NOON)
    store = Store(store_at)
    for i in range(19):
        store.record_send("wecom:ops", clock.t - 30 + i)
    return config(tmp_path), {"ops": Scripted("ops"), "mail": Scripted("mail")}, clock, store


def test_rate_limit_of_20_a_minute_is_kept_across_restarts(tmp_path: Path, store_at: Path | str) -> None:
    cfg, ns, clock, store = _nineteen_sent(tmp_path, store_at)
    store.close()
    store = Store(store_at)  # restarted
    check(cfg, store, [item(1, timedelta(hours=3))], NOON)
    store.commit_check("店2", [], [("k2", "ops", _payload(store))], clock.t)  # a second shop: a second message
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    assert len(ns["ops"].sent) == 1  # the 20th message
    assert store.depth()["pending"] == 1  # the 21st waits for the window
    clock.t += 31
    run(d)
    assert len(ns["ops"].sent) == 2


def test_a_send_whose_sender_died_before_the_answer_still_counts_against_the_limit(
    tmp_path: Path, store_at: Path | str,
) -> None:
    cfg, ns, clock, store = _nineteen_sent(tmp_path, store_at)
    store.begin_sends(["wecom:ops"], clock.t + 10, 1)  # the 20th went out; its sender died before the answer
    check(cfg, store, [item(1, timedelta(hours=3))], NOON)
    run(Dispatcher(cfg, store, ns, clock=clock))
    assert ns["ops"].sent == [] and store.depth()["pending"] == 1  # a 21st would be refused (45009): it waits
    clock.t += 45
    run(Dispatcher(cfg, store, ns, clock=clock))
    assert len(ns["ops"].sent) == 1
    assert store.sent_within("wecom:ops", clock.t, 60) == 3 + 1 + 1  # the last 3 of the 19, the orphan, this one


def test_a_used_up_minute_defers_the_other_shops_at_once_without_rendering_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
, store_at: Path | str) -> None:
    import agent.outbox.dispatch as dispatch

    cfg = config(tmp_path)
    ns = {"ops": Scripted("ops"), "mail": Scripted("mail")}
    clock = Clock(NOON)
    store = Store(store_at)
    check(cfg, store, [item(1, timedelta(hours=3))], NOON)
    for n in range(2, 41):  # 40 shops' alerts at once, a start-up round
        store.commit_check(f"店{n}", [], [(f"k{n}", "ops", _payload(store))], clock.t)
    rendered: list[str] = []
    real = dispatch.render_group
    monkeypatch.setattr(dispatch, "render_group", lambda shop, *a, **kw: rendered.append(shop) or real(shop, *a, **kw))
    report = run_async(Dispatcher(cfg, store, ns, clock=clock).run_once())
    assert len(ns["ops"].sent) == 20  # 20 a minute per robot
    assert len(rendered) == 21  # the 20 sent and the one that found the minute used up; the rest waited unrendered
    assert report.deferred == 20 and store.depth()["pending"] == 20  # nothing lost: all wait for the next minute
    clock.t += 61
    run_async(Dispatcher(cfg, store, ns, clock=clock).run_once())
    assert len(ns["ops"].sent) == 40 and store.depth().get("pending", 0) == 0


def _payload(store: Store) -> dict[str, object]:
    return dict(json.loads(store.db.execute("SELECT payload FROM outbox LIMIT 1").fetchone()[0]))


def test_quiet_hours_hold_non_urgent_alerts_but_not_the_last_stage(tmp_path: Path, store_at: Path | str) -> None:
    cfg = config(tmp_path, quiet="23:00-07:30")
    night = datetime(2026, 11, 21, 23, 30, tzinfo=TZ)
    store, ns, clock = Store(store_at), {"ops": Scripted("ops"), "mail": Scripted("mail")}, Clock(night)
    check(cfg, store, [item(1, timedelta(hours=20), night), item(2, timedelta(minutes=20), night)], night)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    [urgent] = ns["ops"].sent
    assert "261121-000000000000002" in urgent.markdown and "261121-000000000000001" not in urgent.markdown
    assert urgent.mention_mobiles == ("13800000000",)
    clock.t = datetime(2026, 11, 22, 7, 30, tzinfo=TZ).timestamp()
    run(d)
    assert "261121-000000000000001" in ns["ops"].sent[1].markdown


def test_a_split_message_resends_only_the_part_that_failed(env: Env) -> None:
    cfg, store, ns, clock = env
    items = [item(n, timedelta(hours=10, minutes=n)) for n in range(40)]  # too much for one 4096-byte message
    check(cfg, store, items, NOON)

    class FailSecond(Scripted):
        async def send(self, message: Message) -> str:
            if len(self.sent) == 1 and not self.errors and not getattr(self, "failed", False):
                self.failed = True
                raise RetryableError("http 500", "x")
            return await super().send(message)

    ns["ops"] = FailSecond("ops")
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    clock.t += 3600
    run(d)
    run(d)
    sns = [f"261121-{n:015d}" for n in range(40)]
    seen = [sn for m in ns["ops"].sent for sn in sns if sn in m.markdown]
    assert sorted(seen) == sorted(sns)  # every order number exactly once across all messages


def test_an_alert_sent_after_its_deadline_says_so(env: Env) -> None:
    cfg, store, ns, clock = env
    ns["ops"].errors = [RetryableError("network", "down")]
    check(cfg, store, [item(1, timedelta(hours=5))], NOON)  # not urgent: it waits for its channel, no failover
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    clock.t += 6 * 3600  # the outage outlived the deadline
    run(d)
    assert "已超时" in ns["ops"].sent[0].markdown


def test_failed_shop_raises_an_admin_alert_with_cooldown(env: Env) -> None:
    cfg, store, ns, clock = env
    d = Dispatcher(cfg, store, ns, clock=clock)
    for minutes in (0, 10, 20):
        at = NOON + timedelta(minutes=minutes)
        res = ShopResult(name="店", checked_at=at, state=ShopState.SMS_REQUIRED, error="需要短信验证码")
        record_result(cfg, store, cfg.shops[0], res, at)
        clock.t = at.timestamp()
        run(d)
    assert len(ns["mail"].sent) == 1 and "短信" in ns["mail"].sent[0].text  # once, to the admin channel


@pytest.mark.parametrize(
    ("spec", "hour", "minute", "ends"),
    [("23:00-07:30", 23, 30, (22, 7, 30)), ("23:00-07:30", 3, 0, (21, 7, 30)), ("23:00-07:30", 12, 0, None),
     ("12:00-13:00", 12, 30, (21, 13, 0)), ("", 3, 0, None)],
)
def test_quiet_hours_window(spec: str, hour: int, minute: int, ends: tuple[int, int, int] | None) -> None:
    got = in_quiet_hours(spec, datetime(2026, 11, 21, hour, minute, tzinfo=TZ))
    assert got == (None if ends is None else datetime(2026, 11, ends[0], ends[1], ends[2], tzinfo=TZ))


def test_daily_digest_is_queued_once_a_day_and_sent_like_an_alert(env: Env) -> None:
    cfg, store, ns, clock = env
    from agent.outbox.enqueue import queue_digest

    check(cfg, store, [item(1, timedelta(hours=20)), item(2, timedelta(days=3))], NOON)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    morning = NOON + timedelta(hours=21)  # 09:00 the next day
    ns["ops"].errors = [RetryableError("http 500", "x")]
    assert queue_digest(cfg, store, cfg.shops[0], morning) == 1
    assert queue_digest(cfg, store, cfg.shops[0], morning + timedelta(minutes=5)) == 0  # once a day
    clock.t = morning.timestamp()
    run(d)
    clock.t += 3600
    run(d)
    digest = ns["ops"].sent[-1]
    assert "每日售后汇总" in digest.title and "待商家处理" in digest.markdown and "2 单" in digest.markdown
    assert store.depth().get("pending", 0) == 0


def test_digest_is_rendered_at_dispatch_for_the_channel_and_names_its_own_day(env: Env) -> None:
    """Queued with the open items, not a rendered text: held past midnight (a failing channel) it still names
    its day, counts the remaining time at sending, and keeps within the channel's size limit."""
    cfg, store, ns, clock = env
    from agent.outbox.enqueue import queue_digest

    check(cfg, store, [item(n, timedelta(hours=5 + n)) for n in range(40)], NOON)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    evening = NOON + timedelta(hours=11, minutes=30)  # 23:30
    assert queue_digest(cfg, store, cfg.shops[0], evening) == 1
    [row] = [r for r in store.due(evening.timestamp() + 1) if "digest" in r.payload]
    assert "rendered" not in row.payload and len(row.payload["digest"]["aftersales"]) == 40
    ns["ops"].errors = [RetryableError("http 500", "x")]
    clock.t = evening.timestamp()
    run(d)
    clock.t = (evening + timedelta(hours=1)).timestamp()  # 00:30 the next day
    run(d)
    digest = ns["ops"].sent[-1]
    assert f"{evening.month}月{evening.day}日" in digest.title
    assert "截止 11月22日 01:00 · 剩余 30分" in digest.markdown  # counted at 00:30, when it was sent
    assert len(digest.markdown.encode()) <= Scripted.max_bytes


def test_digest_rendered_by_an_earlier_version_is_still_sent(env: Env) -> None:
    cfg, store, ns, clock = env
    old = {"rendered": {"title": "【旧】每日售后汇总", "markdown": "旧版本", "text": "旧版本", "html": "<p>旧版本</p>",
                        "keys": [], "mention": False}}
    store.enqueue([("示例旗舰店:digest:2026-11-20", "ops", "示例旗舰店", old)], clock.t)
    run(Dispatcher(cfg, store, ns, clock=clock))
    assert ns["ops"].sent[-1].title == "【旧】每日售后汇总" and store.depth().get("pending", 0) == 0


def test_watch_notices_go_where_watch_routes_them_and_a_shop_can_do_without(
    tmp_path: Path, store_at: Path | str,
) -> None:
    cfg = config(tmp_path)
    text = (tmp_path / "config.toml").read_text(encoding="utf-8").replace(
        "[alerts]", '[watch]\ncomplaints_notify = ["mail"]\n[alerts]')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml")
    store = Store(store_at)
    loud = replace(item(1, timedelta(hours=40)), complaint=True, quality_risk=True)
    check(cfg, store, [loud], NOON)
    routed = {(r["dedup_key"].rsplit(":", 1)[1], r["channel"]) for r in store.rows("pending")}
    assert routed == {("complaint", "mail"), ("quality", "ops")}  # no stage yet at 40 h
    # a shop with watch_off: neither notice
    text = text.replace('username = "店"\n', 'username = "店"\nwatch_off = ["complaints", "quality"]\n')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    off = load_config(tmp_path / "config.toml")
    other = Store(tmp_path / "other.db")
    check(off, other, [loud], NOON)
    assert other.rows("pending") == []


def test_a_complaint_warning_is_never_held_by_quiet_hours(tmp_path: Path, store_at: Path | str) -> None:
    cfg = config(tmp_path, quiet="23:00-07:30")
    store = Store(store_at)
    night = NOON.replace(hour=2)
    check(cfg, store, [replace(item(1, timedelta(hours=40), night), complaint=True, quality_risk=True)], night)
    ns = {"ops": Scripted("ops"), "mail": Scripted("mail")}
    run(Dispatcher(cfg, store, ns, clock=Clock(night)))
    [msg] = ns["ops"].sent
    assert "【投诉预警】" in msg.markdown and "品质退款风险" not in msg.markdown  # quality waits for the morning
    [held] = store.rows("pending")
    assert held["dedup_key"].endswith(":quality") and held["last_error"] == "quiet hours"


def test_a_send_whose_outcome_was_lost_is_sent_again_and_marked_possibly_repeated(env: Env) -> None:
    cfg, store, ns, clock = env
    check(cfg, store, [item(1, timedelta(hours=5))], NOON)
    store.commit_check("店2", [], [("k2", "ops", _payload(store))], clock.t)
    [first, second] = store.due(clock.t)
    store.mark_sending([first.id], clock.t)  # a dispatcher sent it and died before recording the outcome
    run(Dispatcher(cfg, store, ns, clock=clock))  # the next dispatcher (another node, or after a restart)
    assert len(ns["ops"].sent) == 2 and store.depth() == {"sent": 2}  # nothing lost
    assert store.maybe_repeated() == {"ops": 1}  # the one that may have arrived twice says so
    marked = store.db.execute("SELECT dedup_key FROM outbox WHERE maybe_repeated = 1").fetchall()
    assert [r[0] for r in marked] == [first.dedup_key] and second.dedup_key != first.dedup_key
