"""The Apprise channel (the optional extra, installed for the tests) against a local HTTP server: a json:// URL
delivers, a 500 is a retry, the result is read by truthiness, this project's own channels are refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notifiers import AppriseUrls, Message, RetryableError
from tests.conftest import run_async


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, object]] = []
        self.status = 200


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bodies.append(json.loads(raw))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def send(channel: AppriseUrls, message: Message) -> str:
    return run_async(channel.send(message))


MSG = Message(title="【示例旗舰店】售后预警：1 单即将逾期", markdown="", html="",
              text="【示例旗舰店】售后预警：1 单即将逾期\n\n1. 【紧急·售后】仅退款 订单 240101-123")


def test_a_json_url_delivers_and_is_recorded_as_unverified(receiver: Receiver) -> None:
    channel = AppriseUrls([f"json://127.0.0.1:{receiver.server_address[1]}/push"])
    answer = send(channel, MSG)
    assert "unverified" in answer and AppriseUrls.verified is False
    [body] = receiver.bodies
    assert body["title"] == MSG.title and "240101-123" in str(body["message"])
    assert not str(body["message"]).startswith("【示例旗舰店】售后预警")  # the title is not repeated in the body


def test_a_server_error_is_a_retry(receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(RetryableError, match="Apprise reported a failure"):
        send(AppriseUrls([f"json://127.0.0.1:{receiver.server_address[1]}/push"]), MSG)


@pytest.mark.parametrize("url", ["dingtalk://SECxx@token/13800000000", "feishu://token", "wecombot://key",
                                 "wecom://token", "lark://token", "wechat://corp:secret@1000002/@all"])
def test_this_projects_own_channels_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not sent through Apprise here"):
        AppriseUrls([url])
