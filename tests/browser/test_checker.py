"""The scraper end to end: Checker + real Chromium against the sandbox, page mode and API mode."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.browser.check import Checker
from agent.browser.pool import BrowserPool
from agent.browser.shopfiles import shop_dir
from agent.config import Config, load_config, locators
from agent.core.models import ShopResult, ShopState
from tests.conftest import Sandbox, auth, run_async

pytestmark = pytest.mark.browser
DEMO = [("示例旗舰店", "示例旗舰店:客服01")]


def make_config(
    tmp_path: Path, url: str, shops: Sequence[tuple[str, str]], selectors_dir: Path | None = None
) -> Config:
    lines = ["[agent]", f'data_dir = "{tmp_path / "data"}"', "pacing_seconds = 0", "rate_limit_backoff = [0.2, 0.2]"]
    if selectors_dir:
        lines.append(f'selectors_dir = "{selectors_dir}"')
    lines += ["[browser]", "max_concurrent_shops = 2", "timeout_seconds = 8"]
    for name, user in shops:
        lines += ["[[shops]]", f'name = "{name}"', f'base_url = "{url}"', f'username = "{user}"',
                  'password_env = "PDD_TEST_PASSWORD"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def check(config: Config, mode: str = "auto") -> list[ShopResult]:
    async def go() -> list[ShopResult]:
        async with BrowserPool(executable_path=config.browser.executable_path, timeout_seconds=8) as pool:
            return await Checker(config, pool, locators.load(config.agent.selectors_dir)).check_all(mode=mode)

    return run_async(go())


def pending(sandbox: Sandbox, mall_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    items = sandbox.control.items(mall_id)
    after = {str(i["id"]): i for i in items if i["state"] in ("wait_seller", "wait_seller_receive")}
    proof = {str(i["id"]): i for i in items if i["proofStatus"] == "待商家举证"}  # the sandbox's own state
    return after, proof


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_TEST_PASSWORD", "demo-pass")


def test_page_then_api_mode_read_exactly_the_pending_items(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    after, proof = pending(sandbox, 100001)
    [first] = check(config)
    assert first.ok and first.mode == "page", first.error
    [second] = check(config)
    assert second.ok and second.mode == "api", second.error
    for r in (first, second):
        assert {i.id for i in r.aftersales} == set(after)
        assert {t.id for t in r.evidence} == set(proof)
        assert r.findings == []
    # both modes estimate the same deadlines; whole-second remaining times allow one second of difference
    assert [i.id for i in first.aftersales] == [i.id for i in second.aftersales]
    for a, b in zip(first.aftersales, second.aftersales, strict=True):
        assert abs((a.deadline - b.deadline).total_seconds()) <= 1
    state = shop_dir(config.agent.data_dir, "示例旗舰店") / "state.json"
    assert state.stat().st_mode & 0o777 == 0o600
    assert sandbox.control.stats()["counts"]["logins"] == 1


def test_more_than_250_items_read_completely_in_both_modes(sandbox: Sandbox, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.control.load("big_shop")
    monkeypatch.setenv("PDD_TEST_PASSWORD", "sandbox-pass")
    shop = sandbox.control.state()["shops"][0]
    config = make_config(tmp_path, sandbox.url, [(shop["name"], shop["name"])])
    after, proof = pending(sandbox, shop["mall_id"])
    assert len(after) > 250
    for mode in ("page", "api"):
        [r] = check(config, mode)
        assert r.ok and r.mode == mode, r.error
        assert {i.id for i in r.aftersales} == set(after) and len(r.aftersales) == len(after)
        assert {t.id for t in r.evidence} == set(proof)
    bodies = sandbox.control.stats()["query_bodies"]
    assert max(b.get("pageSize", 0) for b in bodies) == 100


def test_deadlines_are_correct_to_the_second_against_the_sandbox_clock(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.set_clock(offset=3 * 86400 + 1234, freeze=True)  # the backend's clock is not ours
    config = make_config(tmp_path, sandbox.url, DEMO)
    after, proof = pending(sandbox, 100001)
    for mode in ("page", "api"):
        [r] = check(config, mode)
        assert r.ok, r.error
        assert abs(r.checked_at.timestamp() - sandbox.control.clock()["now"]) <= 1
        for i in r.aftersales:
            assert abs(i.deadline.timestamp() - after[i.id]["deadline"]) <= 1, i.order_sn
        for t in r.evidence:
            assert abs(t.deadline.timestamp() - proof[t.id]["proofDeadline"]) <= 1, t.order_sn


@pytest.mark.parametrize("changer", [True, False], ids=["page-size-100", "page-size-fixed-at-10"])
def test_check_json_deadlines_within_2s_over_many_pages_with_the_clock_running(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changer: bool
) -> None:
    """260 items read page by page while the backend's clock runs 20x: each row's deadline is taken from
    the Date of the answer that carried it (one reference for all pages was up to 29 s wrong)."""
    sandbox.control.load("big_shop")
    sandbox.control.settings(page_size_changer=changer)
    sandbox.control.set_clock(offset=5000, rate=20)
    monkeypatch.setenv("PDD_TEST_PASSWORD", "sandbox-pass")
    shop = sandbox.control.state()["shops"][0]
    config = make_config(tmp_path, sandbox.url, [(shop["name"], shop["name"])])
    env = {**os.environ, "PDD_TEST_PASSWORD": "sandbox-pass"}
    cmd = [sys.executable, "-m", "agent", "check", "--config", str(config.path), "--json"]
    for mode in ("page", "api"):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        [got] = json.loads(done.stdout)["shops"]
        assert got["mode"] == mode
        kinds = [f["kind"] for f in got["findings"]]
        assert kinds == ([] if changer or mode == "api" else ["page_size_fixed", "page_size_fixed"]), kinds
        truth = {str(i["id"]): i for i in sandbox.control.items(shop["mall_id"])}
        after = {k for k, i in truth.items() if i["state"] in ("wait_seller", "wait_seller_receive")}
        proof = {k for k, i in truth.items() if i["proofStatus"] == "待商家举证"}
        assert len(after) > 250 and {i["id"] for i in got["aftersales"]} == after
        assert {t["id"] for t in got["evidence"]} == proof
        for i in got["aftersales"]:
            off = datetime.fromisoformat(i["deadline"]).timestamp() - truth[i["id"]]["deadline"]
            assert abs(off) <= 2, (mode, i["order_sn"], off)
        for t in got["evidence"]:
            off = datetime.fromisoformat(t["deadline"]).timestamp() - truth[t["id"]]["proofDeadline"]
            assert abs(off) <= 2, (mode, t["order_sn"], off)
    sizes = {b.get("pageSize") for b in sandbox.control.stats()["query_bodies"]}
    assert (100 in sizes) and ((20 in sizes) is False)


@pytest.mark.parametrize("mode", ["page", "api"])
def test_an_overdue_row_is_due_now_not_later(sandbox: Sandbox, tmp_path: Path, mode: str) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config, "page")[0].ok
    sandbox.control.settings(refund_lag=3600)
    sandbox.control.set_clock(freeze=True)
    after, _ = pending(sandbox, 100001)
    soonest = min(after.values(), key=lambda i: i["deadline"])
    sandbox.control.advance(soonest["deadline"] - sandbox.control.clock()["now"] + 30)
    [r] = check(config, mode)
    assert r.ok, r.error
    [late] = [i for i in r.aftersales if i.id == str(soonest["id"])]
    assert late.overdue and late.remaining_seconds == 0
    assert abs(late.deadline.timestamp() - sandbox.control.clock()["now"]) <= 1  # due now
    assert r.aftersales[0].id == late.id


def test_dom_fallback_reads_yi_yu_qi_as_due_now(sandbox: Sandbox, tmp_path: Path) -> None:
    override = tmp_path / "selectors"
    override.mkdir()
    (override / "site.toml").write_text('[api]\nquery_list = "/mercury/mms/afterSales/queryListV2"\n')
    config = make_config(tmp_path, sandbox.url, DEMO, selectors_dir=override)
    sandbox.control.settings(refund_lag=3600)
    sandbox.control.set_clock(freeze=True)
    after, _ = pending(sandbox, 100001)
    soonest = min(after.values(), key=lambda i: i["deadline"])
    sandbox.control.advance(soonest["deadline"] - sandbox.control.clock()["now"] + 30)
    [r] = check(config, "page")
    assert r.ok and "dom_fallback" in [f.kind for f in r.findings], r.error
    late = {i.order_sn: i for i in r.aftersales}[soonest["orderSn"]]
    assert late.overdue and late.remaining_seconds == 0
    assert {i.order_sn for i in r.aftersales} == {i["orderSn"] for i in after.values()}


def test_changed_build_hash_and_setup_trap(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.settings(build="Hx7Qa", blind_navigation="always")
    config = make_config(tmp_path, sandbox.url, DEMO)
    [r] = check(config, "page")
    assert r.ok, r.error
    assert r.findings == []  # rows matched by prefix: the countdown cross-check found every row
    assert r.counters["24小时内将逾期订单数"] == sum(1 for i in r.aftersales if i.remaining_seconds < 86400)


def test_quick_filter_codes_are_learned_not_assumed(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.settings(filter_codes={"待商家处理": 61, "待商家举证": 62})
    config = make_config(tmp_path, sandbox.url, DEMO)
    after, proof = pending(sandbox, 100001)
    [r] = check(config)
    assert r.ok and r.mode == "page"
    plan = json.loads((shop_dir(config.agent.data_dir, "示例旗舰店") / "plan.json").read_text())
    assert plan["bodies"]["aftersales"]["quickSearchType"] == 61
    assert plan["bodies"]["evidence"]["quickSearchType"] == 62
    [r] = check(config)
    assert r.ok and r.mode == "api" and {i.id for i in r.aftersales} == set(after)
    sandbox.control.settings(filter_codes={"待商家处理": 71, "待商家举证": 72})
    [r] = check(config)
    assert r.ok and r.mode == "page" and [f.kind for f in r.findings] == ["api_fallback"]
    assert {i.id for i in r.aftersales} == set(after) and {t.id for t in r.evidence} == set(proof)


@pytest.mark.parametrize("mode", ["page", "api"])
def test_a_renamed_field_is_layout_changed_naming_it(sandbox: Sandbox, tmp_path: Path, mode: str) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config, "page")[0].ok
    sandbox.control.settings(rename_fields={"expireRemainTime": "expireLeftTime"})
    [r] = check(config, mode)
    assert r.state is ShopState.LAYOUT_CHANGED and "no deadline field (expireRemainTime)" in (r.error or ""), r.error
    captures = sorted((shop_dir(config.agent.data_dir, "示例旗舰店") / "captures").iterdir())
    assert any(p.suffix == ".txt" for p in captures)
    if mode == "page":
        html = next(p for p in captures if p.suffix == ".html").read_text(encoding="utf-8")
        cookies = json.loads((shop_dir(config.agent.data_dir, "示例旗舰店") / "state.json").read_text())["cookies"]
        assert "售后工作台" in html and all(c["value"] not in html for c in cookies if len(c["value"]) >= 6)
        assert any(p.suffix == ".png" for p in captures)


def test_a_missing_selector_is_layout_changed_naming_it(sandbox: Sandbox, tmp_path: Path) -> None:
    override = tmp_path / "selectors"
    override.mkdir()
    (override / "aftersale_list.toml").write_text(
        '[quick_filters]\ncard = "div[data-testid=\\"beast-core-tile\\"]"\n', encoding="utf-8"
    )
    config = make_config(tmp_path, sandbox.url, DEMO, selectors_dir=override)
    [r] = check(config, "page")
    assert r.state is ShopState.LAYOUT_CHANGED
    assert 'beast-core-tile' in (r.error or "") and "[quick_filters].card" in (r.error or "")


def test_rate_limiting_is_backed_off(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config)[0].ok
    for n in (1, 2):  # HTTP 429 (queryCount, the header counters, lists): backed off, then read
        sandbox.control.reset_stats()
        sandbox.control.arm_rate_limit(count=n)
        [r] = check(config)
        assert r.ok and r.mode == "api", (n, r.error)
        assert sandbox.control.stats()["counts"]["rate_limited"] == n
    sandbox.control.arm_rate_limit(count=50)
    [r] = check(config)
    assert r.state is ShopState.RATE_LIMITED and "HTTP 429" in (r.error or "")


def test_an_item_arriving_between_the_count_and_the_lists_is_read_again_not_a_layout_change(
    sandbox: Sandbox, tmp_path: Path,
) -> None:
    """queryCount and the lists are separate requests: a buyer's new request in between makes them disagree once.
    The API read is repeated (no page fallback, no layout_changed); a disagreement that persists still falls back."""
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config)[0].ok
    new = {"id": 22750499999998, "orderSn": "261121-000000000000002", "afterSalesType": 1, "state": "wait_seller",
           "created_ago": 5, "deadline_in": 3 * 86400, "reason": "不想要了", "goodsName": "测试商品",
           "goodsSpec": "默认", "orderAmount": 990, "refundAmount": 990}
    sandbox.control.add_items(100001, [new], after="queryCount")
    sandbox.control.reset_stats()
    [r] = check(config)
    assert r.ok and r.mode == "api", r.error
    assert not [f for f in r.findings if f.kind == "api_fallback"], r.findings
    assert str(new["id"]) in {i.id for i in r.aftersales}
    assert sandbox.control.stats()["counts"]["POST /mercury/mms/afterSales/queryCount"] == 2  # read once more


def test_54001_on_cookie_only_goes_signed_and_without_a_signer_to_page_mode_once(
    sandbox: Sandbox, tmp_path: Path,
) -> None:
    """Cookie-only requests meet the captcha; signed requests pass (and read the watch cards too); without a signer
    the page's own requests (Anti-Content) pass, and the watch cards go signed by that page."""
    config = make_config(tmp_path, sandbox.url, DEMO)
    after, proof = pending(sandbox, 100001)
    assert check(config)[0].ok
    sandbox.control.arm_api_captcha(unsigned_only=True)
    sandbox.control.reset_stats()
    [r] = check(config)
    assert r.ok and r.mode == "api", r.error
    assert [f.kind for f in r.findings] == ["api_fallback"] and "54001" in r.findings[0].message
    assert {i.id for i in r.aftersales} == set(after) and {t.id for t in r.evidence} == set(proof)
    assert sandbox.control.stats()["counts"]["api_captcha"] == 1  # asked once, never retried blindly

    path = config.path
    path.write_text(path.read_text(encoding="utf-8") + "[api]\nmax_signers = 0\n", encoding="utf-8")
    unsigned = load_config(path)
    sandbox.control.reset_stats()
    [r] = check(unsigned)
    assert r.ok and r.mode == "page", r.error
    # the watch cards follow by request, each signed by the check's own page: read, no second captcha
    assert [f.kind for f in r.findings] == ["api_fallback"] and "54001" in r.findings[0].message
    assert {i.id for i in r.aftersales} == set(after) and {t.id for t in r.evidence} == set(proof)
    assert sandbox.control.stats()["counts"]["api_captcha"] == 1


def test_54001_in_page_mode_is_a_captcha_for_a_human_never_retried(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config)[0].ok
    sandbox.control.arm_api_captcha()
    [r] = check(config)
    assert r.state is ShopState.CAPTCHA and "54001" in (r.error or ""), r.error
    shop = shop_dir(config.agent.data_dir, "示例旗舰店")
    shots = [p for p in (shop / "captures").iterdir() if p.suffix == ".png" and "captcha" in p.name]
    assert shots  # the floating captcha as the person will see it
    assert json.loads((shop / "hurdle.json").read_text())["where"] == "read"
    sandbox.control.reset_stats()
    [again] = check(config)
    assert again.state is ShopState.CAPTCHA and "not retried" in (again.error or "")
    counts = sandbox.control.stats()["counts"]
    assert not any(k.startswith("POST /mercury") for k in counts), counts  # no request at the backend
    # a person passes it (`pdd-agent login --headed`; here the login flow, headless, the sandbox solving it)
    from agent.browser.login_flow import pass_read_captcha
    from agent.browser.session import ShopSession

    async def human() -> None:
        async with BrowserPool(executable_path=config.browser.executable_path, timeout_seconds=8) as pool:
            sel = locators.load()
            session = ShopSession(pool, name="示例旗舰店", base_url=sandbox.url, username="示例旗舰店:客服01",
                                  password="demo-pass", state_path=shop / "state.json", site=sel["site"])
            task = asyncio.create_task(pass_read_captcha(session, lambda _: None, 20))
            await asyncio.sleep(2)
            sandbox.control.clear_captcha()
            await task

    run_async(human())
    (shop / "hurdle.json").unlink()  # what `pdd-agent login` does after passing it
    [ok] = check(config)
    assert ok.ok, ok.error


def test_relogin_after_session_expiry_without_a_human(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config)[0].ok
    sandbox.control.expire_sessions(mall_id=100001)
    [r] = check(config)
    assert r.ok, r.error
    assert r.mode == "page"  # a new session starts with a page-mode read
    assert sandbox.control.stats()["counts"]["logins"] == 2


def test_login_hurdles_end_in_typed_states_while_other_shops_go_on(sandbox: Sandbox, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.control.load("logins")
    monkeypatch.setenv("PDD_TEST_PASSWORD", "sandbox-pass")
    shops = [("密码登录店", "密码登录店"), ("子账号店", "子账号店:客服01"), ("短信验证店", "短信验证店"),
             ("扫码登录店", "扫码登录店")]
    config = make_config(tmp_path, sandbox.url, shops)
    states = {r.name: r.state for r in check(config)}
    assert states == {"密码登录店": ShopState.OK, "子账号店": ShopState.OK,
                      "短信验证店": ShopState.SMS_REQUIRED, "扫码登录店": ShopState.LOGIN_REQUIRED}
    sandbox.control.expire_sessions()
    sandbox.control.arm_captcha("子账号店:客服01")
    states = {r.name: r.state for r in check(config)}
    assert states["子账号店"] is ShopState.CAPTCHA and states["密码登录店"] is ShopState.OK
    assert states["短信验证店"] is ShopState.SMS_REQUIRED and states["扫码登录店"] is ShopState.LOGIN_REQUIRED
    # never loops, and a shop waiting for a human gets no new password attempt: 4 in the first round,
    # then only the two shops whose sessions expired
    assert sandbox.control.stats()["counts"]["login_attempts"] == 6
    assert "waiting for `pdd-agent login`" in {r.name: r for r in check(config)}["短信验证店"].error
    # a human logs the SMS shop in (as `pdd-agent login` does, here over HTTP): the next check reads it
    human = sandbox.client()
    human.get("/login/")
    auth(human, "短信验证店", "sandbox-pass")
    human.post("/janus/api/mobile/sendVerificationCode", json={"type": 117, "username": "短信验证店"})
    code = sandbox.control.sms_code("短信验证店") or ""
    assert auth(human, "短信验证店", "sandbox-pass", mobileVerifyCode=code)["success"]
    host = httpx.URL(sandbox.url).host
    state = {"cookies": [{"name": k, "value": v, "domain": host, "path": "/", "expires": -1, "httpOnly": False,
                          "secure": False, "sameSite": "Lax"} for k, v in human.cookies.items()], "origins": []}
    shop = shop_dir(config.agent.data_dir, "短信验证店")
    (shop / "state.json").write_text(json.dumps(state), encoding="utf-8")
    after = {r.name: r for r in check(config)}
    assert after["短信验证店"].ok, after["短信验证店"].error
    assert not (shop / "hurdle.json").exists()


def test_cli_check_json_and_exit_status(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
    cmd = [sys.executable, "-m", "agent", "check", "--config", str(config.path), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    shop = doc["shops"][0]
    assert shop["ok"] is True and shop["error"] is None and len(shop["aftersales"]) == 7
    assert set(shop["aftersales"][0]) >= {"id", "order_sn", "type", "status", "reason", "goods_name",
                                          "refund_amount_fen", "deadline", "remaining_seconds"}
    assert doc["checked_at"].endswith("+08:00")
    table = subprocess.run(cmd[:-1], capture_output=True, text=True, env=env, timeout=120)
    assert table.returncode == 0 and "待商家处理 7 单" in table.stdout and "demo-pass" not in table.stdout
    env["PDD_TEST_PASSWORD"] = "wrong"
    sandbox.control.expire_sessions()
    failed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["shops"][0]["error"].startswith("login_required")


def test_doctor_reports_selector_by_selector(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass"}
    cmd = [sys.executable, "-m", "agent", "doctor", "--config", str(config.path), "--shop", "示例旗舰店"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✗" not in done.stdout and "aftersale_list.rows.countdown" in done.stdout
    assert "exit IP the backend sees: 127.0.0.1 (直连 / direct, no proxy)" in done.stdout
    for key in ("site.login.qr_create", "site.api.query_wait_handle_count", "aftersale_list.pagination.status_pattern",
                "evidence.deadline.shapes", "aftersale_list.count_keys.「平台处理中」"):
        assert key in done.stdout, key
    # the 9 cards' codes are learned from the page and checked against selectors/
    codes = [line for line in done.stdout.splitlines() if "quick_filters.codes" in line]
    assert len(codes) == 9 and all(line.startswith("✓") for line in codes)
    sandbox.control.settings(filter_codes={"买家催处理": 21})
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    bad, watch = [line for line in done.stdout.splitlines() if line.startswith("✗")]
    assert "quick_filters.codes.「买家催处理」" in bad and "quickSearchType=21, selectors say 20" in bad
    # the check's read of the 买家催处理 card (code 20 from selectors/) fails the same way: said, not hidden
    assert "aftersale_list.watch" in watch and "「买家催处理」 not read" in watch
    sandbox.control.settings(filter_codes={"买家催处理": 20}, rename_fields={"orderSn": "orderNo"})
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert any(line.startswith("✗") and "orderSn" in line for line in done.stdout.splitlines()), done.stdout


def test_page_rows_are_the_fallback_when_no_query_list_answer_is_seen(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.control.load("big_shop")  # more than one page of rows, so paging is exercised too
    shop = sandbox.control.state()["shops"][0]
    override = tmp_path / "selectors"
    override.mkdir()
    # a new build moved the list API: the page still shows its rows, the agent no longer sees the answers
    (override / "site.toml").write_text(
        '[api]\nquery_list = "/mercury/mms/afterSales/queryListV2"\n', encoding="utf-8"
    )
    monkeypatch.setenv("PDD_TEST_PASSWORD", "sandbox-pass")
    config = make_config(tmp_path, sandbox.url, [(shop["name"], shop["name"])], selectors_dir=override)
    sandbox.control.set_clock(offset=7200)  # the backend's clock is not ours; it runs
    after, proof = pending(sandbox, shop["mall_id"])
    [r] = check(config, "page")
    assert r.ok, r.error
    # the watch cards are read by request from the old path: said, and the page's rows still count
    assert [f.kind for f in r.findings] == ["dom_fallback", "dom_fallback", "watch_failed"]
    assert {i.order_sn for i in r.aftersales} == {i["orderSn"] for i in after.values()}
    assert {t.order_sn for t in r.evidence} == {i["orderSn"] for i in proof.values()}
    by_sn = {i["orderSn"]: i for i in after.values()}
    for item in r.aftersales:
        assert abs(item.deadline.timestamp() - by_sn[item.order_sn]["deadline"]) <= 2
        assert item.refund_amount_fen == by_sn[item.order_sn]["refundAmount"]
    assert not (shop_dir(config.agent.data_dir, shop["name"]) / "plan.json").exists()


def test_keepalive_refreshes_the_saved_session_and_never_logs_in(sandbox: Sandbox, tmp_path: Path) -> None:
    config = make_config(tmp_path, sandbox.url, DEMO)
    assert check(config)[0].ok
    state = shop_dir(config.agent.data_dir, DEMO[0][0]) / "state.json"
    before = state.stat().st_mtime_ns

    async def keepalive() -> bool:
        async with BrowserPool(timeout_seconds=8) as pool:
            return await Checker(config, pool, locators.load()).keepalive(config.shops[0])

    logins = sandbox.control.stats()["counts"].get("logins", 0)
    kept = state.read_bytes()
    assert run_async(keepalive()) is True
    # by plain HTTP with the saved cookies; the backend set none, so the file is not rewritten (the write-back
    # of Set-Cookie answers: tests/test_http_client.py)
    assert state.stat().st_mtime_ns == before and state.read_bytes() == kept
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    sandbox.control.expire_sessions()
    assert run_async(keepalive()) is False
    assert sandbox.control.stats()["counts"].get("logins", 0) == logins  # a keep-alive never logs in
