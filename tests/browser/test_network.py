"""Many shops on one host: each shop's own proxy, user agent and locale; the host's request budget; doctor's exit IP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from agent.browser.check import Checker
from agent.browser.pool import BrowserPool, Network
from agent.config import Config, ShopConfig, load_config, locators
from agent.core.models import ShopResult
from agent.sandbox.generate import generate_scenario
from bench.run_bench import PASSWORD, prime_sessions
from tests.conftest import Sandbox, run_async
from tests.forward_proxy import ForwardProxy

pytestmark = pytest.mark.browser
PROXY_USER, PROXY_PASS = "shop-a", "pr0xy-s3cret"


def write_config(tmp_path: Path, url: str, shops: Sequence[dict[str, str]], agent: Sequence[str] = (),
                 browser: Sequence[str] = ()) -> Config:
    lines = ["[agent]", f'data_dir = "{tmp_path / "data"}"', "pacing_seconds = 0", "rate_limit_backoff = [0.2, 0.2]",
             *agent, "[browser]", "timeout_seconds = 8", *browser]
    for shop in shops:
        lines += ["[[shops]]", f'base_url = "{url}"', 'password_env = "PDD_TEST_PASSWORD"',
                  *(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in shop.items())]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def check(config: Config, mode: str = "auto") -> tuple[list[ShopResult], Checker]:
    async def go() -> tuple[list[ShopResult], Checker]:
        async with BrowserPool(timeout_seconds=8) as pool:
            checker = Checker(config, pool, locators.load())
            return await checker.check_all(mode=mode), checker

    return run_async(go())


@pytest.fixture
def proxies() -> Iterator[tuple[ForwardProxy, ForwardProxy]]:
    a = ForwardProxy("proxy-A", "127.0.0.2", PROXY_USER, PROXY_PASS).start()
    b = ForwardProxy("proxy-B", "127.0.0.3").start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_TEST_PASSWORD", "demo-pass")


def test_each_shop_leaves_through_its_own_proxy_pages_and_requests_alike(
    sandbox: Sandbox, tmp_path: Path, proxies: tuple[ForwardProxy, ForwardProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = proxies
    monkeypatch.setenv("SHOP_A_PROXY", a.url)  # credentials from the environment, as an admin would keep them
    config = write_config(tmp_path, sandbox.url, [
        {"name": "店A", "username": "示例旗舰店", "proxy": "${SHOP_A_PROXY}"},
        {"name": "店B", "username": "示例旗舰店:客服01", "proxy": b.url},
    ])
    first, _ = check(config)  # logins and page mode
    second, _ = check(config)  # API mode through the context's request API
    assert [r.mode for r in first] == ["page", "page"] and [r.mode for r in second] == ["api", "api"]
    assert all(r.ok for r in (*first, *second)), [r.error for r in (*first, *second)]
    clients: dict[str, dict[str, int]] = sandbox.control.stats()["clients"]
    seen_a, seen_b = clients["示例旗舰店"], clients["示例旗舰店:客服01"]
    assert seen_a and all(k.startswith("127.0.0.2 via") for k in seen_a), seen_a  # every request: proxy A's exit
    assert seen_b and all(k.startswith("127.0.0.3 via") for k in seen_b), seen_b
    assert "127.0.0.2 via 1.1 proxy-A" in seen_a  # the page's own requests, forwarded by proxy A
    assert any(k.startswith("CONNECT") for k in a.requests) and any(k.startswith("POST") for k in a.requests)
    assert a.refused >= 1 and b.refused == 0  # proxy A asked for its login and Chromium gave it
    assert sum(b.requests.values()) and not any("proxy-B" in k for k in seen_a)


def test_a_warm_check_goes_by_plain_http_as_the_shop_and_opens_no_browser_context(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sandbox.url, [
        {"name": "店A", "username": "示例旗舰店", "user_agent": "Mozilla/5.0 ShopA/1.0", "locale": "zh-TW"},
        {"name": "店B", "username": "示例旗舰店:客服01"},
    ])
    first, _ = check(config)  # logins and page mode: the sessions and plans are saved
    assert [r.mode for r in first] == ["page", "page"], [r.error for r in first]
    state = tmp_path / "data"
    sessions = sorted(state.rglob("state.json"))
    sandbox.control.reset_stats()
    opened: list[object] = []

    async def go() -> tuple[list[ShopResult], str]:
        async with BrowserPool(timeout_seconds=8) as pool:
            real = pool.new_context

            async def counting(*args: object, **kwargs: object) -> object:
                opened.append(args)
                return await real(*args, **kwargs)  # type: ignore[arg-type]

            pool.new_context = counting  # type: ignore[method-assign]
            results = await Checker(config, pool, locators.load()).check_all()
            return results, await pool.user_agent()

    second, browser_ua = run_async(go())
    assert [r.mode for r in second] == ["api", "api"] and all(r.ok for r in second), [r.error for r in second]
    assert opened == []  # no browser context: the saved cookies went by plain HTTP
    assert all(r.aftersales for r in second)
    agents: dict[str, dict[str, int]] = sandbox.control.stats()["agents"]
    assert set(agents["示例旗舰店"]) == {"Mozilla/5.0 ShopA/1.0 | zh-TW,zh;q=0.9"}  # the shop's own identity
    assert set(agents["示例旗舰店:客服01"]) == {f"{browser_ua} | zh-CN,zh;q=0.9"}  # the browser's, as Chrome
    assert "HeadlessChrome" not in browser_ua and "Chrome/" in browser_ua
    assert sessions and all(p.stat().st_mode & 0o777 == 0o600 for p in sessions)


def test_user_agent_and_locale_are_the_shops(sandbox: Sandbox) -> None:
    config_shop = ShopConfig(name="店A", username="示例旗舰店", user_agent="Mozilla/5.0 ShopA/1.0", locale="zh-TW")

    async def go() -> tuple[str, str]:
        async with BrowserPool(timeout_seconds=8) as pool:
            ctx = await pool.new_context(network=Network.of(config_shop))
            page = await ctx.new_page()
            await page.goto(sandbox.url + "/login")
            got = await page.evaluate("[navigator.userAgent, navigator.language]")
            await ctx.close()
            return got[0], got[1]

    assert run_async(go()) == ("Mozilla/5.0 ShopA/1.0", "zh-TW")


def test_the_host_budget_holds_across_shops_and_a_rate_limit_slows_everyone(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = generate_scenario(7, 12, pending=3, expiring=1, evidence=1, closed=0)
    sandbox.control.load(scenario)
    shops = [{"name": s["name"], "username": s["accounts"][0]["username"]} for s in scenario["shops"]]  # type: ignore
    config = write_config(tmp_path, sandbox.url, shops, agent=["max_requests_per_second = 8"],
                          browser=["max_concurrent_checks = 12"])
    monkeypatch.setenv("PDD_TEST_PASSWORD", PASSWORD)
    prime_sessions(sandbox.url, config, None)  # warm sessions: request-only checks, all 12 at once
    sandbox.control.reset_stats()
    results, checker = check(config, mode="api")
    assert all(r.ok for r in results), [r.error for r in results]
    stats = sandbox.control.stats()
    assert 1 <= stats["peak_per_second"] <= 8, stats["peak_per_second"]  # never above the budget
    assert checker.budget.taken >= 12 * 4
    sandbox.control.reset_stats()
    sandbox.control.arm_rate_limit(1)  # one shop meets HTTP 429: the whole host slows down
    results, checker = check(config, mode="api")
    assert all(r.ok for r in results), [r.error for r in results]
    assert checker.budget.slowdowns == 1 and checker.budget.rate == 4
    assert sandbox.control.stats()["peak_per_second"] <= 8


def test_doctor_shows_the_exit_ip_through_the_proxy_and_never_its_password(
    sandbox: Sandbox, tmp_path: Path, proxies: tuple[ForwardProxy, ForwardProxy]
) -> None:
    a, _ = proxies
    config = write_config(tmp_path, sandbox.url, [{"name": "店A", "username": "示例旗舰店", "proxy": a.url}])
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
    cmd = [sys.executable, "-m", "agent", "doctor", "--config", str(config.path), "--shop", "店A"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"exit IP the backend sees: 127.0.0.2 (代理 / via proxy http://***@127.0.0.1:{a.port})" in done.stdout
    assert PROXY_PASS not in done.stdout + done.stderr
