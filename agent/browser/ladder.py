"""How one check reads a shop, as a ladder of readers tried in order: cookie-only plain HTTP → signed plain HTTP
(after mms asked for Anti-Content) → the browser context's requests (a cold shop) → the page as a person reads it.
Each reader returns the read, or a finding saying why it falls through (None: it does not apply to this shop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Protocol
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Page

from agent.browser.api_reader import as_requester
from agent.browser.http_client import ShopHttp
from agent.browser.lanes import Slot
from agent.browser.page_reader import PageReader
from agent.browser.plan import guess_plan
from agent.browser.pool import BrowserPool, Network
from agent.browser.reader import RawRead, ReadOptions, Requester
from agent.browser.session import ShopSession
from agent.browser.shopfiles import READ_CAPTCHA, plan_doc
from agent.browser.signer import (
    DEFAULT_TOKENS_PER_SECOND,
    PageSigner,
    SignedRequests,
    SignerError,
    Signers,
    SigningMemory,
)
from agent.config import ShopConfig
from agent.core.models import CaptchaRequired, CheckFailure, Finding, ShopResult, ShopState


class Checker(Protocol):
    """What the readers use of the checker (check.Checker)."""

    sel: Mapping[str, Any]
    pool: BrowserPool
    options: ReadOptions
    tz: tzinfo
    signers: Signers | None
    signing: SigningMemory

    async def read_api(self, shop: ShopConfig, context: BrowserContext | Requester, plan: dict[str, dict[str, Any]],
                       result: ShopResult) -> RawRead: ...

    async def login(self, shop: ShopConfig, session: ShopSession, context: BrowserContext, slot: Slot) -> bool: ...

    def parse_read(self, raw: RawRead, result: ShopResult) -> None: ...

    def remember_hurdle(self, shop: ShopConfig, exc: CheckFailure, where: str = "login") -> None: ...

# API-mode failures a later reader may get past within the same check. A captcha (54001) is one: signed requests,
# or the page's own request code (Anti-Content and all), may pass where cookie-only requests do not.
FALLBACK = {ShopState.LAYOUT_CHANGED, ShopState.BACKEND_ERROR, ShopState.TIMEOUT, ShopState.CAPTCHA}


@dataclass
class Attempt:
    """What one check's readers share: the shop, its session, the result so far, and how far the ladder got."""

    shop: ShopConfig
    session: ShopSession
    result: ShopResult
    slot: Slot
    mode: str  # auto | api | page
    plan: dict[str, dict[str, Any]] | None
    warm: bool  # a learned plan and no login hurdle waiting: plain HTTP first
    http: ShopHttp | None = None
    context: BrowserContext | None = None
    page: Page | None = None
    need_login: bool = False
    relogged: bool = False
    captcha: bool = False  # the last request-only read met 54001 (a later reader signs, or reads the page)
    requester: Requester | BrowserContext | None = None  # what the read that succeeded used (the watch reads on)

    @property
    def host(self) -> str:
        return urlsplit(self.shop.base_url).netloc


Reader = Callable[["Checker", Attempt], Awaitable[RawRead | Finding | None]]


async def climb(checker: Checker, a: Attempt) -> RawRead:
    """The first read any reader gets; a reader's finding is kept as it falls through."""
    for reader in READERS:
        got = await reader(checker, a)
        if isinstance(got, RawRead):
            return got
        if got is not None:
            a.result.findings.append(got)
    raise AssertionError("the page reader always reads or raises")


async def _request_read(checker: Checker, a: Attempt, requester: Requester | BrowserContext,
                        plan: dict[str, dict[str, Any]]) -> RawRead | Finding | None:
    """One API-mode read; what the abandoned attempt saw never counts. A lost session sends the shop to log in."""
    kept = len(a.result.findings)
    try:
        raw = await checker.read_api(a.shop, requester, plan, a.result)
    except CheckFailure as exc:
        del a.result.findings[kept:]
        a.result.aftersales, a.result.evidence = [], []
        if exc.state is ShopState.LOGIN_REQUIRED and a.warm:
            a.need_login = True  # the saved session expired: log in again, then read as a person
            return None
        if exc.state not in FALLBACK or a.mode == "api":
            raise
        a.captcha = exc.state is ShopState.CAPTCHA
        return Finding("api_fallback", f"API mode failed ({exc}); trying the next way")
    a.captcha, a.requester = False, requester
    return raw


async def cookie_only(checker: Checker, a: Attempt) -> RawRead | Finding | None:
    """A warm shop's saved cookies over plain HTTP, no browser (the default while mms accepts it)."""
    if not a.warm or (checker.signers is not None and checker.signing.signed(a.host)):
        return None
    a.http = a.http or await a.session.requests()
    assert a.plan is not None
    try:
        got = await _request_read(checker, a, a.http, a.plan)
    finally:
        await a.http.save()  # what the backend set, for what follows
    if a.captcha:
        checker.signing.remember(a.host)  # mms asks this host for Anti-Content: sign its calls for a while
    return got


async def signed(checker: Checker, a: Attempt) -> RawRead | Finding | None:
    """The same requests, each with a fresh Anti-Content from the shop's network identity's signer page."""
    if not a.warm or a.need_login or checker.signers is None or not (a.captcha or checker.signing.signed(a.host)):
        return None
    a.http = a.http or await a.session.requests()
    assert a.plan is not None
    try:
        signer = await checker.signers.for_network(Network.of(a.shop), a.shop.base_url)
        got = await _request_read(checker, a, SignedRequests(a.http, signer), a.plan)
    except SignerError as exc:
        return Finding("signer_unavailable", f"no Anti-Content: {exc}; reading in page mode")
    finally:
        await a.http.save()
    if a.captcha:  # a signed call still met 54001: maybe a new build; the next token comes from a fresh page
        await signer.renew()
    return got


async def context_requests(checker: Checker, a: Attempt) -> RawRead | Finding | None:
    """A cold shop (no plan learned, or a hurdle waiting): its browser context, logged in, then its request API."""
    await _open(checker, a)
    if a.warm or not (a.mode == "api" or (a.mode == "auto" and a.plan is not None and not a.relogged)):
        return None
    got = await _request_read(checker, a, a.context, a.plan or guess_plan(checker.sel["aftersale_list"]))
    if a.captcha:
        checker.signing.remember(a.host)  # as cookie-only: once warm, this host's calls go signed
    return got


async def page(checker: Checker, a: Attempt) -> RawRead:
    """The page, read as a person reads it (its own request code signs what it sends); learns the plan."""
    await _open(checker, a)
    assert a.context is not None
    await a.slot.need_page()
    a.page = await checker.pool.new_page(a.context)
    try:
        raw = await PageReader(a.page, a.shop.base_url, checker.sel, checker.options).read()
    except CaptchaRequired as exc:
        checker.remember_hurdle(a.shop, exc, READ_CAPTCHA)  # a person must pass it: never retried blindly
        raise
    checker.parse_read(raw, a.result)
    if not any(lr.from_dom for lr in raw.lists.values()):
        a.session.saved.keep_plan(plan_doc(raw.learned, datetime.now(checker.tz).isoformat(timespec="seconds")))
    # the requests that follow (the watch cards) carry Anti-Content minted by this page, as its own request code
    # would send them; where its SDK is not found they go unsigned
    rate = checker.signers.per_second if checker.signers is not None else DEFAULT_TOKENS_PER_SECOND
    a.requester = SignedRequests(as_requester(a.context), PageSigner(a.page, a.shop.base_url, checker.sel, rate),
                                 unsigned_if_no_token=True)
    return raw


async def _open(checker: Checker, a: Attempt) -> None:
    """The shop's browser context from its saved session, logged in again when its session was lost."""
    if a.context is None:
        a.context = await a.session.open()
        if a.need_login or not a.warm:
            a.relogged = await checker.login(a.shop, a.session, a.context, a.slot)


READERS: tuple[Reader, ...] = (cookie_only, signed, context_requests, page)
