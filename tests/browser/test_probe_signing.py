"""`doctor --probe-signing`, the live canary: each endpoint the check uses, once cookie-only and once signed; what
the site demanded of each is reported and goes in the diagnostics bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent.browser.probe_signing import outcome, verdict
from agent.config import locators
from tests.browser.test_checker import DEMO, make_config
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser


def test_each_answer_in_a_word_and_the_verdicts() -> None:
    site = locators.load()["site"]
    assert outcome(200, {"success": True, "errorCode": 1000000, "result": {}}, site) == "ok"
    assert outcome(200, {"success": False, "errorCode": 54001, "result": {"verifyAuthToken": "t"}}, site) == "captcha"
    assert outcome(200, {"success": False, "errorCode": 43001}, site) == "logged_out"
    assert outcome(500, "<html>", site) == "http 500"
    assert verdict("ok", "ok") == "accepts cookie-only" and verdict("captcha", "ok") == "demands Anti-Content"
    assert verdict("captcha", "captcha").startswith("captcha even when signed")


def test_the_canary_reports_per_endpoint_what_the_site_demands(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    sandbox.control.risk(levels={"/mercury/mms/afterSales/queryList": "account"}, fresh_seconds=30)
    out = tmp_path / "bundle.zip"
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
    done = subprocess.run([sys.executable, "-m", "agent", "doctor", "--config", str(config.path), "--shop",
                           DEMO[0][0], "--probe-signing", "--bundle", str(out)],
                          capture_output=True, text=True, env=env, timeout=240)
    # the walk's own API probes go cookie-only and meet the 54001 too: said, exit 1 (not every probe matched)
    assert done.returncode == 1, done.stdout + done.stderr
    assert [ln for ln in done.stdout.splitlines() if ln.startswith("✗")] and \
        all("54001" in ln for ln in done.stdout.splitlines() if ln.startswith("✗"))
    assert "queryList: cookie-only captcha, signed ok → demands Anti-Content" in done.stdout, done.stdout
    assert "queryCount: cookie-only ok, signed ok → accepts cookie-only" in done.stdout
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
    by_endpoint = {p["endpoint"]: p["verdict"] for p in manifest["signing_probe"]}
    assert by_endpoint == {"queryCount": "accepts cookie-only", "queryWaitHandleCount": "accepts cookie-only",
                           "queryList": "demands Anti-Content"}
