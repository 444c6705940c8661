"""The real `pdd-agent run` process against the sandbox and the fake WeCom: schedule, session expiry, a captcha
on one shop, a WeCom outage, SIGTERM in the middle of a check; /healthz, /metrics and `status` alongside."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.outbox.store import Store
from agent.sandbox.wecom import FakeWeCom
from tests.browser.test_alerts_e2e import WATCH_OFF, expected_stage_alerts, sns
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
A, B = "店铺甲", "店铺乙"
B_USER = "示例旗舰店:客服01"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, sandbox: Sandbox, wecom: FakeWeCom, port: int, *, more_shops: int = 0,
                 pacing: float = 0, browser: str = "", **schedule: str) -> Path:
    sched = {"check_interval": "2s", "jitter": "0", "dispatch_interval": "1s", "keepalive_interval": "0",
             "digest_cron": "", "shutdown_grace": "30s", **schedule}
    lines = "\n".join(f'{k} = "{v}"' for k, v in sched.items())
    users = ("示例旗舰店", B_USER)
    more = "".join(f'[[shops]]\nname = "店铺{n}"\nbase_url = "{sandbox.url}"\nusername = "{users[n % 2]}"\n'
                   'password_env = "PDD_TEST_PASSWORD"\n' for n in range(3, 3 + more_shops))
    text = f"""
[agent]
data_dir = "{tmp_path / 'data'}"
pacing_seconds = {pacing}
rate_limit_backoff = [4.0]
login_retry_hours = 0
[web]
listen = "127.0.0.1:{port}"
[browser]
timeout_seconds = 8
{browser}
[[shops]]
name = "{A}"
base_url = "{sandbox.url}"
username = "示例旗舰店"
password_env = "PDD_TEST_PASSWORD"
[[shops]]
name = "{B}"
base_url = "{sandbox.url}"
username = "{B_USER}"
password_env = "PDD_TEST_PASSWORD"
{more}
[schedule]
{lines}
{WATCH_OFF}
[alerts]
notify = ["ops"]
failure_threshold = 2
retry_backoff = "1s"
[notifiers.ops]
type = "wecom"
webhook_url = "{wecom.webhook_url('k1')}"
"""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Agent:
    """`python -m agent run` as a child process, its output in a file."""

    def __init__(self, config: Path, port: int, tmp_path: Path, name: str = "agent", session: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.config, self.port = config, port
        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("w")
        password = os.environ.get("PDD_TEST_PASSWORD", "demo-pass")
        env = {**os.environ, "PDD_TEST_PASSWORD": password, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)], cwd=ROOT,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=session)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=3)
        except httpx.HTTPError:
            return None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        r = self.get("/metrics")
        if r is None:  # not listening yet
            return {}
        assert r.status_code == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(r.text) for s in fam.samples}

    def checks(self, shop: str) -> int:
        return int(self.metrics().get(("pdd_agent_checks_total", (("shop", shop),)), 0))

    def healthz(self) -> int:
        r = self.get("/healthz")
        return 0 if r is None else r.status_code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        """Send `sig` (0: none, the caller signalled already) and wait for the exit code."""
        if sig and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    try:
        yield started
    finally:
        for agent in started:
            agent.kill()


def start(sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent], *, freeze: bool = True,
          session: bool = False, **options: Any) -> tuple[Agent, Path]:
    """The sandbox clock frozen (stages move only when a test advances it), a config, the agent running."""
    if freeze:
        sandbox.control.set_clock(freeze=True)
    port = free_port()
    config = write_config(tmp_path, sandbox, wecom, port, **options)
    agent = Agent(config, port, tmp_path, session=session)
    agents.append(agent)
    return agent, config


def wait_until(check: Callable[[], Any], what: str, agent: Agent, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.proc.poll() is not None:
            pytest.fail(f"the agent exited ({agent.proc.returncode}) while waiting for {what}:\n{agent.log()[-3000:]}")
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{agent.log()[-3000:]}")


def shop_messages(wecom: FakeWeCom, shop: str, start: int = 0) -> list[str]:
    return [m.content for m in wecom.messages("k1")[start:] if m.msgtype == "markdown" and f"【{shop}】" in m.content]


def delivered_vs_recorded(wecom: FakeWeCom, db: Path, settle: float = 5.0,
                          ) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """(shop, order number) per WeCom message received, and per alert the store recorded as sent. The store
    commits a send after the robot's answer, so a message just received may be committed a moment later: read
    again for up to `settle` seconds until every received alert is recorded."""
    end = time.monotonic() + settle
    while True:
        got: Counter[tuple[str, str]] = Counter()
        for shop in (A, B):
            got.update((shop, sn) for sn in sns(shop_messages(wecom, shop)))
        store = Store(db)
        try:
            rows = [json.loads(r["payload"]) for r in store.rows("sent")]
        finally:
            store.close()
        recorded = Counter((p["shop"], p["item"]["order_sn"]) for p in rows if p.get("item"))
        if set(got) <= set(recorded) or time.monotonic() > end:
            return got, recorded
        time.sleep(0.1)


def sent_events(db: Path) -> set[str]:
    """Dedup keys of the item alerts the store recorded as sent (shop:kind:item:event[#episode])."""
    store = Store(db)
    try:
        return {r["dedup_key"] for r in store.rows("sent") if ":health:" not in r["dedup_key"]}
    finally:
        store.close()


class MailLog:
    """Everything a local inbox received so far, as "subject\nplain text" per mail (`text()` takes the new ones)."""

    def __init__(self, inbox: Any) -> None:
        self.inbox = inbox
        self.mails: list[str] = []

    def text(self) -> str:
        for m in self.inbox.take():
            body = m.get_body(preferencelist=("plain",))
            self.mails.append(f"{m['Subject']}\n{body.get_content() if body else ''}")
        return "\n".join(self.mails)


def status(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "status", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_scheduled_checks_survive_session_expiry_and_a_captcha_on_one_shop(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    agent, config = start(sandbox, wecom, tmp_path, agents)
    expected = sorted(expected_stage_alerts(sandbox, {}))
    assert expected
    # on schedule: every 2 s, both shops
    wait_until(lambda: agent.checks(A) >= 3 and agent.checks(B) >= 3, "three scheduled checks per shop", agent)
    wait_until(lambda: all(sorted(sns(shop_messages(wecom, s))) == expected for s in (A, B)),
               "the first alerts of both shops", agent)
    assert agent.healthz() == 200
    families = {f.name for f in text_string_to_metric_families(agent.get("/metrics").text)}  # type: ignore[union-attr]
    assert {"pdd_agent_checks", "pdd_agent_items_pending", "pdd_agent_outbox_rows", "pdd_agent_alerts_sent",
            "pdd_agent_check_duration_seconds", "pdd_agent_check_failures"} <= families
    st = status(config)
    assert st.returncode == 0, st.stdout + st.stderr
    assert "运行中" in st.stdout and A in st.stdout and B in st.stdout

    # every session expires: both shops log in again by password and go on
    logins = sandbox.control.stats()["counts"].get("logins", 0)
    sandbox.control.expire_sessions()
    base = {s: agent.checks(s) for s in (A, B)}
    wait_until(lambda: sandbox.control.stats()["counts"].get("logins", 0) >= logins + 2, "two re-logins", agent)
    wait_until(lambda: all(agent.checks(s) >= base[s] + 2 for s in (A, B)), "checks after the re-login", agent)
    assert agent.healthz() == 200
    m = agent.metrics()
    assert m[("pdd_agent_shop_up", (("shop", A),))] == 1 and m[("pdd_agent_shop_up", (("shop", B),))] == 1

    # a captcha on B's login: B fails and its admins hear it, A keeps being read, /healthz turns 503
    sandbox.control.arm_captcha(B_USER)
    sandbox.control.expire_sessions(username=B_USER)
    wait_until(lambda: any("需要人工验证（滑块）" in t for t in shop_messages(wecom, B)), "the captcha alert", agent)
    a_before = agent.checks(A)
    wait_until(lambda: agent.healthz() == 503, "/healthz unhealthy", agent, timeout=30)
    body = agent.get("/healthz").json()  # type: ignore[union-attr]
    assert any(B in r for r in body["reasons"]) and not any(A in r for r in body["reasons"]), body
    wait_until(lambda: agent.checks(A) > a_before, "A read again while B waits for a person", agent, timeout=10)
    assert status(config).returncode == 1

    # the captcha is solved: B is read again, the team hears 「已恢复」, /healthz recovers
    sandbox.control.clear_captcha()
    wait_until(lambda: agent.healthz() == 200, "/healthz healthy again", agent, timeout=30)
    wait_until(lambda: any("已恢复" in t for t in shop_messages(wecom, B)), "the recovery alert", agent)
    assert agent.stop() == 0
    assert "stopped" in agent.log()
    st = status(config)
    assert st.returncode == 1 and "未运行" in st.stdout


def test_a_wecom_outage_and_sigterm_mid_check_lose_and_duplicate_nothing(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    agent, config = start(sandbox, wecom, tmp_path, agents)
    db = tmp_path / "data" / "agent.db"
    seen: dict[str, int] = {}
    first = sorted(expected_stage_alerts(sandbox, seen))
    wait_until(lambda: all(sorted(sns(shop_messages(wecom, s))) == first for s in (A, B)), "the first alerts", agent)

    # WeCom fails four times in a row while new stages are entered: every alert arrives once, late
    mark = len(wecom.messages("k1"))
    wecom.fail("k1", ["http:500", "errcode:-1", "drop", "http:502"])
    sandbox.control.advance(3600 * 2)
    second = sorted(expected_stage_alerts(sandbox, seen))
    assert second
    wait_until(lambda: len(wecom.rejections("k1")) >= 4, "the outage", agent)
    wait_until(lambda: all(set(second) <= set(sns(shop_messages(wecom, s, mark))) for s in (A, B)),
               "the alerts held back by the outage", agent, timeout=90)

    # SIGTERM while a check waits out a rate limit: the check finishes, its alerts go out, exit 0
    sandbox.control.advance(3600 * 7.5)
    third = sorted(expected_stage_alerts(sandbox, seen))
    assert third
    def limited() -> int:
        return int(sandbox.control.stats()["counts"].get("rate_limited", 0))

    before = limited()
    sandbox.control.arm_rate_limit(count=1)
    wait_until(lambda: limited() > before, "a check in its back-off", agent)
    assert agent.stop() == 0
    log = agent.log()
    assert "waiting up to" in log and "outbox flushed" in log and "did not finish" not in log

    store = Store(db)
    try:
        assert store.depth().get("pending", 0) == 0 and store.depth().get("dead", 0) == 0
    finally:
        store.close()
    got, recorded = delivered_vs_recorded(wecom, db)
    assert got == recorded  # each alert delivered exactly once, none lost
    sent_before = sent_events(db)

    # a restart re-sends nothing. It may send what is new: the check cut short by the stop may have read the
    # lists before the clock moved, or the other shop not at all since, so items can reach a stage or end
    # (自动退款) only now; each such event is one the first run never sent, under any episode.
    again = Agent(config, agent.port, tmp_path, name="agent2")
    agents.append(again)
    wait_until(lambda: again.checks(A) >= 2 and again.checks(B) >= 2, "checks after the restart", again)
    assert again.stop() == 0
    got2, recorded2 = delivered_vs_recorded(wecom, db)
    assert got2 == recorded2  # still each alert delivered exactly once
    new = sent_events(db) - sent_before
    assert not {e.split("#")[0] for e in new} & {e.split("#")[0] for e in sent_before}, new
    for shop in (A, B):  # every stage the clock reached is on record for both shops now
        assert set(third) <= {sn for (s, sn) in recorded2 if s == shop}


def test_once_and_start_up_validation(sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path) -> None:
    config = write_config(tmp_path, sandbox, wecom, free_port())
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}

    def run(*args: str, path: Path = config) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(path), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=180, env=env)

    ok = run("--once")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{A}: ✓ 已读取" in ok.stdout and "无法发送 0" in ok.stdout
    assert {sn for sn in sns(shop_messages(wecom, A))} == expected_stage_alerts(sandbox, {})

    sandbox.control.arm_captcha(B_USER)
    sandbox.control.expire_sessions(username=B_USER)
    bad = run("--once")
    assert bad.returncode == 1 and f"{B}: ✗ 未读取 captcha" in bad.stdout

    text = config.read_text(encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text(text + '[notifiers.mail]\ntype = "email"\nhost = "127.0.0.1"\nusername = "a@b.c"\n'
                      'password_env = "PDD_NOT_SET_ANYWHERE"\nto = ["x@y.z"]\n', encoding="utf-8")
    r = run(path=broken)
    assert r.returncode == 2 and "notifiers.mail.password_env" in r.stderr and "PDD_NOT_SET_ANYWHERE" in r.stderr
    nobrowser = tmp_path / "nobrowser.toml"
    nobrowser.write_text(text.replace("[browser]", '[browser]\nexecutable_path = "/nonexistent/chromium"'),
                         encoding="utf-8")
    r = run(path=nobrowser)
    assert r.returncode == 1 and "浏览器无法启动" in r.stderr


def test_ctrl_c_on_a_terminal_lets_the_check_in_flight_finish(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    """A terminal's Ctrl-C signals the whole process group: Playwright's driver and Chromium must not die
    under the check in flight (they run in their own session)."""
    agent, _ = start(sandbox, wecom, tmp_path, agents, freeze=False, session=True)
    wait_until(lambda: agent.checks(A) >= 2 and agent.checks(B) >= 2, "the first checks", agent)

    def limited() -> int:
        return int(sandbox.control.stats()["counts"].get("rate_limited", 0))

    before = limited()
    sandbox.control.arm_rate_limit(count=1)
    wait_until(lambda: limited() > before, "a check in its back-off", agent)
    os.killpg(agent.proc.pid, signal.SIGINT)
    assert agent.stop(sig=0) == 0
    log = agent.log()
    assert "SIGINT: stopping" in log and "waiting up to" in log
    assert "browser_error" not in log and "did not finish" not in log


def test_sigterm_with_checks_queued_for_a_browser_slot_stops_promptly(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    """Eight shops logging in, one page slot, paced requests: most checks wait for the page slot. A stop waits for
    the one check in flight only; the waiting ones never start their page work, nothing runs on after "stopped"."""
    agent, _ = start(sandbox, wecom, tmp_path, agents, freeze=False, more_shops=6, pacing=0.5,
                     browser="max_pages = 1", check_interval="30s")
    wait_until(lambda: "checked: state=ok" in agent.log(), "a first check (the others wait for the slot)", agent)
    started = time.monotonic()
    assert agent.stop() == 0
    took = time.monotonic() - started
    log = agent.log()
    assert "queued job(s) will not start" in log and "1 check(s) in flight" in log
    after = log.split("SIGTERM: stopping", 1)[1]
    assert after.count(" checked: state=") <= 1, after  # only the check in flight finished
    assert took < 10, f"stopping took {took:.1f} s"
    assert "raised an exception" not in log and "never retrieved" not in log and "did not finish" not in log
    assert log.rstrip().endswith("stopped")


def test_a_check_past_the_grace_is_cancelled_cleanly_and_read_again_later(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent],
) -> None:
    agent, config = start(sandbox, wecom, tmp_path, agents, shutdown_grace="1s")
    wait_until(lambda: agent.checks(A) >= 2 and agent.checks(B) >= 2, "the first checks", agent)

    def limited() -> int:
        return int(sandbox.control.stats()["counts"].get("rate_limited", 0))

    before = limited()
    sandbox.control.arm_rate_limit(count=1)  # that check now waits 4 s before its retry: past the 1 s grace
    wait_until(lambda: limited() > before, "a check in its back-off", agent)
    assert agent.stop() == 0
    log = agent.log()
    assert "1 job(s) did not finish in time and were cancelled" in log
    assert log.rstrip().endswith("stopped"), log[-2000:]  # the cancelled check did not run on
    assert "never retrieved" not in log and "raised an exception" not in log
    again = Agent(config, agent.port, tmp_path, name="agent2")
    agents.append(again)
    wait_until(lambda: again.checks(A) >= 1 and again.checks(B) >= 1, "both shops read after the restart", again)
    assert again.stop() == 0


def test_the_canvas_qr_is_pushed_renewed_when_it_expires_and_a_scan_logs_the_shop_in(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, agents: list[Agent], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A QR-only shop: the QR the team receives is drawn from the page's qrcode answer; when it expires the page
    renews it and the new image is pushed; the phone scans, confirms, and the shop is read again."""
    from agent.browser.session import qr_png_bytes
    from agent.cli.qr_view import qr_matrix

    sandbox.control.load("logins")
    sandbox.control.settings(qr_ttl=6)
    monkeypatch.setenv("PDD_TEST_PASSWORD", "sandbox-pass")
    port, page_port = free_port(), free_port()  # the deprecated health port still answers /healthz
    config = tmp_path / "config.toml"
    config.write_text(f"""
[agent]
data_dir = "{tmp_path / 'data'}"
pacing_seconds = 0
login_retry_hours = 0
health_port = {port}
[web]
listen = "127.0.0.1:{page_port}"
open_on_loopback = true
[browser]
timeout_seconds = 8
[[shops]]
name = "扫码登录店"
base_url = "{sandbox.url}"
username = "扫码登录店"
password_env = "PDD_TEST_PASSWORD"
[schedule]
check_interval = "60s"
jitter = "0"
dispatch_interval = "1s"
keepalive_interval = "0"
digest_cron = ""
{WATCH_OFF}
[alerts]
notify = ["ops"]
[notifiers.ops]
type = "wecom"
webhook_url = "{wecom.webhook_url('k1')}"
""", encoding="utf-8")
    agent = Agent(config, port, tmp_path)
    agents.append(agent)

    def images() -> list[bytes]:
        return [m.image for m in wecom.messages("k1") if m.msgtype == "image" and m.image]

    first = wait_until(lambda: images(), "the login QR image", agent)[0]
    live = [t["token"] for t in sandbox.control.qr_tokens() if t["status"] == 1]
    assert qr_matrix(first) in [qr_matrix(qr_png_bytes(f"https://mms.pinduoduo.com/scanlogin?type=1&data={t}"))
                                for t in live]
    assert any("需要登录（扫码）" in t and "禁止在网页版登录" in t for t in shop_messages(wecom, "扫码登录店"))
    renewed = wait_until(lambda: images()[1:], "the renewed QR image", agent, timeout=40)[0]
    assert qr_matrix(renewed) != qr_matrix(first)
    # the team page's 店铺 shows the QR waiting for a scan: the one the team was sent last
    page = f"http://127.0.0.1:{page_port}"
    assert "扫码登录" in httpx.get(f"{page}/shops", timeout=5).text
    shown = httpx.get(f"{page}/shops/扫码登录店/qr.png", timeout=5)
    assert shown.status_code == 200 and qr_matrix(shown.content) in (qr_matrix(renewed), *map(qr_matrix, images()[2:]))
    sandbox.control.settings(qr_ttl=300)
    # a reload while the QR login waits for its scan (a channel's settings changed): the held login survives
    config.write_text(config.read_text(encoding="utf-8") + 'mention_mobiles = ["13800000000"]\n', encoding="utf-8")
    agent.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in agent.log(), "the reload", agent)
    sandbox.control.scan_qr("扫码登录店", confirm=False)
    wait_until(lambda: "已扫码" in agent.log(), "「已扫码，请在手机上确认」 in the log", agent)
    sandbox.control.scan_qr("扫码登录店")
    wait_until(lambda: any("已恢复" in t for t in shop_messages(wecom, "扫码登录店")), "the recovery alert", agent)
    state = tmp_path / "data" / "shops" / "扫码登录店" / "state.json"
    assert state.stat().st_mode & 0o777 == 0o600
    assert agent.stop() == 0
