"""The WeCom robot notifier against the fake robot server over loopback HTTP: success, parts, classification."""

from __future__ import annotations

import io
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import segno

from agent.config.schema import NOTIFIER_TYPES
from agent.sandbox.wecom import FakeWeCom
from notifiers import REGISTRY, Message, NotifyError, PermanentError, RetryableError, SmtpMailer, WeComRobot
from notifiers.wecom import parse_webhook
from tests.conftest import run_async

KEY = "693a91f6-7d3c-4bc4-97a0-0ec2a1f5a5aa"  # the shape of a real robot key
ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    server = FakeWeCom(keys={KEY}, clock=FakeClock()).start()
    try:
        yield server
    finally:
        server.stop()


def msg(markdown: str = "## 【示例旗舰店】售后预警\n> 订单 **240101-123** 剩余 1小时23分", **kw: object) -> Message:
    return Message(title="示例旗舰店：1 单即将逾期", markdown=markdown, text="plain", html="<p>x</p>", **kw)  # type: ignore[arg-type]


def send(robot: WeComRobot, message: Message) -> str:
    async def go() -> str:
        try:
            return await robot.send(message)
        finally:
            await robot.aclose()

    return run_async(go())


def send_err(robot: WeComRobot, message: Message, kind: type[NotifyError]) -> NotifyError:
    with pytest.raises(kind) as info:
        send(robot, message)
    err = info.value
    logged = "".join(traceback.format_exception(err))  # chained httpx errors would carry the URL
    for secret in (KEY, robot._url):
        assert secret not in str(err) and secret not in repr(err) and secret not in logged
    return err


def png() -> bytes:
    buf = io.BytesIO()
    segno.make("pdd-sandbox-login:abc").save(buf, kind="png", scale=4)
    return buf.getvalue()


def test_markdown_success_returns_the_channel_answer(fake: FakeWeCom) -> None:
    answer = send(WeComRobot(fake.webhook_url(KEY)), msg())
    assert answer == 'markdown: {"errcode": 0, "errmsg": "ok"}'
    [m] = fake.messages(KEY)
    assert (m.msgtype, m.content) == ("markdown", msg().markdown)  # raw UTF-8 got through (no 40033)


def test_mentions_follow_as_a_text_message(fake: FakeWeCom) -> None:
    robot = WeComRobot(fake.webhook_url(KEY), mention_mobiles=("13800000000",))
    assert robot.mention_mobiles == ("13800000000",)
    send(robot, msg(mention_mobiles=("13800000000", "13900000000")))
    md_msg, text_msg = fake.messages(KEY)
    assert md_msg.msgtype == "markdown" and md_msg.mentioned_mobile_list == ()
    assert text_msg.msgtype == "text" and text_msg.content == "示例旗舰店：1 单即将逾期"
    assert text_msg.mentioned_mobile_list == ("13800000000", "13900000000")


def test_the_mention_text_cannot_ping_through_the_title(fake: FakeWeCom) -> None:
    hostile = Message(title="<@all> 退款<@wangqing>", markdown="x", text="x", html="x", mention_mobiles=("138",))
    send(WeComRobot(fake.webhook_url(KEY)), hostile)
    text_msg = fake.messages()[1]
    assert "<@" not in text_msg.content and text_msg.mentioned_mobile_list == ("138",)


def test_no_mentions_means_a_single_message(fake: FakeWeCom) -> None:
    send(WeComRobot(fake.webhook_url(KEY), mention_mobiles=("13800000000",)), msg())
    assert [m.msgtype for m in fake.messages()] == ["markdown"]


def test_image_is_sent_with_base64_and_md5(fake: FakeWeCom) -> None:
    data = png()
    answer = send(WeComRobot(fake.webhook_url(KEY)), msg(image_png=data, mention_mobiles=("13800000000",)))
    assert [m.msgtype for m in fake.messages()] == ["markdown", "image", "text"]
    assert fake.messages()[1].image == data
    assert answer.splitlines()[1].startswith("image: ")


def test_image_must_be_png(fake: FakeWeCom) -> None:
    err = send_err(WeComRobot(fake.webhook_url(KEY)), msg(image_png=b"GIF89a..."), PermanentError)
    assert err.code == "bad_image" and fake.messages() == []


def test_unknown_key_is_permanent_and_never_leaks_the_key(fake: FakeWeCom) -> None:
    other = "0c5e2a77-1111-4bc4-97a0-0ec2a1f5zzzz"
    err = send_err(WeComRobot(fake.webhook_url(other)), msg(), PermanentError)
    assert err.code == "errcode 93000" and "invalid webhook url" in err.message
    assert other not in str(err)


def test_markdown_over_4096_bytes_is_refused_before_sending(fake: FakeWeCom) -> None:
    err = send_err(WeComRobot(fake.webhook_url(KEY)), msg("预" * 1500), PermanentError)
    assert err.code == "too_long" and "4500" in err.message
    assert fake.messages() == [] and fake.rejections() == []  # nothing reached the server


@pytest.mark.parametrize("errcode", [40058, 40008, 93000, 44004, 40033])
def test_permanent_errcodes(fake: FakeWeCom, errcode: int) -> None:
    fake.fail(KEY, [f"errcode:{errcode}"])
    err = send_err(WeComRobot(fake.webhook_url(KEY)), msg(), PermanentError)
    assert err.code == f"errcode {errcode}"


def test_45009_after_20_a_minute_is_retryable(fake: FakeWeCom) -> None:
    robot = WeComRobot(fake.webhook_url(KEY))

    async def go() -> list[str]:
        try:
            return [await robot.send(msg(f"第 {i} 条")) for i in range(20)]
        finally:
            await robot.aclose()

    assert len(run_async(go())) == 20
    err = send_err(WeComRobot(fake.webhook_url(KEY)), msg("第 21 条"), RetryableError)
    assert err.code == "errcode 45009" and err.retry_after == 60  # type: ignore[attr-defined]
    assert "api freq out of limit" in err.message
    assert len(fake.messages()) == 20


@pytest.mark.parametrize(
    ("kind", "code"),
    [("errcode:-1", "errcode -1"), ("http:500", "http 500"), ("http:502", "http 502"), ("drop", "network"),
     ("html", "bad_answer"), ("http:429", "http 429")],
)
def test_transient_failures_are_retryable_then_it_recovers(fake: FakeWeCom, kind: str, code: str) -> None:
    fake.fail(KEY, [kind])
    err = send_err(WeComRobot(fake.webhook_url(KEY)), msg(), RetryableError)
    assert err.code == code
    send(WeComRobot(fake.webhook_url(KEY)), msg())
    assert len(fake.messages()) == 1


def test_http_404_is_permanent(fake: FakeWeCom) -> None:
    fake.fail(KEY, ["http:404"])
    assert send_err(WeComRobot(fake.webhook_url(KEY)), msg(), PermanentError).code == "http 404"


def test_timeout_is_retryable(fake: FakeWeCom) -> None:
    fake.fail(KEY, ["delay:1"])
    err = send_err(WeComRobot(fake.webhook_url(KEY), timeout=0.2), msg(), RetryableError)
    assert err.code == "timeout"


def test_connection_refused_is_retryable() -> None:
    server = FakeWeCom(keys={KEY})
    url = server.webhook_url(KEY)
    server.httpd.server_close()  # bound once, now nothing listens there
    assert send_err(WeComRobot(url), msg(), RetryableError).code == "network"


def test_answers_and_transport_errors_that_echo_the_url_are_masked() -> None:
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"

    def gateway(request: httpx.Request) -> httpx.Response:  # a proxy error page repeating the request
        return httpx.Response(502, text=f"<h1>502</h1> upstream failed for {request.url}")

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect for {request.url}", request=request)

    for transport, code in ((gateway, "http 502"), (broken, "network")):
        client = httpx.AsyncClient(transport=httpx.MockTransport(transport))
        err = send_err(WeComRobot(url, client=client), msg(), RetryableError)
        assert err.code == code and "a5aa" in err.message  # masked, still recognisable
        run_async(client.aclose())


def test_a_retry_after_a_partial_failure_sends_only_what_is_missing(fake: FakeWeCom) -> None:
    robot = WeComRobot(fake.webhook_url(KEY))
    message = msg(image_png=png(), mention_mobiles=("13800000000",))
    fake.fail(KEY, ["ok", "errcode:-1"])  # markdown goes through, the image hits 系统繁忙

    async def go() -> str:
        try:
            with pytest.raises(RetryableError):
                await robot.send(message)
            return await robot.send(message)
        finally:
            await robot.aclose()

    answer = run_async(go())
    assert [m.msgtype for m in fake.messages()] == ["markdown", "image", "text"]
    assert answer.splitlines()[0] == "markdown: (already sent)"


def test_a_given_client_is_used_and_left_open(fake: FakeWeCom) -> None:
    async def go() -> bool:
        async with httpx.AsyncClient(headers={"X-Probe": "1"}) as client:
            async with WeComRobot(fake.webhook_url(KEY), client=client) as robot:
                await robot.send(msg())
            return client.is_closed

    assert run_async(go()) is False
    assert len(fake.messages()) == 1


def test_bare_key_and_url_parsing() -> None:
    assert parse_webhook(KEY) == (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}", KEY)
    url = f"http://127.0.0.1:9/cgi-bin/webhook/send?key={KEY}"
    assert parse_webhook(f"  {url} ") == (url, KEY)
    for bad in ("", "has space", "http://127.0.0.1:9/cgi-bin/webhook/send", f"https://x/send?key={KEY}&key=2"):
        with pytest.raises(ValueError) as info:
            parse_webhook(bad)
        assert KEY not in str(info.value) and (not bad.strip() or bad not in str(info.value))


def test_rate_key_and_repr_name_the_robot_without_the_key() -> None:
    by_url = WeComRobot(f"http://127.0.0.1:9/cgi-bin/webhook/send?key={KEY}")
    by_key = WeComRobot(KEY)
    other = WeComRobot("another-robot-key-0000000000")
    assert by_url.rate_key == by_key.rate_key != other.rate_key
    assert KEY not in by_key.rate_key and KEY not in repr(by_key) and "a5aa" in repr(by_key)
    assert (WeComRobot.kind, WeComRobot.max_bytes, WeComRobot.rate_limits) == ("wecom", 4096, ((20, 60.0),))


def test_registry_and_independence_from_agent() -> None:
    assert set(REGISTRY) == set(NOTIFIER_TYPES)  # every type the config accepts has its notifier
    assert REGISTRY["wecom"] is WeComRobot and REGISTRY["email"] is SmtpMailer
    assert all(cls.kind == kind for kind, cls in REGISTRY.items())
    code = "import sys, notifiers; print(sorted(m for m in sys.modules if m == 'agent' or m.startswith('agent.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_notifier_from_config_builds_the_channel_its_type_names() -> None:
    from notifiers import Notifier

    robot = Notifier.from_config({"type": "wecom", "webhook_url": KEY, "mention_mobiles": ["13800000000"]})
    assert isinstance(robot, WeComRobot) and robot.mention_mobiles == ("13800000000",)
    mail = Notifier.from_config({"type": "email", "host": "smtp.qq.com", "port": 465, "security": "ssl",
                                 "username": "shop@qq.com", "password": "x", "to": ["ops@qq.com"]})
    assert isinstance(mail, SmtpMailer) and mail.sender == "shop@qq.com" and mail.mention_mobiles == ()
    with pytest.raises(ValueError, match="unknown notifier type 'sms'"):
        Notifier.from_config({"type": "sms"})
