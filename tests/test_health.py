"""The health model: shop statuses from the store, /healthz rules, Prometheus text, and the HTTP endpoint."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import AgentConfig, Config, ScheduleConfig, ShopConfig, load_config
from agent.core.rules import ItemState
from agent.outbox.store import Store
from agent.service.health import (
    ShopStatus,
    Snapshot,
    healthz,
    read_heartbeat,
    render_metrics,
    shop_statuses,
    write_heartbeat,
)
from agent.web.api import METRICS_CONTENT_TYPE
from tests.web_helpers import FakeClock, FakeService, served_app

T0 = 1_795_240_800.0  # 2026-11-21 14:00:00 in Asia/Shanghai
SH = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ['引号"店', "反斜杠\\店", "换行\n店", '全都\\"\n}, x="1', "示例旗舰店"]


def shop(name: str, **kw: object) -> ShopStatus:
    base: dict[str, object] = {"state": "ok", "last_ok": T0 - 60, "stale_after": T0 + 1140}
    base.update(kw)
    return ShopStatus(name=name, **base)  # type: ignore[arg-type]


def snap(*shops: ShopStatus, **kw: object) -> Snapshot:
    base: dict[str, object] = {"pid": 4242, "version": "0.1.0", "started_at": T0 - 3600, "updated_at": T0,
                               "scheduler_running": True}
    base.update(kw)
    return Snapshot(shops=list(shops), **base)  # type: ignore[arg-type]


# ---- healthz -----------------------------------------------------------------------------------
def test_healthy_when_every_enabled_shop_was_read_in_time() -> None:
    assert healthz(snap(shop("一号店"), shop("二号店")), T0) == (True, [])
    assert healthz(snap(shop("一号店")), T0 + 1140) == (True, [])  # the deadline itself still counts


def test_a_stale_shop_is_named_with_its_last_read_and_recovers_when_read_again() -> None:
    s = snap(shop("示例旗舰店", last_ok=T0 - 1200, stale_after=T0 - 1), shop("二号店"))
    ok, reasons = healthz(s, T0, SH)
    assert not ok
    assert reasons == ["shop 示例旗舰店: not read since 2026-11-21 13:40:00 (超过两个检查周期未成功读取)"]
    s.shops[0] = replace(s.shops[0], last_ok=T0, stale_after=T0 + 1200)  # the service read it again
    assert healthz(s, T0 + 5, SH) == (True, [])


def test_a_never_read_shop_and_a_missing_deadline_are_unhealthy() -> None:
    s = snap(shop("新店", state="login_required", last_ok=None, stale_after=T0 - 1), shop("无期限", stale_after=None))
    ok, reasons = healthz(s, T0, SH)
    assert not ok
    assert reasons == [
        "shop 新店: never read (超过两个检查周期未成功读取), last state login_required",
        "shop 无期限: not read since 2026-11-21 13:59:00 (超过两个检查周期未成功读取)",
    ]


def test_stopped_scheduler_and_pause_are_unhealthy() -> None:
    ok, reasons = healthz(snap(shop("一号店"), scheduler_running=False), T0)
    assert not ok and reasons == ["scheduler not running (调度器未运行)"]
    ok, reasons = healthz(snap(shop("一号店"), paused=True), T0)
    assert not ok and len(reasons) == 1 and "shutting down" in reasons[0] and "服务正在停止" in reasons[0]


def test_disabled_shops_are_ignored() -> None:
    s = snap(shop("一号店"), shop("停用店", enabled=False, last_ok=None, stale_after=None, state="unknown"))
    assert healthz(s, T0) == (True, [])
    assert healthz(snap(), T0) == (True, [])  # nothing enabled: only the scheduler matters


def test_heartbeat_round_trips(tmp_path: Path) -> None:
    s = snap(shop("示例旗舰店", next_run=T0 + 30, checks=3), outbox={"pending": 2}, broken_channels={"ops": "93000"})
    path = write_heartbeat(tmp_path, s)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_heartbeat(tmp_path) == s
    path.write_text("{not json", encoding="utf-8")
    assert read_heartbeat(tmp_path) is None


# ---- shop_statuses ------------------------------------------------------------------------------
def _item(shop_name: str, kind: str, item_id: str, deadline: float, closed: bool = False) -> dict[str, object]:
    at = datetime.fromtimestamp(T0 - 60, UTC)
    return ItemState(shop=shop_name, kind=kind, item_id=item_id, order_sn=f"SN{item_id}",  # type: ignore[arg-type]
                     last_stage=None, alerted=False, deadline=datetime.fromtimestamp(deadline, SH),
                     refund_amount_fen=1990, last_seen=at, closed=closed).to_dict()


def test_shop_statuses_come_from_the_store(tmp_path: Path) -> None:
    config = Config(
        agent=AgentConfig(data_dir=tmp_path),
        shops=(ShopConfig(name="一号店", username="a"), ShopConfig(name="二号店", username="b", check_interval="5m"),
               ShopConfig(name="定时店", username="c", check_cron="*/15 * * * *", enabled=False)),
        schedule=ScheduleConfig(check_interval="10m"),
    )
    store = Store(tmp_path / "agent.db")
    try:
        store.commit_check("一号店", [
            _item("一号店", "aftersale", "1", T0 + 5000), _item("一号店", "aftersale", "2", T0 + 900),
            _item("一号店", "aftersale", "3", T0 + 60, closed=True),  # closed: neither counted nor earliest
            _item("一号店", "evidence", "4", T0 + 7200),
            {"kind": "aftersale", "item_id": "legacy"},  # a row without the ItemState fields is skipped
        ], [], T0 - 60, check=(True, "ok", None, {}))
        store.commit_check("二号店", [], [], T0 - 30, check=(False, "captcha", "slider shown", {}))
        store.commit_check("二号店", [], [], T0 - 20, check=(False, "captcha", "slider again", {}))
        one, two, cron = shop_statuses(config, store)
    finally:
        store.close()
    assert one == ShopStatus(name="一号店", state="ok", last_ok=T0 - 60, pending_aftersale=2, pending_evidence=1,
                             next_deadline=T0 + 900, interval_seconds=600.0)
    assert two == ShopStatus(name="二号店", state="captcha", last_error="slider again", consecutive_failures=2,
                             interval_seconds=300.0)
    assert cron == ShopStatus(name="定时店", enabled=False, state="unknown", interval_seconds=0.0)


# ---- /metrics ----------------------------------------------------------------------------------
def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.type != "unknown", f"{family.name}: samples outside their declared family"
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def _full_snapshot() -> Snapshot:
    shops = [shop(name, checks=7 + i, failures=i, duration_sum=12.5 + i, last_duration=1.25, consecutive_failures=i,
                  pending_aftersale=3 + i, pending_evidence=i, next_deadline=T0 + 3600 + i)
             for i, name in enumerate(HOSTILE)]
    shops.append(shop("从未成功", state="timeout", last_ok=None, last_duration=None, stale_after=T0 - 1))
    return snap(*shops, outbox={"pending": 4, "dead": 1}, messages_sent={"ops": 9, '渠道"甲': 2},
                alerts_sent={"ops": 11}, send_failures={"boss-mail": 3}, broken_channels={"boss-mail": "535 auth"},
                requests={"budget": 50, "rate": 25, "taken": 1234, "slowdowns": 1, "busiest_second": 42,
                          "deferred": 17, "request_lane": 12, "page_lane": 2})


def test_metrics_parse_with_hostile_names_and_round_trip() -> None:
    text = render_metrics(_full_snapshot(), T0)
    assert text.endswith("\n")
    got = _samples(text)

    def value(name: str, **labels: str) -> float:
        return got[(f"pdd_agent_{name}", frozenset(labels.items()))]

    assert value("up") == 1 and value("scheduler_running") == 1
    assert value("healthy") == 0  # 从未成功 is stale
    assert value("start_time_seconds") == T0 - 3600
    for i, name in enumerate(HOSTILE):
        assert value("checks_total", shop=name) == 7 + i
        assert value("check_failures_total", shop=name) == i
        assert value("check_duration_seconds_sum", shop=name) == 12.5 + i
        assert value("check_duration_seconds_count", shop=name) == 7 + i
        assert value("last_check_duration_seconds", shop=name) == 1.25
        assert value("last_success_timestamp_seconds", shop=name) == T0 - 60
        assert value("consecutive_failures", shop=name) == i
        assert value("shop_up", shop=name) == 1
        assert value("items_pending", shop=name, kind="aftersale") == 3 + i
        assert value("items_pending", shop=name, kind="evidence") == i
        assert value("next_deadline_timestamp_seconds", shop=name) == T0 + 3600 + i
    assert value("shop_up", shop="从未成功") == 0
    for omitted in ("last_success_timestamp_seconds", "next_deadline_timestamp_seconds", "last_check_duration_seconds"):
        assert (f"pdd_agent_{omitted}", frozenset({("shop", "从未成功")})) not in got
    assert value("messages_sent_total", channel="ops") == 9 and value("messages_sent_total", channel='渠道"甲') == 2
    assert value("alerts_sent_total", channel="ops") == 11
    assert value("send_failures_total", channel="boss-mail") == 3
    assert [value("outbox_rows", status=s) for s in ("pending", "sent", "dead")] == [4, 0, 1]
    assert value("channel_broken", channel="boss-mail") == 1 and value("channel_broken", channel="ops") == 0
    # the host's request budget: halved after a rate limit, its turns, busiest second and what waited
    assert value("request_budget_per_second") == 25 and value("backend_requests_total") == 1234
    assert value("rate_limit_slowdowns_total") == 1 and value("requests_busiest_second") == 42
    assert value("reads_deferred_total") == 17
    assert value("work_in_lane", lane="requests") == 12 and value("work_in_lane", lane="pages") == 2


def test_metrics_text_shape() -> None:
    text = render_metrics(_full_snapshot(), T0)
    lines = text.splitlines()
    assert "# TYPE pdd_agent_checks_total counter" in lines
    assert "# TYPE pdd_agent_check_duration_seconds summary" in lines
    assert "# TYPE pdd_agent_items_pending gauge" in lines
    assert 'pdd_agent_checks_total{shop="引号\\"店"} 7' in lines
    assert 'pdd_agent_checks_total{shop="反斜杠\\\\店"} 8' in lines
    assert 'pdd_agent_checks_total{shop="换行\\n店"} 9' in lines
    assert 'pdd_agent_checks_total{shop="示例旗舰店"} 11' in lines  # UTF-8 as it is, not escaped
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["pdd_agent_checks"] == "counter" and families["pdd_agent_check_duration_seconds"] == "summary"
    every_help = [line.split()[2] for line in lines if line.startswith("# HELP ")]
    every_type = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert every_help == every_type and len(set(every_type)) == len(every_type)


def test_metrics_of_an_empty_snapshot_still_list_the_outbox() -> None:
    got = _samples(render_metrics(snap(scheduler_running=False), T0))
    assert got[("pdd_agent_healthy", frozenset())] == 0
    assert {k: v for k, v in got.items() if k[0] == "pdd_agent_outbox_rows"} == {
        ("pdd_agent_outbox_rows", frozenset({("status", s)})): 0 for s in ("pending", "sent", "dead")
    }


# ---- the HTTP endpoint -----------------------------------------------------------------------------
class Holder:
    def __init__(self, value: Snapshot) -> None:
        self.value: Snapshot | None = value

    def __call__(self) -> Snapshot:
        if self.value is None:
            raise RuntimeError("store locked")
        return self.value


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Holder, httpx.Client, str]]:
    """/healthz and /metrics as `pdd-agent run` serves them: the team page's application."""
    holder = Holder(snap(shop("示例旗舰店"), shop("二号店", state="sms_required")))
    config = dataclasses.replace(load_config(ROOT / "config.example.toml"),
                                 agent=AgentConfig(data_dir=tmp_path / "data"))
    store = Store(tmp_path / "data" / "agent.db")
    service = FakeService(holder, clock=FakeClock(T0 - time.time()))
    with served_app(config, store, service) as (url, _):
        client = httpx.Client(base_url=url, timeout=10)
        try:
            yield holder, client, url
        finally:
            client.close()
    store.close()


def test_healthz_200_then_503_then_500_and_still_serving(served: tuple[Holder, httpx.Client, str]) -> None:
    holder, client, url = served
    assert url.startswith("http://127.0.0.1:")
    r = client.get("/healthz")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "ok", "reasons": [], "shops": {"示例旗舰店": "ok", "二号店": "sms_required"}}

    assert holder.value is not None
    holder.value.shops[1].stale_after = T0 - 1
    r = client.get("/healthz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy" and len(body["reasons"]) == 1 and "shop 二号店" in body["reasons"][0]

    good = holder.value
    holder.value = None  # the snapshot callable fails
    r = client.get("/healthz")
    assert r.status_code == 500 and r.json()["status"] == "error" and "store locked" not in r.text
    assert client.get("/metrics").status_code == 500
    holder.value = good
    holder.value.shops[1].stale_after = T0 + 60
    assert client.get("/healthz").status_code == 200


def test_metrics_endpoint_and_404(served: tuple[Holder, httpx.Client, str]) -> None:
    _, client, _ = served
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"] == METRICS_CONTENT_TYPE
    got = _samples(r.text)
    assert got[("pdd_agent_shop_up", frozenset({("shop", "二号店")}))] == 0
    assert got[("pdd_agent_healthy", frozenset())] == 1
    assert client.get("/metrics?x=1").status_code == 200
    assert client.get("/", follow_redirects=False).status_code == 303  # the team page: log in first
    assert client.get("/healthz/extra").status_code == 404
    assert json.loads(client.get("/healthz").text)["status"] == "ok"  # the connection survives a 404


def test_channel_state_in_metrics_and_status(tmp_path: Path) -> None:
    from agent.cli.status_cmd import channel_lines
    from agent.service.health import channel_view

    store = Store(tmp_path / "agent.db")
    store.enqueue([("k1", "ops", "店", {"kind": "health"}), ("k2", "ops", "店", {"kind": "health"})], T0)
    store.channel_failed("ops", T0 - 90, "errcode -1: system busy", T0 + 20)
    store.channel_failed("ops", T0 - 60, "HTTP 502", T0 + 25)
    view = channel_view(["ops", "mail"], store.channel_states(), store.owed(T0), store.broken())
    assert view["ops"] == {"state": "failing", "failing_since": T0 - 90, "failures": 2, "last_error": "HTTP 502",
                           "next_try": T0 + 25, "waiting": 2, "type": "", "limited": False, "unverified": 0,
                           "maybe_repeated": 0}
    assert view["mail"]["state"] == "ok" and view["mail"]["waiting"] == 0
    text = render_metrics(snap(channels=view), T0)
    assert 'pdd_agent_channel_failing{channel="ops"} 1' in text.splitlines()
    assert 'pdd_agent_channel_failing{channel="mail"} 0' in text.splitlines()
    assert 'pdd_agent_channel_failing_seconds{channel="ops"} 90' in text.splitlines()
    assert 'pdd_agent_channel_rows_waiting{channel="ops"} 2' in text.splitlines()
    assert 'pdd_agent_channel_next_try_seconds{channel="ops"} 25' in text.splitlines()
    lines = channel_lines(view, SH)
    assert lines[0] == "通知渠道故障：ops"
    assert "  ops：发送失败（自 11-21 13:58:30 起 2 次，最近错误 HTTP 502，下次重试 14:00:25），待发 2 条" in lines
    assert "  mail：正常，待发 0 条" in lines
    store.channel_ok("ops")
    assert channel_lines(channel_view(["ops"], store.channel_states(), {}, {}), SH)[0] == "通知渠道：正常"
    assert Snapshot.from_json(snap(channels=view).to_json()).channels == view  # the heartbeat carries it


def test_a_channel_throttled_by_its_service_and_unverified_sends_in_metrics_and_status(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from agent.cli.status_cmd import channel_lines
    from agent.service.health import channel_view

    store = Store(tmp_path / "agent.db")
    store.enqueue([("k1", "dt", "店", {"kind": "health"}), ("k2", "push", "店", {"kind": "health"})], T0)
    store.channel_failed("dt", T0 - 10, "rate-limited: errcode 130101: send too fast", T0 + 590)
    [_, pushed] = store.due(T0)
    store.mark_sent([pushed.id], T0, verified=False)
    configs = {"dt": SimpleNamespace(type="dingtalk"), "push": SimpleNamespace(type="apprise")}
    view = channel_view(configs, store.channel_states(), store.owed(T0), store.broken(), store.unverified())
    assert view["dt"]["limited"] and view["dt"]["type"] == "dingtalk" and view["push"]["unverified"] == 1
    text = render_metrics(snap(channels=view, send_failure_classes={"dt": {"rate_limited": 1}}), T0).splitlines()
    assert 'pdd_agent_channel_rate_limited{channel="dt"} 1' in text
    assert 'pdd_agent_channel_sent_unverified_rows{channel="push"} 1' in text
    assert 'pdd_agent_send_failures_by_class_total{channel="dt",class="rate_limited"} 1' in text
    lines = channel_lines(view, SH)
    assert any(line.startswith("  dt（钉钉）：被渠道限流（rate-limited: errcode 130101") and "14:09:50 后再发" in line
               for line in lines), lines
    assert "  push（Apprise）：正常，待发 0 条，已发送未确认送达 1 条" in lines


def test_a_cluster_node_in_metrics_status_and_the_health_verdict(tmp_path: Path) -> None:
    from agent.cli.status_cmd import cluster_lines

    cluster = {"node": "n0", "worker": True, "error": "", "jobs": {"todo": 2, "doing": 3, "failed": 1},
               "nodes": [{"name": "n0", "age": 1.0, "state": "ok"}, {"name": "n1", "age": 2.0, "state": "ok"},
                         {"name": "n2", "age": 95.0, "state": "silent"}]}
    text = render_metrics(snap(cluster=cluster), T0).splitlines()
    assert 'pdd_agent_cluster_nodes{state="ok"} 2' in text and 'pdd_agent_cluster_nodes{state="silent"} 1' in text
    assert 'pdd_agent_cluster_check_jobs{status="doing"} 3' in text
    assert 'pdd_agent_cluster_worker_up{node="n0"} 1' in text
    lines = cluster_lines(cluster)
    assert lines[0] == "多机：本节点 n0" and any("n2：失联" in x for x in lines) and "进行中 3" in lines[-1]
    healthy, _ = healthz(snap(cluster=cluster), T0)
    assert healthy
    down, reasons = healthz(snap(cluster={**cluster, "worker": False, "error": "database: OperationalError"}), T0)
    assert not down and any("n0" in r and "OperationalError" in r for r in reasons)
    assert Snapshot.from_json(snap(cluster=cluster).to_json()).cluster == cluster  # the heartbeat carries it
