"""End to end: sandbox → check (real Chromium) → outbox → fake WeCom and a real SMTP server, clock advancing."""

from __future__ import annotations

import email
import re
import socket
from collections.abc import Iterator
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from agent.browser.pool import BrowserPool
from agent.config import Config, load_config, locators
from agent.outbox.dispatch import Report, build_notifiers
from agent.outbox.store import Store
from agent.sandbox.wecom import FakeWeCom
from agent.service.pipeline import Pipeline
from tests.conftest import Sandbox, run_async

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),  # loopback only
]
SN = re.compile(r"\d{6}-\d{15}")
AFTERSALE = (24 * 3600, 6 * 3600, 2 * 3600, 30 * 60)
EVIDENCE = (12 * 3600, 4 * 3600, 3600)
# these tests follow the deadline stages alone; the [watch] notices have their own (test_losses_e2e.py)
WATCH_OFF = """[watch]
complaints = false
urged = false
quality = false
platform = false
work_orders = false
platform_refunds = false
"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=isinstance(data, LoginPassword) and data == (b"alerts@shop.test", b"smtp-pass"))

    with socket.socket() as probe:  # aiosmtpd's controller cannot check itself on port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=auth, auth_required=True,
                     auth_require_tls=False)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def make_config(tmp_path: Path, sandbox: Sandbox, wecom: FakeWeCom, smtp_port: int, key: str = "k1",
                retry_backoff: str = "30s", watch: bool = False) -> Config:
    text = f"""
[agent]
data_dir = "{tmp_path / 'data'}"
pacing_seconds = 0
rate_limit_backoff = [0.2]
[browser]
timeout_seconds = 8
[[shops]]
name = "示例旗舰店"
base_url = "{sandbox.url}"
username = "示例旗舰店:客服01"
password_env = "PDD_TEST_PASSWORD"
{WATCH_OFF if not watch else ""}
[alerts]
notify = ["ops"]
admin_notify = ["mail"]
retry_backoff = "{retry_backoff}"
[notifiers.ops]
type = "wecom"
webhook_url = "{wecom.webhook_url(key)}"
mention_mobiles = ["13800000000"]
[notifiers.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
username = "alerts@shop.test"
password_env = "PDD_TEST_SMTP"
to = ["boss@shop.test"]
"""
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    return load_config(tmp_path / "config.toml")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_TEST_PASSWORD", "demo-pass")
    monkeypatch.setenv("PDD_TEST_SMTP", "smtp-pass")


def cycle_once(config: Config, store: Store, *, check: bool = True, dispatches: int = 1,
               later: float = 0.0) -> list[Report]:
    """One cycle; `later` moves the dispatcher's clock on (as if that many seconds had passed)."""
    async def go() -> list[Report]:
        notifiers = build_notifiers(config)
        async with BrowserPool(timeout_seconds=8) as pool:
            pipeline = Pipeline(config, store, pool, locators.load(), notifiers)
            if check:
                await pipeline.check()
            pipeline.clock.advance(later)
            reports = [await pipeline.dispatch() for _ in range(dispatches)]
        for n in notifiers.values():
            await n.aclose()
        return reports

    return run_async(go())


def stage(thresholds: tuple[int, ...], remaining: float) -> int | None:
    crossed = [i for i, t in enumerate(thresholds) if remaining <= t]
    return max(crossed) if crossed else None


def expected_stage_alerts(sandbox: Sandbox, seen: dict[str, int]) -> set[str]:
    """Order numbers that enter a more urgent stage now (computed from the sandbox, not the agent's rules)."""
    now = sandbox.control.clock()["now"]
    out = set()
    for i in sandbox.control.items(100001):
        if i["state"] in ("wait_seller", "wait_seller_receive"):
            st, key = stage(AFTERSALE, i["deadline"] - now), f"a{i['id']}"
        elif i["proofStatus"] == "待商家举证":
            st, key = stage(EVIDENCE, i["proofDeadline"] - now), f"e{i['id']}"
        else:
            continue
        if st is not None and st > seen.get(key, -1):
            seen[key] = st
            out.add(i["orderSn"])
    return out


def markdown_since(wecom: FakeWeCom, start: int) -> list[str]:
    return [m.content for m in wecom.messages("k1")[start:] if m.msgtype == "markdown"]


def sns(texts: list[str]) -> list[str]:
    """Order numbers per message (each also appears in its detail link), over all messages."""
    return [sn for t in texts for sn in dict.fromkeys(SN.findall(t))]


def test_stages_handled_and_auto_refund_across_cycles(
    sandbox: Sandbox, wecom: FakeWeCom, smtp: tuple[Inbox, int], tmp_path: Path,
) -> None:
    inbox, port = smtp
    config = make_config(tmp_path, sandbox, wecom, port)
    store = Store(config.agent.data_dir / "agent.db")
    sandbox.control.set_clock(freeze=True)
    seen: dict[str, int] = {}

    expected = expected_stage_alerts(sandbox, seen)
    cycle_once(config, store)
    first = markdown_since(wecom, 0)
    assert len(first) == 1  # one message per shop per channel per cycle
    assert sorted(sns(first)) == sorted(expected) and len(expected) == 4  # 40 min, 3 h, 5 h, evidence 50 min
    mark = len(wecom.messages("k1"))
    mentions = [m.mentioned_mobile_list for m in wecom.messages("k1") if m.msgtype == "text"]
    assert mentions == [("13800000000",)]  # the last stage @-mentions
    assert len(inbox.messages) == 1  # the last-stage alert also went to the admin mailbox

    # escaping held in both channels
    assert "<@all>" not in first[0] and "<script" not in first[0] and "](http://evil" not in first[0]
    html = next(p for p in inbox.messages[0].walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert b"<script>alert" not in html

    # two hours later: new stages, and the items whose deadline passed were refunded automatically
    before = {i["orderSn"]: i for i in sandbox.control.items(100001)}
    sandbox.control.advance(2 * 3600)
    expected = expected_stage_alerts(sandbox, seen)
    refunded = {i["orderSn"] for i in sandbox.control.items(100001)
                if 1028 in i["actions"] and 1028 not in before[i["orderSn"]]["actions"]}
    assert refunded  # the 40-minute after-sale and the 50-minute evidence item
    cycle_once(config, store)
    second = markdown_since(wecom, mark)
    assert len(second) == 1
    text = second[0]
    assert sorted(sns(second)) == sorted(expected | refunded)
    assert "已超时自动退款" in text and "损失" in text
    mark = len(wecom.messages("k1"))

    # the merchant handles an alerted item: a short confirmation, nothing else
    handled = next(i for i in sandbox.control.items(100001)
                   if i["state"] == "wait_seller" and i["orderSn"] in sns(first + second))
    sandbox.control.handle(handled["id"])
    cycle_once(config, store)
    third = markdown_since(wecom, mark)
    assert sns(third) == [handled["orderSn"]] and "已处理" in third[0]

    # nothing changes: nothing is sent
    mark = len(wecom.messages("k1"))
    cycle_once(config, store)
    assert markdown_since(wecom, mark) == []


def test_a_wecom_outage_loses_nothing_and_duplicates_nothing(
    sandbox: Sandbox, wecom: FakeWeCom, smtp: tuple[Inbox, int], tmp_path: Path,
) -> None:
    config = make_config(tmp_path, sandbox, wecom, smtp[1], retry_backoff="0")  # retry at the next dispatch
    store = Store(config.agent.data_dir / "agent.db")
    wecom.fail("k1", ["errcode:-1", "http:500", "drop", "errcode:45009"])
    expected = expected_stage_alerts(sandbox, {})
    reports = cycle_once(config, store, dispatches=6)
    assert [r.retried > 0 for r in reports] == [True, True, True, True, False, False]
    # nothing delivered to WeCom yet, nothing lost: its rows wait out 45009's minute (the mail copy went out)
    assert markdown_since(wecom, 0) == [] and store.depth() == {"pending": len(expected), "sent": 1}
    cycle_once(config, store, check=False, dispatches=2, later=61)
    assert sorted(sns(markdown_since(wecom, 0))) == sorted(expected)  # once, after the outage
    assert store.depth() == {"sent": len(expected) + 1}


def test_an_invalid_webhook_tells_the_admin_by_email(
    sandbox: Sandbox, wecom: FakeWeCom, smtp: tuple[Inbox, int], tmp_path: Path,
) -> None:
    inbox, port = smtp
    config = make_config(tmp_path, sandbox, wecom, port, key="no-such-key")
    store = Store(config.agent.data_dir / "agent.db")
    cycle_once(config, store, dispatches=2)
    subjects = [str(email.header.make_header(email.header.decode_header(m["Subject"]))) for m in inbox.messages]
    bodies = [p.get_payload(decode=True).decode() for m in inbox.messages for p in m.walk()
              if p.get_content_type() == "text/plain"]
    assert any("通知渠道故障" in s for s in subjects) or any("通知渠道故障" in b for b in bodies)
    assert "no-such-key" not in "".join(bodies) and store.broken().keys() == {"ops"}


def test_killed_between_check_and_dispatch_delivers_every_alert_once(
    sandbox: Sandbox, wecom: FakeWeCom, smtp: tuple[Inbox, int], tmp_path: Path,
) -> None:
    config = make_config(tmp_path, sandbox, wecom, smtp[1])
    store = Store(config.agent.data_dir / "agent.db")
    expected = expected_stage_alerts(sandbox, {})
    cycle_once(config, store, dispatches=0)  # checked and queued, then "killed"
    store.db.close()
    assert wecom.messages("k1") == []
    restarted = Store(config.agent.data_dir / "agent.db")
    cycle_once(config, restarted, check=False, dispatches=2)
    assert sorted(sns(markdown_since(wecom, 0))) == sorted(expected)
    cycle_once(config, restarted)  # the next check after the restart re-sends nothing
    assert sorted(sns(markdown_since(wecom, 0))) == sorted(expected)


CHILD = """
import asyncio, os, signal, sys
from agent.config import locators
from agent.browser.pool import BrowserPool
from agent.config import load_config
from agent.service.pipeline import Pipeline
from agent.outbox.dispatch import build_notifiers
from agent.outbox.store import Store

config = load_config(sys.argv[1])
store = Store(config.agent.data_dir / "agent.db")

async def main():
    notifiers = build_notifiers(config)
    async with BrowserPool(timeout_seconds=8) as pool:
        pipeline = Pipeline(config, store, pool, locators.load(), notifiers)
        if sys.argv[2] == "check-then-die":
            await pipeline.check()
            os.kill(os.getpid(), signal.SIGKILL)  # killed between check and dispatch
        for _ in range(2):
            print((await pipeline.dispatch()).rows_sent, flush=True)

asyncio.run(main())
"""


def test_a_killed_process_loses_nothing_and_the_restart_sends_each_alert_once(
    sandbox: Sandbox, wecom: FakeWeCom, smtp: tuple[Inbox, int], tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import sys

    config = make_config(tmp_path, sandbox, wecom, smtp[1])
    expected = expected_stage_alerts(sandbox, {})
    env = {**os.environ}
    first = subprocess.run([sys.executable, "-c", CHILD, str(config.path), "check-then-die"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert wecom.messages("k1") == []
    second = subprocess.run([sys.executable, "-c", CHILD, str(config.path), "dispatch"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert sorted(sns(markdown_since(wecom, 0))) == sorted(expected)
    third = subprocess.run([sys.executable, "-c", CHILD, str(config.path), "dispatch"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert third.stdout.split() == ["0", "0"]  # nothing left to send, nothing sent twice
    assert sorted(sns(markdown_since(wecom, 0))) == sorted(expected)
