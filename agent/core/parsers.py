"""Pure parsing of captured backend data (queryList JSON, row DOM, counter text) into typed items.

No I/O, no clock: the capture time comes in as an argument. Every field name, text and regex comes
from the selectors data; a missing or malformed field raises CheckFailure(LAYOUT_CHANGED) naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from agent.core.models import CaptchaRequired, CheckFailure, Finding, Item, ShopState

# Remaining times are whole seconds rounded down: the deadline lies in [at + r, at + r + 1), so take the middle.
_HALF = timedelta(seconds=0.5)
Captured = datetime | Sequence[datetime]  # one capture time for all rows, or one per row


def _layout(detail: str) -> CheckFailure:
    return CheckFailure(ShopState.LAYOUT_CHANGED, detail)


def check_envelope(
    payload: Any, site: Mapping[str, Any], where: str, status: int = 200, headers: Mapping[str, str] | None = None,
) -> None:
    """Raise the typed failure an error answer means (captcha, session, rate limit, backend); None when OK.

    54001 is a captcha (CaptchaRequired, with result.verifyAuthToken), never a rate limit; HTTP 429 is the
    rate limit; 43001 (with `checklogin: false`) and 40001 with HTTP 429/403 are a lost session.
    """
    api = site["api"]
    h = {k.lower(): v for k, v in (headers or {}).items()}
    data = payload if isinstance(payload, Mapping) else {}
    code = data.get(api["code_field"])
    msg = str(data.get(api["message_field"]) or "")
    if code in api["captcha_codes"]:
        result = data.get(api["result_field"])
        token = result.get(api["captcha_token_field"]) if isinstance(result, Mapping) else None
        raise CaptchaRequired(
            f"{where}: errorCode {code} 「{msg}」: PDD asks for a captcha (site.toml [api].captcha_codes)",
            str(token) if token else None,
        )
    session_header = h.get(str(api["session_header"]).lower()) == api["session_header_value"]
    if (code == api["session_http_code"] and status in api["session_http_statuses"]) or (
        session_header and code in api["session_error_codes"]
    ):
        raise CheckFailure(ShopState.LOGIN_REQUIRED, f"{where}: session expired ({code} {msg}, HTTP {status})")
    if status in api["rate_limit_statuses"]:
        raise CheckFailure(ShopState.RATE_LIMITED, f"{where}: HTTP {status} {msg}".strip())
    if not isinstance(payload, Mapping):
        raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: answer is not a JSON object")
    if payload.get("success") is not True or (code is not None and code not in api["ok_codes"]):
        if code in api["rate_limit_codes"] or any(t in msg for t in api["rate_limit_texts"]):
            raise CheckFailure(ShopState.RATE_LIMITED, f"{where}: {code} {msg}")
        if code in api["session_error_codes"] or any(t in msg for t in api["session_error_texts"]):
            raise CheckFailure(ShopState.LOGIN_REQUIRED, f"{where}: session expired ({code} {msg})")
        raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: errorCode {code} {msg}".strip())
    if status >= 400:
        raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: HTTP {status}")


def login_state(
    payload: Any, site: Mapping[str, Any], where: str = "checkLogin", status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> bool:
    """What a checkLogin answer says: logged in or not (a lost-session answer is False); the envelope's other
    errors raise as everywhere (captcha, rate limit, backend), a missing flag is a changed layout."""
    api = site["api"]
    try:
        check_envelope(payload, site, where, status, headers)
    except CheckFailure as exc:
        if exc.state is ShopState.LOGIN_REQUIRED:
            return False
        raise
    result = payload.get(api["result_field"])
    flag = result.get(api["check_login_field"]) if isinstance(result, Mapping) else None
    if isinstance(flag, bool):
        return flag
    raise _layout(f"{where}: field {api['result_field']}.{api['check_login_field']} missing or not a boolean"
                  f" in {json.dumps(payload, ensure_ascii=False)[:200]}")


def result_page(
    payload: Any, site: Mapping[str, Any], lists: Mapping[str, Any], where: str, status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, list[Any]]:
    """(total, rows) of one queryList answer; raises typed failures for errors and a changed shape."""
    check_envelope(payload, site, where, status, headers)
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
    code = _get(row, f["type"], where, int)
    return str(f.get("type_names", {}).get(str(code), code))


def live_shape(lists: Mapping[str, Any]) -> list[dict[str, str]]:
    """The deadline shape of every after-sales row: expireRemainTime + expireActionDesc ([fields])."""
    f = lists["fields"]
    return [{"remain": f["expire_remain"], "desc": f["expire_action"]}]


def row_deadline(row: Mapping[str, Any], shapes: Sequence[Mapping[str, Any]], where: str) -> tuple[int | None, str]:
    """(remaining seconds or None when the row is not on the merchant's clock, why not / its description).

    The first shape whose `remain` field the row carries (not null) decides. Live shape (`desc`): a deadline
    only when the description is non-empty. Older shape (`status` + `pending`): owed while the status says so.
    A row with none of the shapes' fields is layout_changed naming them.
    """
    for shape in shapes:
        remain = row.get(shape["remain"])
        if remain is None:
            continue
        if isinstance(remain, bool) or not isinstance(remain, int):
            raise _layout(f"{where}.{shape['remain']}: unexpected value {remain!r}")
        if "desc" in shape:
            desc = row.get(shape["desc"])
            if not isinstance(desc, str):
                raise _layout(f"{where}.{shape['desc']} missing beside {shape['remain']}")
            return (max(0, remain), desc) if desc.strip() else (None, f"{shape['desc']} is empty")
        status = row.get(shape["status"])
        return (max(0, remain), str(status)) if status == shape["pending"] else (None, f"{shape['status']} {status!r}")
    names = " / ".join(str(s["remain"]) for s in shapes)
    raise _layout(f"{where}: no deadline field ({names}) in the row (see the deadline shapes in selectors/)")


def _at(captured_at: Captured, n: int) -> datetime:
    return captured_at if isinstance(captured_at, datetime) else captured_at[n]


def parse_aftersales(
    rows: Iterable[Any], lists: Mapping[str, Any], captured_at: Captured, where: str = "queryList",
    shapes: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[Item], list[Finding]]:
    """Rows of a list → items with absolute deadlines (the capture time of the response that carried each row
    plus its remaining seconds).

    Rows that are closed (actions contain the timeout-refund code) or carry no deadline (an empty
    expireActionDesc) are left out and reported as findings: they are not on the merchant's clock. Remaining 0
    with a description is overdue (「已逾期」): kept, due now. `shapes` default to the live row shape.
    """
    f = lists["fields"]
    shapes = live_shape(lists) if shapes is None else shapes
    out: list[Item] = []
    findings: list[Finding] = []
    for n, row in enumerate(rows):
        at = f"{where}.list[{n}]"
        captured = _at(captured_at, n)
        item_id = str(_get(row, f["id"], at, (int, str)))
        order_sn = _get(row, f["order_sn"], at, str)
        actions = tuple(_get(row, f["actions"], at, list, nullable=True) or ())
        if f["timeout_refund_action"] in actions:
            findings.append(Finding("closed_row", f"{order_sn}: already refunded automatically, not pending"))
            continue
        remain, desc = row_deadline(row, shapes, at)
        if remain is None:
            findings.append(Finding("no_deadline", f"{order_sn}: listed as pending but not on the clock ({desc})"))
            continue
        created = _get(row, f["created_at"], at, int)
        placeholder = lists.get("countdown", {}).get("time_placeholder", "")
        out.append(Item(
            kind="aftersale",
            id=item_id,
            order_sn=order_sn,
            type=_type_name(row, f, at),
            status=_get(row, f["status_text"], at, str),
            reason=str(_get(row, f["reason"], at, str, nullable=True) or ""),
            goods_name=str(_get(row, f["goods_name"], at, str, nullable=True) or ""),
            goods_spec=str(row.get(f["goods_spec"]) or ""),
            refund_amount_fen=_get(row, f["refund_amount"], at, int),
            order_amount_fen=int(row.get(f["order_amount"]) or 0),
            created_at=datetime.fromtimestamp(created, captured.tzinfo),
            deadline=captured + timedelta(seconds=remain) + (_HALF if remain else timedelta(0)),
            remaining_seconds=remain,
            expire_action=desc.replace(placeholder, "") if placeholder else desc,
            actions=tuple(int(a) for a in actions),
            overdue=remain == 0,
        ))
    return out, findings


def parse_evidence(
    rows: Iterable[Any], lists: Mapping[str, Any], evidence: Mapping[str, Any], captured_at: Captured,
    where: str = "queryList",
) -> tuple[list[Item], list[Finding]]:
    """Rows of the 待商家举证 list → evidence tasks: read like every row, the deadline by the shapes of
    selectors/evidence.toml [deadline] (the live one first)."""
    items, findings = parse_aftersales(rows, lists, captured_at, where, evidence["deadline"]["shapes"])
    for k, fd in enumerate(findings):
        if fd.kind == "no_deadline":
            findings[k] = Finding("closed_row", fd.message.replace("listed as pending", "evidence no longer owed"))
    return as_evidence(items), findings


def watch_ids(rows: Iterable[Any], lists: Mapping[str, Any], where: str) -> set[str]:
    """The item ids a watch card (投诉预警, 买家催处理) lists."""
    f = lists["fields"]
    return {str(_get(row, f["id"], f"{where}.list[{n}]", (int, str))) for n, row in enumerate(rows)}


def parse_platform(rows: Iterable[Any], lists: Mapping[str, Any], captured_at: Captured,
                   where: str = "queryList[platform]") -> list[Item]:
    """Rows of 平台处理中 → items (kind "evidence"): read like every row, but a row need not be on the clock
    (the platform decides; evidence may be owed later): without one, the deadline is the capture time and
    `expire_action` stays empty."""
    f = lists["fields"]
    out = []
    for n, row in enumerate(rows):
        at = f"{where}.list[{n}]"
        captured = _at(captured_at, n)
        remain, desc = (None, "")
        if isinstance(row, Mapping) and row.get(f["expire_remain"]) is not None:
            remain, desc = row_deadline(row, live_shape(lists), at)
        created = _get(row, f["created_at"], at, int)
        out.append(Item(
            kind="evidence", id=str(_get(row, f["id"], at, (int, str))), order_sn=_get(row, f["order_sn"], at, str),
            type=_type_name(row, f, at), status=_get(row, f["status_text"], at, str),
            reason=str(_get(row, f["reason"], at, str, nullable=True) or ""),
            goods_name=str(_get(row, f["goods_name"], at, str, nullable=True) or ""),
            refund_amount_fen=_get(row, f["refund_amount"], at, int),
            order_amount_fen=int(row.get(f["order_amount"]) or 0),
            created_at=datetime.fromtimestamp(created, captured.tzinfo),
            deadline=captured + timedelta(seconds=remain or 0), remaining_seconds=remain or 0,
            expire_action=desc if remain is not None else "",
        ))
    return out


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


def wait_counters(result: Any, lists: Mapping[str, Any]) -> dict[str, int]:
    """The 「售后数据」 header counters from queryWaitHandleCount's result, by label ([counters.keys])."""
    if not isinstance(result, Mapping):
        return {}
    out: dict[str, int] = {}
    for label, key in lists["counters"]["keys"].items():
        value = result.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[label] = value
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
    dom_rows: Sequence[Mapping[str, Any]], api_remaining: Mapping[str, int], lists: Mapping[str, Any],
    tolerance: int = 5,
) -> list[Finding]:
    """Countdown shown on each DOM row vs the API's remaining seconds for the same order number."""
    out = []
    for row in dom_rows:
        sn, text = row.get("order_sn", ""), row.get("countdown", "")
        if sn not in api_remaining or not text:
            continue
        shown = dom_remaining(row, lists)
        if shown is None:
            out.append(Finding(
                "countdown_unparsed",
                f"{sn}: countdown {text!r} has no time matching [countdown].time in [rows].countdown_time",
            ))
        elif abs(api_remaining[sn] - shown) > tolerance:
            out.append(Finding("countdown_vs_api", f"{sn}: page shows {shown}s, API says {api_remaining[sn]}s"))
    return out


def _cells(row: Mapping[str, Any], lists: Mapping[str, Any], where: str) -> dict[str, str]:
    order = lists["rows"]["cell_order"]
    cells = row.get("cells") or []
    if len(cells) < len(order) - 1:
        raise _layout(f"{where}: {len(cells)} cells, expected {len(order)} ([rows].cell / cell_order)")
    return {name: str(cells[i]) if i < len(cells) else "" for i, name in enumerate(order)}


def dom_remaining(row: Mapping[str, Any], lists: Mapping[str, Any]) -> int | None:
    """Seconds left by a DOM row's countdown: the bare time span, 0 for 「（已逾期）」, None when none shows."""
    c = lists["countdown"]
    remain = countdown_seconds(str(row.get("countdown_time") or ""), c["time"])
    if remain is not None:
        return remain
    if c["overdue_text"] and c["overdue_text"] in str(row.get("countdown") or ""):
        return 0
    return None


def parse_dom_rows(
    rows: Sequence[Mapping[str, Any]], lists: Mapping[str, Any], captured_at: datetime, where: str = "DOM",
) -> list[Item]:
    """Rows read from the page itself (fallback when no queryList answer could be captured).

    The DOM has no after-sales id, so the order number stands in for it; the deadline comes from the
    countdown's time span ([rows].countdown_time), 「（已逾期）」 is due now, a row with no countdown is not
    on the clock.
    """
    out = []
    for n, row in enumerate(rows):
        at = f"{where}.rows[{n}]"
        sn = str(row.get("order_sn") or "").strip()
        if not sn:
            raise _layout(f"{at}: no order number ([rows].order_sn)")
        remain = dom_remaining(row, lists)
        if remain is None:
            continue  # no running countdown: not on the clock
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
        full, bare = str(row.get("countdown") or ""), str(row.get("countdown_time") or "")
        out.append(Item(
            kind="aftersale", id=sn, order_sn=sn, type=cells[order[3]].strip(),
            status=cells[order[4]].strip().splitlines()[0]
            if cells[order[4]].strip() else "", reason=cells[order[6]].strip(),
            goods_name=goods[0].strip() if goods else "", goods_spec=goods[1].strip() if len(goods) > 1 else "",
            refund_amount_fen=refund or 0, order_amount_fen=(parse_yuan(money[0]) or 0) if money else 0,
            created_at=created, deadline=seen + timedelta(seconds=remain) + (_HALF if remain else timedelta(0)),
            remaining_seconds=remain, expire_action=full.strip("（）()").replace(bare, "") if bare else "",
            overdue=remain == 0,
        ))
    return out


def as_evidence(items: Sequence[Item]) -> list[Item]:
    """Rows read from the 待商家举证 list: evidence owed, whatever shape they were read in."""
    return [replace(i, kind="evidence") for i in items]
