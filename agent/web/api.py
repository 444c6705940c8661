"""The JSON API (`/api/v1`, used by the page and by monitors) and the service's /healthz and /metrics, with the same
paths and output as the earlier health endpoint."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from loguru import logger

from agent.outbox.team_store import Conflict, NotFound
from agent.service.health import healthz, render_metrics
from agent.web.keys import DEPS, WHO
from agent.web.pages import filters

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json", charset="utf-8")


def _int_param(request: web.Request, name: str, default: int, most: int = 1000) -> int:
    """A query parameter as an integer from 1 to `most`; `default` when absent or not a number."""
    try:
        return min(most, max(1, int(request.query.get(name, str(default)))))
    except ValueError:
        return default


async def health(request: web.Request) -> web.Response:
    """GET /healthz: 200 healthy, 503 not (with the reasons), 500 when the snapshot fails."""
    deps = request.app[DEPS]
    try:
        snap = deps.source.snapshot_for_http()
        ok, reasons = healthz(snap, deps.now(), deps.tz)
        return _json({"status": "ok" if ok else "unhealthy", "reasons": reasons,
                      "shops": {s.name: s.state for s in snap.shops}}, 200 if ok else 503)
    except Exception as exc:  # the endpoint keeps answering whatever state the service is in
        logger.warning("health endpoint: snapshot failed: {}", type(exc).__name__)
        return _json({"status": "error", "reasons": [f"snapshot unavailable: {type(exc).__name__} (无法获取服务状态)"]},
                     500)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    text = render_metrics(deps.source.snapshot_for_http(), deps.now(), deps.tz)
    return web.Response(text=text, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def status(request: web.Request) -> web.Response:
    """GET /api/v1/status: 200 when every enabled shop is read and every channel delivers; 503 with the reasons."""
    deps = request.app[DEPS]
    snap = deps.source.snapshot_for_http()
    ok, reasons = healthz(snap, deps.now(), deps.tz)
    for s in snap.shops:
        if s.enabled and s.state != "ok":
            reasons.append(f"shop {s.name}: {s.state} (店铺未能读取)")
    for name, c in snap.channels.items():
        if c.get("state") != "ok":
            reasons.append(f"channel {name}: {c.get('state')}: {c.get('last_error') or ''} (通知渠道异常)".strip())
    reasons = list(dict.fromkeys(reasons))
    body = {"status": "ok" if not reasons else "degraded", "reasons": reasons,
            "shops": [{"name": s.name, "state": s.state, "last_ok": s.last_ok} for s in snap.shops],
            "channels": {n: {"state": c.get("state"), "waiting": c.get("waiting", 0)}
                         for n, c in snap.channels.items()},
            "items": {"open": deps.team.open_count()}}
    return _json(body, 200 if not reasons else 503)


async def items(request: web.Request) -> web.Response:
    """GET /api/v1/items: the 待办 list as JSON (same filters and paging as the page; page_size up to 1000)."""
    deps = request.app[DEPS]
    size = _int_param(request, "page_size", 100)
    data = deps.items(filters(request), str(request[WHO].member or ""), size)
    return _json(data)


async def item(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        return _json(deps.view().item(request.match_info["key"], deps.now()))
    except NotFound:
        return _json({"error": "no such item (没有这个售后单)"}, 404)


async def action(request: web.Request) -> web.Response:
    """POST /api/v1/items/{key}/claim|release|note|done with JSON {version?, member?, text?}: 200 with the item,
    404, 409 with the item as it is now, 400 for a bad note or member."""
    deps = request.app[DEPS]
    key, what = request.match_info["key"], request.match_info["action"]
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return _json({"error": "the body must be JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"error": "the body must be a JSON object"}, 400)
    try:
        version = body.get("version")
        deps.act(key, what, str(request[WHO].member), version=int(version) if version is not None else None,
                 member=body.get("member") or None, text=str(body.get("text") or ""))
    except NotFound:
        return _json({"error": "no such item (没有这个售后单)"}, 404)
    except Conflict:
        return _json({"error": "the item changed (该售后单刚被更新)", "item": deps.view().item(key, deps.now())}, 409)
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    return _json(deps.view().item(key, deps.now()))


async def audit(request: web.Request) -> web.Response:
    """GET /api/v1/audit?limit=: the members' actions, newest first (who, when, what, on which item)."""
    return _json({"actions": request.app[DEPS].team.audit(_int_param(request, "limit", 200))})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health, name="healthz")
    r.add_get("/metrics", metrics, name="metrics")
    r.add_get("/api/v1/status", status, name="api_status")
    r.add_get("/api/v1/items", items, name="api_items")
    r.add_get("/api/v1/items/{key}", item, name="api_item")
    r.add_get("/api/v1/audit", audit, name="api_audit")
    r.add_post("/api/v1/items/{key}/{action:claim|release|done|note}", action, name="api_action")
