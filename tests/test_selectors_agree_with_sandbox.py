"""The agent's selectors data files describe the sandbox (which mirrors the live site).

Countdown texts are rebuilt exactly as agent/sandbox/static/workbench.js renders them, from real
`items.to_row` rows; class names come from `pages.class_map` for two different builds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agent.config import locators
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


def js_countdown(row: dict[str, Any], elapsed: int = 0) -> tuple[str, str] | None:
    """Python port of `countdown(row)` in workbench.js: (the expiration div's text, the time span's text)."""
    desc = row.get("expireActionDesc") or ""
    if desc == "":
        return None
    left = row["expireRemainTime"] - elapsed if row["expireRemainTime"] > 0 else 0
    if left <= 0:
        return "（已逾期）", ""
    bare = it.dhms(left)
    return "（" + bare + desc.replace("${time}", "") + "）", bare


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
    assert len(it.FILTER_LABELS) == 9


def test_codes_and_sort_flags_match_the_sandbox(sel: dict[str, dict[str, Any]]) -> None:
    qf = sel["aftersale_list"]["quick_filters"]
    assert qf["codes"] == it.DEFAULT_FILTER_CODES
    assert set(qf["expire_sorted"]) == {c.label for c in it.CARDS if c.expire_sort}
    assert sel["aftersale_list"]["request"]["default"]["quickSearchType"] == it.PAGE_LOAD_CODE


def test_named_quick_filters_are_sandbox_labels(sel: dict[str, dict[str, Any]]) -> None:
    qf = sel["aftersale_list"]["quick_filters"]
    assert (qf["aftersales"], qf["aftersales_expiring"]) == ("待商家处理", "待处理即将逾期")
    assert (qf["evidence"], qf["evidence_expiring"]) == ("待商家举证", "待举证即将逾期")
    assert set(qf["codes"]) <= set(it.FILTER_LABELS)


COUNT_KEYS_IN_SELECTORS: dict[str, str] = locators.load()["aftersale_list"]["count_keys"]


@pytest.mark.parametrize("label", sorted(COUNT_KEYS_IN_SELECTORS))
def test_count_key_entry_matches_the_sandbox(label: str) -> None:
    assert label in it.BY_LABEL, f"{label} is not a sandbox quick filter"
    assert COUNT_KEYS_IN_SELECTORS[label] == it.BY_LABEL[label].count_key


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
    assert dict(pages.HEADER_COUNTERS) == counters["keys"]
    html = pages.counters_html({counters["keys"][k]: v for k, v in values.items()}, pages.class_map(BUILDS[0]))
    text = re.sub(r"<[^>]+>", "", html)
    assert "24小时内将逾期订单数 2单" in text
    for label, n in values.items():
        m = re.search(counter_regex(sel, label), text)
        assert m is not None, label
        assert int(m.group(1)) == n
    assert {counters["expiring_aftersales"], counters["expiring_evidence"]} <= set(counters["labels"])


def test_counter_labels_are_the_ones_the_workbench_renders(sel: dict[str, dict[str, Any]]) -> None:
    assert [label for label, _ in pages.HEADER_COUNTERS] == sel["aftersale_list"]["counters"]["labels"]
    js = WORKBENCH_JS.read_text(encoding="utf-8")
    assert "B.headerCounters.forEach" in js and "queryWaitHandleCount" in js


# ---- countdown texts --------------------------------------------------------------------------------


def test_the_port_matches_the_workbench_source() -> None:
    """If workbench.js changes its countdown markup, js_countdown() above must follow."""
    js = WORKBENCH_JS.read_text(encoding="utf-8")
    for fragment in (
        'if (desc === "") { return null; }',
        'box.textContent = "（已逾期）"',
        'ell.appendChild(el("span", C("table-item-header_time"), dhms(left)));',
        'ell.appendChild(document.createTextNode(desc.replace("${time}", "")));',
        'return d + "天" + h + "时" + m + "分" + (s % 60) + "秒";',
    ):
        assert fragment in js, fragment


COUNTDOWN_CASES = [
    (item(deadline_in=603182), "（6天23时33分2秒未处理，系统将自动退款）", 603182),
    (
        item(state="wait_seller_receive", afterSalesType=2, deadline_in=7410),
        "（0天2时3分30秒物流无退回轨迹，系统将自动退款）",
        7410,
    ),
    (
        item(state="wait_seller_receive", afterSalesType=2, deadline_in=7410, reverseTrackingNumber="SF1"),
        "（0天2时3分30秒未处理，系统将自动退款）",
        7410,
    ),
    (item(deadline_in=0), "（已逾期）", 0),
    (item(deadline_in=86399), "（0天23时59分59秒未处理，系统将自动退款）", 86399),
    (
        item(state="platform", deadline_in=None, proof_deadline_in=3000),
        "（0天0时50分0秒内未举证，平台将根据现有凭证判定）",
        3000,
    ),
]
COUNTDOWN_IDS = ["6d-unhandled", "no-return-track", "tracked-return", "overdue", "86399s", "evidence-50m"]


@pytest.mark.parametrize(("src", "text", "seconds"), COUNTDOWN_CASES, ids=COUNTDOWN_IDS)
def test_sandbox_renders_the_expected_countdown(src: it.Item, text: str, seconds: int) -> None:
    shown = js_countdown(it.to_row(src, NOW))
    assert shown is not None and shown[0] == text


@pytest.mark.parametrize(("src", "text", "seconds"), COUNTDOWN_CASES, ids=COUNTDOWN_IDS)
def test_dom_countdown_reads_the_seconds(sel: dict[str, dict[str, Any]], src: it.Item, text: str, seconds: int) -> None:
    from agent.core.parsers import dom_remaining

    full, bare = js_countdown(it.to_row(src, NOW)) or ("", "")
    assert dom_remaining({"countdown": full, "countdown_time": bare}, sel["aftersale_list"]) == seconds


def test_countdown_regex_follows_the_ticking_page(sel: dict[str, dict[str, Any]]) -> None:
    """workbench.js subtracts the seconds elapsed since the fetch: the regex reads the ticked time span."""
    row = it.to_row(item(deadline_in=3600), NOW)
    full, bare = js_countdown(row, elapsed=61) or ("", "")
    assert full == "（0天0时58分59秒未处理，系统将自动退款）" and bare == "0天0时58分59秒"
    assert seconds_of(sel["aftersale_list"]["countdown"]["time"], bare) == 3600 - 61


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
    expected = {"row", "order_sn", "apply_time", "countdown", "countdown_time", "cell", "goods_name", "goods_spec",
                "amount_paid"}
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
    (bare,) = class_substrings(sel["aftersale_list"]["rows"]["countdown_time"])
    assert bare not in cls["table-item-header_expiration"]
    (applied,) = class_substrings(sel["aftersale_list"]["rows"]["apply_time"])
    assert applied not in cls["table-item-header_apply_timestamp"]


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


def test_the_live_evidence_shape_reads_a_proof_pending_row(sel: dict[str, dict[str, Any]]) -> None:
    live = sel["evidence"]["deadline"]["shapes"][0]
    row = it.to_row(item(state="platform", deadline_in=None, proof_deadline_in=3000), NOW)
    assert row[live["remain"]] == 3000 and row[live["desc"]]
    assert (live["remain"], live["desc"]) == (sel["aftersale_list"]["fields"]["expire_remain"],
                                              sel["aftersale_list"]["fields"]["expire_action"])
    for shape in sel["evidence"]["deadline"]["shapes"][1:]:
        assert shape["remain"] not in row  # older guesses stay parseable, the sandbox no longer sends them


def test_a_timed_out_evidence_row_is_off_the_clock(sel: dict[str, dict[str, Any]]) -> None:
    src = item(state="platform", deadline_in=None, proof_deadline_in=3000)
    it.apply_time(src, NOW + 3000)
    row = it.to_row(src, NOW + 3000)
    assert row[sel["aftersale_list"]["fields"]["expire_action"]] == ""
    assert sel["aftersale_list"]["fields"]["timeout_refund_action"] in row["actions"]
