"""The HTML pages (Chinese): 待办 and its live fragment, an item's page with its actions, 店铺 (with a waiting QR),
渠道, 历史, login and logout. A GET never changes anything; every change is a POST through `act`."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from loguru import logger

from agent.outbox.team_store import Conflict, NotFound
from agent.web.auth import COOKIE, LOGIN_COOKIE, check_password
from agent.web.keys import DEPS, WHO, Who
from agent.web.model import KINDS, Filters, channels_view, shops_view


def render(request: web.Request, name: str, status: int = 200, **ctx: Any) -> web.Response:
    deps = request.app[DEPS]
    who = request.get(WHO) or Who()
    nonce = who.nonce
    html = deps.env.get_template(name).render(
        me=who.member, csrf=deps.signer.csrf(nonce) if nonce else "", path=request.path,
        via=who.via, **ctx)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def filters(request: web.Request) -> Filters:
    q = request.query
    try:
        page = int(q.get("page", "1"))
    except ValueError:
        page = 1
    kind = q.get("kind", "")
    return Filters(shop=q.get("shop", ""), kind=kind if kind in KINDS else "", claimed=q.get("claimed", ""),
                   mine=q.get("mine") == "1", page=page)


def _todo_ctx(request: web.Request) -> dict[str, Any]:
    deps = request.app[DEPS]
    f = filters(request)
    data = deps.items(f, request[WHO].member or "")
    snap = deps.source.snapshot_for_http()
    work = [] if f.kind not in ("", "work_orders") else [
        {"shop": s.shop, "count": int(s.counters.get("tickets") or 0)}
        for s in map(deps.store.shop_health, (x.name for x in snap.shops))
        if int(s.counters.get("tickets") or 0) > 0 and (not f.shop or s.shop == f.shop)]
    return {"data": data, "f": f, "kinds": KINDS, "shops": [s.name for s in snap.shops],
            "members": [m.name for m in deps.config.team.members], "work": work, "query": request.query_string}


async def todo(request: web.Request) -> web.Response:
    return render(request, "todo.html", **_todo_ctx(request))


async def fragment(request: web.Request) -> web.Response:
    return render(request, "_rows.html", **_todo_ctx(request))


async def item(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        data = deps.view().item(request.match_info["key"], deps.now())
    except NotFound:
        raise web.HTTPNotFound(text="没有这个售后单 / no such item") from None
    return render(request, "item.html", it=data, members=[m.name for m in deps.config.team.members],
                  message=request.query.get("msg", ""))


async def item_action(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    key, action = request.match_info["key"], request.match_info["action"]
    form = await request.post()
    nxt = str(form.get("next") or "")
    target = _next(nxt) if nxt else f"/items/{key}"
    try:
        version = int(str(form.get("version"))) if form.get("version") not in (None, "") else None
        deps.act(key, action, str(request[WHO].member), version=version, member=str(form.get("member") or "") or None,
                 text=str(form.get("text") or ""))
    except NotFound:
        raise web.HTTPNotFound(text="没有这个售后单 / no such item") from None
    except Conflict as exc:
        msg = f"该售后单刚被更新（{exc.current.member or '无人认领'}），请看最新状态后再操作"
        raise web.HTTPSeeOther(f"/items/{key}?msg={quote(msg)}") from None
    except ValueError as exc:
        raise web.HTTPSeeOther(f"/items/{key}?msg={quote(str(exc))}") from None
    raise web.HTTPSeeOther(target)


async def shops(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    counts: dict[tuple[str, str], int] = {}
    for shop, kind, *_ in deps.team.open_index():
        counts[(shop, kind)] = counts.get((shop, kind), 0) + 1
    rows = shops_view(deps.source.snapshot_for_http(), counts, deps.source.qr_images, deps.tz)
    return render(request, "shops.html", shops=rows)


async def shop_qr(request: web.Request) -> web.Response:
    png = request.app[DEPS].source.qr_images.get(request.match_info["name"])
    if png is None:
        raise web.HTTPNotFound(text="没有等待扫码的二维码 / no QR waiting")
    return web.Response(body=png, content_type="image/png")


async def channels(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return render(request, "channels.html", channels=channels_view(deps.source.snapshot_for_http(), deps.tz))


async def history(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return render(request, "history.html", h=deps.view().history(deps.now()))


def _next(value: str) -> str:
    """A path of ours to go to after a form (never another site: no "//host", no backslash tricks)."""
    parts = urlsplit(value)
    ok = value.startswith("/") and not value.startswith("//") and "\\" not in value and not parts.netloc
    return value if ok else "/"


async def login_form(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    nonce = request.cookies.get(LOGIN_COOKIE) or deps.signer.issue("", time.time())[1].nonce
    resp = render(request, "login.html", login_csrf=deps.signer.csrf(nonce), nxt=_next(request.query.get("next", "/")),
                  error="", members=bool(deps.config.team.members))
    resp.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Lax", max_age=3600, secure=request.secure)
    return resp


async def login(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    form = await request.post()
    name, password = str(form.get("name") or "").strip(), str(form.get("password") or "")
    nxt = _next(str(form.get("next") or "/"))
    keys = [f"ip:{request.remote}", f"name:{name}"]
    nonce = request.cookies.get(LOGIN_COOKIE, "")

    def again(error: str, status: int) -> web.Response:
        return render(request, "login.html", status=status, login_csrf=deps.signer.csrf(nonce), nxt=nxt, error=error,
                      members=bool(deps.config.team.members))

    wait = deps.throttle.wait(keys)
    if wait > 0:
        resp = again(f"登录失败次数过多，请 {int(wait) + 1} 秒后再试", 429)
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    member = deps.config.team.member(name)
    # the hash is computed even for an unknown name: the answer takes as long either way
    ok = check_password(password, member.password_hash if member and member.password_hash else
                        "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    if not (ok and member):
        deps.throttle.failed(keys)
        logger.warning("team page: a failed login from {}", request.remote)
        await asyncio.sleep(0.3)
        return again("用户名或密码错误", 401)
    deps.throttle.succeeded(keys)
    cookie, _ = deps.signer.issue(member.name, time.time())
    logger.info("team page: {} logged in", member.name)
    resp = web.HTTPSeeOther(nxt)
    resp.set_cookie(COOKIE, cookie, httponly=True, samesite="Lax", secure=request.secure,
                    max_age=int(deps.config.web.session_hours * 3600))
    resp.del_cookie(LOGIN_COOKIE)
    raise resp


async def logout(request: web.Request) -> web.Response:
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(COOKIE)
    raise resp


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", todo, name="todo")
    r.add_get("/fragment/items", fragment, name="fragment")
    r.add_get("/items/{key}", item, name="item")
    r.add_post("/items/{key}/{action:claim|release|done|note}", item_action, name="item_action")
    r.add_get("/shops", shops, name="shops")
    r.add_get("/shops/{name}/qr.png", shop_qr, name="shop_qr")
    r.add_get("/channels", channels, name="channels")
    r.add_get("/history", history, name="history")
    r.add_get("/login", login_form, name="login_form")
    r.add_post("/login", login, name="login")
    r.add_post("/logout", logout, name="logout")
