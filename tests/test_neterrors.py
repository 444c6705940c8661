"""Network failures said in one line for a person (pure), whatever library raised them."""

from __future__ import annotations

import pytest

from agent.browser.neterrors import describe, flatten


@pytest.mark.parametrize(("raw", "said"), [
    ("APIRequestContext.get: connect ECONNREFUSED 127.0.0.1:1\nCall log:\n  - → GET http://127.0.0.1:1/", "连接被拒绝"),
    ("[Errno 111] Connection refused", "连接被拒绝"),
    ("getaddrinfo ENOTFOUND no-such-host.invalid", "域名解析失败"),
    ("Page.goto: net::ERR_NAME_NOT_RESOLVED at http://x.invalid/login", "域名解析失败"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "TLS"),
    ("net::ERR_PROXY_CONNECTION_FAILED", "代理连接失败"),
    ("ReadTimeout: timed out", "连接超时"),
    ("Server disconnected without sending a response.", "连接被对方断开"),
    ("[Errno 101] Network is unreachable", "网络不可达"),
], ids=["refused", "refused-errno", "dns", "dns-chromium", "tls", "proxy", "timeout", "reset", "unreachable"])
def test_each_kind_is_one_line_naming_the_address(raw: str, said: str) -> None:
    line = describe(raw, "http://127.0.0.1:1")
    assert said in line and line.startswith("http://127.0.0.1:1：") and "\n" not in line and "Call log" not in line


def test_an_exception_group_is_unwrapped_never_shown_as_its_repr() -> None:
    try:
        try:
            raise OSError(111, "Connection refused")
        except OSError as inner:
            raise ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionError("connect failed")]) from inner
    except ExceptionGroup as exc:
        line = describe(exc, "http://h:8")
        assert "TaskGroup" in flatten(exc) or "connect failed" in flatten(exc)
    assert "连接被拒绝" in line and "TaskGroup" not in line


def test_an_unknown_error_keeps_its_first_meaningful_line() -> None:
    assert describe("weird failure\nCall log:\n - x", "u") == "u：weird failure"
