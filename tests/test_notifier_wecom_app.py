"""The WeCom app notifier against the fake WeCom app API over loopback HTTP: one gettoken for many sends, a refresh
on expiry, invaliduser, the trusted-IP rule, the 2048-byte text, the silent drop our own count prevents."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agent.sandbox.wecom_app import FakeWeComApp
from notifiers import Message, NotifyError, PermanentError, RateLimitedError, RetryableError, WeComApp
from tests import chat_helpers as chat
from tests.chat_helpers import Clock
from tests.conftest import run_async

CORP, SECRET, AGENT = "ww3f9a0c1b2d4e5f60", "kT9xQ2mV7bN4cR8sL1pW6zH3jD5fG0aY-uE2iO7qX9w", 1000002


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeWeComApp]:
    server = FakeWeComApp(CORP, SECRET, AGENT, ["ZhangSan", "LiSi"], clock=clock).start()
    try:
        yield server
    finally:
        server.stop()


def app(fake: FakeWeComApp, users: tuple[str, ...] = ("ZhangSan",), secret: str = SECRET) -> WeComApp:
    return WeComApp(CORP, secret, AGENT, users, api_base=fake.url, clock=fake.clock)


def msg(text: str = "【示例旗舰店】售后预警：1 单即将逾期\n\n1. 【紧急·售后】仅退款 订单 240101-123") -> Message:
    return Message(title="【示例旗舰店】售后预警", markdown="", text=text, html="")


def sends(notifier: WeComApp, *messages: Message) -> list[str]:
    return chat.send(notifier, *messages)


def send_err(notifier: WeComApp, message: Message, kind: type[NotifyError]) -> NotifyError:
    return chat.send_err(notifier, message, kind, (SECRET,))


def test_two_sends_one_gettoken_and_text_to_each_member(fake: FakeWeComApp) -> None:
    notifier = app(fake, ("ZhangSan", "LiSi"))
    sends(notifier, msg(), msg("【示例旗舰店】第二条"))
    assert fake.token_calls == 1 and notifier.token_fetches == 1
    assert [(d.key, d.content[:10]) for d in fake.delivered()] == [
        ("zhangsan", "【示例旗舰店】售后预"), ("lisi", "【示例旗舰店】售后预"), ("zhangsan", "【示例旗舰店】第二条"),
        ("lisi", "【示例旗舰店】第二条")]
    assert notifier.rate_keys == ("wecom_app:" + notifier.rate_key.split(":")[1] + ":zhangsan",
                                  "wecom_app:" + notifier.rate_key.split(":")[1] + ":lisi")


def test_concurrent_sends_share_one_gettoken(fake: FakeWeComApp) -> None:
    notifier = app(fake)

    async def go() -> None:
        try:
            await asyncio.gather(*(notifier.send(msg(f"【店】第{n}条")) for n in range(5)))
        finally:
            await notifier.aclose()

    run_async(go())
    assert fake.token_calls == 1 and len(fake.delivered()) == 5


def test_an_expired_token_is_fetched_again_once_and_the_send_retried(fake: FakeWeComApp, clock: Clock) -> None:
    notifier = app(fake)
    sends(notifier, msg())
    fake.expire_tokens()  # WeCom expired it early (our cache still thinks it is good)
    sends(notifier, msg("【店】after expiry"))
    assert fake.token_calls == 2 and fake.rejections() == [42001] and len(fake.delivered()) == 2
    clock.t += 7200  # our cache's own expiry: a fresh token before sending, no rejection
    sends(notifier, msg("【店】two hours later"))
    assert fake.token_calls == 3 and fake.rejections() == [42001]


def test_invaliduser_in_an_errcode_0_answer_is_a_failure(fake: FakeWeComApp) -> None:
    err = send_err(app(fake, ("ZhangSan", "WangWu")), msg(), PermanentError)
    assert err.code == "invaliduser" and "wangwu" in err.message
    assert send_err(app(fake, ("WangWu",)), msg(), PermanentError).code == "errcode 81013"


def test_60020_names_the_ip_to_add_as_trusted(clock: Clock) -> None:
    server = FakeWeComApp(CORP, SECRET, AGENT, ["ZhangSan"], trusted_ips=["10.0.0.1"], clock=clock).start()
    try:
        err = send_err(app(server), msg(), PermanentError)
        assert err.code == "errcode 60020" and "127.0.0.1" in err.message and "企业可信IP" in err.message
    finally:
        server.stop()


def test_a_wrong_secret_is_permanent_and_never_echoed(fake: FakeWeComApp) -> None:
    err = send_err(app(fake, secret="x" * 43), msg(), PermanentError)
    assert err.code == "errcode 40001" and "corp_secret" in err.message and "x" * 43 not in err.message


def test_text_past_2048_bytes_is_refused_before_sending(fake: FakeWeComApp) -> None:
    err = send_err(app(fake), msg("售" * 700), PermanentError)  # 2,100 bytes: WeCom would cut it silently
    assert err.code == "too_long" and fake.requests == 0


def test_wecom_drops_the_31st_in_a_minute_silently_which_is_why_we_count(fake: FakeWeComApp) -> None:
    answers = sends(app(fake), *(msg(f"【店】第{n}条") for n in range(31)))
    assert all('"errcode": 0' in a or '"errcode":0' in a for a in answers)  # every answer says delivered
    assert len(fake.delivered()) == 30 and len(fake.dropped) == 1  # one never arrived
    assert WeComApp.rate_limits == ((30, 60.0), (1000, 3600.0))  # the dispatcher never sends that 31st


@pytest.mark.parametrize(("code", "kind"), [(-1, RetryableError), (45009, RateLimitedError),
                                            (40056, PermanentError), (60111, PermanentError)])
def test_every_errcode_has_its_class(fake: FakeWeComApp, code: int, kind: type[NotifyError]) -> None:
    sends(app(fake), msg())  # the token first
    fake.fail("/cgi-bin/message/send", [f"code:{code}"])
    notifier = app(fake)
    err = send_err(notifier, msg("【店】x"), kind)
    assert type(err) is kind and err.code == f"errcode {code}"
