"""The agent's selectors data files describe the sandbox (which mirrors the live site).

Countdown texts are rebuilt exactly as agent/sandbox/static/workbench.js renders them, from real
`items.to_row` rows; class names come from `pages.class_map` for two different builds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agent import locators
from agent.sandbox import items as it
from agent.sandbox import pages
from agent.sandbox.backend import Backend
from agent.sandbox.clock import SandboxClock

NOW = 1_700_000_000.0
BUILDS = ("3QqLW", "x9Zk2")
WORKBENCH_JS = Path(pages.__file__).resolve().parent / "static" / "workbench.js"


@pytest.fixture(scope="module")
def sel() -> dict[str, dict[str, Any]]:
    return locators.load()


def raw_item(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": 7,
        "orderSn": "261121-000000000007",
        "afterSalesType": 1,
        "state": "wait_seller",
        "deadline_in": 6 * it.DAY,
        "goodsName": "袜子",
        "reverseTrackingNumber": "",
    }
    raw.update(over)
    return raw


def item(**over: Any) -> it.Item:
    return it.item_from_scenario(raw_item(**over), NOW)


def js_countdown(row: dict[str, Any], elapsed: int = 0) -> str | None:
    """Python port of `countdown(row)` in workbench.js."""
    if row.get("expireRemainTime") is not None:
        no_track = "物流无退回轨迹" in (row.get("expireActionDesc") or "")
        return (
            "（"
            + it.dhms(row["expireRemainTime"] - elapsed)
            + ("物流无退回轨迹" if no_track else "未处理")
            + "，系统将自动退款）"
        )
    if row.get("proofExpireRemainTime") is not None:
        return "（" + it.dhms(row["proofExpireRemainTime"] - elapsed) + "内未举证，平台将判定商家责任）"
    return None


def seconds_of(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text)
    if m is None:
        return None
    d, h, mi, s = (int(g) for g in m.groups())
    return d * it.DAY + h * 3600 + mi * 60 + s


def class_substrings(selector: str) -> list[str]:
    return re.findall(r'\[class\*="([^"]+)"\]', selector)


# ---- quick filters and counters ---------------------------------------------------------------------


def test_quick_filter_labels_match_the_sandbox_in_order(sel: dict[str, dict[str, Any]]) -> None:
    assert tuple(sel["aftersale_list"]["quick_filters"]["labels"]) == it.FILTER_LABELS


def test_named_quick_filters_are_sandbox_labels(sel: dict[str, dict[str, Any]]) -> None:
    qf = sel["aftersale_list"]["quick_filters"]
    assert (qf["aftersales"], qf["aftersales_expiring"]) == ("待商家处理", "待处理即将逾期")
    assert (qf["evidence"], qf["evidence_expiring"]) == ("待商家举证", "待举证即将逾期")
    assert set(qf["codes"]) <= set(it.FILTER_LABELS)


COUNT_KEYS_IN_SELECTORS: dict[str, str] = locators.load()["aftersale_list"]["count_keys"]


@pytest.mark.parametrize("label", sorted(COUNT_KEYS_IN_SELECTORS))
def test_count_key_entry_matches_the_sandbox(label: str) -> None:
    assert label in it.COUNT_KEYS, f"{label} is not a sandbox quick filter"
    assert COUNT_KEYS_IN_SELECTORS[label] == it.COUNT_KEYS[label]


def test_named_quick_filters_have_count_keys(sel: dict[str, dict[str, Any]]) -> None:
    qf = sel["aftersale_list"]["quick_filters"]
    named = {qf[k] for k in ("aftersales", "aftersales_expiring", "evidence", "evidence_expiring")}
    assert named <= set(sel["aftersale_list"]["count_keys"])


def counter_regex(sel: dict[str, dict[str, Any]], label: str) -> str:
    pattern: str = sel["aftersale_list"]["counters"]["pattern"]
    assert "{label}" in pattern
    return pattern.replace("{label}", re.escape(label))


@pytest.mark.parametrize(
    ("text", "label", "n"),
    [
        ("24小时内将逾期订单数 2单", "24小时内将逾期订单数", 2),
        ("24小时内将逾期订单数2单", "24小时内将逾期订单数", 2),
        ("24小时内待商家举证 13 单", "24小时内待商家举证", 13),
        ("售后数据24小时内将逾期订单数 0单24小时内待商家举证 1单", "24小时内待商家举证", 1),
    ],
    ids=["spaced", "tight", "padded", "in-board"],
)
def test_counter_pattern_captures_the_number(sel: dict[str, dict[str, Any]], text: str, label: str, n: int) -> None:
    m = re.search(counter_regex(sel, label), text)
    assert m is not None
    assert int(m.group(1)) == n


def test_counter_pattern_reads_the_sandbox_board(sel: dict[str, dict[str, Any]]) -> None:
    counters = sel["aftersale_list"]["counters"]
    values = {label: i + 2 for i, label in enumerate(counters["labels"])}
    html = pages.counters_html(values, pages.class_map(BUILDS[0]))
    text = re.sub(r"<[^>]+>", "", html)
    assert "24小时内将逾期订单数 2单" in text
    for label, n in values.items():
        m = re.search(counter_regex(sel, label), text)
        assert m is not None, label
        assert int(m.group(1)) == n
    assert {counters["expiring_aftersales"], counters["expiring_evidence"]} <= set(counters["labels"])


def test_counter_labels_are_the_ones_the_workbench_renders(sel: dict[str, dict[str, Any]]) -> None:
    js = WORKBENCH_JS.read_text(encoding="utf-8")
    for label in sel["aftersale_list"]["counters"]["labels"]:
        assert f'"{label}"' in js, label


# ---- countdown texts --------------------------------------------------------------------------------


def test_the_port_matches_the_workbench_source() -> None:
    """If workbench.js changes its countdown wording, js_countdown() above must follow."""
    js = WORKBENCH_JS.read_text(encoding="utf-8")
    for fragment in (
        '"（" + dhms(row.expireRemainTime - elapsed()) + (noTrack ? "物流无退回轨迹" : "未处理")'
        ' + "，系统将自动退款）"',
        '"（" + dhms(row.proofExpireRemainTime - elapsed()) + "内未举证，平台将判定商家责任）"',
        'return d + "天" + h + "时" + m + "分" + (s % 60) + "秒";',
    ):
        assert fragment in js, fragment


COUNTDOWN_CASES = [
    (item(deadline_in=603182), "（6天23时33分2秒未处理，系统将自动退款）", "aftersale", 603182),
    (
        item(state="wait_seller_receive", afterSalesType=2, deadline_in=7410),
        "（0天2时3分30秒物流无退回轨迹，系统将自动退款）",
        "aftersale",
        7410,
    ),
    (
        item(state="wait_seller_receive", afterSalesType=2, deadline_in=7410, reverseTrackingNumber="SF1"),
        "（0天2时3分30秒未处理，系统将自动退款）",
        "aftersale",
        7410,
    ),
    (item(deadline_in=0), "（0天0时0分0秒未处理，系统将自动退款）", "aftersale", 0),
    (item(deadline_in=86399), "（0天23时59分59秒未处理，系统将自动退款）", "aftersale", 86399),
    (
        item(state="platform", deadline_in=None, proof_deadline_in=3000),
        "（0天0时50分0秒内未举证，平台将判定商家责任）",
        "evidence",
        3000,
    ),
    (
        item(state="platform", deadline_in=None, proof_deadline_in=13 * 3600 + 61),
        "（0天13时1分1秒内未举证，平台将判定商家责任）",
        "evidence",
        13 * 3600 + 61,
    ),
]
COUNTDOWN_IDS = ["6d-unhandled", "no-return-track", "tracked-return", "zero", "86399s", "evidence-50m", "evidence-13h"]


@pytest.mark.parametrize(("src", "text", "kind", "seconds"), COUNTDOWN_CASES, ids=COUNTDOWN_IDS)
def test_sandbox_renders_the_expected_countdown(src: it.Item, text: str, kind: str, seconds: int) -> None:
    assert js_countdown(it.to_row(src, NOW)) == text


@pytest.mark.parametrize(("src", "text", "kind", "seconds"), COUNTDOWN_CASES, ids=COUNTDOWN_IDS)
def test_countdown_regex_extracts_the_seconds(
    sel: dict[str, dict[str, Any]], src: it.Item, text: str, kind: str, seconds: int
) -> None:
    countdown = sel["aftersale_list"]["countdown"]
    other = "evidence" if kind == "aftersale" else "aftersale"
    assert seconds_of(countdown[kind], text) == seconds
    assert re.search(countdown[other], text) is None, f"[countdown].{other} matched {text}"


def test_countdown_regex_follows_the_ticking_page(sel: dict[str, dict[str, Any]]) -> None:
    """workbench.js subtracts the seconds elapsed since the fetch: the regex reads the ticked text."""
    row = it.to_row(item(deadline_in=3600), NOW)
    text = js_countdown(row, elapsed=61)
    assert text == "（0天0时58分59秒未处理，系统将自动退款）"
    assert seconds_of(sel["aftersale_list"]["countdown"]["aftersale"], text) == 3600 - 61


@pytest.mark.parametrize(
    "src",
    [item(state="wait_buyer"), item(state="refunded", deadline_in=None), item(state="platform", deadline_in=None)],
    ids=["wait_buyer", "refunded", "platform-no-proof"],
)
def test_rows_without_deadline_render_no_countdown(src: it.Item) -> None:
    assert js_countdown(it.to_row(src, NOW)) is None


# ---- row classes ------------------------------------------------------------------------------------


def test_builds_hash_differently() -> None:
    a, b = (pages.class_map(build) for build in BUILDS)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def row_selectors(sel: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    al = sel["aftersale_list"]
    out = [(key, value) for key, value in al["rows"].items() if isinstance(value, str) and class_substrings(value)]
    out.append(("quick_filters.count", al["quick_filters"]["count"]))
    return out


def test_row_selectors_are_class_prefix_selectors(sel: dict[str, dict[str, Any]]) -> None:
    keys = {key for key, _ in row_selectors(sel)}
    expected = {"row", "order_sn", "apply_time", "countdown", "cell", "goods_name", "goods_spec", "amount_paid"}
    assert expected | {"amount_refund", "quick_filters.count"} <= keys


@pytest.mark.parametrize("build", BUILDS)
def test_row_prefixes_match_exactly_one_hashed_class(sel: dict[str, dict[str, Any]], build: str) -> None:
    hashed = pages.class_map(build).values()
    for key, selector in row_selectors(sel):
        for sub in class_substrings(selector):
            starts = [c for c in hashed if c.startswith(sub)]
            contains = [c for c in hashed if sub in c]
            assert len(starts) == 1, f"[rows].{key}: {sub!r} is a prefix of {starts}"
            assert contains == starts, f"[rows].{key}: {sub!r} also occurs inside {contains}"


@pytest.mark.parametrize("build", BUILDS)
def test_order_sn_prefix_does_not_match_the_label(sel: dict[str, dict[str, Any]], build: str) -> None:
    cls = pages.class_map(build)
    (sn,) = class_substrings(sel["aftersale_list"]["rows"]["order_sn"])
    assert sn == "table-item-header_sn__"
    assert cls["table-item-header_sn"].startswith(sn)
    assert sn not in cls["table-item-header_label"]
    (countdown,) = class_substrings(sel["aftersale_list"]["rows"]["countdown"])
    assert countdown not in cls["table-item-header_apply_time"]


def test_checked_class_is_a_prefix_of_the_sandbox_class(sel: dict[str, dict[str, Any]]) -> None:
    checked = sel["aftersale_list"]["quick_filters"]["checked_class"]
    assert f"CAD_beastCardChecked_{pages.BEAST_VERSION}".startswith(checked)
    assert checked not in f"CAD_card_{pages.BEAST_VERSION}"


def test_cell_order_has_one_name_per_rendered_cell(sel: dict[str, dict[str, Any]]) -> None:
    js = WORKBENCH_JS.read_text(encoding="utf-8")
    assert "for (var i = 0; i < 8; i++)" in js
    assert len(sel["aftersale_list"]["rows"]["cell_order"]) == 8
    assert f'"{sel["aftersale_list"]["rows"]["detail_link_text"]}"' in js


# ---- queryList field names --------------------------------------------------------------------------

ENVELOPE_FIELDS = {"total", "list"}


def test_row_fields_are_to_row_keys(sel: dict[str, dict[str, Any]]) -> None:
    fields: dict[str, Any] = sel["aftersale_list"]["fields"]
    row = it.to_row(item(), NOW)
    missing = {
        key: value
        for key, value in fields.items()
        if isinstance(value, str) and value not in ENVELOPE_FIELDS and value not in row
    }
    assert missing == {}
    assert {v for v in fields.values() if isinstance(v, str)} >= ENVELOPE_FIELDS


def test_envelope_fields_are_query_list_keys(sel: dict[str, dict[str, Any]]) -> None:
    fields: dict[str, Any] = sel["aftersale_list"]["fields"]
    backend = Backend(clock=SandboxClock(lambda: NOW))
    backend.add_shop({"mall_id": 1, "name": "店", "items": [raw_item()]})
    result = backend.query_list(1, {"pageSize": 10, "pageNumber": 1})
    assert result[fields["total"]] == 1
    assert result[fields["list"]][0][fields["order_sn"]] == "261121-000000000007"


def test_timeout_refund_action_is_the_sandbox_code(sel: dict[str, dict[str, Any]]) -> None:
    fields: dict[str, Any] = sel["aftersale_list"]["fields"]
    assert fields["timeout_refund_action"] == it.ACTION_TIMEOUT_REFUND
    src = item(deadline_in=60)
    it.apply_time(src, NOW + 60)
    assert fields["timeout_refund_action"] in it.to_row(src, NOW + 60)[fields["actions"]]


def test_remaining_field_carries_the_seconds(sel: dict[str, dict[str, Any]]) -> None:
    fields: dict[str, Any] = sel["aftersale_list"]["fields"]
    row = it.to_row(item(state="wait_seller_receive", afterSalesType=2, deadline_in=7410), NOW)
    assert row[fields["expire_remain"]] == 7410
    assert "物流无退回轨迹" in row[fields["expire_action"]]


# ---- evidence ---------------------------------------------------------------------------------------


def test_evidence_field_names_are_keys_of_a_proof_pending_row(sel: dict[str, dict[str, Any]]) -> None:
    ev: dict[str, str] = sel["evidence"]["fields"]
    row = it.to_row(item(state="platform", deadline_in=None, proof_deadline_in=3000), NOW)
    assert row[ev["platform_joined"]] is True
    assert row[ev["proof_status"]] == ev["pending_value"] == it.PROOF_PENDING
    assert row[ev["proof_remain"]] == 3000
    assert row[sel["aftersale_list"]["fields"]["status_text"]] == ev["status_text"]


def test_evidence_timed_out_desc_is_the_sandbox_text(sel: dict[str, dict[str, Any]]) -> None:
    ev: dict[str, str] = sel["evidence"]["fields"]
    src = item(state="platform", deadline_in=None, proof_deadline_in=3000)
    it.apply_time(src, NOW + 3000)
    assert ev["timed_out_desc"] == it.DESC_PROOF_TIMED_OUT
    assert it.to_row(src, NOW + 3000)[sel["aftersale_list"]["fields"]["expire_action"]] == ev["timed_out_desc"]
