"""The config of a running `pdd-agent run` changed in place: SIGHUP and `pdd-agent reload` add, remove and change
shops and channels while checks and deliveries run, during a WeCom outage whose retry state survives; a broken file
is refused (logged, shown, the admins told once) and changes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.outbox.store import Store
from agent.sandbox.wecom import FakeWeCom
from tests.browser.test_alerts_e2e import expected_stage_alerts, sns
from tests.browser.test_service_process import (
    B_USER,
    ROOT,
    A,
    Agent,
    B,
    agents,
    shop_messages,
    start,
    wait_until,
)
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
__all__ = ["agents"]  # the fixture
C = "店铺丙"


def heartbeat(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "data" / "heartbeat.json").read_text(encoding="utf-8"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_shops_and_channels_change_by_reload_and_a_broken_file_changes_nothing(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    agent, config = start(sandbox, wecom, tmp_path, agents)
    pid = agent.proc.pid
    seen: dict[str, int] = {}
    first = set(expected_stage_alerts(sandbox, seen))
    wait_until(lambda: all(set(sns(shop_messages(wecom, s))) == first for s in (A, B)), "the first alerts", agent)
    loaded = heartbeat(tmp_path)["config"]
    assert loaded["digest"] and not loaded["failed_at"]

    # WeCom goes down while new stages are entered: both shops' alerts wait, the channel is failing
    mark = len(wecom.messages("k1"))
    wecom.outage("k1", "http:503")
    sandbox.control.advance(3600 * 2)
    second = set(expected_stage_alerts(sandbox, seen))
    assert second
    db = Store(tmp_path / "data" / "agent.db")
    try:
        def waiting() -> set[str]:
            return {r[0] for r in db.db.execute("SELECT DISTINCT shop FROM outbox WHERE status = 'pending'")}

        wait_until(lambda: waiting() >= {A, B} and heartbeat(tmp_path)["channels"]["ops"]["state"] == "failing",
                   "both shops' alerts waiting on the failing channel", agent)
    finally:
        db.close()
    failures = heartbeat(tmp_path)["channels"]["ops"]["failures"]

    # reload: shop B removed, shop C added on a new channel, A unchanged
    text = config.read_text(encoding="utf-8")
    b_block = re.search(r'\[\[shops\]\]\nname = "店铺乙"\n(?:[^\[\n].*\n)*', text)
    assert b_block is not None
    text = text.replace(b_block.group(0), "")
    text = text.replace("[schedule]", f'[[shops]]\nname = "{C}"\nbase_url = "{sandbox.url}"\nusername = "{B_USER}"\n'
                                      'password_env = "PDD_TEST_PASSWORD"\nnotify = ["ops2"]\n\n[schedule]')
    text += f'[notifiers.ops2]\ntype = "wecom"\nwebhook_url = "{wecom.webhook_url("k2")}"\n'
    wecom.add_key("k2")
    config.write_text(text, encoding="utf-8")
    b_checks = agent.log().count(f"shop {B} checked")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "config reloaded" in agent.log(), "the reload", agent)
    assert agent.proc.poll() is None and agent.proc.pid == pid  # the same process: nothing restarted
    ops = heartbeat(tmp_path)["channels"]["ops"]
    assert ops["state"] == "failing" and ops["failures"] >= failures  # the outage's retry state survived
    wait_until(lambda: f"shop {C} checked" in agent.log() and shop_messages(wecom, C, 0) == [] and
               any(f"【{C}】" in m.content for m in wecom.messages("k2")), "the new shop alerting on its channel",
               agent)
    time.sleep(3 * 2)  # three intervals: the removed shop is not checked again (one in flight may end)
    assert agent.log().count(f"shop {B} checked") <= b_checks + 1
    assert A in agent.log().rsplit("config reloaded", 1)[1]  # the unchanged shop goes on

    # the outage ends: what waited is delivered, the removed shop's queued alerts included
    wecom.restore("k1")
    wait_until(lambda: all(second <= set(sns(shop_messages(wecom, s, mark))) for s in (A, B)),
               "the alerts held back by the outage", agent, timeout=90)

    # a broken file: refused, the service runs on, status and /metrics say so, the admins are told once
    broken = text.replace('check_interval = "2s"', 'check_interval = "soon"')
    config.write_text(broken, encoding="utf-8")
    a_checks = agent.log().count(f"shop {A} checked")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "config reload refused" in agent.log(), "the refusal", agent)
    assert "schedule.check_interval" in agent.log().rsplit("config reload refused", 1)[1]  # key and line
    wait_until(lambda: any("配置文件重新加载失败" in m.content for m in wecom.messages("k1")), "the admins told",
               agent)
    os.kill(pid, signal.SIGHUP)  # the same broken file again: logged again, not sent again
    wait_until(lambda: agent.log().count("config reload refused") == 2, "the second refusal", agent)
    time.sleep(2)
    assert sum("配置文件重新加载失败" in m.content for m in wecom.messages("k1")) == 1
    assert agent.metrics()[("pdd_agent_config_reload_failed", ())] == 1
    status = cli("status", "--config", str(config))  # the file is still broken: status says so, and how it runs
    assert status.returncode == 2 and "schedule.check_interval" in status.stderr
    assert "配置重新加载失败" in status.stdout and "schedule.check_interval" in status.stdout, status.stdout
    wait_until(lambda: agent.log().count(f"shop {A} checked") > a_checks + 1, "checks going on", agent)

    refused = cli("reload", "--config", str(config))  # the CLI checks first and never sends a broken file
    assert refused.returncode == 2 and "schedule.check_interval" in refused.stderr

    fixed = text.replace('check_interval = "2s"', 'check_interval = "3s"')
    config.write_text(re.sub(r'listen = "127\.0\.0\.1:\d+"', 'listen = "127.0.0.1:1"', fixed), encoding="utf-8")
    done = cli("reload", "--config", str(config))
    assert done.returncode == 0 and "已重新加载" in done.stdout, done.stdout + done.stderr
    assert "web.listen changed but takes effect only after a restart" in agent.log()  # named, not ignored
    assert agent.metrics()[("pdd_agent_config_reload_failed", ())] == 0  # still served on the old address
    assert heartbeat(tmp_path)["config"]["digest"] != loaded["digest"]
    assert agent.stop() == 0
