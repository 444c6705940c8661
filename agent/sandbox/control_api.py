"""The sandbox's control API under `/__sandbox/` (never served by the live site).

Tests and the demo use it to load scenarios, move the clock, add/handle/age items, expire
sessions, arm SMS / captcha / rate limits, scan QR codes, switch builds and read statistics.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from typing import Any, Protocol

from agent.sandbox import items as it
from agent.sandbox.backend import Backend
from agent.sandbox.risk import LEVELS


class Handler(Protocol):
    """What a control route needs of the request it answers (the server's Handler provides it)."""

    route: str
    query: dict[str, str]

    @property
    def backend(self) -> Backend: ...
    def json_body(self) -> Any: ...
    def send_json(self, data: Any, status: int = ...) -> None: ...


def builtin_scenario(name: str) -> dict[str, Any]:
    """A scenario shipped in agent/sandbox/scenarios (name without .json)."""
    res = resources.files("agent.sandbox").joinpath("scenarios", f"{name}.json")
    if "/" in name or not res.is_file():
        raise FileNotFoundError(f"no built-in scenario {name!r}")
    data: dict[str, Any] = json.loads(res.read_text(encoding="utf-8"))
    return data


def builtin_scenarios() -> list[str]:
    folder = resources.files("agent.sandbox").joinpath("scenarios")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _state(h: Handler, body: dict[str, Any]) -> Any:
    b = h.backend
    with b.lock:
        shops = []
        for shop in b.shops.values():
            items = b.shop_items(shop.mall_id)
            shops.append({
                "mall_id": shop.mall_id, "name": shop.name,
                "accounts": [
                    {"username": a.username, "login": a.login} for a in b.accounts.values() if a.mall_id == shop.mall_id
                ],
                "items": len(items),
                "pending": sum(1 for i in items if i.pending),
                "evidence": sum(1 for i in items if i.proof_pending),
                "platform": sum(1 for i in items if i.state == "platform"),
            })
        return {
            "scenario": b.scenario_name,
            "clock": dataclasses.asdict(b.clock.state()),
            "settings": dataclasses.asdict(b.settings),
            "shops": shops,
        }


def _scenario(h: Handler, body: dict[str, Any]) -> Any:
    scenario = builtin_scenario(str(body["builtin"])) if "builtin" in body else body
    h.backend.load_scenario(scenario)
    return _state(h, {})


def _clock(h: Handler, body: dict[str, Any]) -> Any:
    c = h.backend.clock
    if "rate" in body:
        c.set_rate(float(body["rate"]))
    if "set" in body:
        c.set(float(body["set"]))
    if "offset" in body:
        c.set_offset(float(body["offset"]))
    if "advance" in body:
        c.advance(float(body["advance"]))
    if body.get("freeze") is True:
        c.freeze()
    elif body.get("freeze") is False:
        c.unfreeze()
    return dataclasses.asdict(c.state())


def _settings(h: Handler, body: dict[str, Any]) -> Any:
    h.backend.configure(body)
    return dataclasses.asdict(h.backend.settings)


def _items_get(h: Handler, body: dict[str, Any]) -> Any:
    b = h.backend
    mall_id = int(h.query["mall_id"])
    with b.lock:
        now = b.clock.now()
        out = []
        for item in b.shop_items(mall_id):
            row = it.to_row(item, now)
            row.update(state=item.state, deadline=item.deadline, proofDeadline=item.proof_deadline,
                       proofStatus=item.proof_status)
            out.append(row)
        return {"now": now, "items": out}


def _items_add(h: Handler, body: dict[str, Any]) -> Any:
    b, mall_id = h.backend, int(body["mall_id"])
    with b.lock:
        if mall_id not in b.shops:
            raise KeyError(mall_id)
        if body.get("after") == "queryCount":  # they arrive between that answer and the lists
            b.arrivals.setdefault(mall_id, []).extend(body["items"])
            return {"added": []}
        return {"added": [b.add_item(mall_id, raw) for raw in body["items"]]}


def _items_handle(h: Handler, body: dict[str, Any]) -> Any:
    b = h.backend
    with b.lock:
        _, item = b.find_item(int(body["id"]))
        it.apply_time(item, b.clock.now())
        it.handle(item, b.clock.now())
        return {"id": item.id, "state": item.state, "proofStatus": item.proof_status}


def _items_age(h: Handler, body: dict[str, Any]) -> Any:
    """Move one item's deadlines closer by `seconds` (or further with a negative value)."""
    b = h.backend
    seconds = float(body["seconds"])
    with b.lock:
        _, item = b.find_item(int(body["id"]))
        if item.deadline is not None:
            item.deadline -= seconds
        if item.proof_deadline is not None:
            item.proof_deadline -= seconds
        item.created_at -= seconds
        return {"id": item.id, "deadline": item.deadline, "proofDeadline": item.proof_deadline}


def _items_mark(h: Handler, body: dict[str, Any]) -> Any:
    """Set an item's 投诉预警 / 买家催处理 flags (complaint_risk, buyer_urged) or its reason."""
    b = h.backend
    with b.lock:
        _, item = b.find_item(int(body["id"]))
        if "complaint_risk" in body:
            item.complaint_risk = bool(body["complaint_risk"])
        if "buyer_urged" in body:
            item.buyer_urged = bool(body["buyer_urged"])
        if "reason" in body:
            item.reason = str(body["reason"])
        item.version += 1
        return {"id": item.id, "complaint_risk": item.complaint_risk, "buyer_urged": item.buyer_urged}


def _items_escalate(h: Handler, body: dict[str, Any]) -> Any:
    """The platform steps in (平台处理中), with an evidence deadline `proof_deadline_in` s away when given; or
    with `decide: "refund"` the platform refunds an item it handles."""
    b = h.backend
    with b.lock:
        _, item = b.find_item(int(body["id"]))
        if body.get("decide") == "refund":
            it.platform_refund(item, b.clock.now())
        else:
            proof = body.get("proof_deadline_in")
            it.escalate(item, b.clock.now(), None if proof is None else float(proof))
        return {"id": item.id, "state": item.state, "proofStatus": item.proof_status}


def _tickets(h: Handler, body: dict[str, Any]) -> Any:
    """Work orders due within 24 h (「24小时内将逾期工单数」) of a shop."""
    b = h.backend
    with b.lock:
        b.shops[int(body["mall_id"])].tickets = int(body["count"])
        return {"mall_id": int(body["mall_id"]), "tickets": int(body["count"])}


def _expire(h: Handler, body: dict[str, Any]) -> Any:
    mall_id = body.get("mall_id")
    n = h.backend.expire_sessions(None if mall_id is None else int(mall_id), body.get("username"))
    return {"expired": n}


def _arm(h: Handler, body: dict[str, Any]) -> Any:
    what = body["what"]
    b = h.backend
    if what == "sms":
        b.arm_sms(str(body["username"]))
    elif what == "captcha":
        b.arm_captcha(body.get("username"))
    elif what == "picture_captcha":
        b.arm_picture_captcha(body.get("username"))
    elif what == "api_captcha":
        b.arm_api_captcha(body.get("username"), bool(body.get("unsigned_only", False)))
    elif what == "rate_limit":
        b.arm_rate_limit(int(body.get("count", 1)))
    elif what == "login_block":
        b.arm_login_block(str(body["username"]), int(body["code"]))
    else:
        raise ValueError(f"cannot arm {what!r}")
    return {"armed": what}


def _captcha_clear(h: Handler, body: dict[str, Any]) -> Any:
    h.backend.clear_captcha()
    return {"cleared": True}


def _sms(h: Handler, body: dict[str, Any]) -> Any:
    with h.backend.lock:
        return {"code": h.backend.sms_codes.get(h.query.get("username", ""))}


def _qr_list(h: Handler, body: dict[str, Any]) -> Any:
    with h.backend.lock:
        return {"tokens": [{"token": t.token, "status": t.status} for t in h.backend.qr_tokens.values()]}


def _qr_scan(h: Handler, body: dict[str, Any]) -> Any:
    token = h.backend.scan_qr(str(body["username"]), body.get("token"), bool(body.get("confirm", True)))
    return {"token": token}


def _qr_cancel(h: Handler, body: dict[str, Any]) -> Any:
    return {"token": h.backend.cancel_qr(body.get("token"))}


def _stats(h: Handler, body: dict[str, Any]) -> Any:
    with h.backend.lock:
        return {"counts": dict(h.backend.stats), "query_bodies": list(h.backend.query_bodies),
                "clients": {k: dict(v) for k, v in h.backend.clients.items()},
                "agents": {k: dict(v) for k, v in h.backend.agents.items()},
                "peak_per_second": h.backend.peak_per_second}


def _requests(h: Handler, body: dict[str, Any]) -> Any:
    since = int(h.query.get("since", "0"))
    with h.backend.lock:
        return {"entries": h.backend.requests.since(since), "next": h.backend.requests.dropped
                + len(h.backend.requests.entries)}


def _hold(h: Handler, body: dict[str, Any]) -> Any:
    with h.backend.lock:
        h.backend.requests.hold(str(body["username"]), float(body["seconds"]), int(body.get("count", 1)))
    return {"ok": True}


def _holds_left(h: Handler, body: dict[str, Any]) -> Any:
    with h.backend.lock:
        return {"left": h.backend.requests.holds_left(h.query.get("username", ""))}


def _risk(h: Handler, body: dict[str, Any]) -> Any:
    """The Anti-Content policy: `default` and per-route `levels` (none, present, valid, fresh, single, ua,
    fingerprint, account), `fresh_seconds`, `score` (the chance a valid token still meets 54001)."""
    with h.backend.lock:
        pol = h.backend.risk
        for level in (body.get("default"), *dict(body.get("levels", {})).values()):
            if level is not None and level not in LEVELS:
                raise ValueError(f"unknown level {level!r}; one of {LEVELS}")
        if "default" in body:
            pol.default = str(body["default"])
        if "levels" in body:
            pol.levels = {str(k): str(v) for k, v in dict(body["levels"]).items()}
        if "fresh_seconds" in body:
            pol.fresh_seconds = float(body["fresh_seconds"])
        if "score" in body:
            pol.score = float(body["score"])
        if "live_headers" in body:
            pol.live_headers = bool(body["live_headers"])
        return {"default": pol.default, "levels": pol.levels, "fresh_seconds": pol.fresh_seconds, "score": pol.score,
                "live_headers": pol.live_headers, "build": h.backend.settings.build}


def _stats_reset(h: Handler, body: dict[str, Any]) -> Any:
    with h.backend.lock:
        h.backend.stats.clear()
        h.backend.query_bodies.clear()
    h.backend.reset_traffic()
    return {"reset": True}


CONTROL: dict[tuple[str, str], Callable[[Handler, dict[str, Any]], Any]] = {
    ("GET", "state"): _state,
    ("POST", "scenario"): _scenario,
    ("POST", "clock"): _clock,
    ("GET", "clock"): lambda h, b: dataclasses.asdict(h.backend.clock.state()),
    ("POST", "settings"): _settings,
    ("GET", "items"): _items_get,
    ("POST", "items"): _items_add,
    ("POST", "items/handle"): _items_handle,
    ("POST", "items/age"): _items_age,
    ("POST", "items/mark"): _items_mark,
    ("POST", "items/escalate"): _items_escalate,
    ("POST", "tickets"): _tickets,
    ("POST", "sessions/expire"): _expire,
    ("POST", "arm"): _arm,
    ("POST", "captcha/clear"): _captcha_clear,
    ("GET", "sms"): _sms,
    ("GET", "qr"): _qr_list,
    ("POST", "qr/scan"): _qr_scan,
    ("POST", "qr/cancel"): _qr_cancel,
    ("GET", "stats"): _stats,
    ("POST", "stats/reset"): _stats_reset,
    ("GET", "requests"): _requests,
    ("POST", "risk"): _risk,
    ("GET", "risk"): _risk,
    ("POST", "requests/hold"): _hold,
    ("GET", "requests/hold"): _holds_left,
}


def handle_control(h: Handler, method: str) -> None:
    fn = CONTROL.get((method, h.route[len("/__sandbox/") :].rstrip("/")))
    if fn is None:
        h.send_json({"error": f"no control route {method} {h.route}"}, status=HTTPStatus.NOT_FOUND)
        return
    try:
        result = fn(h, h.json_body() if method == "POST" else {})
    except (KeyError, ValueError, LookupError, FileNotFoundError, TypeError) as exc:
        h.send_json({"error": f"{type(exc).__name__}: {exc}"}, status=HTTPStatus.BAD_REQUEST)
        return
    h.send_json(result)
