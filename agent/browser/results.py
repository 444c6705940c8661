"""A read's rows as a check's result (the checker's and the doctor's): items, counters, consistency findings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from agent.browser.reader import ListRead, RawRead
from agent.core import parsers
from agent.core.models import Finding, ShopResult


def board(raw: RawRead, lists: Mapping[str, Any]) -> dict[str, int]:
    """The 「售后数据」 counters by label: queryWaitHandleCount's when read, else the queryCount keys of the same
    name (24小时内平台同意退款, 24小时内待商家举证); a counter neither gave is left out (its rules wait)."""
    out = dict(raw.counters)
    for label, key in lists["counters"]["keys"].items():
        value = _int(raw.counts.get(key))
        if label not in out and value is not None:
            out[label] = value
    return out


def parse_read(raw: RawRead, result: ShopResult, sel: Mapping[str, Any], tz: tzinfo) -> None:
    """A read's rows as the result's items, counters and findings."""
    lists, evidence = sel["aftersale_list"], sel["evidence"]
    now = datetime.fromtimestamp(raw.server_time, tz) if raw.server_time else datetime.now(tz)
    result.checked_at = now
    after, proof = raw.lists["aftersales"], raw.lists["evidence"]

    def times(lr: ListRead) -> list[datetime]:  # each row by the Date of the answer that carried it
        got = [datetime.fromtimestamp(t, tz) if t else now for t in lr.row_times]
        return got if len(got) == len(lr.rows) else [now] * len(lr.rows)

    where_a, where_e = "queryList[aftersales]", "queryList[evidence]"
    result.aftersales, found_a = parsers.parse_aftersales(after.rows, lists, times(after), where_a)
    result.evidence, found_e = parsers.parse_evidence(proof.rows, lists, evidence, times(proof), where_e)
    if after.from_dom:
        result.aftersales = parsers.parse_dom_rows(after.dom_rows, lists, now, "DOM[aftersales]")
        found_a.append(Finding("dom_fallback", "待商家处理: no queryList answer captured; read the page's rows"))
    if proof.from_dom:
        result.evidence = parsers.as_evidence(parsers.parse_dom_rows(proof.dom_rows, lists, now, "DOM[evidence]"))
        found_e.append(Finding("dom_fallback", "待商家举证: no queryList answer captured; read the page's rows"))
    result.aftersales.sort(key=lambda i: i.deadline)
    result.evidence.sort(key=lambda i: i.deadline)
    result.counters = board(raw, lists)
    findings = [*raw.findings, *found_a, *found_e]
    due = sum(1 for i in result.aftersales if i.remaining_seconds < 86400)
    proof_due = sum(1 for i in result.evidence if i.remaining_seconds < 86400)
    c, keys, q = lists["counters"], lists["count_keys"], lists["quick_filters"]
    counter = raw.counters.get(c["expiring_aftersales"], raw.counts.get(keys.get(q["aftersales_expiring"], "")))
    proof_counter = raw.counters.get(c["expiring_evidence"], raw.counts.get(keys.get(q["evidence_expiring"], "")))
    read_a = after.total if after.from_dom else len(after.rows)
    read_e = proof.total if proof.from_dom else len(proof.rows)
    findings += parsers.consistency(
        after.total, read_a, q["aftersales"], due, _int(counter), c["expiring_aftersales"]
    )
    findings += parsers.consistency(
        proof.total, read_e, q["evidence"], proof_due, _int(proof_counter), c["expiring_evidence"]
    )
    sn = lists["fields"]["order_sn"]
    for lr, items in ((after, result.aftersales), (proof, result.evidence)):
        if lr.from_dom:
            continue
        by_sn = {i.order_sn: i.remaining_seconds for i in items}
        api = {r[sn]: by_sn[r[sn]] for r in lr.rows if isinstance(r, Mapping) and r.get(sn) in by_sn}
        findings += parsers.countdown_findings(lr.dom_rows, api, lists)
    result.findings += findings


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
