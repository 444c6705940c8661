"""A shop's login session: saved storage state, verification, password re-login, typed hurdles.

The storage state (cookies + local storage) of each shop lives in one JSON file, mode 0600, written
atomically. A check opens a context from it, `verify`s it with `checkLogin` through the context's own
request API, and when it is logged out logs in again with the password by driving the real login page,
exactly once. Whatever a machine must not answer (an SMS code, a captcha, a QR-only account, a refused
password) ends the attempt with a typed `CheckFailure` for the rules (core) to tell a human;
`agent.browser.login_flow` is the human path through the same page.

Every URL, selector, text and field name comes from `selectors/site.toml` (the `site` table).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from loguru import logger
from playwright.async_api import BrowserContext, Locator, Page, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent.browser.api_reader import as_requester
from agent.browser.budget import RequestBudget
from agent.browser.http_client import ShopHttp
from agent.browser.neterrors import describe, flatten
from agent.browser.pool import LOCALE, Network, close_quietly
from agent.browser.qr_login import QR_TIMEOUT_SECONDS, QrLogin, QrWatch, qr_png_bytes
from agent.browser.reader import Requester
from agent.browser.saved import FileSession, SavedSession
from agent.browser.shopfiles import shop_dir, state_path
from agent.core import parsers
from agent.core.models import CheckFailure, ShopState

if TYPE_CHECKING:
    from agent.browser.pool import BrowserPool
    from agent.config import ShopConfig

__all__ = ["QR_TIMEOUT_SECONDS", "LoginResult", "Outcome", "QrWatch", "ShopSession", "qr_png_bytes"]

LOGIN_TIMEOUT_SECONDS = 15.0
_POLL_SECONDS = 0.2
_SETTLE_SECONDS = 0.3  # an error text may come a moment before the SMS input or captcha it belongs to


class Outcome(StrEnum):
    """What the login page did after a submit."""

    SUCCESS = "success"  # the page left /login
    SMS = "sms"  # the SMS code input appeared
    CAPTCHA = "captcha"  # a slider or picture captcha (selector or text)
    QR_ONLY = "qr_only"  # the auth code or error text says: log in by scanning
    BLOCKED = "blocked"  # a risk or blocked-login code / text: a person must act first
    ERROR = "error"  # any other error text, e.g. a wrong password
    TIMEOUT = "timeout"  # none of the above within the login timeout


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: Outcome
    text: str = ""  # the page's error text, or what was waited for
    from_page_text: bool = False  # seen only in the page's text (the weakest sign): looked at twice


class ShopSession(QrLogin):
    """One shop's login: `open` a context from the saved state, `ensure_logged_in`, `save`."""

    def __init__(
        self,
        pool: BrowserPool,
        *,
        name: str,
        base_url: str,
        username: str,
        password: str | None,
        state_path: Path,
        site: Mapping[str, Any],
        login_timeout: float = LOGIN_TIMEOUT_SECONDS,
        network: Network | None = None,
        budget: RequestBudget | None = None,
        saved: SavedSession | None = None,
    ) -> None:
        self.pool = pool
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.state_path = Path(state_path)
        # where the session is kept: the file at state_path, unless the caller keeps it elsewhere (several nodes)
        self.saved: SavedSession = saved or FileSession(self.state_path)
        self.site = site
        self.paths: Mapping[str, Any] = site["paths"]
        self.api: Mapping[str, Any] = site["api"]
        self.sel: Mapping[str, Any] = site["login"]
        self.login_timeout = login_timeout
        self.network = network  # the shop's proxy, user agent, locale
        self.budget = budget  # the host's request budget (checkLogin takes a turn)
        self.qr_page: Page | None = None  # the page behind the last login_qr_png, kept open to be scanned
        self._auth: dict[Page, tuple[Any, str] | None] = {}  # page -> (errorCode, errorMsg) of its last login answer
        self._qr: dict[Page, QrWatch] = {}

    @classmethod
    def for_shop(cls, pool: BrowserPool, shop: ShopConfig, data_dir: Path, site: Mapping[str, Any],
                 budget: RequestBudget | None = None, saved: SavedSession | None = None) -> ShopSession:
        """The configured shop's session, saved in its folder under `data_dir` (or in `saved`), on the shop's own
        network."""
        return cls(pool, name=shop.name, base_url=shop.base_url, username=shop.username, password=shop.password(),
                   state_path=state_path(shop_dir(data_dir, shop.name)), site=site, network=Network.of(shop),
                   budget=budget, saved=saved)

    # ---- URLs ---------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def login_url(self) -> str:
        """The login page, coming back to home afterwards: /login/?redirectUrl=<home>."""
        query = urlencode({self.paths["login_redirect_param"]: self.url(self.paths["home"])})
        return f"{self.url(self.paths['login'])}?{query}"

    def on_login_page(self, url: str) -> bool:
        path = urlsplit(url).path.rstrip("/")
        login = str(self.paths["login"]).rstrip("/")
        return path == login or path.startswith(login + "/")

    # ---- state file -----------------------------------------------------------------------------
    async def open(self, har: Path | None = None) -> BrowserContext:
        """A context from the saved storage state when there is one (else an empty context); `har` records it."""
        return await self.pool.new_context(self.saved.load(), network=self.network, har=har)

    async def requests(self) -> ShopHttp:
        """The saved session over plain HTTP (no browser context): the routine check, keep-alive, 退款成功."""
        net = self.network or Network()
        return ShopHttp(self.pool.http, self.saved, user_agent=net.user_agent or await self.pool.user_agent(),
                        locale=net.locale or LOCALE, proxy=net.proxy_url, budget=self.budget,
                        secrets=tuple((net.proxy or {}).get(k, "") for k in ("password",)))

    async def save(self, context: BrowserContext) -> None:
        """Store the context's cookies and local storage (a file: atomically, mode 0600, parent dir 0700)."""
        await self.saved.save(await context.storage_state())

    # ---- verification ---------------------------------------------------------------------------
    async def verify(self, context: BrowserContext | Requester) -> bool:
        """True when `checkLogin` (same-origin, the session's cookies, no page; through a browser context or a
        plain HTTP client) says `result.login` is true.

        A redirect to the login page or a session error code is False; anything unreadable is a typed failure.
        """
        url = self.url(self.api["check_login"])
        timeout = self.pool.timeout_seconds
        requester = as_requester(context)
        if self.budget is not None:
            await (self.budget.space() if requester.gates_budget else self.budget.take())
        try:
            resp = await requester.send("GET", url, None, {}, timeout)
        except TimeoutError as exc:
            raise CheckFailure(ShopState.TIMEOUT, f"checkLogin: no answer within {timeout:g} s") from exc
        except ConnectionError as exc:
            logger.info("checkLogin: {}", flatten(exc))
            raise CheckFailure(ShopState.BACKEND_ERROR, f"checkLogin: {describe(exc, self.base_url)}") from exc
        if 300 <= resp.status < 400:
            location = urljoin(url, resp.headers.get("location", ""))
            if self.on_login_page(location):
                return False
            raise CheckFailure(ShopState.BACKEND_ERROR, f"checkLogin: HTTP {resp.status} to {location}")
        if resp.status == 429:
            raise CheckFailure(ShopState.RATE_LIMITED, "checkLogin: HTTP 429")
        if resp.status != 200:
            raise CheckFailure(ShopState.BACKEND_ERROR, f"checkLogin: HTTP {resp.status}")
        try:
            data = resp.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckFailure(ShopState.BACKEND_ERROR, "checkLogin: the answer is not JSON") from exc
        return parsers.login_state(data, self.site, "checkLogin", resp.status, resp.headers)

    async def confirm_login(self, context: BrowserContext) -> None:
        """After the page left /login: check that the session works, then save it."""
        if not await self.verify(context):
            raise CheckFailure(
                ShopState.LOGIN_REQUIRED, "the login page was left but checkLogin still reports logged out"
            )
        await self.save(context)

    # ---- password login -------------------------------------------------------------------------
    async def ensure_logged_in(self, context: BrowserContext) -> bool:
        """Verify; when logged out, log in with the password once. True when it had to log in.

        Never loops and never answers a human's question: SMS, captcha, QR-only and a refused password
        raise CheckFailure (sms_required / captcha / login_required); no password is login_required
        without opening the login page.
        """
        if await self.verify(context):
            return False
        await self.log_in_with_password(context)
        return True

    async def log_in_with_password(self, context: BrowserContext) -> None:
        """The login page, the password once, the session saved; CheckFailure for what needs a human."""
        if not self.password:
            raise CheckFailure(
                ShopState.LOGIN_REQUIRED,
                f"logged out and no password configured for {self.username}: "
                f"run `pdd-agent login --shop {self.name}`",
            )
        page = await self.pool.new_page(context)
        try:
            result = await self.submit_password(page, self.password)
        finally:
            with suppress(PlaywrightError):
                await close_quietly(page)
        if result.outcome is not Outcome.SUCCESS:
            raise self.failure(result)
        await self.confirm_login(context)
        logger.info("shop {}: logged in again with the password", self.name)

    def failure(self, result: LoginResult) -> CheckFailure:
        """The typed failure for a login outcome a machine cannot get past."""
        cmd = f"pdd-agent login --shop {self.name}"
        match result.outcome:
            case Outcome.SMS:
                return CheckFailure(
                    ShopState.SMS_REQUIRED,
                    f"登录需要短信验证码 / the login asks for an SMS code ({result.text}): run `{cmd}`",
                )
            case Outcome.CAPTCHA:
                return CheckFailure(
                    ShopState.CAPTCHA,
                    f"登录需要滑块验证 / the login shows a captcha ({result.text}): run `{cmd} --headed`",
                )
            case Outcome.QR_ONLY:
                return CheckFailure(
                    ShopState.LOGIN_REQUIRED,
                    f"该账号只能扫码登录 / this account logs in by QR code only (「{result.text}」): run `{cmd}`",
                )
            case Outcome.BLOCKED:
                return CheckFailure(ShopState.LOGIN_BLOCKED, f"登录被平台拦截 / login refused by PDD: {result.text}")
            case Outcome.ERROR:
                return CheckFailure(ShopState.LOGIN_REQUIRED, f"登录失败 / the password was refused: 「{result.text}」")
            case Outcome.TIMEOUT:
                return CheckFailure(ShopState.TIMEOUT, f"password login: {result.text}")
        return CheckFailure(ShopState.BACKEND_ERROR, f"unexpected login outcome {result.outcome}")

    async def goto_login(self, page: Page) -> None:
        try:
            await page.goto(self.login_url(), wait_until="domcontentloaded")
        except PlaywrightTimeout as exc:
            raise CheckFailure(ShopState.TIMEOUT, f"login page {self.login_url()} did not load") from exc
        except PlaywrightError as exc:
            logger.info("login page: {}", flatten(exc))
            raise CheckFailure(ShopState.BACKEND_ERROR, f"login page: {describe(exc, self.login_url())}") from exc

    async def visible(self, page: Page, key: str, timeout: float | None = None) -> Locator:
        """The first element of selector `site.login.<key>` once visible; LAYOUT_CHANGED naming it if not."""
        locator = page.locator(self.sel[key]).first
        wait = self.login_timeout if timeout is None else timeout
        try:
            await locator.wait_for(state="visible", timeout=wait * 1000)
        except PlaywrightTimeout as exc:
            raise CheckFailure(
                ShopState.LAYOUT_CHANGED,
                f"login page: selector site.login.{key} ({self.sel[key]}) not visible within {wait:g} s",
            ) from exc
        return locator

    async def visible_text(self, page: Page) -> str:
        try:
            return await page.locator("body").inner_text(timeout=self.login_timeout * 1000)
        except PlaywrightError:  # navigating away
            return ""

    def watch_auth(self, page: Page) -> None:
        """Remember the errorCode and errorMsg of the page's login answers (site.login.auth)."""
        if page in self._auth:
            return
        self._auth[page] = None
        path = str(self.sel["auth"])

        async def on_response(resp: Response) -> None:
            if urlsplit(resp.url).path != path:
                return
            with suppress(PlaywrightError, ValueError):
                data = await resp.json()
                code = data.get(self.api["code_field"]) if isinstance(data, Mapping) else None
                if code is not None:
                    self._auth[page] = (code, str(data.get(self.api["message_field"]) or ""))

        page.on("response", on_response)

    def _blocked(self, code: Any, text: str) -> LoginResult | None:
        """A risk / blocked / QR-only login by its errorCode or page text (site.login.blocked*, qr_only_*)."""
        sel = self.sel
        if code in sel["qr_only_codes"] or any(t in text for t in sel["qr_only_texts"]):
            return LoginResult(Outcome.QR_ONLY, text or str(code))
        todo = sel["blocked"].get(str(code))
        if todo is None:
            todo = next((v for k, v in sel["blocked_texts"].items() if k in text), None)
        if todo is None:
            return None
        return LoginResult(Outcome.BLOCKED, f"{code} {text}: {todo}" if code else f"{text}: {todo}")

    async def submit_password(self, page: Page, password: str) -> LoginResult:
        """Open the login page, 账号登录, fill username and password, submit; wait for what happens."""
        self.watch_auth(page)
        await self.goto_login(page)
        if not self.on_login_page(page.url):  # the site sent us on: the cookies were good after all
            return LoginResult(Outcome.SUCCESS, f"the login page redirected to {page.url}")
        await (await self.visible(page, "account_tab")).click()
        await (await self.visible(page, "username")).fill(self.username)
        await (await self.visible(page, "password")).fill(password)
        submit = await self.visible(page, "submit")
        baseline = await self.visible_text(page)
        await submit.click()
        return await self.wait_outcome(page, baseline)

    async def wait_outcome(
        self,
        page: Page,
        baseline: str,
        *,
        timeout: float | None = None,
        sms: bool = True,
        skip: Iterable[Outcome] = (),
    ) -> LoginResult:
        """Poll the page until it leaves /login or shows a hurdle or an error text (one timeout for all).

        Texts only count when they were not on the page before the submit (`baseline`). `sms=False`
        ignores the SMS input (it stays visible while a code is being confirmed); outcomes in `skip`
        are waited out (e.g. a captcha a human is solving).
        """
        wait = self.login_timeout if timeout is None else timeout
        skipped = set(skip)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            result = await self._probe(page, baseline, sms)
            if result is not None and (
                result.outcome in (Outcome.ERROR, Outcome.QR_ONLY, Outcome.BLOCKED) or result.from_page_text
            ):
                await asyncio.sleep(_SETTLE_SECONDS)
                result = await self._probe(page, baseline, sms) or result
            if result is not None and result.outcome not in skipped:
                return result
            if asyncio.get_running_loop().time() >= deadline:
                waited = "leaving the login page, " + (
                    "the SMS input (site.login.sms_input), " if sms else ""
                ) + "a captcha (site.login.captcha / captcha_texts), an error text (site.login.error_text)"
                if result is not None:
                    return LoginResult(result.outcome, f"{result.text} (still, after {wait:g} s)")
                return LoginResult(Outcome.TIMEOUT, f"waited {wait:g} s for one of: {waited}; none came")
            await asyncio.sleep(_POLL_SECONDS)

    async def _probe(self, page: Page, baseline: str, sms: bool) -> LoginResult | None:
        if page.is_closed():
            return LoginResult(Outcome.ERROR, "the login page was closed")
        if not self.on_login_page(page.url):
            return LoginResult(Outcome.SUCCESS, page.url)
        sel = self.sel
        answered = self._auth.get(page)
        if answered is not None:
            blocked = self._blocked(answered[0], answered[1])
            if blocked is not None:
                return blocked
        try:
            if sms and await page.locator(sel["sms_input"]).first.is_visible():
                return LoginResult(Outcome.SMS, "site.login.sms_input visible")
            if await page.locator(sel["captcha"] + " >> visible=true").count():
                return LoginResult(Outcome.CAPTCHA, "site.login.captcha visible")
            error = " ".join(t.strip() for t in await page.locator(sel["error_text"]).all_inner_texts()).strip()
            if error:
                if any(t in error for t in sel["captcha_texts"]):
                    return LoginResult(Outcome.CAPTCHA, error)
                if sms and any(t in error for t in sel["sms_texts"]):
                    return LoginResult(Outcome.SMS, error)
                blocked = self._blocked(None, error)
                if blocked is not None:
                    return blocked
                return LoginResult(Outcome.ERROR, error)
            # URL and text from one document: read separately, a navigation in between would show the
            # next page's text (e.g. a shop named 「短信验证店」 on /home) as if the login page had said it.
            href, text = await page.evaluate("() => [location.href, document.body ? document.body.innerText : '']")
        except PlaywrightError:  # the page is navigating: look again
            return None
        if not self.on_login_page(str(href)):
            return LoginResult(Outcome.SUCCESS, str(href))
        for key, outcome in (("captcha_texts", Outcome.CAPTCHA), ("sms_texts", Outcome.SMS)):
            if outcome is Outcome.SMS and not sms:
                continue
            new = [t for t in sel[key] if t in str(text) and t not in baseline]
            if new:
                return LoginResult(outcome, f"page text 「{new[0]}」", from_page_text=True)
        risk = [t for t in sel["blocked_texts"] if t in str(text) and t not in baseline]
        if risk:  # a risk screen outside the error element
            return self._blocked(None, f"page text 「{risk[0]}」")
        return None
