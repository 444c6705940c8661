"""The sandbox through a real Chromium, driven with the agent's own selectors/ data."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from agent.config import locators
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


def test_login_page_opens_on_the_qr_tab_with_a_canvas(page: Page, sandbox: Sandbox) -> None:
    with page.expect_response(lambda r: LOGIN["qr_create"] in r.url) as created:
        page.goto(sandbox.url + "/login/")
    assert "type=1&data=" in created.value.json()["result"]["uri"]
    expect(page.locator(LOGIN["page_marker"])).to_be_visible()
    qr = page.locator(LOGIN["qr_image"])
    expect(qr).to_be_visible()
    expect(qr.locator("canvas")).to_have_attribute("data-drawn", "true")
    assert qr.locator("img").count() == 0 and qr.get_attribute("src") is None  # nothing to read from the DOM
    expect(page.locator(".login-tab .item.checked")).to_have_text(LOGIN["tab_qr_text"])
    expect(page.get_by_text("打开拼多多商家版App扫码登录")).to_be_visible()
    expect(page.locator(LOGIN["username"])).to_be_hidden()
    page.locator(LOGIN["account_tab"]).click()
    expect(page.locator(".login-tab .item.checked")).to_have_text(LOGIN["tab_account_text"])
    expect(page.locator(LOGIN["username"])).to_be_visible()
    expect(page.locator(LOGIN["username"])).to_have_attribute("placeholder", "请输入账号名/手机号")
    expect(page.locator(LOGIN["password"])).to_be_visible()


def test_password_login_lands_on_home_with_counters_and_sidebar(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    counters = sandbox.backend.wait_handle_count(100001)
    text = page.inner_text("body")
    for label in LIST["counters"]["labels"]:
        m = re.search(LIST["counters"]["pattern"].replace("{label}", re.escape(label)), text)
        assert m and int(m.group(1)) == counters[LIST["counters"]["keys"][label]], label
    link = page.locator(SEL["site"]["home"]["sidebar_link"])
    expect(link).to_have_text(SEL["site"]["home"]["sidebar_text"])
    assert {c["name"] for c in page.context.cookies()} >= set(SEL["site"]["cookies"]["required"])
    pass_id = next(c for c in page.context.cookies() if c["name"] == "PASS_ID")
    assert pass_id["httpOnly"] is True


def test_wrong_password_shows_an_error(page: Page, sandbox: Sandbox) -> None:
    fill_login(page, sandbox.url, OWNER, "wrong")
    expect(page.locator(".info-danger-warn .info-danger-container > span.info-error-text")).to_contain_text(
        "账号或密码错误"
    )
    expect(page.locator(LOGIN["error_text"]).first).to_contain_text("账号或密码错误")
    assert "/login" in page.url


@pytest.mark.parametrize("code", [2000016, 2000017, 8000079, 40029])
def test_risk_and_blocked_logins_show_their_texts(page: Page, sandbox: Sandbox, code: int) -> None:
    from agent.sandbox.records import BLOCKED_LOGIN

    sandbox.control.arm_login_block(OWNER, code)
    fill_login(page, sandbox.url, OWNER)
    expect(page.locator("body")).to_contain_text(BLOCKED_LOGIN[code])
    assert "/login" in page.url


def test_picture_captcha(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.arm_picture_captcha()
    fill_login(page, sandbox.url, OWNER)
    modal = page.locator(".picture-captcha")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("请先输入图形验证码")
    sandbox.control.clear_captcha()
    page.wait_for_url("**/home", timeout=10_000)


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
    expect(page.get_by_text("请验证手机号后继续登录")).to_be_visible()
    with page.expect_request(lambda r: "/janus/api/mobile/sendVerificationCode" in r.url) as sent:
        page.locator(LOGIN["sms_send"]).first.click()
    assert sent.value.post_data_json["type"] == 117
    expect(page.locator(".sms-send")).to_have_text(re.compile(r"还剩\d+秒"))
    code = sandbox.control.sms_code("短信验证店")
    assert code
    sms.fill(code)
    page.locator(LOGIN["sms_confirm"]).click()
    page.wait_for_url("**/home")


def test_captcha_armed_blocks_until_cleared(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.arm_captcha()
    fill_login(page, sandbox.url, OWNER)
    modal = page.locator(LOGIN["captcha"] + " >> visible=true").first
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("请向右滑块完成拼图")
    expect(modal.locator("img")).to_be_visible()
    page.wait_for_timeout(1500)
    assert "/login" in page.url  # nobody can pass it automatically
    sandbox.control.clear_captcha()
    page.wait_for_url("**/home", timeout=10_000)


def test_qr_scan_confirm_logs_the_page_in(page: Page, sandbox: Sandbox) -> None:
    with page.expect_response(lambda r: LOGIN["qr_create"] in r.url) as created:
        page.goto(sandbox.url + "/login/")
    token = created.value.json()["result"]["uri"].rsplit("data=", 1)[1]
    sandbox.control.scan_qr(OWNER, token, confirm=False)
    expect(page.locator(".qr-status")).to_contain_text("请在手机上确认登录", timeout=5000)
    sandbox.control.scan_qr(OWNER, token)
    page.wait_for_url("**/home", timeout=10_000)


def test_an_expired_qr_offers_a_refresh(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.settings(qr_ttl=1)
    page.goto(sandbox.url + "/login/")
    expect(page.get_by_text("二维码已失效")).to_be_visible(timeout=6000)
    sandbox.control.settings(qr_ttl=300)
    with page.expect_response(lambda r: LOGIN["qr_create"] in r.url):
        page.locator(LOGIN["qr_refresh"]).click()
    expect(page.get_by_text("二维码已失效")).to_be_hidden()


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
    pg = LIST["pagination"]
    root = page.locator(pg["root"])
    expect(root).to_have_attribute(pg["status_attribute"], "beast-core-pagination-10-1")
    assert page.locator("select").count() == 0  # a custom dropdown, not <select> (§G)
    page.locator(pg["page_size"]).click()
    with page.expect_request(lambda r: SEL["site"]["api"]["query_list"] in r.url) as req:
        page.locator(pg["page_size_option"], has_text=pg["page_size_option_text"].format(size=100)).click()
    body = req.value.post_data_json
    assert body["pageSize"] == 100 and body["pageNumber"] == 1
    assert body["quickSearchType"] == 7 and body["orderByExpireTimeAsc"] is True
    expect(root).to_have_attribute(pg["status_attribute"], "beast-core-pagination-100-1")
    assert root.locator("[aria-current]").count() == 0
    seen: list[str] = []
    for n in range(1, 10):
        expect(root).to_have_attribute(pg["status_attribute"], f"beast-core-pagination-100-{n}")
        page.wait_for_function("document.querySelector('#aftersale-app').dataset.loading === 'false'")
        seen += page.locator(LIST["rows"]["order_sn"]).all_inner_texts()
        nxt = page.locator(pg["next"])
        if pg["disabled_class"] in (nxt.get_attribute("class") or ""):
            break
        nxt.click()
    assert len(seen) == len(set(seen)) and set(seen) == expected


def test_a_shop_without_the_page_size_changer(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.settings(page_size_changer=False)
    login(page, sandbox.url)
    open_workbench(page)
    expect(page.locator(LIST["pagination"]["root"])).to_be_visible()
    expect(page.locator(LIST["pagination"]["page_size"])).to_have_count(0)


def test_nine_cards_send_the_live_codes_and_sort_flags(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    with page.expect_request(lambda r: SEL["site"]["api"]["query_list"] in r.url) as first:
        open_workbench(page)
    assert first.value.post_data_json == {"pageNumber": 1, "pageSize": 10, "quickSearchType": 18,
                                          "orderByCreatedAtDesc": True, "mallRemarkStatus": None,
                                          "mallRemarkTag": None}
    labels = page.locator(LIST["quick_filters"]["card"]).all_inner_texts()
    assert [t.splitlines()[0] for t in labels] == LIST["quick_filters"]["labels"]
    for label in LIST["quick_filters"]["labels"]:
        card = page.locator(LIST["quick_filters"]["card"], has_text=label)
        with page.expect_request(lambda r: SEL["site"]["api"]["query_list"] in r.url) as req:
            card.click()
        body = req.value.post_data_json
        assert body["quickSearchType"] == LIST["quick_filters"]["codes"][label], label
        assert ("orderByExpireTimeAsc" in body) is (label in LIST["quick_filters"]["expire_sorted"]), label


def test_search_type_in_the_url_preselects_a_card(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    with page.expect_request(lambda r: SEL["site"]["api"]["query_list"] in r.url) as req:
        page.goto(sandbox.url + "/aftersales/aftersale_list?msfrom=mms_sidenav&searchType=19")
    assert req.value.post_data_json["quickSearchType"] == 19
    card = page.locator(LIST["quick_filters"]["card"], has_text="待商家举证")
    expect(card).to_have_class(re.compile(LIST["quick_filters"]["checked_class"]))


def test_query_count_is_posted_without_a_body(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    with page.expect_request(lambda r: SEL["site"]["api"]["query_count"] in r.url) as req:
        open_workbench(page)
    assert req.value.post_data is None


def test_gray_quick_filter_sort_switches_to_wait_seller(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.settings(quick_filter_sort=True)
    for item in sandbox.control.items(100001):  # no complaint warnings, items waiting: the page moves on
        if item.get("complaint_risk") or sandbox.backend.find_item(item["id"])[1].complaint_risk:
            sandbox.control.handle(item["id"])
    login(page, sandbox.url)
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if SEL["site"]["api"]["query_list"] in r.url
            else None)
    open_workbench(page)
    card = page.locator(LIST["quick_filters"]["card"], has_text="待商家处理")
    expect(card).to_have_class(re.compile(LIST["quick_filters"]["checked_class"]))
    assert [b["quickSearchType"] for b in bodies][:2] == [18, 7]


def test_54001_raises_the_floating_captcha_and_the_page_retries(page: Page, sandbox: Sandbox) -> None:
    login(page, sandbox.url)
    sandbox.control.arm_api_captcha(OWNER)
    page.goto(sandbox.url + "/home")
    page.locator(SEL["site"]["home"]["sidebar_link"]).first.click()
    modal = page.locator("[data-testid='beast-core-modal']")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("请向右滑块完成拼图")
    with page.expect_request(lambda r: SEL["site"]["api"]["query_list"] in r.url) as retried:
        sandbox.control.clear_captcha()
        page.wait_for_selector(LIST["rows"]["row"], timeout=10_000)
    assert retried.value.headers.get("verifyauthtoken")
    assert any(c["name"] == "mms-mobile-captcha-cookie-token" for c in page.context.cookies())


def test_countdown_markup_matches_expire_remain_time(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.set_clock(freeze=True)
    login(page, sandbox.url)
    open_workbench(page)
    rx = LIST["countdown"]["time"]
    for label in (LIST["quick_filters"]["aftersales"], LIST["quick_filters"]["evidence"]):
        data = click_card(page, label)
        rows = data["result"]["list"]
        assert rows
        page.wait_for_function("document.querySelector('#aftersale-app').dataset.loading === 'false'")
        full = page.locator(LIST["rows"]["countdown"]).all_inner_texts()
        bare = page.locator(LIST["rows"]["countdown_time"]).all_inner_texts()
        sns = page.locator(LIST["rows"]["order_sn"]).all_inner_texts()
        assert sns == [r["orderSn"] for r in rows]
        for row, text, time_text in zip(rows, full, bare, strict=True):
            m = re.fullmatch(rx, time_text)  # the time span holds the bare time only
            assert m, time_text
            assert text == "（" + time_text + row["expireActionDesc"].replace("${time}", "") + "）"
            d, h, mi, s = (int(g) for g in m.groups())
            shown = d * 86400 + h * 3600 + mi * 60 + s
            # the page counts down in real time after the fetch; the API value is the reference
            assert 0 <= row["expireRemainTime"] - shown <= 3, (text, row["expireRemainTime"])
            item = page.locator(LIST["rows"]["row"], has_text=row["orderSn"])
            red = item.locator("[class*='table-item-header_expired']").count() == 1
            assert red is (row["urgentType"] in (1, 2, 3)), row


def test_an_overdue_row_shows_yi_yu_qi(page: Page, sandbox: Sandbox) -> None:
    sandbox.control.settings(refund_lag=3600)
    sandbox.control.set_clock(freeze=True)
    login(page, sandbox.url)
    open_workbench(page)
    rows = click_card(page, LIST["quick_filters"]["aftersales"])["result"]["list"]
    soonest = min(rows, key=lambda r: r["expireRemainTime"])
    sandbox.control.advance(soonest["expireRemainTime"] + 5)
    open_workbench(page)
    click_card(page, LIST["quick_filters"]["aftersales"])
    item = page.locator(LIST["rows"]["row"], has_text=soonest["orderSn"])
    expect(item.locator(LIST["rows"]["countdown"])).to_have_text("（" + LIST["countdown"]["overdue_text"] + "）")
    expect(item.locator(LIST["rows"]["countdown_time"])).to_have_count(0)


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
    with page.expect_response(lambda r: SEL["site"]["api"]["query_count"] in r.url) as resp:
        page.locator(LIST["quick_filters"]["card"], has_text="待商家处理").click()
    assert resp.value.status == 429
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
    everything = in_page_fetch(page, SEL["site"]["api"]["query_list"], {"pageNumber": 1, "pageSize": 100})
    closed = {r["orderSn"]: r for r in everything["result"]["list"]}[soonest["orderSn"]]
    assert closed["afterSalesTitle"] == "退款成功" and closed["expireActionDesc"] == ""


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
