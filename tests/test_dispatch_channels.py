"""Retry state per channel, most urgent first, failover of urgent alerts: the dispatcher with scripted notifiers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent.core.rules import Alert
from agent.outbox.dispatch import Dispatcher
from agent.outbox.store import Store
from notifiers.base import RetryableError
from tests.test_dispatch import NOON, Clock, Env, Scripted, check, config, item, run


@pytest.fixture
def env(tmp_path: Path, store_at: Path | str) -> Env:
    notifiers = {"ops": Scripted("ops"), "mail": Scripted("mail")}
    return config(tmp_path), Store(store_at), notifiers, Clock(NOON)


def health(shop: str, n: int, critical: bool = False) -> tuple[str, str, str, dict[str, object]]:
    alert = Alert(key=f"{shop}:health:failing:{n}", shop=shop, kind="health",
                  severity="critical" if critical else "warning", created_at=NOON, event="failing",
                  state="timeout", detail="x", failures=3)
    return alert.key, "ops", shop, alert.to_dict()


def fail(n: int) -> list[Exception]:
    return [RetryableError("errcode -1", "系统繁忙") for _ in range(n)]


def test_one_probe_at_a_time_then_the_whole_backlog_in_one_run(env: Env) -> None:
    cfg, store, ns, clock = env
    store.enqueue([health(f"店{n}", n) for n in range(12)], clock.t)
    ns["ops"].errors = fail(1)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    assert ns["ops"].tries == 1  # the first group failed: the other 11 shops were not tried
    st = store.channel_states()["ops"]
    assert st.failing and 0 < (st.next_try or 0) - clock.t <= 5
    run(d)
    assert ns["ops"].tries == 1  # before the channel's next try nothing is sent
    clock.t = st.next_try or 0
    run(d)
    assert len(ns["ops"].sent) == 12 and store.depth() == {"sent": 12}  # recovered: all in the same run
    assert not store.channel_states()["ops"].failing


def test_the_most_urgent_goes_first(env: Env) -> None:
    cfg, store, ns, clock = env
    store.enqueue([health("甲店", 1)], clock.t)
    check(cfg, store, [item(1, timedelta(minutes=20))], NOON)  # the last stage, queued later
    store.enqueue([health("乙店", 2)], clock.t)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    assert "261121-000000000000001" in ns["ops"].sent[0].markdown


def test_a_ten_minute_outage_is_probed_every_30s_at_most_and_flushed_on_recovery(env: Env) -> None:
    cfg, store, ns, clock = env
    check(cfg, store, [item(n, timedelta(hours=3 + n)) for n in range(1, 6)], NOON)
    store.enqueue([health(f"店{n}", n) for n in range(12)], clock.t)  # 13 messages: within 20/min
    ns["ops"].errors = fail(10**6)
    d = Dispatcher(cfg, store, ns, clock=clock)
    start = clock.t
    while clock.t - start < 600:
        run(d)
        clock.t += 1.0  # the dispatch interval
    tries = ns["ops"].tries
    assert 20 <= tries <= 40  # short backoff capped at 30 s, not hundreds of tries nor minutes between them
    ns["ops"].errors = []
    waits = store.channel_states()["ops"].next_try or 0
    assert waits - clock.t <= 30
    clock.t = waits
    run(d)
    assert {r["channel"] for r in store.rows("pending")} <= {"mail"}  # ops: all out in the run it recovered
    run(d)  # the admins' 「已恢复」 notice, queued by that run
    keys = [k for m in ns["ops"].sent for k in m.markdown.split() if k.startswith("261121-")]
    assert store.depth().get("pending", 0) == 0, store.rows("pending")
    assert len(keys) == len(set(keys)) == 5
    rows = store.rows("sent")
    assert max(r["attempts"] for r in rows if r["channel"] == "ops") == tries  # the probed rows keep the record


def test_a_restart_probes_a_failing_channel_at_once(env: Env) -> None:
    cfg, store, ns, clock = env
    check(cfg, store, [item(1, timedelta(hours=3))], NOON)
    ns["ops"].errors = [RetryableError("errcode 45009", "freq", retry_after=60)]
    run(Dispatcher(cfg, store, ns, clock=clock))
    assert (store.channel_states()["ops"].next_try or 0) - clock.t == 60
    reopened = Store(store.path)  # the service restarts: the state is in the database
    assert reopened.channel_states()["ops"].failing
    reopened.probe_channels_now(clock.t)
    run(Dispatcher(cfg, reopened, ns, clock=clock))
    assert len(ns["ops"].sent) == 1


def test_failover_of_an_urgent_alert_and_nothing_twice_after_recovery(env: Env) -> None:
    cfg, store, ns, clock = env
    check(cfg, store, [item(2, timedelta(hours=5))], NOON)  # not urgent: never failed over
    ns["ops"].errors = fail(10**6)
    d = Dispatcher(cfg, store, ns, clock=clock)
    run(d)
    sent_mail = len(ns["mail"].sent)
    # the last stage also goes to the admin channel by routing; a copy is not needed there. Make the shop's
    # only admin channel the failover target by queueing the urgent alert on ops alone:
    alert = Alert(key="店:health:login_required:1", shop="店", kind="health", severity="critical", created_at=NOON,
                  event="login_required", state="login_required", detail="需要扫码")
    store.enqueue([(alert.key, "ops", "店", alert.to_dict())], clock.t)
    for _ in range(200):  # a little over 2 minutes of dispatch runs
        clock.t += 1.0
        run(d)
    copies = ns["mail"].sent[sent_mail:]
    notices = [m for m in copies if "通知渠道连续发送失败" in m.markdown]
    failed_over = [m for m in copies if "（企业微信发送失败，改由此渠道发送）" in m.markdown]
    assert len(notices) == 1 and len(failed_over) == 1 and "需要扫码" in failed_over[0].markdown
    assert "261121-000000000000002" not in "".join(m.markdown for m in copies)  # only urgent alerts fail over
    ns["ops"].errors = []
    clock.t = store.channel_states()["ops"].next_try or clock.t
    run(d)
    on_ops = "".join(m.markdown for m in ns["ops"].sent)
    assert "261121-000000000000002" in on_ops and "需要扫码" not in on_ops  # not sent twice
    run(d)
    assert any("通知渠道已恢复" in m.markdown for m in ns["mail"].sent)
    assert store.depth().get("pending", 0) == 0
    ops_row = next(r for r in store.rows() if r["dedup_key"] == alert.key and r["channel"] == "ops")
    assert ops_row["status"] == "sent" and "delivered via mail" in ops_row["last_error"]
