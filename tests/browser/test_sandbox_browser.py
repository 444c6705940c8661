"""The sandbox through a real Chromium, driven with the agent's own selectors/ data."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from agent import locators
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser

SEL = locators.load()
LOGIN = SEL["site"]["login"]
LIST = SEL["aftersale_list"]
OWNER = "示例旗舰店"
SUB = "示例旗舰店:客服01"


def fill_login(page: Page, url: str, username: str, password: str = "demo-pass") -> None:
    page.goto(url + "/login/")
    page.locator(LOGIN["account_tab"]).click()
    page.fill(LOGIN["username"], username)
    page.fill(LOGIN["password"], password)
    page.locator(LOGIN["submit"]).click()


def login(page: Page, url: str, username: str = OWNER, password: str = "demo-pass") -> None:
    fill_login(page, url, username, password)
    page.wait_for_url("**/home")


def open_workbench(page: Page) -> None:
    """As a person does: from /home through the sidebar link."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    page.goto(origin + SEL["site"]["paths"]["home"])
    page.locator(SEL["site"]["home"]["sidebar_link"]).first.click()
    page.wait_for_selector(LIST["quick_filters"]["card"])


def click_card(page: Page, label: str) -> dict[str, Any]:
    """Click a quick-filter card and return the page's own queryList response."""
    card = page.locator(LIST["quick_filters"]["card"], has_text=label)
    with page.expect_response(lambda r: SEL["site"]["api"]["query_list"] in r.url) as resp:
        card.click()
    expect(card).to_have_class(re.compile(LIST["quick_filters"]["checked_class"]))
    data: dict[str, Any] = resp.value.json()
    return data


def in_page_fetch(page: Page, path: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """([path, body]) => fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify(body)}).then(r => r.json())""",
        [path, body],
    )
    return result


def test_login_page_opens_on_the_qr_tab(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url + "/login/")
    expect(page.locator(LOGIN["page_marker"])).to_be_visible()
    qr = page.locator(LOGIN["qr_image"])
    expect(qr).to_be_visible()
    page.wait_for_function("document.querySelector('.qr-code').naturalWidth > 0")
    expect(page.locator(LOGIN["username"])).to_be_hidden()
    page.locator(LOGIN["account_tab"]).click()
    expect(page.locator(LOGIN["username"])).to_be_visible()
    expect(page.locator(LOGIN["password"])).to_be_visible()


def test_password_login_lands_on_home_with_counters_and_sidebar(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    counters = sandbox.backend.header_counters(100001)
    text = page.inner_text("body")
    for label in LIST["counters"]["labels"]:
        m = re.search(LIST["counters"]["pattern"].replace("{label}", re.escape(label)), text)
        assert m and int(m.group(1)) == counters[label], label
    link = page.locator(SEL["site"]["home"]["sidebar_link"])
    expect(link).to_have_text(SEL["site"]["home"]["sidebar_text"])
    assert {c["name"] for c in page.context.cookies()} >= set(SEL["site"]["cookies"]["required"])
    pass_id = next(c for c in page.context.cookies() if c["name"] == "PASS_ID")
    assert pass_id["httpOnly"] is True


def test_wrong_password_shows_an_error(page: Page, sandbox: Sandbox) -> None:
    fill_login(page, sandbox.url, OWNER, "wrong")
    expect(page.locator(LOGIN["error_text"])).to_contain_text("账号或密码错误")
    assert "/login" in page.url


def test_sub_account_login(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url, SUB)
    expect(page.locator(".user-name")).to_have_text(SUB)


def test_login_follows_redirect_url(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url + "/aftersales/aftersale_list?msfrom=mms_sidenav")
    assert "/login?redirectUrl=" in page.url
    page.locator(LOGIN["account_tab"]).click()
    page.fill(LOGIN["username"], OWNER)
    page.fill(LOGIN["password"], "demo-pass")
    page.locator(LOGIN["submit"]).click()
    page.wait_for_url("**/aftersales/aftersale_list?msfrom=mms_sidenav")
    page.wait_for_selector(LIST["rows"]["row"])


def test_sms_step(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.load("logins")
    fill_login(page, sandbox.url, "短信验证店", "sandbox-pass")
    sms = page.locator(LOGIN["sms_input"])
    expect(sms).to_be_visible()
    page.locator(LOGIN["sms_send"]).first.click()
    expect(page.get_by_role("button", name="验证码已发送")).to_be_visible()
    code = sandbox.control.sms_code("短信验证店")
    assert code
    sms.fill(code)
    page.locator(LOGIN["sms_confirm"]).click()
    page.wait_for_url("**/home")


def test_captcha_armed_blocks_until_cleared(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.arm_captcha()
    fill_login(page, sandbox.url, OWNER)
    modal = page.locator(LOGIN["captcha"]).first
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("请向右滑块完成拼图")
    expect(modal.locator("img")).to_be_visible()
    page.wait_for_timeout(1500)
    assert "/login" in page.url  # nobody can pass it automatically
    sandbox.control.clear_captcha()
    page.wait_for_url("**/home", timeout=10_000)


def test_qr_scan_logs_the_page_in(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url + "/login/")
    page.wait_for_function("document.querySelector('.qr-code').dataset.token")
    token = page.locator(LOGIN["qr_image"]).get_attribute("data-token")
    assert token
    sandbox.control.scan_qr(OWNER, token)
    page.wait_for_url("**/home", timeout=10_000)


def test_session_expiry_redirects_pages_and_apis_answer_43001(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    sandbox.control.expire_sessions(mall_id=100001)
    page.goto(sandbox.url + "/home")
    assert page.url.startswith(sandbox.url + "/login?redirectUrl=")
    res = in_page_fetch(page, SEL["site"]["api"]["query_list"], {"pageNumber": 1, "pageSize": 10})
    assert res["errorCode"] == 43001 and res["errorMsg"] == "会话已过期"
    check = page.evaluate("fetch('/janus/api/checkLogin').then(r => r.json())")
    assert check["result"]["login"] is False


def test_blind_navigation_trap_and_recovery_through_the_sidebar(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.settings(blind_navigation="always")
    login(page, sandbox.url)
    page.goto(sandbox.url + SEL["site"]["paths"]["aftersale_list"])
    assert page.url.endswith(SEL["site"]["paths"]["aftersale_setup"])
    open_workbench(page)
    assert "msfrom=mms_sidenav" in page.url
    expect(page.locator(LIST["rows"]["row"]).first).to_be_visible()


def test_cards_rows_and_paging_at_100_read_every_pending_item(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.load("big_shop")
    mall_id = sandbox.control.state()["shops"][0]["mall_id"]
    expected = {i["orderSn"] for i in sandbox.control.items(mall_id) if i["state"].startswith("wait_seller")}
    login(page, sandbox.url, "百货大卖场", "sandbox-pass")
    open_workbench(page)
    first = click_card(page, LIST["quick_filters"]["aftersales"])
    assert first["result"]["total"] == len(expected) > 250
    with page.expect_request(lambda r: SEL["site"]["api"]["query_list"] in r.url) as req:
        page.select_option(LIST["pagination"]["page_size"], "100")
    body = req.value.post_data_json
    assert body["pageSize"] == 100 and body["pageNumber"] == 1
    assert body["quickSearchType"] == sandbox.backend.settings.filter_codes["待商家处理"]
    seen: list[str] = []
    while True:
        page.wait_for_function("document.querySelector('#aftersale-app').dataset.loading === 'false'")
        seen += page.locator(LIST["rows"]["order_sn"]).all_inner_texts()
        nxt = page.locator(LIST["pagination"]["next"])
        if LIST["pagination"]["disabled_class"] in (nxt.get_attribute("class") or ""):
            break
        active = page.locator(LIST["pagination"]["active"]).inner_text()
        nxt.click()
        expect(page.locator(LIST["pagination"]["active"])).not_to_have_text(active)
    assert len(seen) == len(set(seen)) and set(seen) == expected


def test_countdown_text_matches_expire_remain_time(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.set_clock(freeze=True)
    login(page, sandbox.url)
    open_workbench(page)
    for label, rx, field in (
        (LIST["quick_filters"]["aftersales"], LIST["countdown"]["aftersale"], "expireRemainTime"),
        (LIST["quick_filters"]["evidence"], LIST["countdown"]["evidence"], "proofExpireRemainTime"),
    ):
        data = click_card(page, label)
        rows = data["result"]["list"]
        assert rows
        page.wait_for_function("document.querySelector('#aftersale-app').dataset.loading === 'false'")
        texts = page.locator(LIST["rows"]["countdown"]).all_inner_texts()
        sns = page.locator(LIST["rows"]["order_sn"]).all_inner_texts()
        assert sns == [r["orderSn"] for r in rows]
        for row, text in zip(rows, texts, strict=True):
            m = re.search(rx, text)
            assert m, text
            d, h, mi, s = (int(g) for g in m.groups())
            shown = d * 86400 + h * 3600 + mi * 60 + s
            # the page counts down in real time after the fetch; the API value is the reference
            assert 0 <= row[field] - shown <= 3, (text, row[field])


def test_no_return_tracking_countdown_form(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    open_workbench(page)
    data = click_card(page, LIST["quick_filters"]["aftersales"])
    no_track = [r for r in data["result"]["list"] if "物流无退回轨迹" in (r["expireActionDesc"] or "")]
    assert no_track
    row = page.locator(LIST["rows"]["row"], has_text=no_track[0]["orderSn"])
    expect(row.locator(LIST["rows"]["countdown"])).to_contain_text("物流无退回轨迹，系统将自动退款")


def test_changed_build_hash_still_matches_by_prefix(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.settings(build="Zq9Lk")
    login(page, sandbox.url)
    open_workbench(page)
    row = page.locator(LIST["rows"]["row"]).first
    expect(row).to_be_visible()
    cls = row.get_attribute("class") or ""
    from agent.sandbox.pages import class_map

    name = "after-sales-table_order_item"
    assert cls == class_map("Zq9Lk")[name] != class_map("3QqLW")[name]
    assert row.locator(LIST["rows"]["cell"]).count() == len(LIST["rows"]["cell_order"])


def test_rate_limit_shows_the_page_text(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    open_workbench(page)
    sandbox.control.arm_rate_limit(count=1)
    page.locator(LIST["quick_filters"]["card"], has_text="待商家处理").click()
    expect(page.get_by_role("alert")).to_contain_text("操作太过频繁，请稍后再试")


def test_clock_advance_turns_an_overdue_item_into_an_automatic_refund(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.set_clock(freeze=True)
    login(page, sandbox.url)
    open_workbench(page)
    rows = click_card(page, LIST["quick_filters"]["aftersales"])["result"]["list"]
    soonest = min(rows, key=lambda r: r["expireRemainTime"])
    expect(page.locator(LIST["rows"]["row"], has_text=soonest["orderSn"])).to_be_visible()
    sandbox.control.advance(soonest["expireRemainTime"] + 1)
    open_workbench(page)
    rows = click_card(page, LIST["quick_filters"]["aftersales"])["result"]["list"]
    assert soonest["orderSn"] not in {r["orderSn"] for r in rows}
    expect(page.locator(LIST["rows"]["row"], has_text=soonest["orderSn"])).to_have_count(0)
    open_workbench(page)  # the default view lists everything, closed items included
    row = page.locator(LIST["rows"]["row"], has_text=soonest["orderSn"])
    expect(row.locator(LIST["rows"]["cell"]).nth(4)).to_have_text("退款成功")


def test_hostile_buyer_text_is_rendered_as_text(page: Page, sandbox: Sandbox) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, sandbox.url)
    open_workbench(page)
    click_card(page, LIST["quick_filters"]["aftersales"])
    cell = page.locator(LIST["rows"]["cell"], has_text="<script>alert(1)</script>")
    expect(cell).to_have_count(1)
    expect(page.locator(f"{LIST['rows']['row']} a[href*='evil.example']")).to_have_count(0)
    assert dialogs == []


def test_detail_page_shows_the_remaining_time(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.set_clock(freeze=True)
    login(page, sandbox.url)
    open_workbench(page)
    row = click_card(page, LIST["quick_filters"]["aftersales"])["result"]["list"][0]
    item = page.locator(LIST["rows"]["row"], has_text=row["orderSn"])
    with page.context.expect_page() as popup:
        item.get_by_text(LIST["rows"]["detail_link_text"], exact=True).click()
    detail = popup.value
    detail.wait_for_load_state()
    expect(detail.locator("body")).to_contain_text(LIST["countdown"]["detail_label"])
    m = re.search(LIST["countdown"]["detail"], detail.locator(".remain-value").inner_text())
    assert m
    from agent.sandbox.items import dhms

    assert m.group(1) == dhms(row["expireRemainTime"])
