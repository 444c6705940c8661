"""`pdd-agent notify-test --channel NAME` for every channel type, as a process against the fakes (and a real SMTP
server): it delivers and prints what the service answered, or says how it failed in the service's own words."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli.demo_view import LocalInbox
from agent.sandbox.dingtalk import FakeDingTalk, Robot
from agent.sandbox.feishu import Bot, FakeFeishu
from agent.sandbox.wecom import FakeWeCom
from agent.sandbox.wecom_app import FakeWeComApp
from tests.test_notifier_apprise import Receiver, receiver

ROOT = Path(__file__).resolve().parent.parent
SEC = "SEC" + "5" * 64
__all__ = ["receiver"]  # the fixture


@pytest.fixture
def fakes() -> Iterator[tuple[FakeWeCom, FakeDingTalk, FakeFeishu, FakeWeComApp]]:
    servers = (FakeWeCom(keys={"k"}).start(), FakeDingTalk({"dt": Robot(secret=SEC)}).start(),
               FakeFeishu({"fs": Bot(secret="fs-secret")}).start(),
               FakeWeComApp("ww00aa11bb22cc33dd", "app-secret", 1000002, ["ZhangSan"]).start())
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def notify_test(config: Path, channel: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "notify-test", "--config", str(config), "--channel", channel],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_every_channel_type_delivers_and_prints_the_answer(
    fakes: tuple[FakeWeCom, FakeDingTalk, FakeFeishu, FakeWeComApp], receiver: Receiver, tmp_path: Path,
) -> None:
    wecom, ding, feishu, app = fakes
    with LocalInbox() as inbox:
        config = tmp_path / "config.toml"
        config.write_text(f"""
[[shops]]
name = "店"
username = "店"
[notifiers.wecom]
type = "wecom"
webhook_url = "{wecom.webhook_url('k')}"
[notifiers.ding]
type = "dingtalk"
webhook_url = "{ding.webhook_url('dt')}"
secret = "{SEC}"
[notifiers.bad-ding]
type = "dingtalk"
webhook_url = "{ding.webhook_url('dt')}"
secret = "SEC{'0' * 64}"
[notifiers.fs]
type = "feishu"
webhook_url = "{feishu.webhook_url('fs')}"
secret = "fs-secret"
[notifiers.boss]
type = "wecom_app"
corp_id = "ww00aa11bb22cc33dd"
corp_secret = "app-secret"
agent_id = 1000002
to_users = ["ZhangSan"]
api_base = "{app.url}"
[notifiers.mail]
type = "email"
host = "127.0.0.1"
port = {inbox.port}
security = "none"
from = "a@test.local"
to = ["b@test.local"]
[notifiers.push]
type = "apprise"
urls = ["json://127.0.0.1:{receiver.server_address[1]}/push"]
""", encoding="utf-8")
        for channel in ("wecom", "ding", "fs", "boss", "mail", "push"):
            out = notify_test(config, channel)
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"via {channel}" in out.stdout
        assert "errcode" in notify_test(config, "ding").stdout  # DingTalk's own answer is printed
        assert "sent, unverified" in notify_test(config, "push").stdout
        assert len(inbox.take()) == 1
    assert [len(wecom.messages("k")), len(ding.delivered("dt")), len(feishu.delivered("fs")),
            len(app.delivered()), len(receiver.bodies)] == [1, 2, 1, 1, 2]
    assert "pdd-agent 测试消息" in feishu.delivered("fs")[0].extra["title"]
    bad = notify_test(config, "bad-ding")
    assert bad.returncode == 1 and "永久 / permanent" in bad.stderr and "sign not match" in bad.stderr
    assert "SEC" + "0" * 64 not in bad.stderr + bad.stdout
