"""The real `pdd-agent run` process delivering to DingTalk, Feishu and a WeCom app member (their fakes) and failing
over from a failing DingTalk robot to a real SMTP server: each alert once per channel, mentions on the last stage,
the app's token refreshed mid-run, `status` naming each channel's type."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli.demo_view import LocalInbox
from agent.sandbox.dingtalk import FakeDingTalk, Robot
from agent.sandbox.feishu import Bot, FakeFeishu
from agent.sandbox.wecom import FakeWeCom
from agent.sandbox.wecom_app import FakeWeComApp
from tests.browser.test_alerts_e2e import expected_stage_alerts, sns
from tests.browser.test_service_process import A, Agent, B, MailLog, agents, free_port, status, wait_until, write_config
from tests.chat_helpers import AGENT, APP_SECRET, CORP, FS_SECRET, SEC, ZHANG, channel_tables
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
__all__ = ["agents"]  # the fixture


@pytest.fixture
def chats() -> Iterator[tuple[FakeDingTalk, FakeFeishu, FakeWeComApp]]:
    servers = (FakeDingTalk({"dt": Robot(secret=SEC, keywords=("售后",))}).start(),
               FakeFeishu({"fs": Bot(secret=FS_SECRET, members=(ZHANG,))}).start(),
               FakeWeComApp(CORP, APP_SECRET, AGENT, ["ZhangSan"]).start())
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def configure(sandbox: Sandbox, wecom: FakeWeCom, chats: tuple[FakeDingTalk, FakeFeishu, FakeWeComApp],
              tmp_path: Path, *, a_notify: str, b_notify: str, alerts: str = "",
              mail_port: int = 0) -> tuple[Path, int]:
    ding, feishu, app = chats
    port = free_port()
    path = write_config(tmp_path, sandbox, wecom, port)
    text = path.read_text(encoding="utf-8")
    text = text.replace(f'name = "{A}"\n', f'name = "{A}"\nnotify = {a_notify}\n', 1)
    text = text.replace(f'name = "{B}"\n', f'name = "{B}"\nnotify = {b_notify}\n', 1)
    text = text.replace('retry_backoff = "1s"\n', 'retry_backoff = "1s"\n' + alerts)
    text += channel_tables(ding, feishu, app, secret=SEC, keyword="售后")
    if mail_port:
        text += (f'[notifiers.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {mail_port}\nsecurity = "none"\n'
                 'from = "pdd-agent@test.local"\nto = ["boss@test.local"]\n')
    path.write_text(text, encoding="utf-8")
    return path, port


def once_each(texts: list[str]) -> Counter[str]:
    return Counter(sns(texts))


def test_dingtalk_feishu_and_a_wecom_app_member_each_get_every_alert_once(
    sandbox: Sandbox, wecom: FakeWeCom, chats: tuple[FakeDingTalk, FakeFeishu, FakeWeComApp], tmp_path: Path,
    agents: list[Agent],
) -> None:
    ding, feishu, app = chats
    sandbox.control.set_clock(freeze=True)
    sandbox.control.advance(900)  # the demo's soonest item enters its last stage: mentions
    seen: dict[str, int] = {}
    expected = expected_stage_alerts(sandbox, seen)
    config, port = configure(sandbox, wecom, chats, tmp_path, a_notify='["ding", "fs"]', b_notify='["boss"]')
    agent = Agent(config, port, tmp_path)
    agents.append(agent)

    def shop_texts() -> tuple[list[str], list[str], list[str]]:
        return ([m.content for m in ding.delivered("dt") if f"【{A}】" in m.extra["title"]],
                [m.content for m in feishu.delivered("fs") if f"【{A}】" in m.extra["title"]],
                [m.content for m in app.delivered("zhangsan") if f"【{B}】" in m.content])

    wait_until(lambda: all(set(once_each(t)) == expected for t in shop_texts()), "every alert on all three", agent)
    time.sleep(3)  # more dispatch runs: nothing is sent twice
    for texts in shop_texts():
        counts = once_each(texts)
        assert set(counts) == expected and set(counts.values()) == {1}, counts
    assert [m.mentions for m in ding.delivered("dt")][0] == ("13800001111",)  # the last stage is first
    assert all(m.content.startswith("售后") or "售后" in m.extra["title"] for m in ding.delivered("dt"))
    assert feishu.delivered("fs")[0].mentions == (ZHANG,)
    assert ding.rejections() == feishu.rejections() == app.rejections() == [] and wecom.messages() == []
    # the app's token expires early at WeCom: the next stage still reaches the member (one refetch, one retry)
    app.expire_tokens()
    sandbox.control.advance(3 * 3600)
    later = expected_stage_alerts(sandbox, seen)
    assert later
    wait_until(lambda: later <= set(once_each(shop_texts()[2])), "the next stage after the token expired", agent)
    assert app.rejections() == [42001] and app.token_calls == 2
    out = status(config)
    assert "ding（钉钉）：正常" in out.stdout and "fs（飞书）：正常" in out.stdout
    assert "boss（企业微信应用）：正常" in out.stdout
    assert agent.stop() == 0


def test_a_failing_dingtalk_robot_fails_over_to_email_and_nothing_is_sent_twice(
    sandbox: Sandbox, wecom: FakeWeCom, chats: tuple[FakeDingTalk, FakeFeishu, FakeWeComApp], tmp_path: Path,
    agents: list[Agent],
) -> None:
    ding = chats[0]
    sandbox.control.set_clock(freeze=True)
    sandbox.control.advance(900)
    expected = expected_stage_alerts(sandbox, {})
    ding.outage("dt", "code:-1")  # 系统繁忙, again and again
    with LocalInbox() as inbox:
        config, port = configure(sandbox, wecom, chats, tmp_path, a_notify='["ding"]', b_notify='["ding"]',
                                 alerts='failover_after = "5s"\nadmin_notify = ["mail"]\n', mail_port=inbox.port)
        agent = Agent(config, port, tmp_path)
        agents.append(agent)
        mail_text = MailLog(inbox).text

        # the last stage reaches the boss by email while DingTalk is down (routed to the admins, or copied there)
        wait_until(lambda: "【紧急·售后】" in mail_text(), "the last stage by email", agent)
        wait_until(lambda: "通知渠道连续发送失败" in mail_text(), "the admins told DingTalk fails", agent)
        urgent = {sn for sn in expected if sn in mail_text()}
        assert urgent
        ding.restore("dt")
        wait_until(lambda: "通知渠道已恢复" in mail_text(), "the recovery notice", agent)
        wait_until(lambda: expected - urgent <= set(sns([m.content for m in ding.delivered("dt")])),
                   "the backlog through DingTalk", agent)
        time.sleep(3)
        on_ding = Counter(sns([m.content for m in ding.delivered("dt") if f"【{A}】" in m.extra["title"]]))
        assert not urgent & set(on_ding), "sent twice: by email during the outage and by DingTalk after it"
        assert set(on_ding.values()) <= {1}
        assert agent.stop() == 0
