"""Three real `pdd-agent run` nodes on one real PostgreSQL against the sandbox and the fake WeCom: the checks are
shared, every expected alert is delivered once, `kill -9` of a node hands its shops to the others, `cluster status`
shows the nodes, SIGTERM stops the rest cleanly with no check job left running."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.outbox.engine import PostgresEngine
from agent.sandbox.wecom import FakeWeCom
from tests.browser.test_alerts_e2e import expected_stage_alerts, sns
from tests.browser.test_service_process import ROOT, Agent, agents, free_port, shop_messages, wait_until, write_config
from tests.conftest import Sandbox
from tests.test_cluster import SESSION_KEY

pytestmark = pytest.mark.browser
__all__ = ["agents"]  # the fixture
SHOPS = [f"店铺{n}" for n in ("甲", "乙", 3, 4, 5, 6)]


def node_configs(tmp_path: Path, sandbox: Sandbox, wecom: FakeWeCom, url: str) -> list[tuple[Path, int]]:
    base = write_config(tmp_path, sandbox, wecom, free_port(), more_shops=4, check_interval="3s").read_text("utf-8")
    base = base.replace("[alerts]\n", "[alerts]\nfailover_after = \"0\"\n")
    out = []
    for i in range(3):
        port = free_port()
        text = re.sub(r'data_dir = ".*?"', f'data_dir = "{tmp_path / f"data{i}"}"', base)
        text = re.sub(r'listen = "127\.0\.0\.1:\d+"', f'listen = "127.0.0.1:{port}"', text)
        text += (f'\n[cluster]\ndatabase_url = "{url}"\nnode_name = "n{i}"\nstall_timeout = "4s"\n'
                 f'session_keys = "{SESSION_KEY}"\n')
        path = tmp_path / f"n{i}.toml"
        path.write_text(text, encoding="utf-8")
        out.append((path, port))
    return out


def cluster_cmd(config: Path, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "cluster", action, "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_three_nodes_share_the_shops_and_deliver_every_alert_once(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent], pg_cluster: Any,
) -> None:
    url = pg_cluster.database()
    sandbox.control.set_clock(freeze=True)
    seen: dict[str, int] = {}
    expected = expected_stage_alerts(sandbox, seen)
    configs = node_configs(tmp_path, sandbox, wecom, url)
    migrated = cluster_cmd(configs[0][0], "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    nodes = [Agent(path, port, tmp_path, name=f"n{i}") for i, (path, port) in enumerate(configs)]
    agents.extend(nodes)

    def delivered() -> bool:
        return all(set(sns(shop_messages(wecom, s))) == expected for s in SHOPS)

    wait_until(delivered, "every shop's alerts", nodes[0], timeout=120)
    time.sleep(4)  # more rounds: nothing is sent twice
    for shop in SHOPS:
        counts = Counter(sns(shop_messages(wecom, shop)))
        assert set(counts.values()) == {1}, (shop, counts)
    checked = {n.log_path.name: len(re.findall(r"shop \S+ checked: state=ok", n.log())) for n in nodes}
    assert sum(1 for v in checked.values() if v) >= 2, checked  # the work is shared
    logins = Counter(m for n in nodes for m in re.findall(r"shop (\S+): logged in again", n.log()))
    assert logins and set(logins) <= set(SHOPS)  # the sessions started empty: each shop logged in somewhere
    assert set(logins.values()) == {1}, logins  # once: its saved session serves every node after that
    assert not list(tmp_path.glob("data*/shops/*/state.json"))  # no plaintext session on a node's disk
    out = cluster_cmd(configs[0][0], "status")
    assert out.returncode == 0 and out.stdout.count("：正常") == 3, out.stdout + out.stderr
    state = subprocess.run([sys.executable, "-m", "agent", "status", "--config", str(configs[1][0])], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert "多机：本节点 n1" in state.stdout and state.stdout.count("：正常，心跳") == 3, state.stdout
    metrics = nodes[0].metrics()
    assert metrics[("pdd_agent_cluster_nodes", (("state", "ok"),))] == 3 and nodes[0].healthz() == 200

    nodes[2].proc.send_signal(signal.SIGKILL)  # kill -9: its shops go to the others after the stall timeout
    nodes[2].proc.wait(timeout=10)
    start = len(wecom.messages("k1"))
    sandbox.control.advance(3 * 3600)  # new stages for every shop
    later = expected_stage_alerts(sandbox, seen)
    assert later

    def later_delivered() -> bool:
        return all(later <= set(sns(shop_messages(wecom, s, start))) for s in SHOPS)

    wait_until(later_delivered, "the next stages with one node dead", nodes[0], timeout=120)
    logins = Counter(m for n in nodes for m in re.findall(r"shop (\S+): logged in again", n.log()))
    assert set(logins.values()) <= {1}, logins  # the killed node's shops read with their saved sessions
    time.sleep(3)
    for shop in SHOPS:
        counts = Counter(sns(shop_messages(wecom, shop, start)))
        assert set(counts.values()) == {1}, (shop, counts)

    # a reload on the live nodes removes a shop from the shared schedule: nobody checks it any more
    gone = SHOPS[-1]
    for (path, _), n in zip(configs[:2], nodes[:2], strict=True):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(rf'\[\[shops\]\]\nname = "{gone}"\n(?:[^\[\n].*\n)*', "", text), encoding="utf-8")
        n.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: all("config reloaded" in n.log() for n in nodes[:2]), "both nodes reloaded", nodes[0])
    db = PostgresEngine(url)
    try:
        assert gone not in {r[0] for r in db.execute("SELECT shop FROM shop_schedule").fetchall()}
    finally:
        db.close()
    checked = sum(n.log().count(f"shop {gone} checked") for n in nodes[:2])
    time.sleep(3 * 3)  # three intervals
    assert sum(n.log().count(f"shop {gone} checked") for n in nodes[:2]) <= checked + 2  # at most those in flight
    for n in nodes[:2]:
        n.proc.send_signal(signal.SIGTERM)
    for n in nodes[:2]:
        assert n.stop(0) == 0, n.log()[-3000:]
    db = PostgresEngine(url)
    try:
        doing = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone()[0]
        assert doing == 0  # SIGTERM finished the running checks; the killed node's were reaped
    finally:
        db.close()


def test_login_and_doctor_on_a_node_keep_the_session_shared_and_off_the_disk(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, pg_cluster: Any,
) -> None:
    from agent.cluster.sessions import SharedSessions

    url = pg_cluster.database()
    [(config, _), *_] = node_configs(tmp_path, sandbox, wecom, url)
    env = {**__import__("os").environ, "PDD_TEST_PASSWORD": "demo-pass"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", *args, "--config", str(config)], cwd=ROOT,
                              capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)

    login = cli("login", "--shop", SHOPS[0])
    assert login.returncode == 0 and "the cluster database (encrypted)" in login.stdout, login.stdout + login.stderr
    doctor = cli("doctor", "--shop", SHOPS[0])
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr  # every selector matched, with the shared session
    assert not list(tmp_path.glob("data*/shops/*/state.json"))  # nothing in plaintext on this node's disk
    db = PostgresEngine(url)
    try:
        saved = SharedSessions(db, SESSION_KEY, "test").load(SHOPS[0])
        assert saved is not None and saved["cookies"]  # where every node finds it
    finally:
        db.close()
