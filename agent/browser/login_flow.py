"""The human path behind `pdd-agent login`: password, SMS code at the prompt, QR in the terminal, captcha by hand.

The caller (the CLI) builds the `BrowserPool` (headed when `--headed`), the `ShopSession`, and passes
`prompt` (getpass for the password, input for the SMS code), `out` (print) and, for a terminal, `draw_qr`
and `countdown`. Prompts run in a worker thread so the browser keeps going while a human types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent.browser.pool import close_quietly
from agent.browser.session import QR_TIMEOUT_SECONDS, Outcome, ShopSession
from agent.core.models import CheckFailure, ShopState
from agent.files import write_private

PASSWORD_PROMPT = "密码 / password: "
SMS_PROMPT = "短信验证码 / SMS code: "
CAPTCHA_TIMEOUT_SECONDS = 300.0
SMS_ATTEMPTS = 3
_MAX_STEPS = 12
QR_WAIT_LABEL = "等待扫码 / waiting for the scan"


class Waiting(Protocol):
    """A line that shows the seconds left while the flow waits (the terminal's countdown)."""

    def tick(self, remaining: float) -> None: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


class _Silent:
    """No countdown (no terminal)."""

    def __init__(self, label: str, seconds: float) -> None:
        del label, seconds

    def tick(self, remaining: float) -> None:
        del remaining

    def clear(self) -> None:
        pass

    def close(self) -> None:
        pass


async def interactive_login(
    session: ShopSession,
    *,
    prompt: Callable[[str], str],
    qr_path: Path,
    headed: bool,
    out: Callable[[str], None],
    qr: bool = False,
    captcha_timeout: float = CAPTCHA_TIMEOUT_SECONDS,
    qr_timeout: float = QR_TIMEOUT_SECONDS,
    draw_qr: Callable[[str], str] | None = None,
    countdown: Callable[[str, float], Waiting] = _Silent,
) -> None:
    """Log `session`'s shop in with a human at hand and save the session, or raise CheckFailure.

    Password (the session's, else asked; empty = QR), then whatever the page asks: the SMS code
    (sent by clicking 获取验证码, typed at the prompt), a captcha (solved in the window when `headed`),
    or the QR code (QR-only accounts, `qr=True`, or no password): saved to `qr_path` as PNG, drawn in
    the terminal (`draw_qr`) when its data is readable, and waited for until scanned (`countdown`).
    """
    context = await session.open()
    try:
        if await session.verify(context):
            await session.save(context)
            out(f"已登录，会话已保存 / already logged in; session saved to {session.saved.where}")
            return
        if not qr:
            password = session.password or (await asyncio.to_thread(prompt, PASSWORD_PROMPT)).strip()
            if password:
                if await _password_login(session, context, password, prompt, headed, out, captcha_timeout):
                    return
            else:
                out("未输入密码，改用扫码登录 / no password: logging in with the QR code")
        await _qr_login(session, context, qr_path, out, qr_timeout, draw_qr, countdown)
    finally:
        with suppress(PlaywrightError):
            await close_quietly(context)


async def _password_login(
    session: ShopSession,
    context: BrowserContext,
    password: str,
    prompt: Callable[[str], str],
    headed: bool,
    out: Callable[[str], None],
    captcha_timeout: float,
) -> bool:
    """True when logged in and saved; False when the account turned out to be QR-only."""
    page = await session.pool.new_page(context, block_assets=False)
    try:
        result = await session.submit_password(page, password)
        sms_sent, sms_tries = False, 0
        for _ in range(_MAX_STEPS):
            kind = result.outcome
            if kind is Outcome.SUCCESS:
                await session.confirm_login(context)
                out(f"登录成功，会话已保存 / logged in; session saved to {session.saved.where}")
                return True
            if kind is Outcome.QR_ONLY:
                out(f"{result.text}\n该账号只能扫码登录 / this account logs in by QR code only")
                return False
            sms_step = kind is Outcome.SMS or (
                kind is Outcome.ERROR and await page.locator(session.sel["sms_input"]).first.is_visible()
            )
            if sms_step:
                if sms_tries >= SMS_ATTEMPTS:
                    raise CheckFailure(
                        ShopState.SMS_REQUIRED, f"短信验证码 {sms_tries} 次未通过 / SMS code refused: {result.text}"
                    )
                if kind is Outcome.ERROR:
                    out(f"{result.text}，请重新输入 / please type it again")
                if not sms_sent:
                    await (await session.visible(page, "sms_send")).click()
                    out("验证码已发送到绑定的手机 / an SMS code was sent to the account's phone")
                    sms_sent = True
                code = (await asyncio.to_thread(prompt, SMS_PROMPT)).strip()
                if not code:
                    sms_sent = False  # empty answer: send a new code
                    continue
                sms_tries += 1
                await (await session.visible(page, "sms_input")).fill(code)
                confirm = await session.visible(page, "sms_confirm")
                baseline = await session.visible_text(page)
                await confirm.click()
                result = await session.wait_outcome(page, baseline, sms=False)
                continue
            if kind is Outcome.CAPTCHA:
                if not headed:
                    raise CheckFailure(
                        ShopState.CAPTCHA,
                        f"登录需要滑块验证，请加 --headed 在窗口中完成 / a captcha ({result.text}):"
                        " rerun with --headed",
                    )
                out(f"请在浏览器窗口中完成滑块验证（{captcha_timeout:g} 秒内）/ solve the captcha in the window")
                baseline = await session.visible_text(page)
                result = await session.wait_outcome(page, baseline, timeout=captcha_timeout, skip={Outcome.CAPTCHA})
                if result.outcome is Outcome.CAPTCHA:
                    raise CheckFailure(ShopState.CAPTCHA, f"滑块验证未完成 / captcha not solved: {result.text}")
                continue
            raise session.failure(result)
        raise CheckFailure(ShopState.LOGIN_REQUIRED, f"login did not finish after {_MAX_STEPS} steps: {result.text}")
    finally:
        with suppress(PlaywrightError):
            await close_quietly(page)


async def _qr_login(
    session: ShopSession, context: BrowserContext, qr_path: Path, out: Callable[[str], None], timeout: float,
    draw_qr: Callable[[str], str] | None, countdown: Callable[[str, float], Waiting],
) -> None:
    page = await session.open_qr_page(context)
    watch = session.qr_watch(page)
    wait = countdown(QR_WAIT_LABEL, timeout)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        shown, refreshed, said = 0, 0, None
        while session.on_login_page(page.url):
            if loop.time() >= deadline:
                raise CheckFailure(ShopState.LOGIN_REQUIRED, f"登录二维码 {timeout:g} 秒内未被扫描 / QR not scanned")
            try:
                note, refreshed = await session.qr_step(page, refreshed)
                if watch.generation != shown and watch.uri:  # first time, or a renewed QR
                    await asyncio.to_thread(write_private, qr_path, await session.qr_png(page))
                    wait.clear()
                    if draw_qr is not None:
                        out(draw_qr(watch.uri))
                    out(f"请用拼多多商家版App扫描二维码 / scan the QR code ({qr_path}); waiting up to {timeout:g} s")
                    shown = watch.generation
                if note and note != said:
                    wait.clear()
                    out(note)
                    said = note
            except PlaywrightError:
                pass  # the page is navigating after the scan
            wait.tick(deadline - loop.time())
            await asyncio.sleep(0.2)
        wait.close()
        with suppress(PlaywrightError):
            await page.wait_for_load_state()
        await session.confirm_login(context)
        out(f"扫码登录成功，会话已保存 / logged in; session saved to {session.saved.where}")
    finally:
        wait.close()
        with suppress(PlaywrightError):
            await close_quietly(page)


async def pass_read_captcha(
    session: ShopSession, out: Callable[[str], None], timeout: float = CAPTCHA_TIMEOUT_SECONDS,
) -> None:
    """Open the workbench as a person does and wait until the page's own list request goes through: the
    floating captcha PDD shows after 54001 is passed by the person at the (headed) window. Saves the session,
    which then carries the captcha token cookie."""
    context = await session.open()
    page = await session.pool.new_page(context, block_assets=False)
    query_list = str(session.site["api"]["query_list"])

    def answered(resp: Response) -> bool:
        return urlsplit(resp.url).path == query_list and resp.request.method == "POST"

    try:
        await page.goto(session.url(session.paths["home"]))
        link = session.site["home"]["sidebar_link"]
        out(f"请在浏览器窗口中完成安全验证（{timeout:g} 秒内）/ pass the captcha in the window")
        deadline = asyncio.get_running_loop().time() + timeout
        async with page.expect_navigation():
            await page.locator(link).first.click()
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise CheckFailure(ShopState.CAPTCHA, f"安全验证 {timeout:g} 秒内未完成 / captcha not passed")
            try:
                resp = await page.wait_for_event("response", predicate=answered, timeout=left * 1000)
            except PlaywrightTimeout as exc:
                raise CheckFailure(ShopState.CAPTCHA, f"安全验证 {timeout:g} 秒内未完成 / captcha not passed") from exc
            with suppress(PlaywrightError, ValueError):
                data = await resp.json()
                if isinstance(data, Mapping) and data.get("success") is True:
                    break
        await session.save(context)
        out(f"安全验证已通过，会话已保存 / captcha passed; session saved to {session.saved.where}")
    finally:
        with suppress(PlaywrightError):
            await close_quietly(page)
        with suppress(PlaywrightError):
            await close_quietly(context)
