"""The sandbox over plain HTTP: sessions, login hurdles, list paging, errors, clock and control API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import Sandbox

QL = "/mercury/mms/afterSales/queryList"
QC = "/mercury/mms/afterSales/queryCount"
OWNER = "示例旗舰店"
SUB = "示例旗舰店:客服01"


def query(c: httpx.Client, **body: Any) -> dict[str, Any]:
    return dict(c.post(QL, json=body).json())


def all_rows(c: httpx.Client, code: int, size: int = 100) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        res = query(c, pageNumber=page, pageSize=size, quickSearchType=code)["result"]
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
    body = c.post(QL, json={"pageSize": 10, "pageNumber": 1}).json()
    assert (body["success"], body["errorCode"], body["errorMsg"]) == (False, 43001, "会话已过期")
    assert c.get("/janus/api/checkLogin").json()["result"] == {"login": False}
    assert c.post("/janus/api/checkLogin", json={}).json()["result"] == {"login": False}


def test_password_login_sets_the_three_cookies(sandbox: Sandbox) -> None:
    c = sandbox.client()
    c.get("/login/")
    r = c.post("/janus/api/auth", json={"username": OWNER, "password": "demo-pass"})
    assert r.json()["success"] is True
    set_cookies = r.headers.get_list("set-cookie")
    pass_id = next(h for h in set_cookies if h.startswith("PASS_ID="))
    assert "HttpOnly" in pass_id
    assert re.fullmatch(r"windows_1-[0-9a-f]+_\d+_\d+", c.cookies["PASS_ID"])
    assert c.cookies["_nano_fp"] and c.cookies["rckk"]
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is True
    info = c.post("/janus/api/new/userinfo", json={}).json()["result"]
    assert info["username"] == OWNER and info["mallOwner"] is True and info["mall_id"] == 100001
    assert c.get("/home").status_code == 200


def test_wrong_password_gives_error_and_no_cookie(sandbox: Sandbox) -> None:
    c = sandbox.client()
    r = c.post("/janus/api/auth", json={"username": OWNER, "password": "nope"}).json()
    assert r["success"] is False and "密码错误" in r["errorMsg"]
    assert "PASS_ID" not in c.cookies


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
    creds = {"username": "短信验证店", "password": "sandbox-pass"}
    r = c.post("/janus/api/auth", json=creds).json()
    assert r["success"] is False and r["result"] == {"needSms": True}
    assert sandbox.control.sms_code("短信验证店") is None
    assert c.post("/janus/api/user/getLoginVerificationCode", json={"username": "短信验证店"}).json()["success"]
    code = sandbox.control.sms_code("短信验证店")
    assert code and re.fullmatch(r"\d{6}", code)
    wrong = "000000" if code != "000000" else "111111"
    assert c.post("/janus/api/auth", json={**creds, "verificationCode": wrong}).json()["errorMsg"] == "短信验证码错误"
    assert c.post("/janus/api/auth", json={**creds, "verificationCode": code}).json()["success"] is True
    # the device (api_uid cookie) is now trusted: the next password login needs no SMS
    c.cookies.delete("PASS_ID")
    assert c.post("/janus/api/auth", json=creds).json()["success"] is True
    # a fresh device needs the SMS again; so does an armed account
    assert sandbox.client().post("/janus/api/auth", json=creds).json()["result"] == {"needSms": True}
    sandbox.control.arm_sms("密码登录店")
    r = c.post("/janus/api/auth", json={"username": "密码登录店", "password": "sandbox-pass"}).json()
    assert r["result"] == {"needSms": True}


def test_qr_only_account_refuses_password(sandbox: Sandbox) -> None:
    sandbox.control.load("logins")
    r = sandbox.client().post("/janus/api/auth", json={"username": "扫码登录店", "password": "sandbox-pass"}).json()
    assert r["success"] is False and "扫码登录" in r["errorMsg"]


def test_captcha_armed_then_cleared(sandbox: Sandbox) -> None:
    sandbox.control.arm_captcha()
    c = sandbox.client()
    r = c.post("/janus/api/auth", json={"username": OWNER, "password": "demo-pass"}).json()
    assert r["errorCode"] == 70031 and r["result"]["captchaTicket"]
    ticket = r["result"]["captchaTicket"]
    assert c.get("/janus/api/captcha/status", params={"ticket": ticket}).json()["result"]["passed"] is False
    sandbox.control.clear_captcha()
    assert c.get("/janus/api/captcha/status", params={"ticket": ticket}).json()["result"]["passed"] is True
    assert c.post("/janus/api/auth", json={"username": OWNER, "password": "demo-pass"}).json()["success"] is True


def test_qr_login_through_the_control_api(sandbox: Sandbox) -> None:
    c = sandbox.client()
    token = c.post("/janus/api/qrcode/create").json()["result"]["token"]
    img = c.get("/janus/api/qrcode/image", params={"token": token})
    assert img.headers["content-type"] == "image/png" and img.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get("/janus/api/qrcode/status", params={"token": token}).json()["result"]["status"] == "waiting"
    assert sandbox.control.scan_qr(OWNER) == token
    assert c.get("/janus/api/qrcode/status", params={"token": token}).json()["result"]["status"] == "confirmed"
    assert c.get("/janus/api/checkLogin").json()["result"]["login"] is True
    # a token logs in once
    assert c.get("/janus/api/qrcode/status", params={"token": token}).json()["result"]["status"] == "consumed"


def test_paging_up_to_100_reads_every_pending_item_once(sandbox: Sandbox) -> None:
    sandbox.control.load("big_shop")
    c = sandbox.login_http("百货大卖场", "sandbox-pass")
    expected = {i["id"] for i in sandbox.control.items(sandbox.control.state()["shops"][0]["mall_id"])
                if i["state"] in ("wait_seller", "wait_seller_receive")}
    assert len(expected) > 250
    first = query(c, pageNumber=1, pageSize=100, quickSearchType=7)["result"]
    assert first["total"] == len(expected) and len(first["list"]) == 100
    rows = all_rows(c, 7)
    assert [r["id"] for r in rows] == list(dict.fromkeys(r["id"] for r in rows))
    assert {r["id"] for r in rows} == expected
    last_page = query(c, pageNumber=3, pageSize=100, quickSearchType=7)["result"]["list"]
    assert len(last_page) == len(expected) - 200
    bad = query(c, pageNumber=1, pageSize=101, quickSearchType=7)
    assert bad["success"] is False


def test_row_fields_follow_the_live_names(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    row = query(c, pageNumber=1, pageSize=100, quickSearchType=7)["result"]["list"][0]
    for key in ("id", "orderSn", "afterSalesType", "afterSalesTypeName", "afterSalesStatus", "afterSalesTitle",
                "afterSalesReasonDesc", "createdAt", "expireRemainTime", "expireActionDesc", "refundAmount",
                "orderAmount", "goodsName", "goodsSpec", "goodsNumber", "thumbUrl", "reverseTrackingNumber",
                "sellerAfterSalesShippingStatusDesc", "mallRemark", "actions", "version"):
        assert key in row, key
    assert re.fullmatch(r"\d{6}-\d{15}", row["orderSn"])
    assert isinstance(row["refundAmount"], int) and isinstance(row["expireRemainTime"], int)
    env = c.post(QL, json={"pageSize": 10}).json()
    assert env["errorCode"] == 1000000 and env["errorMsg"] is None


def test_query_count_agrees_with_query_list(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    counts = c.post(QC, json={}).json()["result"]
    codes = sandbox.backend.settings.filter_codes
    from agent.sandbox.items import COUNT_KEYS

    for label, key in COUNT_KEYS.items():
        assert query(c, pageSize=100, quickSearchType=codes[label])["result"]["total"] == counts[key], label
    assert counts["waitSellerProof"] == 2 and counts["waitSellerHandle"] == 7


def test_rate_limit_54001_armed_and_per_minute(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.arm_rate_limit(count=2)
    for _ in range(2):
        r = c.post(QL, json={"pageSize": 10})
        assert r.status_code == 200
        expected = {"success": False, "errorCode": 54001, "errorMsg": "操作太过频繁，请稍后再试", "result": None}
        assert r.json() == expected
    assert query(c, pageSize=10)["success"] is True
    sandbox.control.arm_rate_limit(count=1, http_status=429)
    assert c.post(QL, json={"pageSize": 10}).status_code == 429
    sandbox.control.settings(rate_limit_per_minute=3)
    results = [query(c, pageSize=10)["success"] for _ in range(5)]
    assert results.count(False) >= 2 and results[:2] == [True, True]


def test_clock_advance_turns_an_overdue_item_into_an_automatic_refund(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.set_clock(freeze=True)
    pending = all_rows(c, 7)
    soonest = min(pending, key=lambda r: r["expireRemainTime"])
    sandbox.control.advance(soonest["expireRemainTime"] - 1)
    assert soonest["id"] in {r["id"] for r in all_rows(c, 7)}
    sandbox.control.advance(2)
    assert soonest["id"] not in {r["id"] for r in all_rows(c, 7)}
    everything = {r["id"]: r for r in all_rows(c, 18)}
    gone = everything[soonest["id"]]
    assert gone["afterSalesTitle"] == "退款成功" and 1028 in gone["actions"]
    assert gone["expireRemainTime"] is None


def test_evidence_items_and_their_deadline(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    sandbox.control.set_clock(freeze=True)
    proofs = all_rows(c, 15)
    assert len(proofs) == 2
    for row in proofs:
        assert row["afterSalesTitle"] == "平台处理中" and row["platformJoined"] is True
        assert row["proofStatus"] == "待商家举证" and row["proofExpireRemainTime"] > 0
    soon = min(proofs, key=lambda r: r["proofExpireRemainTime"])
    assert soon["proofExpireRemainTime"] < 86400
    assert {r["id"] for r in all_rows(c, 16)} == {r["id"] for r in proofs if r["proofExpireRemainTime"] < 86400}
    sandbox.control.advance(soon["proofExpireRemainTime"] + 1)
    assert soon["id"] not in {r["id"] for r in all_rows(c, 15)}
    closed = {r["id"]: r for r in all_rows(c, 18)}[soon["id"]]
    assert 1028 in closed["actions"] and closed["expireActionDesc"] == "逾期未举证，平台判定退款"
    assert closed["proofStatus"] is None and closed["proofExpireRemainTime"] is None


def test_handled_items_leave_the_pending_filters(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    target = all_rows(c, 7)[0]
    sandbox.control.handle(target["id"])
    assert target["id"] not in {r["id"] for r in all_rows(c, 7)}
    proof = all_rows(c, 15)[0]
    sandbox.control.handle(proof["id"])
    assert proof["id"] not in {r["id"] for r in all_rows(c, 15)}


def test_added_and_aged_items(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    new = {"id": 22750499999999, "orderSn": "261121-000000000000001", "afterSalesType": 1, "state": "wait_seller",
           "created_ago": 60, "deadline_in": 3 * 86400, "reason": "不想要了", "goodsName": "测试商品",
           "goodsSpec": "默认", "orderAmount": 990, "refundAmount": 990}
    sandbox.control.add_items(100001, [new])
    assert new["id"] in {r["id"] for r in all_rows(c, 7)}
    assert new["id"] not in {r["id"] for r in all_rows(c, 6)}
    sandbox.control.age(new["id"], 2 * 86400 + 3600)
    assert new["id"] in {r["id"] for r in all_rows(c, 6)}


def test_changed_quick_filter_codes(sandbox: Sandbox) -> None:
    c = sandbox.login_http(OWNER)
    before = {r["id"] for r in all_rows(c, 7)}
    sandbox.control.settings(filter_codes={"待商家处理": 31})
    assert {r["id"] for r in all_rows(c, 31)} == before
    assert all_rows(c, 7) == []
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
    row = all_rows(c, 7)[0]
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
