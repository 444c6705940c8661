"""Pure parsing of captured backend data (queryList JSON, row DOM, counter text) into typed items.

No I/O, no clock: the capture time comes in as an argument. Every field name, text and regex comes
from the selectors data; a missing or malformed field raises CheckFailure(LAYOUT_CHANGED) naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from agent.models import AfterSale, CheckFailure, EvidenceTask, Finding, ShopState

TYPE_NAMES_FALLBACK = {1: "仅退款", 2: "退货退款", 3: "换货", 4: "补寄"}
# Remaining times are whole seconds rounded down: the deadline lies in [at + r, at + r + 1), so take the middle.
_HALF = timedelta(seconds=0.5)


def _layout(detail: str) -> CheckFailure:
    return CheckFailure(ShopState.LAYOUT_CHANGED, detail)


def result_page(payload: Any, site: Mapping[str, Any], lists: Mapping[str, Any], where: str) -> tuple[int, list[Any]]:
    """(total, rows) of one queryList answer; raises typed failures for errors and a changed shape."""
    api = site["api"]
    if not isinstance(payload, Mapping):
        raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: answer is not a JSON object")
    code = payload.get("errorCode")
    msg = str(payload.get("errorMsg") or "")
    if payload.get("success") is not True or (code is not None and code not in api["ok_codes"]):
        if code in api["rate_limit_codes"] or any(t in msg for t in api["rate_limit_texts"]):
            raise CheckFailure(ShopState.RATE_LIMITED, f"{where}: {code} {msg}")
        if code in api["session_error_codes"] or any(t in msg for t in api["session_error_texts"]):
            raise CheckFailure(ShopState.LOGIN_REQUIRED, f"{where}: session expired ({code} {msg})")
        raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: errorCode {code} {msg}".strip())
    fields = lists["fields"]
    result = payload.get("result")
    if not isinstance(result, Mapping):
        raise _layout(f"{where}: result missing (envelope changed)")
    total, rows = result.get(fields["total"]), result.get(fields["list"])
    if not isinstance(total, int):
        raise _layout(f"{where}: result.{fields['total']} missing or not a number ([fields].total)")
    if rows is None and total == 0:
        rows = []
    if not isinstance(rows, list):
        raise _layout(f"{where}: result.{fields['list']} missing or not a list ([fields].list)")
    return total, rows


def _get(row: Any, key: str, where: str, kinds: type | tuple[type, ...], *, nullable: bool = False) -> Any:
    if not isinstance(row, Mapping):
        raise _layout(f"{where}: row is not an object")
    if key not in row:
        raise _layout(f"{where}.{key} missing (renamed? see selectors/aftersale_list.toml [fields])")
    value = row[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _layout(f"{where}.{key}: unexpected value {value!r}")
    return value


def _type_name(row: Mapping[str, Any], f: Mapping[str, Any], where: str) -> str:
    name = row.get(f["type_name"])
    if isinstance(name, str) and name:
        return name
    code = _get(row, f["type"], where, int)
    return TYPE_NAMES_FALLBACK.get(code, str(code))


def parse_aftersales(
    rows: Iterable[Any], lists: Mapping[str, Any], captured_at: datetime, where: str = "queryList"
) -> tuple[list[AfterSale], list[Finding]]:
    """Rows of the 待商家处理 list → items with absolute deadlines (captured_at + expireRemainTime).

    Rows that are closed (actions contain the timeout-refund code) or carry no deadline are left out
    and reported as findings: they are not on the merchant's clock.
    """
    f = lists["fields"]
    out: list[AfterSale] = []
    findings: list[Finding] = []
    for n, row in enumerate(rows):
        at = f"{where}.list[{n}]"
        item_id = str(_get(row, f["id"], at, (int, str)))
        order_sn = _get(row, f["order_sn"], at, str)
        actions = tuple(_get(row, f["actions"], at, list, nullable=True) or ())
        remain = _get(row, f["expire_remain"], at, int, nullable=True)
        if f["timeout_refund_action"] in actions:
            findings.append(Finding("closed_row", f"{order_sn}: already refunded automatically, not pending"))
            continue
        if remain is None:
            findings.append(Finding("no_deadline", f"{order_sn}: listed as pending but has no {f['expire_remain']}"))
            continue
        created = _get(row, f["created_at"], at, int)
        out.append(AfterSale(
            id=item_id,
            order_sn=order_sn,
            type=_type_name(row, f, at),
            status=_get(row, f["status_text"], at, str),
            reason=str(_get(row, f["reason"], at, str, nullable=True) or ""),
            goods_name=str(_get(row, f["goods_name"], at, str, nullable=True) or ""),
            goods_spec=str(row.get(f["goods_spec"]) or ""),
            refund_amount_fen=_get(row, f["refund_amount"], at, int),
            order_amount_fen=int(row.get(f["order_amount"]) or 0),
            created_at=datetime.fromtimestamp(created, captured_at.tzinfo),
            deadline=captured_at + timedelta(seconds=remain) + _HALF,
            remaining_seconds=remain,
            expire_action=str(row.get(f["expire_action"]) or ""),
            actions=tuple(int(a) for a in actions),
        ))
    return out, findings


def parse_evidence(
    rows: Iterable[Any], lists: Mapping[str, Any], evidence: Mapping[str, Any], captured_at: datetime,
    where: str = "queryList",
) -> tuple[list[EvidenceTask], list[Finding]]:
    """Rows of the 待商家举证 list → evidence tasks (field names from selectors/evidence.toml)."""
    f, e = lists["fields"], evidence["fields"]
    out: list[EvidenceTask] = []
    findings: list[Finding] = []
    for n, row in enumerate(rows):
        at = f"{where}.list[{n}]"
        order_sn = _get(row, f["order_sn"], at, str)
        status = _get(row, e["proof_status"], at, str, nullable=True)
        remain = _get(row, e["proof_remain"], at, int, nullable=True)
        if status != e["pending_value"] or remain is None:
            findings.append(Finding("closed_row", f"{order_sn}: evidence no longer owed ({status})"))
            continue
        out.append(EvidenceTask(
            id=str(_get(row, f["id"], at, (int, str))),
            order_sn=order_sn,
            type=_type_name(row, f, at),
            status=_get(row, f["status_text"], at, str),
            reason=str(_get(row, f["reason"], at, str, nullable=True) or ""),
            goods_name=str(_get(row, f["goods_name"], at, str, nullable=True) or ""),
            refund_amount_fen=_get(row, f["refund_amount"], at, int),
            deadline=captured_at + timedelta(seconds=remain) + _HALF,
            remaining_seconds=remain,
        ))
    return out, findings


def countdown_seconds(text: str, pattern: str) -> int | None:
    """Seconds shown by a row countdown such as 「（6天23时33分2秒未处理，系统将自动退款）」."""
    m = re.search(pattern, text)
    if not m:
        return None
    d, h, mi, s = (int(g) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def parse_counters(text: str, lists: Mapping[str, Any]) -> dict[str, int]:
    """The 「售后数据」 header counters found in the page text, by label."""
    c = lists["counters"]
    out: dict[str, int] = {}
    for label in c["labels"]:
        m = re.search(c["pattern"].replace("{label}", re.escape(label)), text)
        if m:
            out[label] = int(m.group(1))
    return out


def parse_yuan(text: str) -> int | None:
    """'退款：¥25.80' → 2580 (fen)."""
    m = re.search(r"(\d+)(?:\.(\d{1,2}))?", text.replace(",", ""))
    if not m:
        return None
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def consistency(
    total: int, read: int, what: str, items_due_24h: int | None = None, counter: int | None = None,
    counter_label: str = "",
) -> list[Finding]:
    """Rows read vs the list's total; a 24-hour header counter vs the items due within 24 h."""
    out = []
    if read != total:
        out.append(Finding("rows_vs_total", f"{what}: read {read} rows but the list says total {total}"))
    if counter is not None and items_due_24h is not None and counter != items_due_24h:
        out.append(Finding(
            "counter_vs_items", f"{counter_label} shows {counter}, but {items_due_24h} items are due within 24 h"
        ))
    return out


def countdown_findings(
    dom_rows: Sequence[Mapping[str, str]], api_remaining: Mapping[str, int], pattern: str, tolerance: int = 5
) -> list[Finding]:
    """Countdown text on each DOM row vs the API's remaining seconds for the same order number."""
    out = []
    for row in dom_rows:
        sn, text = row.get("order_sn", ""), row.get("countdown", "")
        if sn not in api_remaining or not text:
            continue
        shown = countdown_seconds(text, pattern)
        if shown is None:
            out.append(Finding("countdown_unparsed", f"{sn}: countdown text {text!r} did not match the pattern"))
        elif abs(api_remaining[sn] - shown) > tolerance:
            out.append(Finding("countdown_vs_api", f"{sn}: page shows {shown}s, API says {api_remaining[sn]}s"))
    return out


def _cells(row: Mapping[str, Any], lists: Mapping[str, Any], where: str) -> dict[str, str]:
    order = lists["rows"]["cell_order"]
    cells = row.get("cells") or []
    if len(cells) < len(order) - 1:
        raise _layout(f"{where}: {len(cells)} cells, expected {len(order)} ([rows].cell / cell_order)")
    return {name: str(cells[i]) if i < len(cells) else "" for i, name in enumerate(order)}


def parse_dom_rows(
    rows: Sequence[Mapping[str, Any]], lists: Mapping[str, Any], captured_at: datetime, kind: str,
    where: str = "DOM",
) -> list[AfterSale]:
    """Rows read from the page itself (fallback when no queryList answer could be captured).

    The DOM has no after-sales id, so the order number stands in for it; the deadline comes from the
    countdown text (`kind` "aftersale" or "evidence" picks the regex).
    """
    out = []
    for n, row in enumerate(rows):
        at = f"{where}.rows[{n}]"
        sn = str(row.get("order_sn") or "").strip()
        if not sn:
            raise _layout(f"{at}: no order number ([rows].order_sn)")
        remain = countdown_seconds(str(row.get("countdown") or ""), lists["countdown"][kind])
        if remain is None:
            continue  # no running countdown of this kind: not on the clock
        cells = _cells(row, lists, at)
        order = lists["rows"]["cell_order"]
        goods = cells[order[0]].splitlines()
        money = cells[order[1]].splitlines()
        refund = parse_yuan(money[-1]) if money else None
        applied = str(row.get("apply_time") or "")
        try:
            created = datetime.strptime(applied.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=captured_at.tzinfo)
        except ValueError:
            created = captured_at
        read_at = row.get("read_at")
        seen = datetime.fromtimestamp(read_at, captured_at.tzinfo) if isinstance(read_at, float) else captured_at
        out.append(AfterSale(
            id=sn, order_sn=sn, type=cells[order[3]].strip(), status=cells[order[4]].strip().splitlines()[0]
            if cells[order[4]].strip() else "", reason=cells[order[6]].strip(),
            goods_name=goods[0].strip() if goods else "", goods_spec=goods[1].strip() if len(goods) > 1 else "",
            refund_amount_fen=refund or 0, order_amount_fen=(parse_yuan(money[0]) or 0) if money else 0,
            created_at=created, deadline=seen + timedelta(seconds=remain) + _HALF, remaining_seconds=remain,
        ))
    return out


def as_evidence(items: Sequence[AfterSale]) -> list[EvidenceTask]:
    return [
        EvidenceTask(id=i.id, order_sn=i.order_sn, type=i.type, status=i.status, reason=i.reason,
                     goods_name=i.goods_name, refund_amount_fen=i.refund_amount_fen, deadline=i.deadline,
                     remaining_seconds=i.remaining_seconds)
        for i in items
    ]
