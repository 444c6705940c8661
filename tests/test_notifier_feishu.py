"""The Feishu bot notifier against the fake Feishu over loopback HTTP: the body sign, post rich text, @ by open_id,
keywords, the 20 KB limit, 5 a second, codes in 200 and 400 bodies, no leak."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from agent.core import markup
from agent.sandbox.feishu import Bot, FakeFeishu
from notifiers import FeishuBot, Message, NotifyError, PermanentError, RateLimitedError, RetryableError
from notifiers.feishu import sign
from tests import chat_helpers as chat
from tests.chat_helpers import ZHANG, Clock
from tests.conftest import run_async

TOKEN = "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"
SECRET = "f3Kq9WzT2bVx8LmN4pRs"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeFeishu]:
    server = FakeFeishu({TOKEN: Bot(secret=SECRET, members=(ZHANG,))}, clock=clock).start()
    try:
        yield server
    finally:
        server.stop()


def post(title: str = "【示例旗舰店】售后预警", lines: list[str] | None = None, link: str = "") -> str:
    block: list[markup.Line] = [[("t", s)] for s in (lines or ["1. 仅退款 订单 240101-123"])]
    if link:
        block.append([("l", "认领 / 查看", link)])
    return markup.body("feishu", title, [block])


def msg(body: str | None = None, **kw: object) -> Message:
    return Message(title="【示例旗舰店】售后预警", markdown="", text="plain", html="", body=body or post(), **kw)  # type: ignore[arg-type]


def send(bot: FeishuBot, message: Message) -> str:
    return chat.send(bot, message)[0]


def send_err(bot: FeishuBot, message: Message, kind: type[NotifyError]) -> NotifyError:
    return chat.send_err(bot, message, kind, (TOKEN, SECRET))


def test_the_sign_matches_the_reference_vectors_and_goes_in_the_body() -> None:
    assert sign("demo", 1599360473) == "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    assert sign("demo", 1700000000) == "8oT2n3SMKFfEnDoiwer8BUM/SjKLwe9SqoEIHlhDTKo="
    assert sign("demo", 1599360473) != "DkEDUyVoOOJ539qBvUgMyzkzIdRWlf4e/V3Rq+ONJnQ="  # not DingTalk's algorithm
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {},
                                         "msg": "success"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    bot = FeishuBot(f"https://open.feishu.cn/open-apis/bot/v2/hook/{TOKEN}", secret="demo", client=client,
                    clock=lambda: 1599360473.0)
    send(bot, msg())
    run_async(client.aclose())
    body = json.loads(seen[0].content)
    assert body["timestamp"] == "1599360473" and body["sign"] == "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    assert body["msg_type"] == "post" and not seen[0].url.query


def test_delivery_of_a_post_with_links_and_mentions_by_open_id(fake: FakeFeishu) -> None:
    bot = FeishuBot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock)
    stranger = "ou_00000000000000000000000000000000"
    send(bot, msg(post(link="http://192.168.1.20:8700/items/x"), mention_open_ids=(ZHANG, stranger)))
    [got] = fake.delivered(TOKEN)
    assert got.extra["title"] == "【示例旗舰店】售后预警" and "240101-123" in got.content
    assert got.extra["links"] == ["http://192.168.1.20:8700/items/x"]
    assert got.extra["at"] == [ZHANG, stranger] and got.mentions == (ZHANG,)  # a non-member is shown, not notified


def test_hostile_buyer_text_stays_text_in_a_post(fake: FakeFeishu) -> None:
    hostile = '<at user_id="all">所有人</at> [点我](http://evil.example) **差评**'
    body = post(lines=[f"原因：{hostile}"])
    send(FeishuBot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock), msg(body))
    [got] = fake.delivered(TOKEN)
    assert got.extra["at"] == [] and got.extra["links"] == [] and "<at" not in got.content


def test_a_wrong_secret_or_a_missing_keyword_is_permanent_in_feishus_words(fake: FakeFeishu, clock: Clock) -> None:
    err = send_err(FeishuBot(fake.webhook_url(TOKEN), secret="wrong", clock=fake.clock), msg(), PermanentError)
    assert err.code == "code 19021" and "sign match fail" in err.message and "签名" in err.message
    late = FeishuBot(fake.webhook_url(TOKEN), secret=SECRET, clock=lambda: clock.t + 4000)
    assert send_err(late, msg(), PermanentError).code == "code 19021"
    server = FakeFeishu({"kw": Bot(keywords=("售后提醒",))}, clock=clock).start()
    try:
        assert send_err(FeishuBot(server.webhook_url("kw")), msg(), PermanentError).code == "code 19024"
        send(FeishuBot(server.webhook_url("kw"), keyword="售后提醒"), msg())
        assert server.delivered("kw")[0].extra["title"].startswith("【售后提醒】")
    finally:
        server.stop()


def test_bodies_over_20kb_are_refused_before_sending(fake: FakeFeishu) -> None:
    big = post(lines=["售" * 3500, "后" * 3500])  # 21,000 bytes of text
    err = send_err(FeishuBot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock), msg(big), PermanentError)
    assert err.code == "too_long" and fake.requests == 0


def test_the_sixth_in_a_second_is_rate_limited_in_an_http_400_body(fake: FakeFeishu, clock: Clock) -> None:
    bot = FeishuBot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock)
    for _ in range(5):
        send(bot, msg())
    err = send_err(bot, msg(), RateLimitedError)
    assert err.code == "code 9499" and "too many request" in err.message
    clock.t += 1.5
    send(bot, msg())
    assert len(fake.delivered(TOKEN)) == 6


@pytest.mark.parametrize(("code", "kind"), [
    (11232, RateLimitedError), (2200, RetryableError), (19022, PermanentError), (19024, PermanentError),
    (9499, PermanentError), (19036, PermanentError), (19001, PermanentError), (99999, PermanentError),
])
def test_every_code_has_its_class(fake: FakeFeishu, code: int, kind: type[NotifyError]) -> None:
    fake.fail(TOKEN, [f"code:{code}"])
    err = send_err(FeishuBot(fake.webhook_url(TOKEN), secret=SECRET, clock=fake.clock), msg(), kind)
    assert type(err) is kind and err.code == f"code {code}"


def test_success_is_code_0_never_the_legacy_status_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # an error body with a stale StatusCode 0
        return httpx.Response(200, json={"StatusCode": 0, "code": 19024, "msg": "Key Words Not Found"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    bot = FeishuBot(f"https://open.feishu.cn/open-apis/bot/v2/hook/{TOKEN}", client=client)
    send_err(bot, msg(), PermanentError)
    run_async(client.aclose())
