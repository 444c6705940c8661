"""The sandbox over plain HTTP: sessions, login hurdles, list paging, errors, clock and control API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from agent.sandbox import items as it
from tests.conftest import Sandbox, auth

QL = "/mercury/mms/afterSales/queryList"
QC = "/mercury/mms/afterSales/queryCount"
QW = "/mercury/merchant/afterSales/queryWaitHandleCount"
WAIT, WAIT_24H, PROOF, PROOF_24H = 7, 4, 19, 15  # live quickSearchType codes (mms-live-2026.md §A)
OWNER = "示例旗舰店"
SUB = "示例旗舰店:客服01"


def query(c: httpx.Client, **body: Any) -> dict[str, Any]:
    return dict(c.post(QL, json=body).json())


def all_rows(c: httpx.Client, code: int | None, size: int = 100) -> list[dict[str, Any]]:
    """Every row of a card (None: no quickSearchType, every item)."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        body: dict[str, Any] = {"pageNumber": page, "pageSize": size}
        if code is not None:
            body["quickSearchType"] = code
        res = query(c, **body)["result"]
        rows += res["list"]
        if len(rows) >= res["total"] or not res["list"]:
            return rows
        page += 1


def test_logged_out_pages_redirect_and_apis_answer_43001(sandbox: Sandbox) -> None:
    c = sandbox.client()
    r = c.get("/home")
    assert r.status_code == 302
    assert r.headers["location"] == "/login?redirectUrl=" + quote(sandbox.url + "/home", safe="")
    r = c.get("/aftersales/aftersale_list?msfrom=mms_sidenav")
    assert r.headers["location"].startswith("/login?redirectUrl=http%3A%2F%2F")
    r = c.post(QL, json={"pageSize": 10, "pageNumber": 1})
    body = r.json()
    assert (body["success"], body["errorCode"], body["errorMsg"]) == (False, 43001, "会话已过期")
    assert r.headers["checklogin"] == "false"  # 43001 with this header sends the page to login (§F)
    assert c.get("/janus/api/checkLogin").json()["result"] == {"login": False}
    assert c.post("/janus/api/checkLogin", json={}).json()["result"] == {"login": False}


def test_password_login_sets_the_three_cookies(sandbox: Sandbox) -> None:
    c = sandbox.client()
    c.get("/login/")
    key = c.get("/janus/api/queryPasswordEncrypt").json()["result"]
    assert set(key) == {"passwordEncrypt", "publicKey"}
    assert auth(c, OWNER, "demo-pass")["success"] is True
    set_cookies = [f"{k}=" + ("HttpOnly" if k == "PASS_ID" else "") for k in c.cookies]
    assert any(h.startswith("PASS_ID=") for h in set_cookies)
    assert re.fullmatch(r"windows_1-[0-9a-f]+_\d+_\d+", c.cookies["PASS_ID"])
    assert c.cookies["_nano_fp"] and c.cookies["rckk"]
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is True
    info = c.post("/janus/api/new/userinfo", json={}).json()["result"]
    assert info["username"] == OWNER and info["mallOwner"] is True and info["mall_id"] == 100001
    assert c.get("/home").status_code == 200


def test_wrong_password_gives_error_and_no_cookie(sandbox: Sandbox) -> None:
    c = sandbox.client()
    r = auth(c, OWNER, "nope")
    assert r["success"] is False and "密码错误" in r["errorMsg"]
    assert "PASS_ID" not in c.cookies
    # a plain (unencrypted) password is refused like the live endpoint would
    plain = c.post("/janus/api/auth", json={"username": OWNER, "password": "demo-pass"}).json()
    assert plain["success"] is False and "PASS_ID" not in c.cookies


def test_sub_account_logs_into_the_main_accounts_shop(sandbox: Sandbox) -> None:
    c = sandbox.login_http(SUB)
    info = c.post("/janus/api/new/userinfo", json={}).json()["result"]
    assert info["username"] == SUB and info["mallOwner"] is False and info["mall_id"] == 100001


def test_business_apis_need_all_three_cookies(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    assert query(c, pageSize=10, pageNumber=1)["success"] is True
    for missing in ("_nano_fp", "rckk", "PASS_ID"):
        jar = {k: v for k, v in c.cookies.items() if k != missing}
        r = httpx.post(sandbox.url + QL, json={"pageSize": 10}, cookies=jar).json()
        assert r["errorCode"] == 43001, missing


def test_session_expiry_by_control_and_by_lifetime(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    assert sandbox.control.expire_sessions(mall_id=100001) == 1
    assert query(c, pageSize=10)["errorCode"] == 43001
    assert c.get("/home").status_code == 302
    c = sandbox.login_http(OWNER)
    sandbox.control.settings(session_ttl=3600)
    c = sandbox.login_http(OWNER)
    sandbox.control.advance(3599)
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is True
    sandbox.control.advance(2)
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is False
    assert query(c, pageSize=10)["errorCode"] == 43001


def test_sms_step_and_trusted_device(sandbox: Sandbox) -> None:
    sandbox.control.load("logins")
    c = sandbox.client()
    c.get("/login/")
    user, pw = "短信验证店", "sandbox-pass"
    r = auth(c, user, pw)
    assert r["success"] is False and r["result"] == {"needSms": True} and "请验证手机号后继续登录" in r["errorMsg"]
    assert sandbox.control.sms_code(user) is None
    sms = "/janus/api/mobile/sendVerificationCode"
    assert c.post(sms, json={"username": user}).json()["success"] is False  # type 117 is the login SMS
    assert c.post(sms, json={"type": 117, "username": user}).json()["success"]
    code = sandbox.control.sms_code(user)
    assert code and re.fullmatch(r"\d{6}", code)
    wrong = "000000" if code != "000000" else "111111"
    assert auth(c, user, pw, mobileVerifyCode=wrong)["errorMsg"] == "验证码错误，请重新输入"
    assert auth(c, user, pw, mobileVerifyCode=code)["success"] is True
    # the device (api_uid cookie) is now trusted: the next password login needs no SMS
    c.cookies.delete("PASS_ID")
    assert auth(c, user, pw)["success"] is True
    # a fresh device needs the SMS again; so does an armed account
    fresh = sandbox.client()
    assert auth(fresh, user, pw)["result"] == {"needSms": True}
    sandbox.control.arm_sms("密码登录店")
    assert auth(c, "密码登录店", pw)["result"] == {"needSms": True}


def test_qr_only_account_refuses_password_with_8000079(sandbox: Sandbox) -> None:
    sandbox.control.load("logins")
    r = auth(sandbox.client(), "扫码登录店", "sandbox-pass")
    assert r["success"] is False and r["errorCode"] == 8000079 and "禁止在网页版登录" in r["errorMsg"]


@pytest.mark.parametrize("code", [2000008, 2000009, 2000016, 2000017, 40029, 500000, 8000079])
def test_blocked_login_codes_armed_then_cleared(sandbox: Sandbox, code: int) -> None:
    sandbox.control.arm_login_block(OWNER, code)
    r = auth(sandbox.client(), OWNER, "demo-pass")
    assert (r["success"], r["errorCode"]) == (False, code)
    from agent.sandbox.records import BLOCKED_LOGIN

    assert r["errorMsg"] == BLOCKED_LOGIN[code]
    sandbox.control.arm_login_block(OWNER, 0)
    assert auth(sandbox.client(), OWNER, "demo-pass")["success"] is True


def test_picture_captcha_armed_then_cleared(sandbox: Sandbox) -> None:
    sandbox.control.arm_picture_captcha()
    c = sandbox.client()
    r = auth(c, OWNER, "demo-pass")
    assert r["success"] is False and r["errorMsg"] == "请先输入图形验证码"
    assert c.get("/janus/api/getCaptchaCode").headers["content-type"] == "image/svg+xml"
    assert c.get("/janus/api/captcha/status", params={"ticket": "picture"}).json()["result"]["passed"] is False
    sandbox.control.clear_captcha()
    assert c.get("/janus/api/captcha/status", params={"ticket": "picture"}).json()["result"]["passed"] is True
    assert auth(c, OWNER, "demo-pass", verificationCode="ok")["success"] is True


def test_captcha_armed_then_cleared(sandbox: Sandbox) -> None:
    sandbox.control.arm_captcha()
    c = sandbox.client()
    r = auth(c, OWNER, "demo-pass")
    assert r["errorCode"] == 70031 and r["result"]["captchaTicket"]
    ticket = r["result"]["captchaTicket"]
    assert c.get("/janus/api/captcha/status", params={"ticket": ticket}).json()["result"]["passed"] is False
    sandbox.control.clear_captcha()
    assert c.get("/janus/api/captcha/status", params={"ticket": ticket}).json()["result"]["passed"] is True
    assert auth(c, OWNER, "demo-pass")["success"] is True


def _qr(c: httpx.Client) -> str:
    r = c.post("/janus/api/scan/login/qrcode", json={"fingerprint": "fp"})
    assert r.headers["etag"]
    uri = r.json()["result"]["uri"]
    assert re.fullmatch(r".+\?type=1&data=[0-9a-f-]{36}", uri)
    return uri.rsplit("data=", 1)[1]


def _qr_status(c: httpx.Client, data: str) -> Any:
    body = c.post("/janus/api/scan/login/query", json={"data": data, "fingerprint": "fp"}).json()
    return body["result"]["status"] if body["success"] else body["errorCode"]


def test_qr_login_statuses_scan_confirm_and_once(sandbox: Sandbox) -> None:
    c = sandbox.client()
    data = _qr(c)
    assert _qr_status(c, data) == 1
    assert sandbox.control.scan_qr(OWNER, confirm=False) == data
    assert _qr_status(c, data) == 2  # 扫码成功 / 请在手机上确认登录
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is False
    sandbox.control.scan_qr(OWNER, data)
    assert _qr_status(c, data) == 3
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is True
    assert _qr_status(c, data) == 3 and sandbox.backend.stats["logins"] == 1  # a QR logs in once


def test_qr_expired_cancelled_busy_and_blocked(sandbox: Sandbox) -> None:
    c = sandbox.client()
    sandbox.control.settings(qr_ttl=0)
    assert _qr_status(c, _qr(c)) == -1  # 二维码已失效
    sandbox.control.settings(qr_ttl=300)
    data = _qr(c)
    sandbox.control.cancel_qr()
    assert _qr_status(c, data) == -2  # 已取消
    sandbox.control.settings(qr_busy=True)
    assert _qr_status(c, _qr(c)) == 5  # 系统繁忙，请通过账密登录
    sandbox.control.settings(qr_busy=False)
    sandbox.control.arm_login_block(OWNER, 500000)
    data = _qr(c)
    sandbox.control.scan_qr(OWNER, data)
    assert _qr_status(c, data) == 500000
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is False
    rows = c.get("/static/qrmatrix", params={"data": "x"}).json()["rows"]
    assert rows and set("".join(rows)) == {"0", "1"}


def test_paging_up_to_100_reads_every_pending_item_once(sandbox: Sandbox) -> None:
    sandbox.control.load("big_shop")
    c = sandbox.login_http("百货大卖场", "sandbox-pass")
    expected = {i["id"] for i in sandbox.control.items(sandbox.control.state()["shops"][0]["mall_id"])
                if i["state"] in ("wait_seller", "wait_seller_receive")}
    assert len(expected) > 250
    first = query(c, pageNumber=1, pageSize=100, quickSearchType=WAIT)["result"]
    assert first["total"] == len(expected) and len(first["list"]) == 100
    rows = all_rows(c, WAIT)
    assert [r["id"] for r in rows] == list(dict.fromkeys(r["id"] for r in rows))
    assert {r["id"] for r in rows} == expected
    last_page = query(c, pageNumber=3, pageSize=100, quickSearchType=WAIT)["result"]["list"]
    assert len(last_page) == len(expected) - 200
    bad = query(c, pageNumber=1, pageSize=101, quickSearchType=WAIT)
    assert bad["success"] is False
    unknown = query(c, pageNumber=1, pageSize=10, quickSearchType=99)  # a bad code is rejected (§I)
    assert unknown["success"] is False and unknown["errorMsg"] == "参数校验失败"


def test_row_fields_follow_the_live_names(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    row = query(c, pageNumber=1, pageSize=100, quickSearchType=WAIT)["result"]["list"][0]
    live = ("id", "uid", "orderSn", "version", "createdAt", "expireRemainTime", "expireActionDesc", "urgentType",
            "actions", "thumbUrl", "goodsName", "goodsNumber", "goodsSpec", "tagTipList", "receiveAmount",
            "refundAmount", "afterSalesType", "afterSalesStatus", "serveTagDesc", "afterSalesTitle",
            "afterSalesReasonDesc", "sellerAfterSalesShippingStatusDesc", "rejectChatTipDesc")
    for key in live:
        assert key in row, key
    for gone in ("proofStatus", "proofExpireRemainTime", "platformJoined"):
        assert gone not in row, gone  # the live renderer reads no proof field (§E)
    assert re.fullmatch(r"\d{6}-\d{15}", row["orderSn"])
    assert isinstance(row["refundAmount"], int) and isinstance(row["expireRemainTime"], int)
    assert row["expireActionDesc"].startswith("${time}") and isinstance(row["actions"], list)
    assert row["afterSalesStatus"] in (1, 11, 14)  # 待商家处理 (§D)
    env = c.post(QL, json={"pageSize": 10}).json()
    assert env["errorCode"] == 1000000 and env["errorMsg"] is None


def test_query_count_takes_no_body_and_agrees_with_query_list(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    counts = c.post(QC).json()["result"]  # the page sends no body (§B)
    codes = sandbox.backend.settings.filter_codes
    assert len(it.CARDS) == 9
    for card in it.CARDS:
        assert query(c, pageSize=100, quickSearchType=codes[card.label])["result"]["total"] == counts[card.count_key]
    assert counts["waitSellerProof"] == 2 and counts["waitSellerHandle"] == 7
    assert "refundedByPlatformLast24Hours" in counts


def test_query_wait_handle_count_gives_the_header_counters(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    head = c.post(QW, json={}).json()["result"]
    assert set(head) == {"expiringNum", "expireIn24HoursWaitSellerProof", "refundedByPlatformLast24Hours",
                         "expireIn24HoursTicketNum"}
    assert head["expiringNum"] == len(all_rows(c, WAIT_24H))
    assert head["expireIn24HoursWaitSellerProof"] == len(all_rows(c, PROOF_24H))


def test_rate_limit_is_http_429(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.arm_rate_limit(count=2)
    for _ in range(2):
        r = c.post(QL, json={"pageSize": 10})
        assert r.status_code == 429 and r.json()["errorMsg"] == "操作太过频繁，请稍后再试"
    assert query(c, pageSize=10)["success"] is True
    sandbox.control.settings(rate_limit_per_minute=3)
    results = [c.post(QL, json={"pageSize": 10}).status_code for _ in range(5)]
    assert results.count(429) >= 2 and results[:2] == [200, 200]


def test_54001_asks_for_a_captcha_until_a_human_passes_it(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.arm_api_captcha(OWNER)
    for path in (QL, QC, QW):
        body = c.post(path, json={}).json()
        assert (body["success"], body["errorCode"]) == (False, 54001), path
        assert re.fullmatch(r"[0-9a-f]{32}", body["result"]["verifyAuthToken"])
    token = c.post(QL, json={}).json()["result"]["verifyAuthToken"]
    status = c.get("/janus/api/captcha/status", params={"ticket": token}).json()["result"]["passed"]
    assert status is False
    assert sandbox.backend.pass_api_captcha(token)  # the person at the window passed it
    assert c.post(QL, json={}, headers={"verifyauthtoken": token}).json()["success"] is True
    c.cookies.set("mms-mobile-captcha-cookie-token", token)
    assert c.post(QL, json={}).json()["success"] is True  # the page's token cookie (10 min)
    c.cookies.delete("mms-mobile-captcha-cookie-token")
    assert c.post(QL, json={}).json()["errorCode"] == 54001  # still armed for requests without it
    sandbox.control.clear_captcha()
    assert c.post(QL, json={}).json()["success"] is True


def test_clock_advance_turns_an_overdue_item_into_an_automatic_refund(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.set_clock(freeze=True)
    pending = all_rows(c, WAIT)
    soonest = min(pending, key=lambda r: r["expireRemainTime"])
    sandbox.control.advance(soonest["expireRemainTime"] - 1)
    assert soonest["id"] in {r["id"] for r in all_rows(c, WAIT)}
    sandbox.control.advance(2)
    assert soonest["id"] not in {r["id"] for r in all_rows(c, WAIT)}
    gone = {r["id"]: r for r in all_rows(c, None)}[soonest["id"]]
    assert gone["afterSalesTitle"] == "退款成功" and gone["afterSalesStatus"] == 5 and 1028 in gone["actions"]
    assert (gone["expireRemainTime"], gone["expireActionDesc"]) == (0, "")


def test_an_overdue_row_before_the_refund_job_shows_remaining_zero(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.settings(refund_lag=600)
    sandbox.control.set_clock(freeze=True)
    soonest = min(all_rows(c, WAIT), key=lambda r: r["expireRemainTime"])
    sandbox.control.advance(soonest["expireRemainTime"] + 60)
    row = {r["id"]: r for r in all_rows(c, WAIT)}[soonest["id"]]
    assert row["expireRemainTime"] == 0 and row["expireActionDesc"] and row["urgentType"] == 3  # 「（已逾期）」
    sandbox.control.advance(600)
    assert soonest["id"] not in {r["id"] for r in all_rows(c, WAIT)}


def test_evidence_rows_carry_their_deadline_like_every_row(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.set_clock(freeze=True)
    proofs = all_rows(c, PROOF)
    assert len(proofs) == 2
    for row in proofs:
        assert row["afterSalesTitle"] == "平台处理中" and row["afterSalesStatus"] == 2
        assert row["expireRemainTime"] > 0 and row["expireActionDesc"].startswith("${time}")
        assert "proofStatus" not in row
    soon = min(proofs, key=lambda r: r["expireRemainTime"])
    assert soon["expireRemainTime"] < 86400
    assert {r["id"] for r in all_rows(c, PROOF_24H)} == {r["id"] for r in proofs if r["expireRemainTime"] < 86400}
    sandbox.control.advance(soon["expireRemainTime"] + 1)
    assert soon["id"] not in {r["id"] for r in all_rows(c, PROOF)}
    closed = {r["id"]: r for r in all_rows(c, None)}[soon["id"]]
    assert 1028 in closed["actions"] and closed["afterSalesStatus"] == 5 and closed["expireActionDesc"] == ""


def test_handled_items_leave_the_pending_filters(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    target = all_rows(c, WAIT)[0]
    sandbox.control.handle(target["id"])
    assert target["id"] not in {r["id"] for r in all_rows(c, WAIT)}
    proof = all_rows(c, PROOF)[0]
    sandbox.control.handle(proof["id"])
    assert proof["id"] not in {r["id"] for r in all_rows(c, PROOF)}


def test_added_and_aged_items(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    new = {"id": 22750499999999, "orderSn": "261121-000000000000001", "afterSalesType": 1, "state": "wait_seller",
           "created_ago": 60, "deadline_in": 3 * 86400, "reason": "不想要了", "goodsName": "测试商品",
           "goodsSpec": "默认", "orderAmount": 990, "refundAmount": 990}
    sandbox.control.add_items(100001, [new])
    assert new["id"] in {r["id"] for r in all_rows(c, WAIT)}
    assert new["id"] not in {r["id"] for r in all_rows(c, WAIT_24H)}
    sandbox.control.age(new["id"], 2 * 86400 + 3600)
    assert new["id"] in {r["id"] for r in all_rows(c, WAIT_24H)}


def test_changed_quick_filter_codes(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    before = {r["id"] for r in all_rows(c, WAIT)}
    sandbox.control.settings(filter_codes={"待商家处理": 31})
    assert {r["id"] for r in all_rows(c, 31)} == before
    assert query(c, pageSize=10, quickSearchType=WAIT)["errorMsg"] == "参数校验失败"
    with pytest.raises(Exception, match="distinct"):
        sandbox.control.settings(filter_codes={"待商家举证": 31})


@pytest.mark.parametrize(("mode", "expect_redirect"), [("always", True), ("never", False)])
def test_blind_navigation_trap(sandbox: Sandbox, mode: str, expect_redirect: bool) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.settings(blind_navigation=mode)
    r = c.get("/aftersales/aftersale_list")
    assert (r.status_code == 302 and r.headers["location"] == "/aftersales/setup") is expect_redirect
    # arriving from the sidebar never redirects, nor does a same-site referer
    assert c.get("/aftersales/aftersale_list?msfrom=mms_sidenav").status_code == 200
    host = httpx.URL(sandbox.url).netloc.decode()
    r = c.get("/aftersales/aftersale_list", headers={"Referer": f"http://{host}/home"})
    assert r.status_code == 200


def test_detail_page_shows_remaining_time(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.set_clock(freeze=True)
    row = all_rows(c, WAIT)[0]
    html = c.get("/aftersales-ssr/detail", params={"id": row["id"], "orderSn": row["orderSn"]}).text
    from agent.sandbox.items import dhms

    assert "剩余处理时间" in html and dhms(row["expireRemainTime"]) in html
    assert c.get("/aftersales-ssr/detail", params={"id": row["id"], "orderSn": "x"}).status_code == 404


def test_build_hash_changes_class_names(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    page = c.get("/aftersales/aftersale_list?msfrom=mms_sidenav").text
    old = re.search(r"after-sales-table_order_item__(\w{5})", page)
    assert old
    sandbox.control.settings(build="9ZzYx")
    page2 = c.get("/aftersales/aftersale_list?msfrom=mms_sidenav").text
    new = re.search(r"after-sales-table_order_item__(\w{5})", page2)
    assert new and new.group(1) != old.group(1)


def test_control_api_rejects_bad_calls(sandbox: Sandbox) -> None:
    r = httpx.post(sandbox.url + "/__sandbox/settings", json={"nope": 1})
    assert r.status_code == 400 and "unknown setting" in r.json()["error"]
    r = httpx.post(sandbox.url + "/__sandbox/scenario", json={"builtin": "missing"})
    assert r.status_code == 400
    assert httpx.get(sandbox.url + "/__sandbox/nothing").status_code == 404
