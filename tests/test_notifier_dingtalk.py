"""The DingTalk robot notifier against the fake DingTalk over loopback HTTP (and httpx's MockTransport for the
exact wire query): the sign, mentions, keywords, the byte limit, the rate block, every errcode's class, no leak."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from agent.sandbox.dingtalk import FakeDingTalk, Robot
from notifiers import DingTalkRobot, Message, NotifyError, PermanentError, RateLimitedError, RetryableError
from notifiers.dingtalk import sign
from tests import chat_helpers as chat
from tests.chat_helpers import Clock
from tests.conftest import run_async

TOKEN = "6f1c0c8e4a5b9d2f7e3a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
SECRET = "SEC2b7f1c9d0e8a4b6c3d5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeDingTalk]:
    server = FakeDingTalk({TOKEN: Robot(secret=SECRET)}, clock=clock).start()
    try:
        yield server
    finally:
        server.stop()


def msg(text: str = "### 【示例旗舰店】售后预警\n\n1. **仅退款** 订单 240101-123", **kw: object) -> Message:
    return Message(title="【示例旗舰店】售后预警", markdown="(wecom)", text="plain", html="", body=text, **kw)  # type: ignore[arg-type]


def send(robot: DingTalkRobot, message: Message) -> str:
    return chat.send(robot, message)[0]


def send_err(robot: DingTalkRobot, message: Message, kind: type[NotifyError]) -> NotifyError:
    return chat.send_err(robot, message, kind, (TOKEN, SECRET))


def test_the_sign_matches_the_reference_vector_and_the_token_survives_in_the_query() -> None:
    assert sign("SECabc123", 1_700_000_000_000) == "N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="
    assert sign("this is secret", 1_700_000_000_000) == "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0="
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"errcode": "0", "errmsg": "ok"})  # the string form counts as success

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    robot = DingTalkRobot(f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", secret="SECabc123",
                          client=client, clock=lambda: 1_700_000_000.0)
    send(robot, msg())
    run_async(client.aclose())
    query = seen[0].url.query.decode()
    assert "sign=N5P09a4%2Bp1AMJIJWnIvQd2Yxw9%2Bfu%2FoEBnPrjCcsLXk%3D" in query  # encoded exactly once
    assert parse_qs(query) == {"access_token": [TOKEN], "timestamp": ["1700000000000"],
                               "sign": ["N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="]}
    body = json.loads(seen[0].content)
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == "【示例旗舰店】售后预警"
    assert b"\\u" not in seen[0].content  # raw UTF-8, never \uXXXX escapes


def test_delivery_with_mentions_written_in_the_text_and_in_at_mobiles(fake: FakeDingTalk) -> None:
    robot = DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock)
    send(robot, msg(mention_mobiles=("13800001111", "13900002222"), urgent=True))
    [got] = fake.delivered(TOKEN)
    assert got.mentions == ("13800001111", "13900002222")  # both really notify: number in atMobiles AND text
    assert got.content.endswith("@13800001111 @13900002222") and got.extra["title"] == "【示例旗舰店】售后预警"


def test_at_all_only_where_configured_and_only_on_the_last_stage(fake: FakeDingTalk) -> None:
    plain = DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock)
    loud = DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock, at_all=True)
    send(plain, msg(urgent=True))
    send(loud, msg(urgent=False))
    send(loud, msg(urgent=True))
    assert [m.mentions for m in fake.delivered(TOKEN)] == [(), (), ("@all",)]


def test_a_wrong_secret_or_a_skewed_clock_is_permanent_in_dingtalks_own_words(fake: FakeDingTalk,
                                                                              clock: Clock) -> None:
    wrong = DingTalkRobot(fake.webhook_url(TOKEN), secret="SEC" + "0" * 64, clock=fake.clock)
    err = send_err(wrong, msg(), PermanentError)
    assert err.code == "errcode 310000" and "sign not match" in err.message and "加签" in err.message
    skewed = DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=lambda: clock.t - 7200)
    err = send_err(skewed, msg(), PermanentError)
    assert "invalid timestamp" in err.message and "服务器时间" in err.message
    unsigned = DingTalkRobot(fake.webhook_url(TOKEN), clock=fake.clock)  # the robot requires the sign
    assert send_err(unsigned, msg(), PermanentError).code == "errcode 310000"
    assert fake.delivered() == []


def test_the_keyword_is_added_to_a_message_without_it(clock: Clock) -> None:
    server = FakeDingTalk({"kw": Robot(keywords=("售后提醒",))}, clock=clock).start()
    try:
        bare = DingTalkRobot(server.webhook_url("kw"), clock=server.clock)
        assert send_err(bare, msg(), PermanentError).message.startswith("keywords not in content")
        with_kw = DingTalkRobot(server.webhook_url("kw"), keyword="售后提醒", clock=server.clock)
        send(with_kw, msg())
        assert server.delivered("kw")[0].content.startswith("售后提醒")
    finally:
        server.stop()


def test_a_body_over_20000_bytes_is_refused_before_sending(fake: FakeDingTalk) -> None:
    robot = DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock)
    err = send_err(robot, msg("售" * 7000), PermanentError)  # 21,000 bytes of text
    assert err.code == "too_long" and fake.requests == 0


def test_past_20_a_minute_dingtalk_blocks_for_10_minutes(fake: FakeDingTalk, clock: Clock) -> None:
    robot = DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock)
    for _ in range(20):
        send(robot, msg())
    err = send_err(robot, msg(), RateLimitedError)
    assert err.code == "errcode 130101" and err.retry_after == 600
    clock.t += 120  # the minute is over, the block is not
    assert send_err(robot, msg(), RateLimitedError).code == "errcode 410100"
    clock.t += 600
    send(robot, msg())
    assert len(fake.delivered(TOKEN)) == 21


@pytest.mark.parametrize(("code", "kind"), [
    (-1, RetryableError), (410100, RateLimitedError), (130101, RateLimitedError), (90030, RateLimitedError),
    (90020, RetryableError), (300005, PermanentError), (400101, PermanentError), (430101, PermanentError),
    (460101, PermanentError), (40035, PermanentError), (43004, PermanentError), (123456, PermanentError),
])
def test_every_errcode_has_its_class(fake: FakeDingTalk, code: int, kind: type[NotifyError]) -> None:
    fake.fail(TOKEN, [f"code:{code}"])
    err = send_err(DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock), msg(), kind)
    assert type(err) is kind and err.code == f"errcode {code}"


@pytest.mark.parametrize(("script", "kind"), [("http:502", RetryableError), ("html", RetryableError),
                                              ("drop", RetryableError), ("http:404", PermanentError)])
def test_transport_failures(fake: FakeDingTalk, script: str, kind: type[NotifyError]) -> None:
    fake.fail(TOKEN, [script])
    send_err(DingTalkRobot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock), msg(), kind)


def test_config_shapes_are_refused_without_echoing_the_secret() -> None:
    with pytest.raises(ValueError, match="starts with SEC") as info:
        DingTalkRobot(f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", secret="not-a-sec-secret")
    assert "not-a-sec-secret" not in str(info.value)
    with pytest.raises(ValueError, match="https"):
        DingTalkRobot(f"http://oapi.dingtalk.com/robot/send?access_token={TOKEN}")
    with pytest.raises(ValueError, match="access_token") as info:
        DingTalkRobot("https://oapi.dingtalk.com/robot/send")
