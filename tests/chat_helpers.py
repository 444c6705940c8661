"""What the chat-channel tests share: a settable clock, sending through a notifier in its own event loop (and
checking a failure leaks no secret), and the channel tables of a config pointing at the fakes."""

from __future__ import annotations

import traceback

import pytest

from agent.sandbox.dingtalk import FakeDingTalk
from agent.sandbox.feishu import FakeFeishu
from agent.sandbox.wecom_app import FakeWeComApp
from notifiers import Message, Notifier, NotifyError
from tests.conftest import run_async

SEC = "SEC" + "7" * 64  # a DingTalk robot's 加签 secret
FS_SECRET = "feishu-secret-123"
ZHANG = "ou_7d8a6e6df7621556ce0d21922b676706"  # 张三's Feishu open_id
CORP, APP_SECRET, AGENT = "ww0123456789abcdef", "app-secret-xyz-0123456789", 1000002


class Clock:
    """A clock the test sets: the notifier's and the fake's time (`t`, epoch seconds)."""

    t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def send(notifier: Notifier, *messages: Message) -> list[str]:
    """Send `messages` in order in one event loop, the notifier closed afterwards."""
    async def go() -> list[str]:
        try:
            return [await notifier.send(m) for m in messages]
        finally:
            await notifier.aclose()

    return run_async(go())


def send_err(notifier: Notifier, message: Message, kind: type[NotifyError], secrets: tuple[str, ...]) -> NotifyError:
    """The failure of sending `message` (of class `kind`); neither it, its chain nor the repr holds a secret."""
    with pytest.raises(kind) as info:
        send(notifier, message)
    logged = "".join(traceback.format_exception(info.value))
    for secret in secrets:
        assert secret not in logged and secret not in repr(notifier)
    return info.value


def channel_tables(ding: FakeDingTalk, feishu: FakeFeishu, app: FakeWeComApp, *, secret: str = SEC,
                   keyword: str = "") -> str:
    """[notifiers.ding] (mentions 13800001111), [notifiers.fs] (mentions 张三) and [notifiers.boss] (the app to
    ZhangSan) pointing at the fakes."""
    return f"""
[notifiers.ding]
type = "dingtalk"
webhook_url = "{ding.webhook_url('dt')}"
secret = "{secret}"
keyword = "{keyword}"
mention_mobiles = ["13800001111"]
[notifiers.fs]
type = "feishu"
webhook_url = "{feishu.webhook_url('fs')}"
secret = "{FS_SECRET}"
mention_open_ids = ["{ZHANG}"]
[notifiers.boss]
type = "wecom_app"
corp_id = "{CORP}"
corp_secret = "{APP_SECRET}"
agent_id = {AGENT}
to_users = ["ZhangSan"]
api_base = "{app.url}"
"""
