"""Delivery that keeps pace with deadlines, through the real `pdd-agent run` process, the fake WeCom and a real
SMTP server: channel-level retries, SIGKILL during an outage, failover to email, an honest `run --once`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.demo_view import LocalInbox
from agent.outbox.store import Store
from agent.sandbox.wecom import FakeWeCom
from tests.browser.test_alerts_e2e import expected_stage_alerts, sns
from tests.browser.test_service_process import (
    ROOT,
    A,
    Agent,
    B,
    MailLog,
    agents,
    delivered_vs_recorded,
    free_port,
    shop_messages,
    wait_until,
    write_config,
)
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
__all__ = ["agents"]  # the fixture, imported for the tests below


def configure(sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, alerts: str = "", mail_port: int = 0,
              **schedule: str) -> tuple[Path, int]:
    """The service-process config with the delivery defaults (no test-only retry_backoff) and `alerts` lines."""
    port = free_port()
    path = write_config(tmp_path, sandbox, wecom, port, **schedule)
    text = path.read_text(encoding="utf-8").replace('retry_backoff = "1s"\n', alerts)
    if mail_port:
        text += (f'\n[notifiers.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {mail_port}\nsecurity = "none"\n'
                 'from = "pdd-agent@test.local"\nto = ["boss@test.local"]\n')
    path.write_text(text, encoding="utf-8")
    return path, port


def all_delivered(wecom: FakeWeCom, expected: list[str]) -> bool:
    return all(sorted(sns(shop_messages(wecom, s))) == expected for s in (A, B))


def test_six_failures_as_the_service_starts_are_cleared_within_60s_each_alert_once(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    sandbox.control.set_clock(freeze=True)
    expected = sorted(expected_stage_alerts(sandbox, {}))
    wecom.fail("k1", ["errcode:-1"] * 3 + ["http:500"] * 3)
    config, port = configure(sandbox, wecom, tmp_path)
    agent = Agent(config, port, tmp_path)
    agents.append(agent)
    wait_until(lambda: len(wecom.rejections("k1")) >= 6, "six failed sends", agent, timeout=120)
    recovered = time.monotonic()
    wait_until(lambda: all_delivered(wecom, expected), "every alert after the recovery", agent, timeout=60)
    took = time.monotonic() - recovered
    assert took <= 60, took
    got, recorded = delivered_vs_recorded(wecom, tmp_path / "data" / "agent.db")
    assert got == recorded and all(n == 1 for n in got.values())  # each alert once
    assert agent.stop() == 0


def test_sigkill_during_an_outage_then_restart_delivers_within_30s_none_doubled(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    sandbox.control.set_clock(freeze=True)
    expected = sorted(expected_stage_alerts(sandbox, {}))
    wecom.outage("k1", "http:503")
    config, port = configure(sandbox, wecom, tmp_path)
    agent = Agent(config, port, tmp_path)
    agents.append(agent)
    wait_until(lambda: len(wecom.rejections("k1")) >= 3, "tries during the outage", agent, timeout=90)
    agent.proc.kill()  # SIGKILL: nothing is flushed
    agent.proc.wait(timeout=30)
    store = Store(tmp_path / "data" / "agent.db")
    try:
        assert store.channel_states()["ops"].failing and store.depth().get("pending", 0) > 0
    finally:
        store.close()
    wecom.restore("k1")
    restarted = time.monotonic()
    again = Agent(config, port, tmp_path, name="agent2")
    agents.append(again)
    wait_until(lambda: all_delivered(wecom, expected), "every alert after the restart", again, timeout=30)
    assert time.monotonic() - restarted <= 30
    got, recorded = delivered_vs_recorded(wecom, tmp_path / "data" / "agent.db")
    assert got == recorded and all(n == 1 for n in got.values())
    assert again.stop() == 0


def test_a_last_stage_alert_fails_over_to_email_and_is_not_sent_twice_after_recovery(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    sandbox.control.set_clock(freeze=True)
    sandbox.control.advance(900)  # the demo's soonest item (40 min) enters its last stage (30 min)
    with LocalInbox() as inbox:
        config, port = configure(sandbox, wecom, tmp_path, alerts='failover_after = "5s"\nadmin_notify = ["mail"]\n',
                                 mail_port=inbox.port)
        wecom.outage("k1", "errcode:-1")
        expected = sorted(expected_stage_alerts(sandbox, {}))
        agent = Agent(config, port, tmp_path)
        agents.append(agent)
        mail_text = MailLog(inbox).text

        # the most urgent alert of the demo (its last stage) reaches the boss by email while WeCom is down
        wait_until(lambda: "【紧急·售后】" in mail_text(), "the last stage by email", agent, timeout=60)
        wait_until(lambda: "通知渠道连续发送失败" in mail_text(), "the admins told WeCom fails", agent, timeout=60)
        urgent = [sn for sn in expected if sn in mail_text()]
        assert urgent
        wecom.restore("k1")
        wait_until(lambda: "通知渠道已恢复" in mail_text(), "the recovery notice", agent, timeout=60)
        wait_until(lambda: all(set(expected) - set(urgent) <= set(sns(shop_messages(wecom, s))) for s in (A, B)),
                   "the backlog through WeCom", agent, timeout=60)
        time.sleep(3)  # a few more dispatch runs
        for shop in (A, B):
            on_wecom = sns(shop_messages(wecom, shop))
            assert not set(urgent) & set(on_wecom), "sent twice: by email during the outage and by WeCom after it"
            assert len(on_wecom) == len(set(on_wecom))
        assert agent.stop() == 0


def test_run_once_exit_codes_all_sent_failing_waiting(sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path) -> None:
    sandbox.control.set_clock(freeze=True)
    config, _ = configure(sandbox, wecom, tmp_path, once_grace="8s")
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}

    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(config), "--once"], cwd=ROOT,
                              capture_output=True, text=True, timeout=180, env=env)

    # a transient failure within the grace: everything goes out, exit 0
    wecom.fail("k1", ["errcode:-1", "http:500"])
    ok = once()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "队列已清空" in ok.stdout
    got, recorded = delivered_vs_recorded(wecom, tmp_path / "data" / "agent.db")
    assert got == recorded and all(n == 1 for n in got.values())
    # failing the whole grace: exit 1, saying what is left and why
    sandbox.control.advance(3 * 3600)  # new stages: new alerts to send
    wecom.outage("k1", "http:502")
    failing = once()
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "条未发出（发送失败" in failing.stdout and "502" in failing.stdout
    # the channel asks to wait (45009: 60 s), longer than the grace: still owed, exit 1
    wecom.restore("k1")
    wecom.fail("k1", ["errcode:45009"])
    waiting = once()
    assert waiting.returncode == 1, waiting.stdout
    assert "下次重试" in waiting.stdout and "45009" in waiting.stdout
