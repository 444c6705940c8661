"""The fake WeCom robot's own rules: HTTP 200 errcodes, UTF-8 byte limits, 20/min, scripted failures, control API."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent.sandbox.wecom import FakeWeCom

KEY = "k1"


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeWeCom]:
    server = FakeWeCom(keys={KEY}, clock=clock).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(fake: FakeWeCom) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5, trust_env=False) as c:
        yield c


def post(http: httpx.Client, body: Any, key: str = KEY) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    return http.post("/cgi-bin/webhook/send", params={"key": key}, content=raw,
                     headers={"Content-Type": "application/json"})


def md(content: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": content}}


def text(content: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content, **extra}}


def errcode(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text  # WeCom reports failures inside HTTP 200
    return int(r.json()["errcode"])


def test_accepts_and_records_markdown(fake: FakeWeCom, http: httpx.Client, clock: FakeClock) -> None:
    r = post(http, md("## 售后预警\n> 订单 **123**"))
    assert r.json() == {"errcode": 0, "errmsg": "ok"}
    [m] = fake.messages(KEY)
    assert (m.key, m.msgtype, m.content, m.time) == (KEY, "markdown", "## 售后预警\n> 订单 **123**", clock.t)
    assert fake.rejections() == []


def test_unknown_or_missing_key_is_93000_in_http_200(fake: FakeWeCom, http: httpx.Client) -> None:
    r = post(http, md("x"), key="nope")
    assert errcode(r) == 93000
    assert r.json()["errmsg"].startswith("invalid webhook url, hint: [")
    assert "more info at https://open.work.weixin.qq.com/devtool/query?e=93000" in r.json()["errmsg"]
    r = http.post("/cgi-bin/webhook/send", json=md("x"))
    assert errcode(r) == 93000
    assert fake.messages() == [] and fake.rejections() == [93000, 93000]


def test_markdown_limit_is_4096_utf8_bytes(fake: FakeWeCom, http: httpx.Client) -> None:
    assert errcode(post(http, md("a" * 4096))) == 0
    r = post(http, md("a" * 4097))
    assert errcode(r) == 40058
    assert r.json()["errmsg"].startswith("markdown.content exceed max length 4096. invalid Request Parameter, hint:")
    chinese = "预" * 1500  # 1500 characters, but 4500 bytes
    assert len(chinese) < 4096 < len(chinese.encode("utf-8"))
    assert errcode(post(http, md(chinese))) == 40058
    assert errcode(post(http, md("预" * 1365 + "a"))) == 0  # 4096 bytes exactly
    assert [len(m.content.encode()) for m in fake.messages()] == [4096, 4096]


def test_text_limit_is_2048_utf8_bytes(fake: FakeWeCom, http: httpx.Client) -> None:
    assert errcode(post(http, text("预" * 682 + "ab"))) == 0  # 2048 bytes
    r = post(http, text("预" * 683))  # 683 characters, 2049 bytes
    assert errcode(r) == 40058
    assert r.json()["errmsg"].startswith("text.content exceed max length 2048.")


def test_bad_msgtype_is_40008_and_empty_content_44004(fake: FakeWeCom, http: httpx.Client) -> None:
    assert errcode(post(http, {"msgtype": "voice", "voice": {"media_id": "x"}})) == 40008
    assert errcode(post(http, {"msgtype": "markdown"})) == 40008
    assert errcode(post(http, {"markdown": {"content": "x"}})) == 40008
    assert errcode(post(http, text(""))) == 44004
    assert errcode(post(http, b"{not json")) == 40035
    assert fake.messages() == []


def test_unicode_escapes_are_refused_but_a_literal_backslash_u_is_fine(fake: FakeWeCom, http: httpx.Client) -> None:
    escaped = json.dumps(md("售后")).encode("ascii")  # ensure_ascii: \u552e\u540e
    assert errcode(post(http, escaped)) == 40033
    assert errcode(post(http, md("literally \\u1234"))) == 0
    assert [m.content for m in fake.messages()] == ["literally \\u1234"]


def test_text_mentions_are_recorded_markdown_cannot_mention(fake: FakeWeCom, http: httpx.Client) -> None:
    post(http, md("x") | {"mentioned_mobile_list": ["13800000000"]})
    post(http, text("看这里", mentioned_mobile_list=["13800000000", "@all"], mentioned_list=["wangqing"]))
    md_msg, text_msg = fake.messages(KEY)
    assert md_msg.mentioned_mobile_list == ()
    assert text_msg.mentioned_mobile_list == ("13800000000", "@all")
    assert text_msg.mentioned_list == ("wangqing",)


def test_image_needs_matching_md5_and_at_most_2mb(fake: FakeWeCom, http: httpx.Client) -> None:
    def image(data: bytes, md5: str | None = None) -> dict[str, Any]:
        b64 = base64.b64encode(data).decode()
        return {"msgtype": "image", "image": {"base64": b64, "md5": md5 or hashlib.md5(data).hexdigest()}}

    png = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    assert errcode(post(http, image(png))) == 0
    assert errcode(post(http, image(png, md5="0" * 32))) == 40009
    assert errcode(post(http, image(b"x" * (2 * 1024 * 1024 + 1)))) == 40009
    [m] = fake.messages()
    assert m.msgtype == "image" and m.image == png and m.content == hashlib.md5(png).hexdigest()


def test_more_than_20_a_minute_is_45009_in_a_sliding_window(
    fake: FakeWeCom, http: httpx.Client, clock: FakeClock
) -> None:
    for _ in range(10):
        assert errcode(post(http, md("a"))) == 0
    clock.t += 30
    for _ in range(10):
        assert errcode(post(http, md("b"))) == 0
    r = post(http, md("c"))
    assert errcode(r) == 45009 and r.json()["errmsg"].startswith("api freq out of limit")
    assert errcode(post(http, md("c"), key="k2")) == 93000  # other keys have their own window
    clock.t += 29.9
    assert errcode(post(http, md("c"))) == 45009  # the first ten are 59.9 s old
    clock.t += 0.1
    for _ in range(10):  # the first ten left the window; the second ten are still in it
        assert errcode(post(http, md("d"))) == 0
    assert errcode(post(http, md("e"))) == 45009
    assert len(fake.messages(KEY)) == 30


def test_refused_messages_do_not_use_up_the_rate(fake: FakeWeCom, http: httpx.Client) -> None:
    for _ in range(25):
        assert errcode(post(http, md("a" * 5000))) == 40058
    for _ in range(20):
        assert errcode(post(http, md("ok"))) == 0


def test_scripted_failures_come_in_order_then_normal_service(fake: FakeWeCom, http: httpx.Client) -> None:
    fake.fail(KEY, ["errcode:-1", "http:500", "drop", "html", "ok", "errcode:45009"])
    assert errcode(post(http, md("1"))) == -1
    assert post(http, md("2")).status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):
        post(http, md("3"))
    r = post(http, md("4"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert errcode(post(http, md("5"))) == 0
    assert errcode(post(http, md("6"))) == 45009
    assert errcode(post(http, md("7"))) == 0
    assert [m.content for m in fake.messages()] == ["5", "7"]
    assert fake.rejections(KEY) == [-1, "http:500", "drop", "html", 45009]


def test_fail_rejects_unknown_kinds(fake: FakeWeCom) -> None:
    with pytest.raises(ValueError, match="unknown failure kind"):
        fake.fail(KEY, ["errcode:-1", "explode"])


def test_keys_can_be_added_and_removed(fake: FakeWeCom, http: httpx.Client) -> None:
    assert errcode(post(http, md("x"), key="k2")) == 93000
    fake.add_key("k2")
    assert errcode(post(http, md("x"), key="k2")) == 0
    fake.remove_key("k2")  # the robot was removed from the group
    assert errcode(post(http, md("x"), key="k2")) == 93000


def test_clear_forgets_messages_scripts_and_rate(fake: FakeWeCom, http: httpx.Client) -> None:
    for _ in range(20):
        post(http, md("x"))
    fake.fail(KEY, ["errcode:-1"])
    fake.clear()
    assert fake.messages() == [] and fake.rejections() == []
    assert errcode(post(http, md("after"))) == 0


def test_http_control_for_other_processes(fake: FakeWeCom, http: httpx.Client) -> None:
    assert http.post("/__fake/keys", json={"add": ["k3"]}).json() == {"ok": True}
    assert http.post("/__fake/fail", json={"key": "k3", "kinds": ["errcode:-1"]}).json() == {"ok": True}
    assert errcode(post(http, md("first"), key="k3")) == -1
    post(http, md("预警"), key="k3")
    post(http, text("@", mentioned_mobile_list=["13800000000"]), key="k3")
    got = http.get("/__fake/messages", params={"key": "k3"}).json()["messages"]
    assert [(m["msgtype"], m["content"], m["mentioned_mobile_list"]) for m in got] == [
        ("markdown", "预警", []), ("text", "@", ["13800000000"])
    ]
    assert http.get("/__fake/rejections", params={"key": "k3"}).json() == {"rejections": [-1]}
    assert http.get("/__fake/messages", params={"key": KEY}).json() == {"messages": []}
    http.post("/__fake/clear", json={})
    assert http.get("/__fake/messages").json() == {"messages": []}
