"""A shop's requests without the browser (browser.http_client): its cookies only, written back; secrets kept out."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from agent.browser.http_client import HttpClients, ShopHttp, accept_language, proxy_url
from tests.conftest import run_async

URL = "http://127.0.0.1:8080/mercury/mms/afterSales/queryCount"


def state(path: Path, **cookies: str) -> Path:
    path.write_text(json.dumps({"cookies": [
        {"name": k, "value": v, "domain": "127.0.0.1", "path": "/", "expires": -1, "httpOnly": True,
         "secure": False, "sameSite": "Lax"} for k, v in cookies.items()],
        "origins": [{"origin": "http://127.0.0.1:8080", "localStorage": [{"name": "k", "value": "v"}]}]}),
        encoding="utf-8")
    path.chmod(0o600)
    return path


def test_each_shop_sends_only_its_own_cookies_and_keeps_what_the_backend_sets(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        renew = "PASS_ID=a" in request.headers["cookie"]
        extra = [("Set-Cookie", "PASS_ID=renewed; Path=/; HttpOnly")] if renew else []
        return httpx.Response(200, json={"success": True}, headers=[("Date", "Wed, 02 Dec 2026 10:00:00 GMT"), *extra])

    clients = HttpClients(httpx.MockTransport(answer))
    a_file, b_file = state(tmp_path / "a.json", PASS_ID="a", rckk="ra"), state(tmp_path / "b.json", PASS_ID="b")
    a = ShopHttp(clients, a_file, user_agent="UA-A", locale="zh-TW")
    b = ShopHttp(clients, b_file, user_agent="UA-B")
    assert a.client is b.client  # one client for the shops without a proxy

    async def go() -> None:
        got = await a.send("POST", URL, {"pageNumber": 1, "搜索": None}, {"Origin": "http://127.0.0.1:8080"}, 5)
        assert got.status == 200 and got.json() == {"success": True} and "set-cookie" not in got.headers
        await b.send("POST", URL, None, {}, 5)
        await a.save()
        await b.save()
        await clients.aclose()

    run_async(go())
    first, second = seen
    assert first.headers["cookie"] == "PASS_ID=a; rckk=ra" and second.headers["cookie"] == "PASS_ID=b"
    assert first.headers["user-agent"] == "UA-A" and first.headers["accept-language"] == "zh-TW,zh;q=0.9"
    assert second.headers["user-agent"] == "UA-B" and second.headers["accept-language"] == "zh-CN,zh;q=0.9"
    assert first.content == '{"pageNumber":1,"搜索":null}'.encode() and second.content == b""
    saved = json.loads(a_file.read_text(encoding="utf-8"))
    assert {c["name"]: c["value"] for c in saved["cookies"]} == {"PASS_ID": "renewed", "rckk": "ra"}
    assert saved["origins"][0]["localStorage"] == [{"name": "k", "value": "v"}]  # the browser's storage stays
    assert a_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(b_file.read_text(encoding="utf-8"))["cookies"][0]["value"] == "b"  # untouched: no write


def test_a_failed_request_names_the_reason_never_the_proxy_password(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("proxy http://shop:s3cret-pw@10.0.0.1:3128 refused the connection")

    clients = HttpClients(httpx.MockTransport(refuse))
    shop = ShopHttp(clients, state(tmp_path / "s.json", PASS_ID="x"), user_agent="UA", secrets=("s3cret-pw",))
    with pytest.raises(ConnectionError) as err:
        run_async(shop.send("GET", URL, None, {}, 5))
    assert "s3cret-pw" not in str(err.value) and "***" in str(err.value)
    run_async(clients.aclose())


def test_proxy_urls_and_languages() -> None:
    assert proxy_url(None) is None
    assert proxy_url(("http://10.0.0.1:3128", "", "")) == "http://10.0.0.1:3128"
    assert proxy_url(("socks5://h:1080", "u@x", "p:w/")) == "socks5://u%40x:p%3Aw%2F@h:1080"
    assert accept_language("") == "zh-CN,zh;q=0.9" and accept_language("en") == "en"


def test_every_proxy_kind_gets_a_client_of_its_own() -> None:
    clients = HttpClients()
    kinds = ["http://127.0.0.1:9", "https://127.0.0.1:9", "socks5://127.0.0.1:9"]  # socks5: the socksio extra
    got = [clients.client(p) for p in kinds]
    assert len({id(c) for c in got}) == 3 and clients.client(kinds[2]) is got[2]
    run_async(clients.aclose())
