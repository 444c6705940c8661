"""Unit tests for agent.sandbox.generate and the shipped sandbox scenario files (pure, no network)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agent.sandbox import generate

SCENARIOS = Path(generate.__file__).parent / "scenarios"
HOSTILE = "质量太差了<@all> <script>alert(1)</script> [点我领红包](http://evil.example) **差评**"
ORDER_SN = re.compile(r"^\d{6}-\d{15}$")
DAY = 86400
# The item format the sandbox model consumes, spelled out here independently of the generator.
ITEM_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": int, "orderSn": str, "afterSalesType": int, "state": str, "created_ago": int,
    "deadline_in": (int, type(None)), "proof_deadline_in": (int, type(None)), "reason": str,
    "goodsName": str, "goodsSpec": str, "goodsNumber": int, "orderAmount": int, "refundAmount": int,
    "shipped": bool, "reverseTrackingNumber": str, "complaint_risk": bool, "buyer_urged": bool,
    "mallRemark": str,
}
PENDING = {"wait_seller", "wait_seller_receive"}
CLOSED = {"refunded", "cancelled", "handled"}
STATES = PENDING | CLOSED | {"platform", "wait_buyer"}
COUNTS = dict(pending=30, expiring=12, evidence=6, evidence_expiring=5, wait_buyer=4, closed=9)


def _items(seed: int = 42, **counts: int) -> list[dict[str, Any]]:
    return generate.generate_items(seed, **(counts or COUNTS))


def _check_item(item: dict[str, Any]) -> None:
    """The invariants every item, generated or hand-edited, must keep."""
    assert set(item) == set(ITEM_TYPES), item
    for key, kind in ITEM_TYPES.items():
        assert isinstance(item[key], kind), (key, item)
        if kind is int:
            assert not isinstance(item[key], bool), (key, item)
    assert 10**13 <= item["id"] < 10**14
    assert ORDER_SN.match(item["orderSn"]), item["orderSn"]
    assert item["afterSalesType"] in (1, 2, 3, 4)
    assert item["state"] in STATES
    assert item["created_ago"] > 0
    assert item["goodsNumber"] >= 1
    assert 0 <= item["refundAmount"] <= item["orderAmount"]
    assert item["reason"] and item["goodsName"] and item["goodsSpec"]
    if item["state"] in PENDING:
        assert item["deadline_in"] is not None and item["deadline_in"] > 0
        assert item["deadline_in"] <= 7 * DAY
    else:
        assert item["deadline_in"] is None
    if item["state"] == "platform":
        assert item["proof_deadline_in"] is not None and item["proof_deadline_in"] > 0
    else:
        assert item["proof_deadline_in"] is None
    if item["state"] == "wait_seller_receive":
        assert item["afterSalesType"] == 2 and item["shipped"]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCENARIOS / name).read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------------------- generate_items


def test_same_seed_same_items_and_different_seed_differs() -> None:
    assert _items(7) == _items(7)
    assert _items(7) != _items(8)
    assert [i["id"] for i in _items(7)] != [i["id"] for i in _items(8)]


def test_counts_per_category() -> None:
    items = _items()
    assert len(items) == sum(COUNTS.values())
    states = Counter(i["state"] for i in items)
    assert states["wait_seller"] + states["wait_seller_receive"] == COUNTS["pending"] + COUNTS["expiring"]
    assert states["platform"] == COUNTS["evidence"] + COUNTS["evidence_expiring"]
    assert states["wait_buyer"] == COUNTS["wait_buyer"]
    assert sum(states[s] for s in CLOSED) == COUNTS["closed"]
    assert generate.generate_items(1) == []


def test_expiring_below_a_day_and_pending_above() -> None:
    items = _items()
    deadlines = [i["deadline_in"] for i in items if i["state"] in PENDING]
    assert sum(d < DAY for d in deadlines) == COUNTS["expiring"]
    assert sum(d >= DAY for d in deadlines) == COUNTS["pending"]
    short = sorted(d for d in deadlines if d < DAY)
    assert short[0] >= 600 and short[-1] <= 23 * 3600  # spread from ~10 minutes to 23 h
    assert short[0] < 3 * 3600 and short[-1] > 18 * 3600
    proofs = [i["proof_deadline_in"] for i in items if i["state"] == "platform"]
    assert sum(p < DAY for p in proofs) == COUNTS["evidence_expiring"]
    assert sum(p >= DAY for p in proofs) == COUNTS["evidence"]
    assert all(3600 <= p <= 72 * 3600 for p in proofs)


def test_wait_seller_deadline_follows_the_seven_day_window() -> None:
    for item in _items(3, pending=200, expiring=50):
        if item["state"] == "wait_seller":
            assert 0 < 7 * DAY - item["created_ago"] - item["deadline_in"] <= 3600, item


def test_every_item_well_formed_with_unique_ids_and_order_sns() -> None:
    items = _items(5, pending=300, expiring=60, evidence=20, evidence_expiring=10, wait_buyer=20, closed=40)
    for item in items:
        _check_item(item)
        assert 390 <= item["orderAmount"] <= 39900
    assert len({i["id"] for i in items}) == len(items)
    assert len({i["orderSn"] for i in items}) == len(items)


def test_ids_grow_with_time_and_order_date_precedes_application() -> None:
    items = _items(11, order_date=date(2026, 11, 21), **COUNTS)
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    for item in items:
        ordered = date(2000 + int(item["orderSn"][:2]), int(item["orderSn"][2:4]), int(item["orderSn"][4:6]))
        assert (date(2026, 11, 21) - ordered).days >= item["created_ago"] // DAY
    shifted = generate.generate_items(11, order_date=date(2027, 3, 5), pending=3)
    assert all(i["orderSn"].startswith(("2703", "2702")) for i in shifted)


def test_start_id_is_honoured_and_validated() -> None:
    items = generate.generate_items(1, pending=5, start_id=22750431600000)
    assert min(i["id"] for i in items) == 22750431600000
    with pytest.raises(ValueError):
        generate.generate_items(1, pending=5, start_id=12345)


def test_realistic_mix_over_a_large_sample() -> None:
    items = _items(9, pending=1000)
    risk = sum(i["complaint_risk"] for i in items) / len(items)
    urged = sum(i["buyer_urged"] for i in items) / len(items)
    assert 0.05 < risk < 0.16 and 0.05 < urged < 0.16
    receive = [i for i in items if i["state"] == "wait_seller_receive"]
    assert receive and any(i["reverseTrackingNumber"] for i in receive)
    assert any(not i["reverseTrackingNumber"] for i in receive)
    unshipped = [i for i in items if not i["shipped"]]
    assert unshipped and all(i["afterSalesType"] == 1 for i in unshipped)
    assert any(i["refundAmount"] < i["orderAmount"] for i in items)
    assert any("，" in i["reason"] for i in items)  # free text the buyer typed
    assert sum(i["orderAmount"] % 10 == 0 for i in items) > len(items) // 2
    assert all(re.search(r"[\u4e00-\u9fff]", i["goodsName"]) for i in items)


# ---------------------------------------------------------------------------- shops and scenarios


def test_generate_shop_accounts_and_login() -> None:
    shop = generate.generate_shop(3, name="暖语家居旗舰店", login="sms", password="pw", pending=2, closed=1)
    assert set(shop) == {"mall_id", "name", "accounts", "items"}
    assert 10**8 <= shop["mall_id"] < 10**9
    main, sub = shop["accounts"]
    assert main["username"] == "暖语家居旗舰店" and main["login"] == "sms" and main["password"] == "pw"
    assert sub["username"] == "暖语家居旗舰店:客服01"
    assert sub["login"] == "password" and sub["password"] == "pw"
    assert re.match(r"^1\d\d\*{4}\d{4}$", main["mobile"])
    assert len(shop["items"]) == 3
    assert generate.generate_shop(3) == generate.generate_shop(3)
    assert generate.generate_shop(3)["name"].endswith("店")
    with pytest.raises(ValueError):
        generate.generate_shop(3, login="fingerprint")
    with pytest.raises(TypeError):
        generate.generate_shop(3, pendng=4)


def test_generate_scenario_unique_shops_and_ids() -> None:
    scenario = generate.generate_scenario(1, 40, pending=5, evidence=1, closed=1)
    assert scenario["name"] == "generated-40" and scenario["settings"] == {}
    shops = scenario["shops"]
    assert len(shops) == 40
    assert len({s["name"] for s in shops}) == 40
    assert len({s["mall_id"] for s in shops}) == 40
    ids = [i["id"] for s in shops for i in s["items"]]
    assert len(ids) == len(set(ids)) == 40 * 7


def test_main_writes_scenario_json(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    argv = ["--seed", "3", "--shops", "2", "--pending", "4", "--expiring", "2", "--evidence", "1",
            "--evidence-expiring", "1", "--closed", "2", "--out", str(out)]
    assert generate.main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert "\\u" not in text  # ensure_ascii=False
    data = json.loads(text)
    expected = generate.generate_scenario(
        3, 2, pending=4, expiring=2, evidence=1, evidence_expiring=1, closed=2, wait_buyer=2
    )
    assert data == json.loads(json.dumps(expected))
    assert [len(s["items"]) for s in data["shops"]] == [12, 12]


# ---------------------------------------------------------------------------- shipped scenario files


def test_every_shipped_scenario_parses_and_items_are_well_formed() -> None:
    files = sorted(SCENARIOS.glob("*.json"))
    assert {"demo.json", "big_shop.json", "logins.json"} <= {f.name for f in files}
    for path in files:
        data = _load(path.name)
        assert {"name", "description", "settings", "shops"} <= set(data), path.name
        assert isinstance(data["settings"], dict) and data["description"]
        names = [s["name"] for s in data["shops"]]
        assert len(names) == len(set(names)), path.name
        assert len({s["mall_id"] for s in data["shops"]}) == len(names), path.name
        ids = [i["id"] for s in data["shops"] for i in s["items"]]
        assert len(ids) == len(set(ids)), path.name
        for shop in data["shops"]:
            assert shop["accounts"] and shop["items"], path.name
            for account in shop["accounts"]:
                assert set(account) == {"username", "password", "login", "mobile"}
                assert account["login"] in ("password", "sms", "qr_only")
            for item in shop["items"]:
                _check_item(item)


def test_demo_story() -> None:
    data = _load("demo.json")
    (shop,) = data["shops"]
    assert shop["name"] == "示例旗舰店" and shop["mall_id"] == 100001
    assert [(a["username"], a["password"]) for a in shop["accounts"]] == [
        ("示例旗舰店", "demo-pass"), ("示例旗舰店:客服01", "demo-pass")]
    items = shop["items"]
    assert 10 <= len(items) <= 14
    assert any(i["reason"] == HOSTILE for i in items)
    deadlines = sorted(i["deadline_in"] for i in items if i["state"] in PENDING)
    assert deadlines[0] < 3600 and any(DAY < d < 26 * 3600 for d in deadlines)
    assert any(i["state"] == "wait_seller_receive" and not i["reverseTrackingNumber"] for i in items)
    proofs = sorted(i["proof_deadline_in"] for i in items if i["state"] == "platform")
    assert len(proofs) == 2 and proofs[0] < 3600 and 12 * 3600 < proofs[1] < DAY
    states = Counter(i["state"] for i in items)
    assert states["wait_buyer"] == 1 and sum(states[s] for s in CLOSED) == 2


def test_big_shop_volume() -> None:
    (shop,) = _load("big_shop.json")["shops"]
    assert shop["name"] == "百货大卖场"
    assert shop["accounts"][0]["login"] == "password" and shop["accounts"][0]["password"] == "sandbox-pass"
    pending = [i for i in shop["items"] if i["state"] in PENDING]
    assert len(pending) > 250
    assert sum(i["deadline_in"] < DAY for i in pending) == 40
    evidence = [i for i in shop["items"] if i["state"] == "platform"]
    assert len(evidence) == 12 and sum(i["proof_deadline_in"] < DAY for i in evidence) == 4


def test_logins_shops() -> None:
    shops = {s["name"]: s for s in _load("logins.json")["shops"]}
    assert set(shops) == {"密码登录店", "子账号店", "短信验证店", "扫码登录店"}
    logins = {name: s["accounts"][0]["login"] for name, s in shops.items()}
    assert logins == {
        "密码登录店": "password", "子账号店": "password", "短信验证店": "sms", "扫码登录店": "qr_only"
    }
    assert {a["username"] for a in shops["子账号店"]["accounts"]} == {"子账号店", "子账号店:客服01"}
    for shop in shops.values():
        assert all(a["password"] == "sandbox-pass" for a in shop["accounts"])
        assert sum(i["state"] == "platform" for i in shop["items"]) == 2
        assert 6 <= len(shop["items"]) <= 10
