"""The check under the sandbox's Anti-Content policies, in real Chromium: cookie-only as the live callers do it
passes while mms accepts it; under the strictest policy (fresh, single use, bound to the user agent, fingerprint and
account) the warm check falls through to signed requests and stays a handful of plain-HTTP calls, remembers it, finds
a new build again, and without a signer degrades to page mode with a finding instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.browser.check import Checker
from agent.browser.pool import BrowserPool
from agent.config import locators
from agent.core.models import ShopResult
from agent.sandbox.risk import LEVELS
from tests.browser.test_network import check, write_config
from tests.conftest import Sandbox, run_async

pytestmark = pytest.mark.browser
__all__: list[str] = []

ROUTES = ("/mercury/mms/afterSales/queryList", "/mercury/mms/afterSales/queryCount",
          "/mercury/merchant/afterSales/queryWaitHandleCount")


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_TEST_PASSWORD", "demo-pass")


def strict(sandbox: Sandbox) -> None:
    sandbox.control.risk(levels={r: "account" for r in ROUTES}, fresh_seconds=30, live_headers=True)


def flags(result: ShopResult) -> list[tuple[str, bool, bool]]:
    """Each item's id with its watch-card flags (投诉预警, 买家催处理)."""
    return sorted((i.id, i.complaint, i.urged) for i in result.aftersales + result.evidence)


def test_without_a_signer_the_strict_policy_costs_a_page_read(sandbox: Sandbox, tmp_path: Path) -> None:
    config = write_config(tmp_path, sandbox.url, [{"name": "店A", "username": "示例旗舰店"}],
                          browser=["[api]", "max_signers = 0"])
    [first], _ = check(config)  # logs in, reads the page, learns the plan
    assert first.ok and first.mode == "page", first.error
    sandbox.control.risk(live_headers=True)  # cookie-only as the live callers do it (etag = rckk): it passes
    [cookie_only], _ = check(config)
    assert cookie_only.ok and cookie_only.mode == "api", cookie_only.error
    strict(sandbox)
    sandbox.control.reset_stats()
    [warm], _ = check(config)  # 54001, no signer: the page, whose own script signs each request
    assert warm.ok and warm.mode == "page" and len(warm.aftersales) == len(first.aftersales), warm.error
    assert any(f.kind == "api_fallback" for f in warm.findings)
    assert not [f for f in warm.findings if f.kind == "watch_failed"], warm.findings  # signed by the check's page
    assert flags(warm) == flags(first) and any(c or u for _, c, u in flags(first))
    assert len(warm.platform) == len(first.platform) > 0
    counts = sandbox.control.stats()["counts"]
    assert counts.get("risk:no Anti-Content", 0) >= 1  # the plain-HTTP attempt
    assert not [k for k in counts if k.startswith("risk:") and k != "risk:no Anti-Content"], counts  # page: all valid
    sandbox.control.settings(build="9ZzK1")  # a new build: the module and its names move, the page follows
    [rebuilt], _ = check(config)
    assert rebuilt.ok and len(rebuilt.aftersales) == len(first.aftersales), rebuilt.error


def test_a_cold_check_under_the_strictest_policy_reads_its_watch_cards_signed_by_its_own_page(
    sandbox: Sandbox, tmp_path: Path,
) -> None:
    """The first check of a shop (log in, read the page) under the strictest policy from the start: the watch cards
    that follow the page read carry tokens minted by that page, so nothing is refused and nothing left unread."""
    strict(sandbox)
    config = write_config(tmp_path, sandbox.url, [{"name": "店A", "username": "示例旗舰店"}],
                          browser=["[api]", "max_signers = 0"])  # no signer page: the check's own page signs
    [cold], _ = check(config)
    assert cold.ok and cold.mode == "page", cold.error
    assert not [f for f in cold.findings if f.kind == "watch_failed"], cold.findings
    assert any(c or u for _, c, u in flags(cold)) and cold.platform
    refused = {k: n for k, n in sandbox.control.stats()["counts"].items() if k.startswith("risk:")}
    assert not refused, refused


def test_under_the_strictest_policy_the_warm_check_stays_plain_http_signed(sandbox: Sandbox, tmp_path: Path) -> None:
    config = write_config(tmp_path, sandbox.url, [{"name": "店A", "username": "示例旗舰店"},
                                                  {"name": "店B", "username": "示例旗舰店:客服01"}])
    first, _ = check(config)
    assert all(r.ok and r.mode == "page" for r in first), [r.error for r in first]
    strict(sandbox)
    sandbox.control.reset_stats()
    warm, checker = check(config)  # cookie-only meets 54001, the same reads signed pass
    assert all(r.ok and r.mode == "api" for r in warm), [(r.mode, r.error) for r in warm]
    assert [len(r.aftersales) for r in warm] == [len(r.aftersales) for r in first]
    assert all(any(f.kind == "api_fallback" for f in r.findings) for r in warm)
    assert checker.signers is not None and checker.signers.open == 1  # both shops go direct: one signer page
    assert checker.request_stats()["signed_hosts"] == 1  # remembered for [api] signing_memory, shown by status
    counts = sandbox.control.stats()["counts"]
    assert "risk:used before" not in counts and "risk:another fingerprint" not in counts, counts
    assert "GET /login/" not in counts or counts["GET /login/"] <= 1  # the signer's page, not a login per shop

    async def rounds() -> list[list[ShopResult]]:  # one long-lived checker, as the service has
        async with BrowserPool(timeout_seconds=8) as pool:
            checker = Checker(config, pool, locators.load())
            out = [await checker.check_all()]
            sandbox.control.settings(build="7Yy2Q")  # a new build: the open signer page's tokens are refused now
            out.append(await checker.check_all())  # a signed 54001: the signer renews; the page reads this time
            out.append(await checker.check_all())
            return out

    signed, rebuilt, again = run_async(rounds())
    assert all(r.ok and r.mode == "api" for r in signed), [(r.mode, r.error) for r in signed]
    assert all(r.ok for r in rebuilt), [r.error for r in rebuilt]
    assert all(r.ok and r.mode == "api" for r in again), [(r.mode, r.error) for r in again]  # found again
    assert max(r.duration for r in again) < 2.0  # a handful of plain-HTTP requests, signed by the page kept open


def test_under_every_policy_level_the_warm_check_stays_a_handful_of_plain_http_requests(
    sandbox: Sandbox, tmp_path: Path,
) -> None:
    """Each level the sandbox enforces (none … bound to the account), met fresh by a new checker as after a restart:
    cookie-only while it passes, else signed at once; every item read, no page, a handful of requests."""
    config = write_config(tmp_path, sandbox.url, [{"name": "店A", "username": "示例旗舰店"}])
    [first], _ = check(config)  # logs in, reads the page, learns the plan
    assert first.ok and first.mode == "page", first.error

    async def rounds() -> dict[str, tuple[list[ShopResult], dict[str, int]]]:
        out: dict[str, tuple[list[ShopResult], dict[str, int]]] = {}
        async with BrowserPool(timeout_seconds=8) as pool:
            for level in LEVELS:
                sandbox.control.risk(levels=dict.fromkeys(ROUTES, level), fresh_seconds=30, live_headers=True)
                checker = Checker(config, pool, locators.load())  # nothing remembered from the level before
                await checker.check_all()  # meets the level (cookie-only, then signed where it asks)
                sandbox.control.reset_stats()
                results = await checker.check_all()
                out[level] = results, dict(sandbox.control.stats()["counts"])
                if checker.signers is not None:
                    await checker.signers.close()
        return out

    by_level = run_async(rounds())
    for level, ([r], counts) in by_level.items():
        assert r.ok and r.mode == "api", (level, r.mode, r.error)
        assert flags(r) == flags(first) and len(r.platform) == len(first.platform), level
        assert r.duration < 2.0, (level, r.duration)
        pages = {k: n for k, n in counts.items()
                 if k.startswith("GET ") and not any(p in k for p in ("/api/", "/static/", "/__sandbox/"))}
        assert not pages, (level, pages)  # no page loaded by the check (a signer page opens once, the round before)
        calls = sum(n for k, n in counts.items() if k.startswith("POST "))
        assert calls <= 8, (level, counts)  # a handful: counts, the two lists, the watch cards showing items
        assert not [k for k in counts if k.startswith("risk:")], (level, counts)  # nothing refused once settled
