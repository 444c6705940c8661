"""Signers: one long-lived mms page per network identity (proxy + user agent) that mints Anti-Content with the site's
own risk SDK, found the way the page's request library finds it (rules in selectors/site.toml [signer]); a fresh
value per request for the plain-HTTP path, bound to the shop's fingerprint and account cookies. A crashed signer or
a new site build is handled by opening the page again; how many signers and tokens a second are bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger
from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from agent.browser.neterrors import describe
from agent.browser.pool import BrowserPool, Network, close_quietly
from agent.browser.reader import Answer, Requester

# Finds the SDK in the webpack chunks (a module whose factory source holds the marker), keeps its class on window.
_DISCOVER = """([chunkGlobal, marker]) => {
  const chunks = self[chunkGlobal] || [];
  for (const chunk of chunks) {
    const modules = chunk[1] || {};
    for (const id of Object.keys(modules)) {
      const factory = modules[id];
      if (typeof factory === "function" && String(factory).includes(marker)) {
        const module = { exports: {} };
        factory(module, module.exports, () => ({}));
        window.__pddRiskSdk = module.exports.default || module.exports;
        return id;
      }
    }
  }
  return null;
}"""

# Server time as the page seeds it: the _stm answer, else the Date header of the page itself.
_SERVER_TIME = """async ([url, field]) => {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 2000);
  try {
    const r = await fetch(url, { credentials: "include", signal: ctl.signal });
    const d = await r.json();
    if (d && d[field]) { return Number(d[field]); }
  } catch (e) { /* the Date header below */ } finally { clearTimeout(timer); }
  const r = await fetch(location.href, { method: "HEAD", credentials: "include" });
  return Date.parse(r.headers.get("date")) + 500;
}"""

# One token: the shop's fingerprint and account cookies set on the signer page first (the SDK reads them).
_MINT = """([method, serverTime, cookies]) => {
  for (const [name, value] of cookies) { document.cookie = name + "=" + encodeURIComponent(value) + "; path=/"; }
  const Sdk = window.__pddRiskSdk;
  return new Sdk({ serverTime: serverTime })[method]();
}"""


DEFAULT_TOKENS_PER_SECOND = 20.0


class SignerError(RuntimeError):
    """No token: the page did not load, the SDK was not found (a new build the rules miss), or minting failed."""


async def find_sdk(page: Page, rules: Mapping[str, Any]) -> str:
    """The risk SDK's module id on a loaded mms page (kept on window for minting); SignerError when no module
    matches the rules (a new build selectors/site.toml [signer] does not describe)."""
    module = await page.evaluate(_DISCOVER, [rules["chunk_global"], rules["module_marker"]])
    if module is None:
        raise SignerError(f"no module with {rules['module_marker']!r} in {rules['chunk_global']} on {page.url}: the "
                          "site's build changed in a way selectors/site.toml [signer] does not match")
    return str(module)


@dataclass(frozen=True, slots=True)
class Identity:
    """Shops kept apart on the network never share a signer: their proxy and user agent."""

    proxy: str
    user_agent: str

    @classmethod
    def of(cls, network: Network) -> Identity:
        return cls(network.proxy_url or "", network.user_agent)


class Signer:
    """One page on one identity; `mint()` a token for a shop's cookies; reopened when it breaks."""

    def __init__(self, pool: BrowserPool | None, network: Network, base_url: str, sel: Mapping[str, Any],
                 per_second: float) -> None:
        self.pool, self.network, self.base_url, self.rules = pool, network, base_url.rstrip("/"), sel["site"]["signer"]
        self.per_second = per_second
        self.context: BrowserContext | None = None
        self.page: Page | None = None
        self.module: str | None = None  # the SDK's module id in the current build
        self._base: tuple[float, float] | None = None  # (server ms, local monotonic s) when last synced
        self._next = 0.0  # the token bucket: when the next token may be minted
        self._lock = asyncio.Lock()
        self.minted = 0
        self.restarts = 0

    async def _open(self) -> Page:
        if self.page is not None and not self.page.is_closed():
            return self.page
        await self.close()
        assert self.pool is not None
        self.context = await self.pool.new_context(network=self.network)
        page = await self.pool.new_page(self.context)
        url = self.base_url + self.rules["path"]
        try:
            await page.goto(url, wait_until="load")
            self.module = await find_sdk(page, self.rules)
        except PlaywrightError as exc:
            await self.close()
            raise SignerError(f"signer page {describe(exc, url)}") from exc
        except SignerError:
            await self.close()
            raise
        self.page, self._base = page, None
        logger.info("signer for {} ready: risk SDK module {}", self.network.proxy_url or "direct", self.module)
        return page

    async def _server_ms(self, page: Page) -> float:
        now = time.monotonic()
        if self._base is None or now - self._base[1] > 60:
            url = self.rules["server_time_url"]
            url = self.base_url + url if url.startswith("/") else url
            self._base = (float(await page.evaluate(_SERVER_TIME, [url, self.rules["server_time_field"]])), now)
        return self._base[0] + (now - self._base[1]) * 1000

    async def mint(self, cookies: Mapping[str, str]) -> str:
        """A fresh token carrying `cookies` (the shop's fingerprint and account values); SignerError if none."""
        async with self._lock:  # one page, one token at a time, at most per_second of them
            wait = self._next - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next = max(self._next, time.monotonic()) + 1 / self.per_second
            for attempt in (1, 2):  # a crashed page or a new build: open it again once
                try:
                    page = await self._open()
                    token = await page.evaluate(_MINT, [self.rules["mint_method"], await self._server_ms(page),
                                                        [[k, v] for k, v in cookies.items() if v]])
                    self.minted += 1
                    return str(token)
                except (PlaywrightError, TypeError) as exc:
                    await self.close()
                    self.restarts += 1
                    if attempt == 2:
                        raise SignerError(f"minting failed: {describe(exc)}") from exc
            raise SignerError("unreachable")

    async def renew(self) -> None:
        """A signed call still met 54001: the site may have shipped a new build; the next token comes from a page
        opened again (and the SDK found again)."""
        self.restarts += 1
        await self.close()

    async def close(self) -> None:
        page, context, self.page, self.context = self.page, self.context, None, None
        if page is not None:
            await close_quietly(page)
        if context is not None:
            await close_quietly(context)


class PageSigner(Signer):
    """A page-mode check's own mms page as its signer, for the requests that follow the page read (the watch
    cards): the page holds the shop's cookies already, and the check owns (and closes) it."""

    def __init__(self, page: Page, base_url: str, sel: Mapping[str, Any], per_second: float) -> None:
        super().__init__(None, Network(), base_url, sel, per_second)
        self.own = page

    async def _open(self) -> Page:
        if self.page is None:
            if self.own.is_closed():
                raise SignerError("the check's page is closed")
            try:
                self.module = await find_sdk(self.own, self.rules)
            except PlaywrightError as exc:
                raise SignerError(f"the check's page: {describe(exc)}") from exc
            self.page, self._base = self.own, None
        return self.page

    async def mint(self, cookies: Mapping[str, str]) -> str:
        return await super().mint({})  # the page's own cookies are the shop's: none set over them

    async def close(self) -> None:
        self.page = None  # found again on the next token; the page itself is the check's


class Signers:
    """The signers of one host: one per network identity, at most `limit` of them (the least recently used one is
    closed for a new identity), each bounded to `per_second` tokens."""

    def __init__(self, pool: BrowserPool, sel: Mapping[str, Any], *, limit: int = 2,
                 per_second: float = DEFAULT_TOKENS_PER_SECOND) -> None:
        self.pool, self.sel, self.limit, self.per_second = pool, sel, limit, per_second
        self._by_identity: dict[Identity, Signer] = {}

    async def for_network(self, network: Network, base_url: str) -> Signer:
        key = Identity.of(network)
        signer = self._by_identity.pop(key, None)
        if signer is None:
            signer = Signer(self.pool, network, base_url, self.sel, self.per_second)
            while len(self._by_identity) >= self.limit:
                oldest = self._by_identity.pop(next(iter(self._by_identity)))
                await oldest.close()
        self._by_identity[key] = signer  # most recently used last
        return signer

    @property
    def open(self) -> int:
        return sum(1 for s in self._by_identity.values() if s.page is not None)

    @property
    def minted(self) -> int:
        """Tokens minted by the signers open now (a closed signer's count leaves with it)."""
        return sum(s.minted for s in self._by_identity.values())

    async def close(self) -> None:
        for signer in self._by_identity.values():
            await signer.close()
        self._by_identity.clear()


class SignedRequests:
    """A shop's requests (a `reader.Requester`: plain HTTP, or its browser context's), each with a fresh token from
    a signer, minted with the shop's own fingerprint and account cookies."""

    def __init__(self, http: Requester, signer: Signer, unsigned_if_no_token: bool = False) -> None:
        self.http, self.signer, self.rules = http, signer, signer.rules
        self.gates_budget = http.gates_budget
        self.unsigned_if_no_token = unsigned_if_no_token  # a page-mode check's follow-ups: as the page would send

    async def cookie(self, name: str, url: str) -> str:
        return await self.http.cookie(name, url)

    async def send(self, method: str, url: str, body: Mapping[str, Any] | None, headers: Mapping[str, str],
                   timeout: float) -> Answer:
        cookies = {n: await self.http.cookie(n, url) for n in (self.rules["fingerprint_cookie"],
                                                                 self.rules["account_cookie"])}
        try:
            token = await self.signer.mint(cookies)
        except SignerError as exc:
            if not self.unsigned_if_no_token:
                raise
            logger.info("{} {}: sent without Anti-Content: {}", method, url, exc)
            return await self.http.send(method, url, body, headers, timeout)
        return await self.http.send(method, url, body, {**headers, self.rules["header"]: token}, timeout)


class SigningMemory:
    """Hosts whose cookie-only calls met 54001: their calls go signed until `seconds` have passed."""

    def __init__(self, seconds: float, clock: Any = time.time) -> None:
        self.seconds, self.clock = seconds, clock
        self._until: dict[str, float] = {}

    def remember(self, host: str) -> None:
        if self.seconds:
            self._until[host] = self.clock() + self.seconds

    def signed(self, host: str) -> bool:
        until = self._until.get(host)
        if until is not None and until <= self.clock():
            del self._until[host]
            return False
        return until is not None

    def hosts(self) -> dict[str, float]:
        """Host → until when (epoch seconds), for status."""
        return {h: u for h, u in self._until.items() if u > self.clock()}
