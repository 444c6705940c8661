"""Request plans (pure): the bodies guessed from selectors/ alone, and the checks a learned body must pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.browser.reader import ROLES, RawRead
from agent.core.models import CheckFailure, Finding, ShopState


def default_body(lists: Mapping[str, Any]) -> dict[str, Any]:
    """queryList's body as the page sends it on load ([request].default; "__null__" is JSON null)."""
    return {k: (None if v == "__null__" else v) for k, v in lists["request"]["default"].items()}


def card_body(lists: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The body a click on the card `label` sends: its quickSearchType, and the expire sort where it has one."""
    req, q = lists["request"], lists["quick_filters"]
    body = {**default_body(lists), req["quick_search_type"]: q["codes"][label]}
    if label in q["expire_sorted"]:
        body[req["expire_sort"]] = True
    return body


def guess_plan(lists: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Request bodies from selectors/ alone: the starting guess before anything was learned."""
    return {role: card_body(lists, lists["quick_filters"][role]) for role in ROLES}


def count_mismatch(raw: RawRead, lists: Mapping[str, Any]) -> str | None:
    """Where a learned body's total disagrees with queryCount, else None."""
    for role in ROLES:
        label = lists["quick_filters"][role]
        key = lists["count_keys"].get(label)
        expected = raw.counts.get(key) if key else None
        if isinstance(expected, int) and expected != raw.lists[role].total:
            return f"learned body for 「{label}」 lists {raw.lists[role].total} items, queryCount says {expected}"
    return None


def check_stale(findings: Sequence[Finding]) -> None:
    """A learned body that lists rows of the wrong kind: LAYOUT_CHANGED, so the check falls back to page mode
    and relearns (totals that disagree twice with queryCount say the same, in `Checker.read_api`)."""
    wrong = [f for f in findings if f.kind in ("closed_row", "no_deadline")]
    if wrong:
        detail = f"learned bodies list rows that are not pending: {wrong[0].message}"
        raise CheckFailure(ShopState.LAYOUT_CHANGED, detail)
