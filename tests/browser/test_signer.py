"""Signer pages against the sandbox under the strictest Anti-Content policy (fresh, single use, bound to the user
agent, the fingerprint and the account): each request gets a fresh token the server accepts, a token is never
reused, shops on different proxies get different pages, a new build is found again, a crash reopens the page, and
the token rate is bounded."""

from __future__ import annotations

import time

import httpx
import pytest

from agent.browser.pool import BrowserPool, Network
from agent.browser.signer import Signer, Signers
from agent.config import locators
from tests.browser.test_network import PROXY_PASS, PROXY_USER, proxies
from tests.conftest import Sandbox, run_async
from tests.forward_proxy import ForwardProxy

pytestmark = pytest.mark.browser
__all__ = ["proxies"]  # the fixture
QL = "/mercury/mms/afterSales/queryList"
ROUTES = (QL, "/mercury/mms/afterSales/queryCount", "/mercury/merchant/afterSales/queryWaitHandleCount")


def shop_cookies(c: httpx.Client) -> dict[str, str]:
    jar = dict(c.cookies)
    return {"_nano_fp": jar["_nano_fp"], "rckk": jar["rckk"]}


def signed_query(c: httpx.Client, token: str, ua: str) -> dict:
    return dict(c.post(QL, json={"pageNumber": 1, "pageSize": 10}, headers={"Anti-Content": token, "User-Agent": ua,
                                                                               "etag": dict(c.cookies)["rckk"]}).json())


def test_a_signer_mints_a_fresh_token_per_request_that_the_strictest_policy_accepts(sandbox: Sandbox) -> None:
    sandbox.control.risk(levels={r: "account" for r in ROUTES}, fresh_seconds=30, live_headers=True)
    shop_a, shop_b = sandbox.login_http("示例旗舰店"), sandbox.login_http("示例旗舰店:客服01")

    async def go() -> None:
        async with BrowserPool(timeout_seconds=8) as pool:
            signers = Signers(pool, locators.load(), limit=2, per_second=50)
            signer = await signers.for_network(Network(), sandbox.url)
            ua = await pool.user_agent()
            tokens = []
            for c in (shop_a, shop_b, shop_a, shop_b):
                token = await signer.mint(shop_cookies(c))
                tokens.append(token)
                assert signed_query(c, token, ua)["success"]
            assert len(set(tokens)) == 4  # never reused
            assert signed_query(shop_a, tokens[0], ua)["errorCode"] == 54001  # a reuse is refused
            cross = await signer.mint(shop_cookies(shop_a))
            assert signed_query(shop_b, cross, ua)["errorCode"] == 54001  # A's token never goes with B's request
            assert await signers.for_network(Network(), sandbox.url) is signer  # shops without a proxy share it
            module = signer.module

            sandbox.control.settings(build="9ZzK1")  # the site ships a new build: module ids and the key move
            stale = await signer.mint(shop_cookies(shop_a))
            assert signed_query(shop_a, stale, ua)["errorCode"] == 54001
            await signer.renew()  # what a signed 54001 does: the page is opened again, the SDK found again
            fresh = await signer.mint(shop_cookies(shop_a))
            assert signed_query(shop_a, fresh, ua)["success"] and signer.module != module

            assert signer.page is not None
            await signer.page.close()  # a crashed page: the next token opens it again
            assert signed_query(shop_b, await signer.mint(shop_cookies(shop_b)), ua)["success"]

            slow = Signer(pool, Network(), sandbox.url, locators.load(), per_second=5)
            await slow.mint(shop_cookies(shop_a))
            started = time.monotonic()
            for _ in range(6):
                await slow.mint(shop_cookies(shop_a))
            assert time.monotonic() - started >= 0.9  # six more at five a second: at least five waits of 0.2 s
            await slow.close()
            await signers.close()

    run_async(go())
    counts = sandbox.control.stats()["counts"]
    assert counts["risk:used before"] == 1  # the reuse, and A's token on B's request (B's own fingerprint):
    assert counts.get("risk:another fingerprint", 0) + counts.get("risk:another account", 0) == 1


def test_shops_kept_apart_on_the_network_are_signed_by_different_pages(
    sandbox: Sandbox, proxies: tuple[ForwardProxy, ForwardProxy],
) -> None:
    a, b = proxies

    async def go() -> None:
        async with BrowserPool(timeout_seconds=8) as pool:
            signers = Signers(pool, locators.load(), limit=2)
            net_a = Network(proxy={"server": f"http://127.0.0.1:{a.port}", "bypass": "<-loopback>",
                                   "username": PROXY_USER, "password": PROXY_PASS}, proxy_url=a.url)
            net_b = Network(proxy={"server": f"http://127.0.0.1:{b.port}", "bypass": "<-loopback>"}, proxy_url=b.url)
            sa, sb = await signers.for_network(net_a, sandbox.url), await signers.for_network(net_b, sandbox.url)
            assert sa is not sb
            await sa.mint({"_nano_fp": "x"})
            await sb.mint({"_nano_fp": "y"})
            assert signers.open == 2
            third = await signers.for_network(Network(user_agent="Mozilla/5.0 C"), sandbox.url)
            assert third not in (sa, sb) and signers.open == 1  # at most two: the least recently used one closed
            await signers.close()

    run_async(go())
    assert sum(a.requests.values()) and sum(b.requests.values())  # each page loaded through its own proxy
