"""The aiohttp application: typed state, who-is-asking and CSRF middlewares, routes, and the runner the service
owns (started inside its event loop, stopped before the store closes)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import jinja2
from aiohttp import web
from loguru import logger

from agent.config import Config
from agent.config.schema import split_listen
from agent.core.claims import LOCAL_MEMBER
from agent.core.rules import ItemState
from agent.outbox.store import Store
from agent.web import api, pages
from agent.web.auth import COOKIE, LOGIN_COOKIE, Signer, load_key
from agent.web.keys import DEPS, WHO, Deps, Source, Who

STATIC = Path(__file__).parent / "static"
PUBLIC = ("/login", "/healthz", "/metrics", "/static/", "/qr/")  # /qr/TOKEN.png: the token is the key


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    """request[WHO]: a signed session, an open loopback page, or (GET /api only) a
    read-only token. Anything else: the login page, or 401 for the API."""
    deps = request.app[DEPS]
    now = time.time()
    session = deps.signer.read(request.cookies.get(COOKIE), now)
    member, nonce, via = None, "", ""
    if session is not None and (deps.config.team.member(session.member) or session.member == LOCAL_MEMBER):
        member, nonce, via = session.member, session.nonce, "session"
    elif deps.config.web.open_on_loopback and deps.config.web_on_loopback() and _loopback(request.remote):
        member, nonce, via = deps.open_member(), "loopback", "loopback"
    elif request.path.startswith("/api/") and request.headers.get("Authorization", "").startswith("Bearer "):
        name = deps.team.token_name(request.headers["Authorization"][7:].strip(), now)
        if name is not None:
            if request.method != "GET":
                raise web.HTTPForbidden(text='{"error": "read-only token"}', content_type="application/json")
            member, via = f"token:{name}", "token"
    request[WHO] = Who(member, nonce, via)
    if member is None and not request.path.startswith(PUBLIC):
        if request.path.startswith(("/api/", "/events", "/fragment/")):
            raise web.HTTPUnauthorized(text='{"error": "login required (请先登录)"}', content_type="application/json")
        raise web.HTTPSeeOther(f"/login?next={request.path_qs}" if request.method == "GET" else "/login")
    return await handler(request)


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every POST carries the page's CSRF token (header X-CSRF-Token or form field _csrf); the login form its own."""
    if request.method == "POST":
        deps = request.app[DEPS]
        token = request.headers.get("X-CSRF-Token")
        if token is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            token = str((await request.post()).get("_csrf") or "")
        nonce = request[WHO].nonce or (request.cookies.get(LOGIN_COOKIE, "") if request.path == "/login" else "")
        if not nonce or not deps.signer.csrf_ok(nonce, token):
            logger.warning("refused a POST to {} without a valid CSRF token", request.path)
            raise web.HTTPForbidden(text="CSRF token missing or wrong (页面已过期，请刷新后重试)")
    return await handler(request)


@web.middleware
async def no_store(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if not request.path.startswith("/static/"):
        resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


async def qr_image(request: web.Request) -> web.Response:
    """A login QR image linked from a channel that cannot carry images (DingTalk, Feishu): anyone holding the
    short-lived unguessable link may see it, nothing else is reachable with it."""
    deps = request.app[DEPS]
    png = deps.store.qr_png(request.match_info["token"], deps.now())
    if png is None:
        raise web.HTTPNotFound(text="二维码链接已过期或无效：请运行 pdd-agent login --qr，或在团队页面「店铺」中查看")
    return web.Response(body=png, content_type="image/png")


def build_app(config: Config, store: Store, source: Source, mms_url: Callable[[ItemState], str]) -> web.Application:
    """The application (wiring only: the caller runs it with `WebServer`)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("agent.web", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    signer = Signer(load_key(config.agent.data_dir), config.web.session_hours * 3600)
    deps = Deps(config, store, source, mms_url, signer, env)
    app = web.Application(middlewares=[no_store, identity, csrf], client_max_size=64 * 1024)
    app[DEPS] = deps
    pages.setup_routes(app)
    api.setup_routes(app)
    app.router.add_get("/events", deps.hub.stream, name="events")
    app.router.add_get("/qr/{token}.png", qr_image, name="qr")
    app.router.add_static("/static/", STATIC, name="static")
    source.listeners.append(deps.hub.publish)

    async def close_streams(_: web.Application) -> None:
        deps.hub.close()
        if deps.hub.publish in source.listeners:
            source.listeners.remove(deps.hub.publish)
    app.on_shutdown.append(close_streams)
    return app


def build_health_app(page: web.Application) -> web.Application:
    """/healthz and /metrics alone, as the deprecated [agent] health_port served them (no login, nothing else)."""
    app = web.Application()
    app[DEPS] = page[DEPS]
    app.router.add_get("/healthz", api.health)
    app.router.add_get("/metrics", api.metrics)
    return app


class WebServer:
    """Runs the application on the config's listen addresses inside the running loop (and the deprecated health
    port's own small application, when one is given)."""

    def __init__(self, app: web.Application, addresses: tuple[str, ...], health: tuple[str, ...] = ()) -> None:
        self.app = app
        self.runners = [(web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5, access_log=None),
                         addresses)]
        if health:
            self.runners.append((web.AppRunner(build_health_app(app), access_log=None), health))
        self.urls: list[str] = []  # the page's
        self.health_urls: list[str] = []

    async def start(self) -> None:
        """Raises OSError when an address cannot be bound (the caller says which and exits)."""
        for n, (runner, addresses) in enumerate(self.runners):
            await runner.setup()
            for address in addresses:
                host, port = split_listen(address)
                await web.TCPSite(runner, host, port, reuse_address=True).start()
            for addr in runner.addresses:
                host, port = str(addr[0]), int(addr[1])
                (self.urls if n == 0 else self.health_urls).append(
                    f"http://{'[' + host + ']' if ':' in host else host}:{port}")

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: team members, public_url and the login rules apply to the next requests (the listen
        address stays: only a restart moves it)."""
        self.app[DEPS].config = config

    async def stop(self) -> None:
        for runner, _ in self.runners:
            await runner.cleanup()
