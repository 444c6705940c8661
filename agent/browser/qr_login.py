"""QR login through the live page: the QR's text from the page's own qrcode answer (the QR is a <canvas>), its
status from the page's polling (scanned, expired → renewed, busy, blocked), our own PNG of it for WeCom and the
terminal. A mixin of `ShopSession` (it uses the session's page helpers and selectors)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import segno
from loguru import logger
from playwright.async_api import BrowserContext, Page, Response
from playwright.async_api import Error as PlaywrightError

from agent.browser.pool import close_quietly
from agent.core.models import CheckFailure, ShopState

QR_TIMEOUT_SECONDS = 300.0
_POLL_SECONDS = 0.2


class HeldQrLogin:
    """The QR login page of a failed check, kept open (with its context) until scanned or given up."""

    def __init__(self, session: QrLogin, context: BrowserContext) -> None:
        self.session, self.context = session, context

    async def wait(self, timeout: float, on_new_qr: Callable[[bytes], Awaitable[None]]) -> None:
        await self.session.wait_for_qr_login(timeout=timeout, on_new_qr=on_new_qr)

    async def close(self) -> None:
        await close_quietly(self.context)


class QrLogin:
    """The QR half of a shop's login (mixed into ShopSession)."""

    async def open_qr_page(self, context: BrowserContext) -> Page:
        """A page on the login QR, once the page has fetched the QR's text (site.login.qr_create).

        The live QR is a <canvas>: its text comes from the qrcode answer (`result.uri`), not the DOM.
        """
        page = await self.pool.new_page(context)
        try:
            watch = self._qr[page] = QrWatch(page, self.sel, self.api)
            await self.goto_login(page)
            if not await page.locator(self.sel["qr_image"]).first.is_visible():
                await (await self.visible(page, "qr_tab")).click()
            await self.visible(page, "qr_image")
            if not await watch.wait_uri(self.login_timeout):
                raise CheckFailure(
                    ShopState.LAYOUT_CHANGED,
                    f"login QR: no answer with result.{self.sel['qr_uri_field']} from {self.sel['qr_create']}"
                    f" within {self.login_timeout:g} s (site.login.qr_create / qr_uri_field)",
                )
        except BaseException:
            with suppress(PlaywrightError):
                await close_quietly(page)
            raise
        return page

    def qr_watch(self, page: Page) -> QrWatch:
        return self._qr[page]

    async def qr_png(self, page: Page) -> bytes:
        """The QR as a PNG drawn by us from its text (what a phone scans), for WeCom and the terminal."""
        uri = self._qr[page].uri
        if not uri:
            raise CheckFailure(ShopState.LAYOUT_CHANGED, "login QR: its text is unknown (site.login.qr_create)")
        return qr_png_bytes(uri)

    async def qr_data(self, page: Page) -> str | None:
        """The text the page's current QR encodes (`result.uri` of site.login.qr_create), else None."""
        watch = self._qr.get(page)
        return watch.uri if watch else None

    async def login_qr_png(self, context: BrowserContext) -> bytes:
        """The shop's current login QR as PNG bytes (queued with the login_required alert for the admins).

        The page stays open as `self.qr_page` so that a scan can complete: follow with
        `wait_for_qr_login()`, or close the context.
        """
        if self.qr_page is not None and not self.qr_page.is_closed():
            with suppress(PlaywrightError):
                await close_quietly(self.qr_page)
        self.qr_page = await self.open_qr_page(context)
        return await self.qr_png(self.qr_page)

    async def qr_step(self, page: Page, refreshed: int) -> tuple[str | None, int]:
        """One look at a QR page: (what to tell the person, refreshes so far); raises when the QR login
        cannot succeed any more (busy, blocked, expired too often). An expired or cancelled QR is renewed
        by clicking 「点击刷新」, at most site.login.qr_max_refreshes times."""
        watch, st = self._qr[page], self.sel["qr_status"]
        if watch.error is not None:
            code, msg = watch.error
            blocked = self._blocked(code, msg)  # type: ignore[attr-defined]
            if blocked is not None:
                failure: CheckFailure = self.failure(blocked)  # type: ignore[attr-defined]
                if failure.state is ShopState.LOGIN_BLOCKED:
                    raise failure
            raise CheckFailure(ShopState.LOGIN_REQUIRED, f"扫码登录失败 / QR login refused: {code} {msg}")
        if watch.status == st["busy"]:
            raise CheckFailure(ShopState.LOGIN_REQUIRED, "系统繁忙，请通过账密登录 / QR login busy: use the password")
        if watch.status in (st["expired"], st["cancelled"]):
            what = "二维码已失效" if watch.status == st["expired"] else "已取消"
            if refreshed >= int(self.sel["qr_max_refreshes"]):
                raise CheckFailure(ShopState.LOGIN_REQUIRED, f"登录二维码{what}，已刷新 {refreshed} 次 / QR expired")
            generation = watch.generation
            await page.locator(self.sel["qr_refresh"]).first.click(timeout=self.login_timeout * 1000)
            await watch.wait_uri(self.login_timeout, after=generation)
            return f"{what}，已刷新二维码 / the QR was renewed", refreshed + 1
        if watch.status == st["scanned"]:
            return "已扫码，请在手机上确认 / scanned: confirm on the phone", refreshed
        return None, refreshed

    async def wait_for_qr_login(
        self, page: Page | None = None, timeout: float = QR_TIMEOUT_SECONDS,
        on_new_qr: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        """Wait until `page` (default: the one behind `login_qr_png`) left /login, then save the session.

        Follows the QR's status (expired → renewed and handed to `on_new_qr` as a PNG, busy / blocked → typed
        failure). Not scanned in time is LOGIN_REQUIRED. The page behind `login_qr_png` is closed afterwards.
        """
        own = page is None
        target = self.qr_page if page is None else page
        if target is None:
            raise ValueError("no QR login page: call login_qr_png() first or pass the page")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        refreshed, said = 0, None
        try:
            while self.on_login_page(target.url):
                if loop.time() >= deadline:
                    raise CheckFailure(
                        ShopState.LOGIN_REQUIRED, f"登录二维码 {timeout:g} 秒内未被扫描 / QR not scanned"
                    )
                try:
                    before = refreshed
                    note, refreshed = await self.qr_step(target, refreshed)
                    if refreshed != before and on_new_qr is not None:
                        await on_new_qr(await self.qr_png(target))
                except PlaywrightError:
                    note = None  # navigating after the scan
                if note and note != said:
                    logger.info("shop {}: {}", self.name, note)
                    said = note
                await asyncio.sleep(_POLL_SECONDS)
            with suppress(PlaywrightError):
                await target.wait_for_load_state()
            await self.confirm_login(target.context)
        finally:
            if own:
                with suppress(PlaywrightError):
                    await close_quietly(target)
                self.qr_page = None


def qr_png_bytes(data: str) -> bytes:
    """A PNG of the QR code of `data` (segno), scaled for a phone to read from a chat window."""
    buf = io.BytesIO()
    segno.make(data, error="m").save(buf, kind="png", scale=6, border=2)
    return buf.getvalue()


class QrWatch:
    """What a login page's QR requests said: the QR text (`result.uri` of qr_create), each new QR counted
    in `generation`, and the latest status of qr_query (or its errorCode and errorMsg)."""

    def __init__(self, page: Page, sel: Mapping[str, Any], api: Mapping[str, Any]) -> None:
        self.sel, self.api = sel, api
        self.uri: str | None = None
        self.generation = 0
        self.status: int | None = None
        self.error: tuple[Any, str] | None = None
        page.on("response", self._on_response)

    async def _on_response(self, resp: Response) -> None:
        path = urlsplit(resp.url).path
        if path not in (self.sel["qr_create"], self.sel["qr_query"]):
            return
        try:
            data = await resp.json()
        except (PlaywrightError, ValueError):
            return
        if not isinstance(data, Mapping):
            return
        result = data.get(self.api["result_field"])
        if data.get("success") is not True:
            self.error = (data.get(self.api["code_field"]), str(data.get(self.api["message_field"]) or ""))
        elif path == self.sel["qr_create"] and isinstance(result, Mapping) and result.get(self.sel["qr_uri_field"]):
            self.uri = str(result[self.sel["qr_uri_field"]])
            self.status, self.error = None, None
            self.generation += 1
        elif isinstance(result, Mapping) and isinstance(result.get(self.sel["qr_status_field"]), int):
            self.status = int(result[self.sel["qr_status_field"]])

    async def wait_uri(self, timeout: float, after: int = 0) -> bool:
        """True once a QR newer than generation `after` was fetched (within `timeout` seconds)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.generation <= after:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.05)
        return True
