"""The team page through real Chromium against the real `pdd-agent run`, the sandbox and the fake WeCom: two members
claim and see each other's claims live; a claimed item's early stage is quiet and its later stage carries 「已认领」
and the @; a lapsed claim lets the due stage out at once; notes stay text; GETs change nothing; CSRF; the login slows
down; the phone view; /api/v1/status follows a lost session."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from agent.core.claims import item_key
from agent.sandbox.wecom import FakeWeCom
from agent.web.auth import hash_password
from tests.browser.test_alerts_e2e import WATCH_OFF
from tests.browser.test_service_process import ROOT, Agent, agents, free_port, wait_until  # noqa: F401
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser
SHOP, USER, MALL = "示例旗舰店", "示例旗舰店", 100001
X, Y = 22750431611748, 22750431613130  # 25 h and 52 h left in the demo scenario: no stage yet
PW = {"张三": "zhangsan-pass", "李四": "lisi-pass"}
MOBILE = "13800001111"
H = 3600.0


def write_config(tmp_path: Path, sandbox: Sandbox, wecom: FakeWeCom, port: int) -> Path:
    members = "".join(f'[[team.members]]\nname = "{n}"\nmobile = "{MOBILE if n == "张三" else "13900002222"}"\n'
                      f'password_hash = "{hash_password(p)}"\n' for n, p in PW.items())
    text = f"""
[agent]
data_dir = "{tmp_path / 'data'}"
pacing_seconds = 0
login_retry_hours = 0
[browser]
timeout_seconds = 8
[[shops]]
name = "{SHOP}"
base_url = "{sandbox.url}"
username = "{USER}"
password_env = "PDD_TEST_PASSWORD"
[schedule]
check_interval = "2s"
jitter = "0"
dispatch_interval = "1s"
keepalive_interval = "0"
digest_cron = ""
shutdown_grace = "10s"
{WATCH_OFF}
[alerts]
notify = ["ops"]
failure_threshold = 1
retry_backoff = "1s"
[notifiers.ops]
type = "wecom"
webhook_url = "{wecom.webhook_url('k1')}"
[web]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[team]
claim_ttl = "25s"
{members}
"""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def sn_of(sandbox: Sandbox, item_id: int) -> str:
    return next(i["orderSn"] for i in sandbox.control.items(MALL) if i["id"] == item_id)


def messages_with(wecom: FakeWeCom, sn: str) -> list[str]:
    return [m.content for m in wecom.messages("k1") if m.msgtype == "markdown" and sn in m.content]


def login(browser: Browser, base: str, name: str, **ctx: Any) -> tuple[BrowserContext, Page]:
    context = browser.new_context(base_url=base, locale="zh-CN", **ctx)
    page = context.new_page()
    page.on("dialog", lambda d: pytest.fail(f"a script ran in the page: {d.message}"))
    page.goto("/")
    page.fill('input[name="name"]', name)
    page.fill('input[name="password"]', PW[name])
    page.click("button:has-text('登录')")
    expect(page.locator("nav")).to_contain_text("待办")
    return context, page


def api_item(context: BrowserContext, key: str) -> dict[str, Any]:
    r = context.request.get(f"/api/v1/items/{key}")
    assert r.ok, r.status
    return dict(r.json())


def timeline(context: BrowserContext, key: str) -> list[str]:
    return [e["what"] for e in api_item(context, key)["timeline"]]


def wait_for(check: Callable[[], Any], what: str, agent: Agent, timeout: float = 30) -> Any:
    return wait_until(check, what, agent, timeout=timeout)


def test_two_members_claim_quiet_stages_lapse_notes_and_the_phone(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, browser: Browser, agents: list[Agent],  # noqa: F811
) -> None:
    sandbox.control.set_clock(freeze=True)
    port = free_port()
    agent = Agent(write_config(tmp_path, sandbox, wecom, port), port, tmp_path)
    agents.append(agent)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: agent.healthz() == 200, "the service and its page", agent, 90)
    x_sn, y_sn = sn_of(sandbox, X), sn_of(sandbox, Y)
    kx, ky = item_key(SHOP, "aftersale", str(X)), item_key(SHOP, "aftersale", str(Y))

    # X enters its 24 h stage: the group hears it, with a 「认领 / 查看」 link to the page
    sandbox.control.age(X, 3 * H)  # 22 h left (moved before anyone claims it: a claim binds its deadline)
    wait_for(lambda: messages_with(wecom, x_sn), "the 24 h stage", agent)
    assert f"[认领 / 查看]({base}/items/{kx})" in messages_with(wecom, x_sn)[0]

    zhang, zpage = login(browser, base, "张三")
    li, lpage = login(browser, base, "李四")
    row = f'li[data-key="{kx}"]'
    expect(lpage.locator(row)).to_contain_text("未认领")
    expect(lpage.locator(row).locator("[data-deadline]")).to_contain_text("剩余 21小时")  # ticks in the browser

    # 张三 claims X; 李四 sees it within 2 s without reloading
    zpage.locator(row).get_by_role("button", name="认领").click()
    started = time.monotonic()
    expect(lpage.locator(row)).to_contain_text("已认领：张三", timeout=2000)
    assert time.monotonic() - started < 2.0
    assert lpage.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded

    # a note that tries to be a script stays text on the page
    zpage.goto(f"/items/{kx}")
    zpage.fill("textarea[name=text]", "<script>alert(1)</script> 已联系买家")
    zpage.click("button:has-text('添加备注')")
    expect(zpage.locator(".timeline")).to_contain_text("<script>alert(1)</script> 已联系买家")

    # X's 6 h stage while claimed: not broadcast (the timeline says so)
    sandbox.control.advance(16.5 * H)  # 5.5 h left
    wait_for(lambda: any("未群发" in t for t in timeline(zhang, kx)), "the quiet 6 h stage", agent)
    assert len(messages_with(wecom, x_sn)) == 1
    r = zhang.request.post(f"/api/v1/items/{kx}/claim", data=json.dumps({}),
                           headers={"Content-Type": "application/json", "X-CSRF-Token": csrf(zpage)})  # renew
    assert r.ok and any("续期" in t for t in timeline(zhang, kx))

    # X's 2 h stage still goes to the group with 「已认领：张三」, the note (escaped) and an @ of 张三
    sandbox.control.advance(4 * H)  # 1.5 h left
    wait_for(lambda: len(messages_with(wecom, x_sn)) == 2, "the 2 h stage of the claimed item", agent)
    text = messages_with(wecom, x_sn)[1]
    assert "已认领：张三" in text and "＜script＞alert(1)＜/script＞" in text and "<script>" not in text
    pings = [m for m in wecom.messages("k1") if m.msgtype == "text" and MOBILE in m.mentioned_mobile_list]
    assert pings, "张三 was not @-ed"

    # Y claimed by 李四 and left to lapse: its due stage (6 h) goes out at once, not at the next stage
    sandbox.control.age(Y, 8.5 * H)  # 52 - 20.5 - 8.5 = 23 h left: the 24 h stage
    wait_for(lambda: messages_with(wecom, y_sn), "Y's 24 h stage", agent)
    lpage.reload()
    lpage.locator(f'li[data-key="{ky}"]').get_by_role("button", name="认领").click()
    wait_for(lambda: api_item(li, ky)["claimed_by"] == "李四", "李四's claim", agent)
    claimed_at = time.monotonic()
    sandbox.control.advance(17.5 * H)  # 5.5 h left: the 6 h stage, quiet while claimed
    wait_for(lambda: any("未群发" in t for t in timeline(li, ky)), "Y's quiet 6 h stage", agent)
    assert len(messages_with(wecom, y_sn)) == 1
    wait_for(lambda: len(messages_with(wecom, y_sn)) == 2, "the 6 h stage after the lapse", agent, 60)
    assert time.monotonic() - claimed_at >= 23  # not before the 25 s TTL
    assert any("认领失效" in t for t in timeline(li, ky))
    assert "已认领" not in messages_with(wecom, y_sn)[1] and "剩余 5小时" in messages_with(wecom, y_sn)[1]

    # a GET on an action URL changes nothing; a POST without the CSRF token is refused
    before = api_item(zhang, ky)
    assert zhang.request.get(f"/items/{ky}/claim").status in (404, 405)
    assert zhang.request.post(f"/items/{ky}/claim", form={"version": str(before["version"])}).status == 403
    after = api_item(zhang, ky)
    assert after["version"] == before["version"] and after["claimed_by"] is None

    # the phone: WeCom's browser at 390 × 844 shows the list without horizontal scrolling
    phone, ppage = login(browser, base, "李四", viewport={"width": 390, "height": 844}, device_scale_factor=2,
                         is_mobile=True, has_touch=True)
    expect(ppage.locator(f'li[data-key="{ky}"] [data-deadline]')).to_contain_text("剩余 5小时")  # backend time
    assert ppage.evaluate("document.documentElement.scrollWidth") <= 390
    shot = ROOT / "test-results" / "team-page-phone.png"
    shot.parent.mkdir(exist_ok=True)
    ppage.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, tmp_path / shot.name)
    for c in (zhang, li, phone):
        c.close()


def csrf(page: Page) -> str:
    value = page.locator('meta[name="csrf"]').get_attribute("content")
    assert value
    return value


def test_login_slows_down_and_status_follows_a_lost_session(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, browser: Browser, agents: list[Agent],  # noqa: F811
) -> None:
    port = free_port()
    agent = Agent(write_config(tmp_path, sandbox, wecom, port), port, tmp_path)
    agents.append(agent)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: agent.healthz() == 200, "the service and its page", agent, 90)
    token = subprocess_token(tmp_path)
    status = lambda: httpx.get(f"{base}/api/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=5)  # noqa: E731
    wait_for(lambda: status().status_code == 200, "status 200 with the shop read", agent)

    context = browser.new_context(base_url=base)
    page = context.new_page()
    page.goto("/login")
    for _ in range(5):
        page.fill('input[name="name"]', "张三")
        page.fill('input[name="password"]', "wrong")
        page.click("button:has-text('登录')")
        expect(page.locator(".msg")).to_contain_text("用户名或密码错误")
    page.fill('input[name="name"]', "张三")
    page.fill('input[name="password"]', PW["张三"])
    page.click("button:has-text('登录')")
    expect(page.locator(".msg")).to_contain_text("秒后再试")
    context.close()

    # the shop's session is lost and its login wants a captcha: 503 with the reason; after the login, 200
    sandbox.control.arm_captcha(USER)
    sandbox.control.expire_sessions(MALL)
    body = wait_for(lambda: (r := status()).status_code == 503 and r.json(), "status 503", agent)
    assert any("captcha" in r for r in body["reasons"]), body
    sandbox.control.clear_captcha()
    wait_for(lambda: status().status_code == 200, "status 200 after the login", agent, 60)
    assert re.search(r"team page on http://127\.0\.0\.1:\d+/", agent.log())


def subprocess_token(tmp_path: Path) -> str:
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "agent", "team", "token", "kuma", "--config",
                          str(tmp_path / "config.toml")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return next(w for w in out.stdout.split() if w.startswith("pdt_"))
