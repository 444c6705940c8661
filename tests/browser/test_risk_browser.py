"""The sandbox's risk script in real Chromium: the workbench's own requests pass the strictest Anti-Content policy
(fresh, single use, bound to the fingerprint and the account), a new build still works for the page, and a warm
cookie-only check meets 54001 and has to read as a person: the cost the signer (issue 24) is there to remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.test_network import check, write_config
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
__all__: list[str] = []

ROUTES = ("/mercury/mms/afterSales/queryList", "/mercury/mms/afterSales/queryCount",
          "/mercury/merchant/afterSales/queryWaitHandleCount")


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_TEST_PASSWORD", "demo-pass")


def test_the_pages_own_script_passes_the_strictest_policy_and_cookie_only_does_not(
    sandbox: Sandbox, tmp_path: Path,
) -> None:
    config = write_config(tmp_path, sandbox.url, [{"name": "店A", "username": "示例旗舰店"}])
    [first], _ = check(config)  # logs in, reads the page, learns the plan
    assert first.ok and first.mode == "page", first.error
    sandbox.control.risk(live_headers=True)  # cookie-only as the live callers do it: etag = rckk, and it passes
    [cookie_only], _ = check(config)
    assert cookie_only.ok and cookie_only.mode == "api", cookie_only.error
    sandbox.control.risk(levels={r: "account" for r in ROUTES}, fresh_seconds=30)
    sandbox.control.reset_stats()
    [warm], _ = check(config)  # cookie-only first: 54001; then the page, whose script signs each request
    assert warm.ok and warm.mode == "page" and len(warm.aftersales) == len(first.aftersales), warm.error
    assert any(f.kind == "api_fallback" for f in warm.findings)
    counts = sandbox.control.stats()["counts"]
    assert counts.get("risk:no Anti-Content", 0) >= 1  # the plain-HTTP attempt
    assert not [k for k in counts if k.startswith("risk:") and k != "risk:no Anti-Content"], counts  # page: all valid
    sandbox.control.settings(build="9ZzK1")  # a new build: the module and its names move, the page follows
    [rebuilt], _ = check(config)
    assert rebuilt.ok and len(rebuilt.aftersales) == len(first.aftersales), rebuilt.error
