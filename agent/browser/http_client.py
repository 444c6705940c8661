"""Request-only work without the browser: a shop's saved cookies over plain HTTP, through its own proxy.

A warm shop's routine check, keep-alive and 退款成功 read are JSON requests with the session's cookies; the
browser adds nothing to them but cost (its driver holds every answer). `ShopHttp` sends them with httpx, from
the same session file the browser uses: the cookies as saved, the shop's proxy, user agent and locale, the
Set-Cookie answers written back (0600), so the next browser context opens the same session. Clients are shared
per proxy (`HttpClients`) and never keep cookies of their own: one shop's cookies never ride another's request.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from agent.browser.budget import RequestBudget
from agent.browser.reader import Answer
from agent.browser.saved import FileSession, SavedSession
from agent.core.cookies import apply_set_cookies, cookie_header

DEFAULT_LOCALE = "zh-CN"


class _NoJar(http.cookiejar.CookieJar):
    """A client-wide jar that keeps nothing: each request carries its own shop's Cookie header."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


def proxy_url(parts: tuple[str, str, str] | None) -> str | None:
    """httpx's proxy URL from (server, username, password) (credentials quoted); None for no proxy."""
    if parts is None:
        return None
    server, username, password = parts
    if not username:
        return server
    scheme, _, rest = server.partition("://")
    return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{rest}"


def accept_language(locale: str) -> str:
    """The Accept-Language a browser set to `locale` sends: "zh-CN,zh;q=0.9"."""
    lang = locale or DEFAULT_LOCALE
    base = lang.split("-")[0]
    return lang if base == lang else f"{lang},{base};q=0.9"


GATE = "pdd_agent_gate"  # request extension: the budget whose rolling second the transport admits it to


class _GatedTransport(httpx.AsyncBaseTransport):
    """Admits a request to its budget's rolling second at the last moment before the connection pool sends it,
    and counts it there until it is answered, so a busy event loop between the turn and the wire cannot bunch
    requests up."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        budget: RequestBudget | None = request.extensions.pop(GATE, None)
        if budget is None:
            return await self.inner.handle_async_request(request)
        await budget.admit()  # counted as on its way until answered: the pool's waits cannot bunch it up
        try:
            return await self.inner.handle_async_request(request)
        finally:
            budget.sent()

    async def aclose(self) -> None:
        await self.inner.aclose()


class HttpClients:
    """The process's HTTP clients: one per proxy (shops without a proxy share one), keep-alive connections."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._clients: dict[str | None, httpx.AsyncClient] = {}
        self.transport = transport  # tests: an in-process transport instead of the network

    def client(self, proxy: str | None) -> httpx.AsyncClient:
        got = self._clients.get(proxy)
        if got is None:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
            inner = self.transport or httpx.AsyncHTTPTransport(proxy=proxy, limits=limits, trust_env=False)
            got = httpx.AsyncClient(transport=_GatedTransport(inner), cookies=httpx.Cookies(_NoJar()),
                                    follow_redirects=False, trust_env=False)
            self._clients[proxy] = got
        return got

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()


class ShopHttp:
    """One shop's requests over plain HTTP (a `reader.Requester`): its cookies from the session file, its proxy,
    user agent and locale; `save()` writes back what the backend set."""

    gates_budget = True

    def __init__(self, clients: HttpClients, saved: SavedSession | Path, *, user_agent: str, locale: str = "",
                 proxy: str | None = None, secrets: tuple[str, ...] = (), budget: RequestBudget | None = None) -> None:
        self.client = clients.client(proxy)
        self.budget = budget  # its rolling-second gate is taken in the transport
        self.saved: SavedSession = FileSession(saved) if isinstance(saved, Path) else saved
        self.user_agent = user_agent
        self.locale = locale
        self.secrets = tuple(s for s in secrets if s)  # never in an error message (the proxy's password)
        self.state: dict[str, Any] = {"cookies": [], "origins": []}
        self.changed = False
        self.sent = 0
        data = self.saved.load()
        if data is not None and isinstance(data.get("cookies"), list):
            self.state = data

    @property
    def has_session(self) -> bool:
        return bool(self.state["cookies"])

    async def cookie(self, name: str, url: str) -> str:
        sent = cookie_header(self.state["cookies"], url, time.time())
        return next((v for k, _, v in (p.partition("=") for p in sent.split("; ")) if k == name), "")

    def _reason(self, exc: Exception) -> str:
        text = (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    async def send(self, method: str, url: str, body: Mapping[str, Any] | None, headers: Mapping[str, str],
                   timeout: float) -> Answer:
        now = time.time()
        out = {"User-Agent": self.user_agent, "Accept": "*/*", "Accept-Language": accept_language(self.locale),
               **headers}
        cookies = cookie_header(self.state["cookies"], url, now)
        if cookies:
            out["Cookie"] = cookies
        content = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        self.sent += 1
        try:
            resp = await self.client.request(method, url, content=content, headers=out, timeout=timeout,
                                             extensions={GATE: self.budget} if self.budget else None)
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"no answer in {timeout:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise ConnectionError(self._reason(exc)) from exc
        set_cookies = resp.headers.get_list("set-cookie")
        if set_cookies:
            self.state["cookies"], changed = apply_set_cookies(self.state["cookies"], set_cookies, url, time.time())
            self.changed = self.changed or changed
        return Answer(resp.status_code, {k.lower(): v for k, v in resp.headers.items() if k.lower() != "set-cookie"},
                      resp.content)

    async def save(self) -> None:
        """Save the session back when the backend changed a cookie (a file: atomically, mode 0600)."""
        if not self.changed:
            return
        await self.saved.save(self.state)
        self.changed = False
