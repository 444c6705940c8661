"""Request plans (pure): the bodies guessed from selectors/ alone, and the checks a learned body must pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.browser.reader import ROLES, RawRead
from agent.core.models import CheckFailure, Finding, ShopState


def guess_plan(lists: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Request bodies from selectors/ alone: the starting guess before anything was learned."""
    req = lists["request"]
    default = {k: (None if v == "__null__" else v) for k, v in req["default"].items()}
    q = lists["quick_filters"]
    plan = {}
    for role in ROLES:
        body = {**default, req["quick_search_type"]: q["codes"][q[role]]}
        if q[role] in q["expire_sorted"]:
            body[req["expire_sort"]] = True
        plan[role] = body
    return plan


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
    and relearns (totals that disagree twice with queryCount say the same, in `Checker._read_api`)."""
    wrong = [f for f in findings if f.kind in ("closed_row", "no_deadline")]
    if wrong:
        detail = f"learned bodies list rows that are not pending: {wrong[0].message}"
        raise CheckFailure(ShopState.LAYOUT_CHANGED, detail)
