"""The bundle's redaction rules, field by field (pure: no browser, no network)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from agent.core.redact import REDACTED, SCRUBBED, Redactor

ROW = {
    "id": 22750431608471, "uid": 7000123457, "orderSn": "261112-101242929419627", "afterSalesType": 1,
    "afterSalesReasonDesc": "质量问题", "mallRemark": "已联系买家张三 13812345678", "goodsName": "加厚保温杯",
    "refundAmount": 990, "reverseTrackingNumber": "SF1234567890123", "expireRemainTime": 3600,
}


def redactor(*secrets: str) -> Redactor:
    return Redactor(b"k" * 32, secrets)


@pytest.mark.parametrize(("field", "rule"), [
    ("orderSn", "order_sn"), ("uid", "buyer_id"), ("buyerId", "buyer_id"), ("mobile", "phone"),
    ("receiverMobile", "phone"), ("receiverName", "buyer_text"), ("nickname", "buyer_text"),
    ("receiverAddress", "buyer_text"), ("afterSalesReasonDesc", "buyer_text"), ("mallRemark", "buyer_text"),
    ("buyerRemark", "buyer_text"), ("reverseTrackingNumber", "parcel"), ("username", "account"),
    ("password", "secret_key"), ("verifyAuthToken", "secret_key"), ("passwordEncrypt", "secret_key"),
    ("sign", "secret_key"), ("fingerprint", "secret_key"), ("uri", "secret_key"), ("webhook_key", "secret_key"),
    ("mobileVerifyCode", "secret_key"), ("PASS_ID", "secret_key"),
    ("goodsName", None), ("id", None), ("refundAmount", None), ("errorCode", None), ("errorMsg", None),
    ("expireRemainTime", None), ("afterSalesTitle", None),
])
def test_each_field_falls_under_its_rule(field: str, rule: str | None) -> None:
    assert Redactor.rule_for(field) == rule


def test_a_row_keeps_its_shape_and_loses_the_buyer() -> None:
    r = redactor()
    out = r.json(ROW)
    assert set(out) == set(ROW)
    assert out["id"] == ROW["id"] and out["goodsName"] == "加厚保温杯" and out["expireRemainTime"] == 3600
    assert out["orderSn"] != ROW["orderSn"] and len(out["orderSn"]) == len(ROW["orderSn"])
    assert out["orderSn"][6] == "-" and out["orderSn"].replace("-", "").isdigit()
    assert isinstance(out["uid"], int) and out["uid"] != ROW["uid"] and len(str(out["uid"])) == 10
    reason = out["afterSalesReasonDesc"]
    assert reason != "质量问题" and len(reason) == 4 and all("\u4e00" <= c <= "\u9fff" for c in reason)
    assert "13812345678" not in out["mallRemark"] and "张三" not in out["mallRemark"]
    assert len(out["mallRemark"]) == len(ROW["mallRemark"])
    assert out["reverseTrackingNumber"][:2].isalpha() and out["reverseTrackingNumber"] != "SF1234567890123"
    assert r.counts["order_sn"] == 1 and r.counts["buyer_id"] == 1 and r.counts["buyer_text"] == 2


def test_the_same_value_gets_the_same_stand_in_everywhere_and_pages_follow_the_answers() -> None:
    r = redactor()
    first = r.json(ROW)
    again = r.json({"list": [ROW]})["list"][0]
    assert again == first  # rows of two answers still relate
    page = f"<td>{ROW['orderSn']}</td><td>质量问题</td><td>{ROW['mallRemark']}</td>"
    shown = r.text(page)
    assert first["orderSn"] in shown and first["afterSalesReasonDesc"] in shown and ROW["orderSn"] not in shown
    assert r.text(shown) == shown  # a stand-in met again is never re-mapped
    other = Redactor(b"o" * 32, ())
    assert other.json(ROW)["orderSn"] != first["orderSn"]  # the key is the bundle's own


def test_phone_numbers_and_order_numbers_in_free_text_are_remapped() -> None:
    r = redactor()
    out = r.text("买家电话 13912345678，备用 139****5678，订单 261113-996075454892644")
    assert "13912345678" not in out and "139****5678" not in out and "996075454892644" not in out
    assert "****" in out and "买家电话" in out and r.counts["phone"] == 2 and r.counts["order_sn"] == 1


def test_literal_secrets_go_in_every_encoding() -> None:
    secret = "demo-pass/+=1"
    r = redactor(secret, "shop_owner", "abc")  # too short to be a secret worth scrubbing: kept
    text = f"p={secret} q={quote(secret, safe='')} b={base64.b64encode(secret.encode()).decode()} u=shop_owner abc"
    out = r.text(text)
    assert secret not in out and quote(secret, safe="") not in out
    assert base64.b64encode(secret.encode()).decode().rstrip("=") not in out
    assert "shop_owner" not in out and out.count(SCRUBBED) == 4 and out.endswith("abc")


def test_credential_headers_cookies_and_query_parameters() -> None:
    r = redactor()
    headers = r.headers([{"name": "Cookie", "value": "PASS_ID=abc"}, {"name": "set-cookie", "value": "x=1"},
                         {"name": "Anti-Content", "value": "0aq"}, {"name": "VerifyAuthToken", "value": "t"},
                         {"name": "X-Mms-Token", "value": "t"}, {"name": "ETag", "value": "fp"},
                         {"name": "Content-Type", "value": "application/json"}])
    assert [h["value"] for h in headers] == [REDACTED] * 6 + ["application/json"]
    assert r.cookies([{"name": "PASS_ID", "value": "abc", "path": "/"}]) == [
        {"name": "PASS_ID", "value": REDACTED, "path": "/"}]
    url = r.url("http://h/janus/api/x?token=abc&orderSn=261112-101242929419627&page=2")
    assert "abc" not in url and "101242929419627" not in url and "page=2" in url


def test_bodies_json_form_and_text() -> None:
    r = redactor()
    login = r.body(json.dumps({"username": "shop_owner", "password": "enc", "sign": "s", "touchevent": {"x": 1}}),
                   "application/json")
    assert json.loads(login) == {"username": REDACTED, "password": REDACTED, "sign": REDACTED, "touchevent": {"x": 1}}
    assert "13812345678" not in r.body("mobile=13812345678&type=117", "application/x-www-form-urlencoded")
    assert r.body("plain 13812345678") != "plain 13812345678"


def test_the_summary_names_every_rule_with_its_count() -> None:
    r = redactor()
    r.json(ROW)
    summary = r.summary()
    assert summary["order_sn"]["count"] == 1 and summary["header"]["count"] == 0
    assert all(v["covers"] for v in summary.values())


def test_values_of_credential_headers_and_fields_are_scrubbed_wherever_else_they_show() -> None:
    r = redactor()
    r.headers([{"name": "Set-Cookie", "value": "PASS_ID=windows_1-abcdef123456; Path=/; Max-Age=86400"}])
    r.json({"result": {"uri": "https://qr.example/?type=1&data=0f3c9a-uuid"}})
    out = r.text("cookie windows_1-abcdef123456, QR https://qr.example/?type=1&data=0f3c9a-uuid, 剩余 86400 秒")
    assert "abcdef123456" not in out and "0f3c9a-uuid" not in out and "86400" in out  # an attribute is no secret
