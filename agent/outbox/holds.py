"""When a hold ends (a claim lapses or is released, a done mark is overtaken): the stage due now goes out at once;
the sweep that finds lapsed claims; the member actions the page and the API share."""

from __future__ import annotations

from datetime import datetime

from loguru import logger

from agent.config import Config
from agent.core.claims import Claim, due_stage, lapse_reason
from agent.core.rules import ItemState
from agent.outbox.enqueue import channels, payload, rules_config, team_rules
from agent.outbox.store import Store
from agent.outbox.team_store import Team


def queue_due_stage(config: Config, store: Store, state: ItemState, backend_now: datetime, ours: float) -> int:
    """Queue the stage `state` is in at `backend_now` (its usual key: never twice, and a stage already sent is not
    sent again); returns the rows queued."""
    shop = config.shop(state.shop)
    alert = due_stage(state, rules_config(config), backend_now)
    if shop is None or alert is None:
        return 0
    return store.enqueue([(alert.key, ch, state.shop, payload(alert, None)) for ch in channels(config, shop, alert)],
                         ours)


def sweep(config: Config, store: Store, backend_now: datetime, ours: float) -> list[str]:
    """Every hold that no longer holds (TTL, member removed, deadline moved) opens again and its due stage is
    queued at once. Returns the keys of the items that changed."""
    team, rules = Team(store), team_rules(config)
    changed: list[str] = []
    for c in team.held():
        try:
            state = team.find(c.key)
        except KeyError:
            continue
        if state.closed:
            continue
        reason = lapse_reason(c, ours, rules, state.deadline.timestamp())
        if reason is None or team.lapse(c, reason, ours) is None:
            continue
        queued = queue_due_stage(config, store, state, backend_now, ours)
        logger.info("claim of {} on {} {} lapsed ({}): {} alert row(s) queued now", c.member or c.done_by, state.shop,
                    state.order_sn, reason, queued)
        changed.append(c.key)
    return changed


def act(config: Config, store: Store, key: str, action: str, actor: str, backend_now: datetime, ours: float, *,
        expected: int | None = None, member: str | None = None, text: str = "") -> Claim:
    """A member's action on an item (claim / release / done / note), as the page and the API do it: the store
    records it with its timeline line; a release lets the stage due now out at once. Raises team_store.NotFound,
    team_store.Conflict, ValueError (a closed item, an unknown member)."""
    team = Team(store)
    state = team.find(key)
    if state.closed and action != "note":
        raise ValueError("该售后已结束，不能再认领或标记 / the item is closed")
    if action == "claim" and member and config.team.member(member) is None:
        raise ValueError(f"没有这个成员：{member} / unknown member")
    claim = team.act(state, action, actor, ours, expected=expected, member=member, text=text)
    if action == "release":
        queue_due_stage(config, store, state, backend_now, ours)
    return claim
