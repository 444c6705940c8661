"""`doctor --bundle`: the walk recorded against the sandbox, and not a byte of a secret or a buyer's data in the zip."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from agent.browser.shopfiles import shop_dir
from agent.sandbox.replay import ReplayServer
from tests.browser.test_checker import DEMO, make_config
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
SHOP_ID = 100001
BUYER = [  # what a buyer wrote, as the scenario holds it (the remark is the merchant's note about the buyer)
    {"id": 22750499999901, "orderSn": "261121-000000000000901", "afterSalesType": 1, "state": "wait_seller",
     "created_ago": 60, "deadline_in": 86400, "reason": "收到发霉变质", "goodsName": "测试商品", "goodsSpec": "默认",
     "orderAmount": 990, "refundAmount": 990, "mallRemark": "买家王小明 13987654321 浙江省杭州市西湖区文三路"},
]


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def make_bundle(sandbox: Sandbox, tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = make_config(tmp_path, sandbox.url, DEMO)
    sandbox.control.add_items(SHOP_ID, BUYER)
    out = tmp_path / "out" / "bundle.zip"
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
    cmd = [sys.executable, "-m", "agent", "doctor", "--config", str(config.path), "--shop", DEMO[0][0],
           "--bundle", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done


def test_a_bundle_holds_the_walk_and_nothing_secret_or_personal(sandbox: Sandbox, tmp_path: Path) -> None:
    out, done = make_bundle(sandbox, tmp_path)
    assert f"诊断包 / bundle: {out}" in done.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with zipfile.ZipFile(out) as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members["manifest.json"])
    listed = {f["name"] for f in manifest["files"]}
    assert listed == set(members) - {"manifest.json"}
    assert {"har.json", "report.txt", "selectors.json", "dom/3-workbench.html", "screenshots/3-workbench.png",
            "dom/1-login.html"} <= listed
    assert manifest["agent_version"] and manifest["chromium"] and manifest["shop"] == DEMO[0][0]
    assert members["screenshots/3-workbench.png"][:8] == b"\x89PNG\r\n\x1a\n"
    for rule in ("header", "cookie", "order_sn", "buyer_id", "buyer_text", "secret_key", "secret_value"):
        assert manifest["redacted"][rule]["count"] > 0, rule
    har = json.loads(members["har.json"])
    urls = [e["request"]["url"] for e in har["log"]["entries"]]
    assert all(u.startswith(sandbox.url) for u in urls)  # the mms origin only
    assert any("/mercury/mms/afterSales/queryList" in u for u in urls)
    assert any("/mercury/mms/afterSales/queryCount" in u for u in urls)
    assert "selectors say" not in members["report.txt"].decode() and "✓" in members["report.txt"].decode()

    # what must never leave the machine
    state = json.loads((shop_dir(tmp_path / "data", DEMO[0][0]) / "state.json").read_text())
    cookies = [c["value"] for c in state["cookies"] if len(c["value"]) >= 6]
    assert cookies
    items = sandbox.control.items(SHOP_ID)
    order_sns = [i["orderSn"] for i in items]
    rows = [r for r in sandbox.backend.shops[SHOP_ID].items.values()]
    buyer_text = ["王小明", "13987654321", "浙江省杭州市西湖区文三路", "收到发霉变质",
                  *{i.reason for i in rows if len(i.reason) >= 4}]
    uids = [str(7_000_000_000 + i.id * 7919 % 1_000_000_000) for i in rows]
    forbidden = {"password": ["demo-pass"], "account": [DEMO[0][1]], "cookie": cookies, "order": order_sns,
                 "buyer": buyer_text, "uid": uids}
    blob = {n: b.decode("utf-8", errors="replace") for n, b in members.items() if not n.endswith(".png")}
    leaks = [(kind, value, name) for kind, values in forbidden.items() for value in values for form in forms(value)
             for name, text in blob.items() if form in text]
    assert not leaks, leaks[:5]


def _check_json(config_path: Path) -> dict[str, Any]:
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
    done = subprocess.run([sys.executable, "-m", "agent", "check", "--json", "--config", str(config_path)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout)["shops"][0])


def replay_check(bundle: Path, tmp_path: Path, mode: str = "") -> dict[str, Any]:
    """`check --json` of the bundle's shop against the bundle replayed, from an empty data folder."""
    server = ReplayServer(bundle).start()
    tmp_path.mkdir(parents=True, exist_ok=True)
    try:
        config = make_config(tmp_path, server.url, DEMO)
        return _check_json(config.path)
    finally:
        server.stop()


def test_a_replayed_bundle_reads_the_items_the_bundle_recorded(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.set_clock(freeze=True)
    out, _ = make_bundle(sandbox, tmp_path / "rec")
    live = _check_json(tmp_path / "rec" / "config.toml")  # the sandbox itself, as the bundle saw it
    with zipfile.ZipFile(out) as z:
        recorded = json.loads(z.read("items.json"))
    got = replay_check(out, tmp_path / "replay")
    items = got["aftersales"] + got["evidence"]
    assert got["ok"] and items == recorded, got.get("error")
    assert len(items) == len(live["aftersales"]) + len(live["evidence"]) > 0
    real = {i["id"]: i for i in live["aftersales"] + live["evidence"]}
    for item in items:  # the same items; only the buyer's parts differ, by their stand-ins
        same = real[item["id"]]
        assert item["deadline"] == same["deadline"] and item["goods_name"] == same["goods_name"]
        assert item["order_sn"] != same["order_sn"] and len(item["order_sn"]) == len(same["order_sn"])


def test_a_file_that_is_no_bundle_is_refused_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    done = subprocess.run([sys.executable, "-m", "agent", "sandbox", "--replay", str(bad), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a pdd-agent diagnostics bundle" in done.stdout


BUNDLES = sorted((Path(__file__).resolve().parents[1] / "bundles").glob("*.zip"))


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.stem for b in BUNDLES])
def test_each_bundle_in_tests_bundles_still_reads_what_it_recorded(bundle: Path, tmp_path: Path) -> None:
    """A bundle a merchant sent (or one recorded from the sandbox) dropped into tests/bundles/ is a regression
    test: the check against its replay must read exactly the items the bundle recorded."""
    with zipfile.ZipFile(bundle) as z:
        recorded = json.loads(z.read("items.json"))
    server = ReplayServer(bundle).start()
    try:
        config = make_config(tmp_path, server.url, DEMO)
        got = _check_json(config.path)
        assert got["ok"], got.get("error")
        assert got["aftersales"] + got["evidence"] == recorded
        # and the doctor walks the recorded site: every selector of the fixed `selectors/` matches it
        env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
        done = subprocess.run([sys.executable, "-m", "agent", "doctor", "--config", str(config.path), "--shop",
                               DEMO[0][0]], capture_output=True, text=True, env=env, timeout=180)
        assert done.returncode == 0 and "✗" not in done.stdout, done.stdout + done.stderr
    finally:
        server.stop()


def test_tests_bundles_is_not_empty() -> None:
    assert BUNDLES, "tests/bundles/ ships at least the bundle recorded from the sandbox"
