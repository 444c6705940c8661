"""Checking shops: session, API or page mode with fallback, parsing, findings, captures, concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger
from playwright.async_api import BrowserContext

from agent.browser.api_reader import ApiReader
from agent.browser.budget import BUSY_SECONDS, Deferrals, RequestBudget, first_round_busy
from agent.browser.ladder import Attempt, climb
from agent.browser.lanes import Lanes, Slot
from agent.browser.neterrors import describe
from agent.browser.plan import check_stale, count_mismatch
from agent.browser.pool import BrowserPool, close_quietly
from agent.browser.qr_login import HeldQrLogin
from agent.browser.reader import ROLES, RawRead, ReadOptions, Requester
from agent.browser.results import parse_read
from agent.browser.saved import FileSession, SavedSession
from agent.browser.session import ShopSession
from agent.browser.shopfiles import (
    READ_CAPTCHA,
    clear_hurdle,
    pending_hurdle,
    plan_bodies,
    remember_hurdle,
    save_capture,
    shop_dir,
    state_path,
)
from agent.browser.signer import SignerError, Signers, SigningMemory
from agent.browser.watch import WatchCache, session_refunds, watch_check
from agent.config import Config, ShopConfig
from agent.config.durations import seconds
from agent.core.models import CheckFailure, Finding, ShopResult, ShopState
from agent.core.money import Refund

# login stops that need a human: remembered, so the password is not tried again on every check
_HURDLES = {ShopState.SMS_REQUIRED, ShopState.CAPTCHA, ShopState.LOGIN_REQUIRED, ShopState.LOGIN_BLOCKED}


class Checker:
    """Checks configured shops with one shared browser: request-only checks up to max_concurrent_checks, page
    work up to max_pages at once (lanes.py), every backend request within the host's budget (budget.py)."""

    def __init__(
        self, config: Config, pool: BrowserPool, sel: Mapping[str, Any], options: ReadOptions | None = None,
        *, hold_qr_logins: bool = False, read_refunds: bool = False, defer_when_busy: bool = False,
        saved_for: Callable[[str], SavedSession] | None = None,
    ) -> None:
        """`hold_qr_logins`: a shop that needs a QR scan keeps its login page open in `ShopResult.open_login`
        (the service waits there for the scan of the QR it pushed); otherwise every context is closed."""
        self.config = config
        self.pool = pool
        self.sel = sel
        self.budget = RequestBudget(config.agent.max_requests_per_second)
        self.options = options or ReadOptions(
            pacing_seconds=config.agent.pacing_seconds, timeout_seconds=config.browser.timeout_seconds,
            backoff_seconds=config.agent.rate_limit_backoff, budget=self.budget,
        )
        self.tz = ZoneInfo(config.agent.timezone)
        self.lanes = Lanes(config.browser.max_concurrent_checks, config.browser.pages)
        # signed requests: hosts that asked for Anti-Content, and one signer page per network identity ([api])
        self.signing = SigningMemory(seconds(config.api.signing_memory))
        self.signers = (Signers(pool, sel, limit=config.api.max_signers, per_second=config.api.signer_tokens_per_second)
                        if config.api.max_signers else None)
        self.hold_qr_logins = hold_qr_logins
        self.saved_for = saved_for  # where a shop's session is kept (several nodes: shared); None: its file
        self.read_refunds = read_refunds  # `check`: each check reads 退款成功 too (the service: once a day)
        self.watch_cache: dict[str, WatchCache] = {}  # per shop: the watch cards as last read
        # the service: while the budget is busy, non-urgent reads wait (at most [watch].refresh) for calmer checks
        self.deferrals = Deferrals(self.busy, seconds(config.watch.refresh)) if defer_when_busy else None
        self.unread = {s.name for s in config.shops if s.enabled}  # not yet checked by this process
        self.enabled = len(self.unread)
        self.active: dict[str, Slot] = {}  # shops whose check holds a slot (or waits for a page slot) now
        self.closing = False  # stop_accepting(): checks still waiting for a slot never start

    def reconfigure(self, config: Config, sel: Mapping[str, Any]) -> None:
        """A reloaded config ([browser] stays as started): the budget, pacing and the shops of the next checks."""
        old = self.config
        self.config, self.sel = config, sel
        self.budget.per_second = config.agent.max_requests_per_second
        self.signing.seconds = seconds(config.api.signing_memory)
        if not config.api.max_signers:
            self.signers = None  # signing off: open pages close with the browser pool
        elif self.signers is None:
            self.signers = Signers(self.pool, sel, limit=config.api.max_signers,
                                   per_second=config.api.signer_tokens_per_second)
        else:  # new signer pages take the new bounds
            self.signers.limit, self.signers.per_second = config.api.max_signers, config.api.signer_tokens_per_second
        self.options = replace(self.options, pacing_seconds=config.agent.pacing_seconds,
                               backoff_seconds=config.agent.rate_limit_backoff)
        before = {s.name for s in old.shops if s.enabled}
        now = {s.name for s in config.shops if s.enabled}
        self.unread = (self.unread & now) | (now - before)
        self.enabled = len(now)

    def stop_accepting(self) -> None:
        """The service stops: checks still waiting for a slot (a page slot too) end without starting it."""
        self.closing = True
        self.lanes.close()

    def busy(self) -> bool:
        """More work than the host takes at once: the first round after start-up (until every shop was read once)
        when all shops read in full would keep the budget busy for seconds, checks waiting for a request slot,
        or budget turns booked far ahead (then non-urgent reads wait: budget.Deferrals)."""
        budget = self.options.budget
        return ((bool(self.unread) and first_round_busy(self.enabled, budget)) or self.lanes.waiting > 0
                or (budget is not None and budget.backlog() > BUSY_SECONDS))

    def request_stats(self) -> dict[str, float]:
        """The host's budget and lanes, for /metrics."""
        b, lanes = self.options.budget, self.lanes
        out: dict[str, float] = {"request_lane": lanes.in_request_lane, "page_lane": lanes.in_page_lane,
                                 "deferred": self.deferrals.deferred if self.deferrals else 0,
                                 # hosts whose calls go signed now (they asked for Anti-Content), signer pages open
                                 "signed_hosts": len(self.signing.hosts()),
                                 "signers": self.signers.open if self.signers else 0,
                                 "signer_tokens": self.signers.minted if self.signers else 0}
        if b is not None:
            out.update(budget=b.per_second, rate=round(b.rate, 3), taken=b.taken, slowdowns=b.slowdowns,
                       busiest_second=b.peak_window)
        return out

    @property
    def in_flight(self) -> frozenset[str]:
        """The shops whose check is working now (holding a slot, not waiting for a page slot)."""
        return frozenset(name for name, slot in self.active.items() if slot.lane)

    # ---- per-shop files ---------------------------------------------------------------------
    def _dir(self, shop: ShopConfig) -> Path:
        return shop_dir(self.config.agent.data_dir, shop.name)

    def load_plan(self, shop: ShopConfig) -> dict[str, dict[str, Any]] | None:
        """The request bodies page mode learned for this shop (None before the first page-mode read; on several
        nodes, whichever node learned them)."""
        return plan_bodies(self.saved(shop).plan(), ROLES)

    def saved(self, shop: ShopConfig) -> SavedSession:
        """Where the shop's session and plan are kept: its folder, or (several nodes) the shared store."""
        return self.saved_for(shop.name) if self.saved_for else FileSession(state_path(self._dir(shop)))

    def pending_hurdle(self, shop: ShopConfig) -> dict[str, Any] | None:
        """The login stop still waiting for a human, unless it is old enough to try the password again."""
        return pending_hurdle(self._dir(shop), self.config.agent.login_retry_hours * 3600, time.time())

    async def login(self, shop: ShopConfig, session: ShopSession, context: BrowserContext, slot: Slot) -> bool:
        """`_login_once`, backing off like the reader when checkLogin answers 54001 / HTTP 429."""
        for wait in (*self.options.backoff_seconds, None):
            try:
                return await self._login_once(shop, session, context, slot)
            except CheckFailure as exc:
                if exc.state is not ShopState.RATE_LIMITED:
                    raise
                if self.options.budget is not None:
                    self.options.budget.slowed_down()
                if wait is None:
                    raise
                logger.info("shop {}: rate limited at login, retrying in {:.0f} s", shop.name, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def remember_hurdle(self, shop: ShopConfig, exc: CheckFailure, where: str = "login") -> None:
        since = datetime.now(self.tz).isoformat(timespec="seconds")
        remember_hurdle(self._dir(shop), exc.state.value, exc.detail, where, time.time(), since)

    async def _login_once(self, shop: ShopConfig, session: ShopSession, context: BrowserContext, slot: Slot) -> bool:
        """ensure_logged_in, but a remembered hurdle only lets the saved session be verified.

        A captcha met while reading (54001) is not retried at all until a person passed it
        (`pdd-agent login --headed` clears it) or `login_retry_hours` went by.
        """
        hurdle = self.pending_hurdle(shop)
        if hurdle is not None and hurdle.get("where") == READ_CAPTCHA:
            raise CheckFailure(
                ShopState.CAPTCHA,
                f"{hurdle['detail']} (waiting since {hurdle['since']} for a person to pass it:"
                f" `pdd-agent login --shop {shop.name} --headed`; not retried)",
            )
        if hurdle is not None:
            if await session.verify(context):
                clear_hurdle(self._dir(shop))  # a human logged in meanwhile
                return False
            raise CheckFailure(
                ShopState(hurdle["state"]),
                f"{hurdle['detail']} (waiting for `pdd-agent login` since {hurdle['since']}; no new password attempt)",
            )
        try:
            relogged = not await session.verify(context)
            if relogged:  # the login page: page work
                await slot.need_page()
                await session.log_in_with_password(context)
        except CheckFailure as exc:
            if exc.state in _HURDLES:
                self.remember_hurdle(shop, exc)
            raise
        clear_hurdle(self._dir(shop))
        return relogged

    async def _qr(self, session: ShopSession, context: BrowserContext) -> bytes | None:
        """The shop's current login QR as a PNG (pushed to the admins), or None when the page shows none."""
        try:
            return await session.login_qr_png(context)
        except Exception as exc:  # the QR is a convenience: its absence must not hide the failure
            logger.info("no login QR for {}: {}", session.name, str(exc).splitlines()[0] if str(exc) else exc)
            return None

    # ---- one shop ---------------------------------------------------------------------------
    async def check_shop(self, shop: ShopConfig, mode: str = "auto") -> ShopResult:
        """One shop, once a request slot is free (a page slot too, once it needs a page)."""
        async with self.lanes.slot() as slot:
            return await self._check_shop(shop, mode, slot)

    async def _check_shop(self, shop: ShopConfig, mode: str, slot: Slot) -> ShopResult:
        """One shop; the caller holds its slot (`slot.need_page()` before any page work).

        The readers of ladder.py are tried in order: a warm shop (a learned plan, no login hurdle waiting) is read
        by plain HTTP with its saved cookies, signed where mms asks for Anti-Content, no browser context at all; a
        lost session, a captcha or a changed answer opens the shop's context from the same session and goes on as
        a person would (log in, read the page)."""
        started = time.monotonic()
        result = ShopResult(name=shop.name, checked_at=datetime.now(self.tz), began=time.time(), crowded=self.busy())
        plan = self.load_plan(shop)
        a = Attempt(shop=shop, session=self.session(shop), result=result, slot=slot, mode=mode, plan=plan,
                    warm=mode == "auto" and plan is not None and self.pending_hurdle(shop) is None)
        handed_over = False
        try:
            raw = await climb(self, a)
            await self._watch(shop, a.requester or a.context or a.http, raw, result)
            result.mode = raw.mode
            if a.context is not None:
                await a.session.save(a.context)
            elif a.http is not None:
                await a.http.save()
        except CheckFailure as exc:
            result.state, result.error = exc.state, exc.detail
            await save_capture(self._dir(shop), datetime.now(self.tz), a.page, a.context, exc)
            if exc.state is ShopState.LOGIN_REQUIRED:
                await slot.need_page()  # the login page shows the QR
                a.context = a.context or await a.session.open()
                result.qr_png = await self._qr(a.session, a.context)
                if result.qr_png and self.hold_qr_logins and not self.closing:
                    result.open_login, handed_over = HeldQrLogin(a.session, a.context), True
        finally:
            if not handed_over and a.context is not None:
                await close_quietly(a.context)
        result.duration = time.monotonic() - started
        self.unread.discard(shop.name)
        logger.info(
            "shop {} checked: state={} mode={} aftersales={} evidence={} in {:.2f}s",
            shop.name, result.state.value, result.mode or "-", len(result.aftersales), len(result.evidence),
            result.duration,
        )
        return result

    async def _watch(self, shop: ShopConfig, context: BrowserContext | Requester | None, raw: RawRead,
                     result: ShopResult) -> None:
        assert context is not None
        deferrals = self.deferrals
        try:
            await watch_check(self.config, self.sel, self.options, self.tz, shop, context, raw.counts, result,
                              refunds=self.read_refunds, cache=self.watch_cache.setdefault(shop.name, {}),
                              defer=None if deferrals is None else lambda role: deferrals.skip(shop.name, role))
        except SignerError as exc:  # the deadline lists were read: the watch cards wait for the next check
            logger.warning("shop {}: watch cards not read: {}", shop.name, exc)
            result.findings.append(Finding("watch_failed", f"watch cards not read (no Anti-Content: {exc}); their "
                                                           "notices wait for the next check"))

    async def refunds(self, shop: ShopConfig) -> list[Refund]:
        """The shop's newest 退款成功 rows (request-only, like keep-alive); CheckFailure when they cannot be read."""
        async with self.lanes.slot():
            return await session_refunds(self.session(shop), shop.base_url, self.sel, self.options, self.tz)

    def session(self, shop: ShopConfig) -> ShopSession:
        return ShopSession.for_shop(self.pool, shop, self.config.agent.data_dir, self.sel["site"], self.options.budget,
                                    saved=self.saved_for(shop.name) if self.saved_for else None)

    async def keepalive(self, shop: ShopConfig) -> bool:
        """A light visit between checks (checkLogin through the saved session, cookies saved back): True when
        the session is still logged in. Never logs in: a lost session is the next check's business."""
        async with self.lanes.slot():  # request-only: never queued behind page work
            if self.closing:
                return True  # stopping: nothing to learn
            session = self.session(shop)
            http = await session.requests()  # plain HTTP with the saved cookies: no browser context
            alive = await asyncio.wait_for(session.verify(http), timeout=self.options.timeout_seconds * 2)
            if alive:
                await http.save()
            return alive

    def parse_read(self, raw: RawRead, result: ShopResult) -> None:
        """A read's rows as the result's items, counters and findings (the checker's and the doctor's)."""
        parse_read(raw, result, self.sel, self.tz)

    async def read_api(self, shop: ShopConfig, context: BrowserContext | Requester, plan: dict[str, dict[str, Any]],
                        result: ShopResult) -> RawRead:
        """An API-mode read, parsed and held against queryCount. Counts and lists are separate requests and
        items arrive or close between them, so a first disagreement is read again before it means a stale body."""
        kept = len(result.findings)
        for last in (False, True):
            # the 「售后数据」 counters: every check of `check`; in the service every [watch].refresh (their queryCount
            # twins stand in meanwhile), later while the budget is busy
            board = self.deferrals is None or self.deferrals.due(shop.name, "counters", self.deferrals.limit)
            raw = await ApiReader(context, shop.base_url, self.sel, self.options).read(
                plan, check_login=False, counters=board,  # verified by _login, or the answers tell
            )
            self.parse_read(raw, result)
            mismatch = count_mismatch(raw, self.sel["aftersale_list"])
            if mismatch is None or last:
                break
            logger.debug("shop {}: {}; reading again", shop.name, mismatch)
            del result.findings[kept:]
        if mismatch is not None:
            raise CheckFailure(ShopState.LAYOUT_CHANGED, mismatch)
        check_stale(result.findings)
        return raw

    # ---- many shops -------------------------------------------------------------------------
    async def check_all(self, shops: Sequence[ShopConfig] | None = None, mode: str = "auto") -> list[ShopResult]:
        """The chosen shops' results, in their order; a shop whose check a stop ended before its work is left out
        (the others' results still count)."""
        chosen = [s for s in (shops if shops is not None else self.config.shops) if s.enabled]
        got = await asyncio.gather(*(self._check_in_slot(s, mode) for s in chosen), return_exceptions=True)
        for outcome in got:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                raise outcome
        return [r for r in got if isinstance(r, ShopResult)]

    async def _check_in_slot(self, shop: ShopConfig, mode: str) -> ShopResult:
        async with self.lanes.slot() as slot:  # the deadline below counts the work, not the waits for slots
            if self.closing:
                raise asyncio.CancelledError("the service is stopping: this check never started")
            self.active[shop.name] = slot
            try:
                return await self._check_within_limit(shop, mode, slot)
            finally:
                self.active.pop(shop.name, None)

    async def _check_within_limit(self, shop: ShopConfig, mode: str, slot: Slot) -> ShopResult:
        # a whole check never works longer than this: a wedged page or browser becomes a typed timeout
        limit = max(60.0, self.options.timeout_seconds * 10)
        task = asyncio.create_task(self._check_shop(shop, mode, slot))
        loop = asyncio.get_running_loop()
        ends = loop.time() + limit
        try:
            try:
                while True:
                    done, _ = await asyncio.wait({task}, timeout=max(0.0, ends + slot.waited - loop.time()))
                    if done or loop.time() >= ends + slot.waited:
                        break
            except asyncio.CancelledError:  # the caller gave up (a stop past its grace): so does the check
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
                raise
            if not done:
                where = _suspended_at(task)
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
                logger.error("shop {} check did not finish in {:.0f} s; it hung in {}", shop.name, limit, where)
                return ShopResult(name=shop.name, checked_at=datetime.now(self.tz), state=ShopState.TIMEOUT,
                                  error=f"the check did not finish in {limit:.0f} s (stuck in {where})")
            return task.result()
        except Exception as exc:  # one broken shop never stops the others
            logger.exception("shop {} check crashed", shop.name)
            state = ShopState.BROWSER_ERROR if "browser" in str(exc).lower() else ShopState.BACKEND_ERROR
            return ShopResult(name=shop.name, checked_at=datetime.now(self.tz), state=state,
                              error=describe(exc, shop.base_url))


def _suspended_at(task: asyncio.Task[Any]) -> str:
    """Where a task's coroutine chain is waiting, innermost last: "check_shop:120 > open:146 > ..."."""
    out, coro = [], task.get_coro()
    while coro is not None and hasattr(coro, "cr_frame"):
        frame = coro.cr_frame
        if frame is not None:
            out.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return " > ".join(out) or "?"

