"""One Chromium per agent process: launch, relaunch after a crash, contexts per shop.

Every shop gets its own short-lived `BrowserContext` (cookies and storage of that shop only), built
from the shop's saved storage state and closed after the check, so memory does not grow with the
number of shops. The browser itself stays up for the life of the process; when it has crashed or
was killed, the next `new_context` launches a fresh one (once: a second failure is `browser_error`).

Images, fonts and media are blocked inside Chromium (CDP `Network.setBlockedURLs`, no round trip
through Python per request) on every page of a context built with `block_assets`; pages that must
show an image (the login QR) are opened with `new_page(context, block_assets=False)`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from loguru import logger
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from agent.browser.chromium import launch_options
from agent.browser.http_client import HttpClients, proxy_url
from agent.config import BrowserConfig, ShopConfig
from agent.core.models import CheckFailure, ShopState

LOCALE = "zh-CN"
TIMEZONE = "Asia/Shanghai"
VIEWPORT = {"width": 1366, "height": 900}

# Generic asset types by file extension: not site facts. Patterns match the whole URL ("*" = anything).
_ASSET_EXTENSIONS = (
    "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "bmp",
    "woff", "woff2", "ttf", "otf", "eot",
    "mp4", "webm", "ogg", "mp3", "m4a", "wav",
)
BLOCKED_URL_PATTERNS: tuple[str, ...] = tuple(
    p for ext in _ASSET_EXTENSIONS for p in (f"*.{ext}", f"*.{ext}?*")
)


@dataclass(frozen=True, slots=True)
class Network:
    """A shop's own network identity (店群防关联): its proxy (Playwright's dict), user agent and locale."""

    proxy: dict[str, str] | None = None
    user_agent: str = ""
    locale: str = ""
    proxy_url: str | None = None  # the same proxy for plain HTTP requests (credentials in the URL)

    @classmethod
    def of(cls, shop: ShopConfig) -> Network:
        parts = shop.proxy_parts()
        proxy = None
        if parts is not None:
            server, username, password = parts
            # "<-loopback>": a configured proxy carries everything, a backend on this host included
            proxy = {"server": server, "bypass": "<-loopback>"}
            if username:
                proxy.update(username=username, password=password)
        return cls(proxy=proxy, user_agent=shop.user_agent, locale=shop.locale, proxy_url=proxy_url(parts))


async def close_quietly(target: Page | BrowserContext, timeout: float = 5.0) -> None:
    """Close a page or context without ever hanging: Playwright's close() can wait forever on a page that is
    navigating away (seen after a login redirect); past `timeout` it is left to the browser."""
    try:
        await asyncio.wait_for(target.close(), timeout)
    except (PlaywrightError, TimeoutError) as exc:
        logger.debug("close of {} gave up: {}", type(target).__name__, exc)


@contextmanager
def _driver_in_own_session() -> Iterator[None]:
    """Start Playwright's driver (and so Chromium) outside our process group.

    A Ctrl-C on a terminal signals the whole foreground group: the driver would die at once and take the
    browser from under the check in flight, while the agent itself wants to let that check finish. The
    driver still exits with us: it stops when its stdin pipe closes.
    """
    if os.name != "posix":
        yield
        return
    original = asyncio.create_subprocess_exec

    async def spawn(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        kwargs.setdefault("start_new_session", True)
        return await original(*args, **kwargs)

    asyncio.create_subprocess_exec = spawn  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.create_subprocess_exec = original  # type: ignore[assignment]


class BrowserPool:
    """The agent's one Chromium. `async with BrowserPool(...) as pool: ctx = await pool.new_context(path)`."""

    def __init__(
        self,
        executable_path: str = "",
        headless: bool = True,
        timeout_seconds: float = 30,
        *,
        block_assets: bool | None = None,
    ) -> None:
        self.executable_path = executable_path
        self.headless = headless
        self.timeout_seconds = timeout_seconds
        # Headed windows are for humans (captcha, QR): show them everything unless told otherwise.
        self.block_assets = headless if block_assets is None else block_assets
        self.launches = 0  # how many times Chromium was launched (relaunches = launches - 1)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._user_agent: str | None = None  # the contexts' user agent unless the shop has its own
        self._browser_ua = ""  # the browser's own, as an ordinary Chrome says it
        self._lock = asyncio.Lock()
        self._page_setup: dict[Page, asyncio.Task[CDPSession | None]] = {}
        self._blocking: set[BrowserContext] = set()
        self.http = HttpClients()  # request-only work without the browser (http_client.py), closed with it

    @classmethod
    def from_config(cls, cfg: BrowserConfig, *, headless: bool | None = None) -> BrowserPool:
        """The pool [browser] describes; `headless=False` for a person at the window (login --headed)."""
        return cls(executable_path=cfg.executable_path, headless=cfg.headless if headless is None else headless,
                   timeout_seconds=cfg.timeout_seconds)

    @property
    def browser(self) -> Browser | None:
        """The current Browser object (None before start); tests use it to simulate a crash."""
        return self._browser

    async def __aenter__(self) -> BrowserPool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start Playwright and launch Chromium (raises CheckFailure(BROWSER_ERROR) when it cannot)."""
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                await self._launch()

    async def stop(self) -> None:
        """Close the browser and stop Playwright; safe to call twice."""
        async with self._lock:
            for task in list(self._page_setup.values()):
                task.cancel()
            self._page_setup.clear()
            self._blocking.clear()
            await self._close_browser()
            await self._stop_driver()
            await self.http.aclose()

    async def _close_browser(self) -> None:
        if self._browser is not None:
            with suppress(PlaywrightError):  # already gone (crashed or killed)
                await self._browser.close()
            self._browser = None

    async def _stop_driver(self) -> None:
        if self._playwright is not None:
            with suppress(PlaywrightError):
                await self._playwright.stop()
            self._playwright = None

    async def _launch(self) -> None:
        """Launch Chromium (restarting Playwright's driver once if it died). Caller holds the lock."""
        try:
            options = launch_options(self.executable_path or None, self.headless)
        except FileNotFoundError as exc:
            raise CheckFailure(ShopState.BROWSER_ERROR, str(exc)) from exc
        await self._close_browser()
        last: Exception | None = None
        for _ in range(2):
            try:
                if self._playwright is None:
                    with _driver_in_own_session():
                        self._playwright = await async_playwright().start()
                browser = await self._playwright.chromium.launch(**options)  # type: ignore[arg-type]
                break
            except PlaywrightError as exc:  # the driver may be gone too: restart it once
                last = exc
                await self._stop_driver()
        else:
            raise CheckFailure(ShopState.BROWSER_ERROR, f"Chromium could not be launched: {last}") from last
        self._browser = browser
        self.launches += 1
        if self.launches > 1:
            logger.warning("Chromium relaunched (launch #{})", self.launches)
        self._user_agent = None
        try:  # headless Chromium announces itself as "HeadlessChrome"; present the ordinary browser instead
            cdp = await browser.new_browser_cdp_session()
            version = await cdp.send("Browser.getVersion")
            await cdp.detach()
            self._browser_ua = str(version["userAgent"]).replace("HeadlessChrome/", "Chrome/")
        except (PlaywrightError, KeyError):
            self._browser_ua = ""
        if self.headless and self._browser_ua:
            self._user_agent = self._browser_ua

    async def _ensure_browser(self) -> Browser:
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                await self._launch()
            assert self._browser is not None
            return self._browser

    async def _relaunch_if(self, dead: Browser) -> Browser:
        async with self._lock:
            if self._browser is dead or self._browser is None or not self._browser.is_connected():
                await self._launch()
            assert self._browser is not None
            return self._browser

    async def user_agent(self) -> str:
        """The user agent a shop without its own presents (Chromium's, launched if need be): requests sent
        without the browser say the same."""
        await self._ensure_browser()
        return self._browser_ua

    @property
    def browser_version(self) -> str:
        """Chromium's version once launched ("" before)."""
        return self._browser.version if self._browser is not None else ""

    def _context_options(self, storage_state: Path | Mapping[str, Any] | None, network: Network | None,
                         har: Path | None = None) -> dict[str, Any]:
        net = network or Network()
        options: dict[str, Any] = {"locale": net.locale or LOCALE, "timezone_id": TIMEZONE, "viewport": dict(VIEWPORT)}
        if har is not None:  # the doctor's bundle: every request and answer, bodies embedded, written at close
            options.update(record_har_path=str(har), record_har_content="embed")
        if storage_state is not None:  # a file, or the state itself (never written to disk)
            options["storage_state"] = str(storage_state) if isinstance(storage_state, Path) else dict(storage_state)
        if net.user_agent or self._user_agent:
            options["user_agent"] = net.user_agent or self._user_agent
        if net.proxy is not None:
            options["proxy"] = dict(net.proxy)
        return options

    async def new_context(
        self, storage_state: Path | Mapping[str, Any] | None = None, *, block_assets: bool | None = None,
        network: Network | None = None,
        har: Path | None = None,
    ) -> BrowserContext:
        """A fresh context (from `storage_state` when given), zh-CN, Asia/Shanghai, 1366x900; `network` gives
        it the shop's own proxy (pages and the request API alike), user agent and locale; `har` records it.

        A crashed or disconnected browser is relaunched once; failing again is BROWSER_ERROR.
        """
        browser = await self._ensure_browser()
        try:
            context = await browser.new_context(**self._context_options(storage_state, network, har))
        except PlaywrightError as exc:
            if browser.is_connected() and "closed" not in str(exc).lower():
                raise  # not a crash: e.g. an unreadable storage state file
            logger.warning("Chromium is gone ({}); relaunching", exc)
            browser = await self._relaunch_if(browser)
            try:
                context = await browser.new_context(**self._context_options(storage_state, network, har))
            except PlaywrightError as again:
                raise CheckFailure(
                    ShopState.BROWSER_ERROR, f"Chromium failed again after a relaunch: {again}"
                ) from again
        context.set_default_timeout(self.timeout_seconds * 1000)
        context.set_default_navigation_timeout(self.timeout_seconds * 1000)
        if self.block_assets if block_assets is None else block_assets:
            self._blocking.add(context)
            context.on("page", lambda page: self._setup_page(context, page))
            context.once("close", lambda _: self._blocking.discard(context))
        return context

    # ---- asset blocking ---------------------------------------------------------------------
    def _setup_page(self, context: BrowserContext, page: Page) -> None:
        if page in self._page_setup:
            return
        self._page_setup[page] = asyncio.get_running_loop().create_task(self._block(context, page))
        page.once("close", lambda _: self._page_setup.pop(page, None))

    async def _block(self, context: BrowserContext, page: Page) -> CDPSession | None:
        try:
            cdp = await context.new_cdp_session(page)
            await cdp.send("Network.enable")
            await cdp.send("Network.setBlockedURLs", {"urls": list(BLOCKED_URL_PATTERNS)})
            return cdp
        except PlaywrightError:  # the page closed meanwhile: nothing to block
            return None

    async def new_page(self, context: BrowserContext, *, block_assets: bool = True) -> Page:
        """A page of `context` whose asset blocking (if the context blocks) is in place before it navigates.

        `block_assets=False` lets this page load images and fonts even in a blocking context.
        """
        limit = self.timeout_seconds
        try:
            page = await asyncio.wait_for(context.new_page(), limit)
        except TimeoutError:
            raise CheckFailure(ShopState.BROWSER_ERROR, f"Chromium opened no page in {limit:g} s") from None
        if context in self._blocking:
            self._setup_page(context, page)  # no-op when the "page" event came first
        task = self._page_setup.get(page)
        if task is not None:
            try:  # blocking only saves work: a CDP call that does not answer must not wedge the check
                cdp = await asyncio.wait_for(asyncio.shield(task), min(limit, 10.0))
                if not block_assets and cdp is not None:
                    await asyncio.wait_for(cdp.send("Network.setBlockedURLs", {"urls": []}), min(limit, 10.0))
            except TimeoutError:
                logger.warning("asset blocking did not come up in time; the page loads everything")
        return page
