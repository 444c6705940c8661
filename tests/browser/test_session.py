"""Sessions through a real Chromium against the sandbox: saved state, re-login, typed hurdles, QR, relaunch.

The agent is asyncio code. pytest-playwright's sync fixtures (tests/browser/test_sandbox_browser.py)
leave their event loop marked as running in the main thread for the rest of the session, so
`asyncio.run` there would refuse to start: `run()` calls it in a fresh worker thread instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.browser.login_flow import PASSWORD_PROMPT, SMS_PROMPT, interactive_login
from agent.browser.pool import BrowserPool
from agent.browser.session import ShopSession, qr_png_bytes
from agent.cli.login_cmd import qr_terminal
from agent.cli.qr_view import qr_matrix
from agent.config import locators
from agent.core.models import CheckFailure, ShopState
from tests.conftest import Sandbox, run_async

pytestmark = pytest.mark.browser

SITE = locators.load()["site"]
PASSWORD = "sandbox-pass"
T = TypeVar("T")


run = run_async


@pytest.fixture
def logins(sandbox: Sandbox) -> Sandbox:
    sandbox.control.load("logins")
    return sandbox


def counts(box: Sandbox) -> dict[str, int]:
    return dict(box.control.stats()["counts"])


def login_page_loads(box: Sandbox) -> int:
    return sum(n for k, n in counts(box).items() if k.startswith("GET /login"))


def shop(pool: BrowserPool, box: Sandbox, tmp: Path, username: str, password: str | None = PASSWORD) -> ShopSession:
    return ShopSession(
        pool, name=username, base_url=box.url, username=username, password=password,
        state_path=tmp / "data" / "shops" / username / "state.json", site=SITE, login_timeout=10,
    )


async def whoami(session: ShopSession, context: Any) -> str:
    resp = await context.request.post(session.url(SITE["api"]["userinfo"]), data={})
    return str((await resp.json())["result"]["username"])


def failure_of(coro: Awaitable[Any]) -> CheckFailure:
    with pytest.raises(CheckFailure) as info:
        run(coro)
    return info.value


# ---- password login and the saved state ---------------------------------------------------------
def test_password_login_is_saved_0600_and_reused_without_logging_in_again(logins: Sandbox, tmp_path: Path) -> None:
    async def first() -> tuple[bool, bool, bool]:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "密码登录店")
            ctx = await s.open()
            before = await s.verify(ctx)
            relogged = await s.ensure_logged_in(ctx)
            after = await s.verify(ctx)
            await ctx.close()
            return before, relogged, after

    assert run(first()) == (False, True, True)
    state = tmp_path / "data" / "shops" / "密码登录店" / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert "PASS_ID" in {c["name"] for c in json.loads(state.read_text())["cookies"]}
    assert [p.name for p in state.parent.iterdir()] == ["state.json"]  # no temp file left behind
    c = counts(logins)
    assert (c["logins"], c["login_attempts"]) == (1, 1)
    pages = login_page_loads(logins)

    async def second() -> tuple[bool, str]:  # a new process: new pool, new context from the file
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "密码登录店")
            ctx = await s.open()
            relogged = await s.ensure_logged_in(ctx)
            who = await whoami(s, ctx)
            await ctx.close()
            return relogged, who

    assert run(second()) == (False, "密码登录店")
    c = counts(logins)
    assert (c["logins"], c["login_attempts"], login_page_loads(logins)) == (1, 1, pages)


def test_sub_account_logs_in_as_the_sub_account(logins: Sandbox, tmp_path: Path) -> None:
    async def main() -> tuple[bool, bool, str]:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "子账号店:客服01")
            ctx = await s.open()
            relogged = await s.ensure_logged_in(ctx)
            result = (relogged, await s.verify(ctx), await whoami(s, ctx))
            await ctx.close()
            return result

    assert run(main()) == (True, True, "子账号店:客服01")
    assert (tmp_path / "data" / "shops" / "子账号店:客服01" / "state.json").is_file()


def test_expired_session_is_renewed_with_the_password_without_a_human(logins: Sandbox, tmp_path: Path) -> None:
    async def check() -> tuple[bool, bool, bool]:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "密码登录店")
            ctx = await s.open()
            before = await s.verify(ctx)
            relogged = await s.ensure_logged_in(ctx)
            after = await s.verify(ctx)
            await ctx.close()
            return before, relogged, after

    assert run(check()) == (False, True, True)
    assert logins.control.expire_sessions(username="密码登录店") == 1
    assert run(check()) == (False, True, True)
    assert run(check()) == (True, False, True)  # the renewed session was saved
    assert counts(logins)["logins"] == 2


def test_unreadable_state_file_starts_logged_out_and_is_replaced(logins: Sandbox, tmp_path: Path) -> None:
    async def main() -> bool:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "密码登录店")
            s.state_path.parent.mkdir(parents=True)
            s.state_path.write_text('{"cookies": [', encoding="utf-8")  # half a file
            ctx = await s.open()
            relogged = await s.ensure_logged_in(ctx)
            await ctx.close()
            return relogged

    assert run(main()) is True
    state = tmp_path / "data" / "shops" / "密码登录店" / "state.json"
    assert json.loads(state.read_text())["cookies"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


# ---- hurdles: typed, one attempt, nothing saved -------------------------------------------------
def hurdle(box: Sandbox, tmp: Path, username: str, password: str | None = PASSWORD) -> CheckFailure:
    async def main() -> None:
        async with BrowserPool() as pool:
            s = shop(pool, box, tmp, username, password)
            ctx = await s.open()
            try:
                await s.ensure_logged_in(ctx)
            finally:
                assert ctx.pages == []  # the login page was closed (or never opened)
                await ctx.close()

    exc = failure_of(main())
    assert not (tmp / "data" / "shops" / username / "state.json").exists()
    return exc


def test_sms_shop_stops_with_sms_required_after_one_attempt(logins: Sandbox, tmp_path: Path) -> None:
    exc = hurdle(logins, tmp_path, "短信验证店")
    assert exc.state is ShopState.SMS_REQUIRED
    assert "pdd-agent login --shop 短信验证店" in exc.detail
    c = counts(logins)
    assert (c["login_attempts"], c.get("logins", 0), c.get("sms_sent", 0)) == (1, 0, 0)


def test_captcha_stops_with_captcha(logins: Sandbox, tmp_path: Path) -> None:
    logins.control.arm_captcha("密码登录店")
    exc = hurdle(logins, tmp_path, "密码登录店")
    assert exc.state is ShopState.CAPTCHA
    assert "--headed" in exc.detail
    assert counts(logins)["login_attempts"] == 1


def test_qr_only_shop_is_login_required(logins: Sandbox, tmp_path: Path) -> None:
    exc = hurdle(logins, tmp_path, "扫码登录店")
    assert exc.state is ShopState.LOGIN_REQUIRED
    assert "账号因安全保护已被禁止在网页版登录" in exc.detail  # the page's own text (8000079)
    assert "QR" in exc.detail


def test_wrong_password_is_login_required_with_the_pages_text(logins: Sandbox, tmp_path: Path) -> None:
    exc = hurdle(logins, tmp_path, "密码登录店", password="not-the-password")
    assert exc.state is ShopState.LOGIN_REQUIRED
    assert "账号或密码错误，请重新输入" in exc.detail
    assert counts(logins)["login_attempts"] == 1


def test_no_password_is_login_required_without_opening_the_login_page(logins: Sandbox, tmp_path: Path) -> None:
    exc = hurdle(logins, tmp_path, "密码登录店", password=None)
    assert exc.state is ShopState.LOGIN_REQUIRED
    assert "no password" in exc.detail
    c = counts(logins)
    assert c.get("login_attempts", 0) == 0
    assert login_page_loads(logins) == 0
    assert c["GET /janus/api/checkLogin"] == 1  # it did verify first


def with_site(session: ShopSession, section: str, **changes: Any) -> ShopSession:
    """The same session with some selectors/ keys changed, as an admin override would."""
    site = {**SITE, section: {**SITE[section], **changes}}
    return ShopSession(
        session.pool, name=session.name, base_url=session.base_url, username=session.username,
        password=session.password, state_path=session.state_path, site=site, login_timeout=2,
    )


def test_a_login_page_that_changed_is_layout_changed_or_timeout_naming_what_was_missing(
    logins: Sandbox, tmp_path: Path
) -> None:
    async def attempt(section: str, password: str, **changes: Any) -> CheckFailure:
        async with BrowserPool() as pool:
            s = with_site(shop(pool, logins, tmp_path, "密码登录店", password), section, **changes)
            ctx = await s.open()
            try:
                with pytest.raises(CheckFailure) as info:
                    await s.ensure_logged_in(ctx)
            finally:
                await ctx.close()
            return info.value

    exc = run(attempt("login", PASSWORD, account_tab=".login-tab .no-such-tab"))
    assert exc.state is ShopState.LAYOUT_CHANGED and "site.login.account_tab" in exc.detail
    exc = run(attempt("login", "wrong", error_text=".no-such-error"))  # the refusal goes unseen
    assert exc.state is ShopState.TIMEOUT
    assert "waited 2 s" in exc.detail and "site.login.error_text" in exc.detail


def test_verify_treats_a_redirect_to_the_login_page_as_logged_out(logins: Sandbox, tmp_path: Path) -> None:
    async def main() -> tuple[bool, CheckFailure]:
        async with BrowserPool() as pool:
            # /home redirects to /login when logged out, and answers HTML when logged in
            s = with_site(shop(pool, logins, tmp_path, "密码登录店"), "api", check_login=SITE["paths"]["home"])
            ctx = await s.open()
            logged_out = await s.verify(ctx)
            await shop(pool, logins, tmp_path, "密码登录店").ensure_logged_in(ctx)
            with pytest.raises(CheckFailure) as info:
                await s.verify(ctx)
            await ctx.close()
            return logged_out, info.value

    logged_out, exc = run(main())
    assert logged_out is False
    assert exc.state is ShopState.BACKEND_ERROR and "not JSON" in exc.detail


# ---- the browser --------------------------------------------------------------------------------
def _chromium_mains() -> set[int]:
    """PIDs of Chromium browser processes (not their renderers) below this test process."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--remote-debugging-pipe" in cmd and not any(a.startswith(b"--type=") for a in cmd):
            found.add(pid)
    return found


def test_browser_is_relaunched_after_it_was_killed_or_closed(logins: Sandbox, tmp_path: Path) -> None:
    async def main() -> tuple[int, bool, str, str]:
        before = await asyncio.to_thread(_chromium_mains)
        async with BrowserPool() as pool:
            mine = await asyncio.to_thread(lambda: _chromium_mains() - before)
            assert len(mine) == 1, mine
            os.kill(mine.pop(), signal.SIGKILL)  # a crash, as the OOM killer would do it
            s = shop(pool, logins, tmp_path, "密码登录店")
            ctx = await s.open()  # straight away: the crash may or may not have been noticed yet
            relogged = await s.ensure_logged_in(ctx)
            await ctx.close()
            assert pool.browser is not None
            await pool.browser.close()  # a browser that went away politely
            ctx = await s.open()
            ok = await s.verify(ctx)
            page = await pool.new_page(ctx)
            await page.set_content("<p>还活着</p>")
            text = await page.inner_text("p")
            ua = await page.evaluate("navigator.userAgent")
            await ctx.close()
            return pool.launches, relogged and ok, text, ua

    launches, ok, text, ua = run(main())
    assert (launches, ok, text) == (3, True, "还活着")
    assert "HeadlessChrome" not in ua and "Chrome/" in ua


def test_pages_do_not_load_images_unless_asked(logins: Sandbox, tmp_path: Path) -> None:
    async def main() -> tuple[bool, bool]:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "扫码登录店")
            ctx = await s.open()
            blocked = await pool.new_page(ctx)
            await blocked.goto(s.login_url(), wait_until="load")
            logo_blocked = await blocked.evaluate("document.querySelector('img[src$=\"captcha.svg\"]').naturalWidth")
            open_page = await pool.new_page(ctx, block_assets=False)
            await open_page.goto(s.login_url(), wait_until="load")
            logo_open = await open_page.evaluate("document.querySelector('img[src$=\"captcha.svg\"]').naturalWidth")
            await ctx.close()
            return logo_blocked == 0, logo_open > 0

    assert run(main()) == (True, True)
    assert counts(logins)["GET /static/captcha.svg"] == 1  # only the page that asked for images


# ---- QR -----------------------------------------------------------------------------------------
def test_login_qr_png_then_a_scan_logs_the_shop_in(logins: Sandbox, tmp_path: Path) -> None:
    async def main() -> tuple[bytes, bool]:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "扫码登录店")
            ctx = await s.open()
            png = await s.login_qr_png(ctx)
            assert s.qr_page is not None
            uri = await s.qr_data(s.qr_page)
            token = await asyncio.to_thread(logins.control.scan_qr, "扫码登录店")
            assert uri and uri.endswith("data=" + token)  # the QR we push encodes the page's own uri
            assert qr_matrix(png) == qr_matrix(qr_png_bytes(uri))
            await s.wait_for_qr_login(timeout=20)
            await ctx.close()
            ctx = await s.open()
            ok = await s.verify(ctx)
            await ctx.close()
            return png, ok

    png, ok = run(main())
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 500
    assert ok
    assert counts(logins)["logins"] == 1


# ---- the human path -----------------------------------------------------------------------------
def login_interactively(
    box: Sandbox, tmp: Path, username: str, password: str | None, prompt: Callable[[str], str],
    out: Callable[[str], None], *, headed: bool = False, qr: bool = False,
) -> bool:
    async def main() -> bool:
        async with BrowserPool() as pool:
            s = shop(pool, box, tmp, username, password)
            await interactive_login(
                s, prompt=prompt, qr_path=tmp / "qr.png", headed=headed, out=out, qr=qr,
                captcha_timeout=10, qr_timeout=20, draw_qr=qr_terminal,
            )
            ctx = await s.open()
            ok = await s.verify(ctx)
            await ctx.close()
            return ok

    return run(main())


def test_interactive_login_asks_for_the_sms_code_and_the_device_is_trusted_after(
    logins: Sandbox, tmp_path: Path
) -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        if text == PASSWORD_PROMPT:
            return PASSWORD
        for _ in range(100):  # the code exists once 获取验证码 was clicked and the request arrived
            code = logins.control.sms_code("短信验证店")
            if code:
                return code
            time.sleep(0.05)
        raise AssertionError("no SMS code was sent")

    lines: list[str] = []
    assert login_interactively(logins, tmp_path, "短信验证店", None, prompt, lines.append)
    assert asked == [PASSWORD_PROMPT, SMS_PROMPT]
    c = counts(logins)
    assert (c["sms_sent"], c["logins"]) == (1, 1)
    assert any("session saved" in line for line in lines)

    # The api_uid cookie in the saved state makes this a trusted device: the agent can renew alone.
    logins.control.expire_sessions(username="短信验证店")

    async def renew() -> bool:
        async with BrowserPool() as pool:
            s = shop(pool, logins, tmp_path, "短信验证店")
            ctx = await s.open()
            relogged = await s.ensure_logged_in(ctx)
            await ctx.close()
            return relogged

    assert run(renew()) is True
    assert counts(logins)["sms_sent"] == 1


def test_interactive_login_of_a_qr_only_shop_saves_and_draws_the_qr_then_waits_for_the_scan(
    logins: Sandbox, tmp_path: Path
) -> None:
    qr_png = tmp_path / "qr.png"
    lines: list[str] = []
    scanned: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if str(qr_png) in line and not scanned:
            assert qr_png.read_bytes().startswith(b"\x89PNG")
            scanned.append(logins.control.scan_qr("扫码登录店"))  # the merchant scans with the app

    def prompt(text: str) -> str:
        raise AssertionError(f"unexpected prompt {text!r}")

    assert login_interactively(logins, tmp_path, "扫码登录店", PASSWORD, prompt, out)
    assert len(scanned) == 1
    text = "\n".join(lines)
    assert "只能扫码登录" in text and "█" in text  # told why, and the QR drawn in the terminal
    assert counts(logins)["logins"] == 1
    assert (tmp_path / "data" / "shops" / "扫码登录店" / "state.json").is_file()


def test_interactive_captcha_needs_headed_and_waits_for_the_human_when_headed(
    logins: Sandbox, tmp_path: Path
) -> None:
    def prompt(text: str) -> str:
        return PASSWORD

    logins.control.arm_captcha("密码登录店")
    with pytest.raises(CheckFailure) as info:
        login_interactively(logins, tmp_path, "密码登录店", None, prompt, lambda line: None)
    assert info.value.state is ShopState.CAPTCHA and "--headed" in info.value.detail

    def out(line: str) -> None:  # the human solves the slider a moment after being told
        if "滑块" in line:
            threading.Timer(0.5, logins.control.clear_captcha).start()

    assert login_interactively(logins, tmp_path, "密码登录店", None, prompt, out, headed=True)
    assert counts(logins)["logins"] == 1


@pytest.mark.parametrize(
    ("code", "todo"),
    [(2000016, "修改密码"), (2000009, "店铺无法登录"), (40029, "已退店"), (2000008, "联系平台客服")],
)
def test_risk_and_blocked_codes_are_login_blocked_saying_what_to_do(
    logins: Sandbox, tmp_path: Path, code: int, todo: str
) -> None:
    logins.control.arm_login_block("密码登录店", code)
    exc = hurdle(logins, tmp_path, "密码登录店")
    assert exc.state is ShopState.LOGIN_BLOCKED and str(code) in exc.detail and todo in exc.detail
    assert counts(logins)["login_attempts"] == 1  # never retried


def test_weak_password_risk_screen_is_login_blocked_by_its_text(logins: Sandbox, tmp_path: Path) -> None:
    logins.control.arm_login_block("密码登录店", 2000017)  # its code is unknown: the text decides
    exc = hurdle(logins, tmp_path, "密码登录店")
    assert exc.state is ShopState.LOGIN_BLOCKED and "密码强度过低" in exc.detail


def test_picture_captcha_is_a_captcha(logins: Sandbox, tmp_path: Path) -> None:
    logins.control.arm_picture_captcha("密码登录店")
    exc = hurdle(logins, tmp_path, "密码登录店")
    assert exc.state is ShopState.CAPTCHA


def test_canvas_qr_scanned_then_confirmed_end_to_end(logins: Sandbox, tmp_path: Path) -> None:
    """The QR comes from the qrcode answer, not the canvas; 「已扫码」 is said; the session is saved."""
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if "scan the QR code" in line and len(lines) < 5:
            logins.control.scan_qr("扫码登录店", confirm=False)  # scanned, not yet confirmed on the phone
        if "已扫码" in line:
            logins.control.scan_qr("扫码登录店")

    assert login_interactively(logins, tmp_path, "扫码登录店", None, lambda t: "", out, qr=True)
    text = "\n".join(lines)
    assert "已扫码，请在手机上确认" in text and "█" in text
    state = tmp_path / "data" / "shops" / "扫码登录店" / "state.json"
    assert state.stat().st_mode & 0o777 == 0o600


def test_an_expired_qr_is_renewed_and_drawn_again(logins: Sandbox, tmp_path: Path) -> None:
    logins.control.settings(qr_ttl=1)
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if "已刷新二维码" in line:
            logins.control.settings(qr_ttl=300)
        elif "scan the QR code" in line and sum("scan the QR code" in x for x in lines) >= 2:
            logins.control.scan_qr("扫码登录店")

    assert login_interactively(logins, tmp_path, "扫码登录店", None, lambda t: "", out, qr=True)
    assert any("二维码已失效" in x for x in lines)
    assert sum("scan the QR code" in x for x in lines) >= 2  # the renewed QR was shown again


def test_qr_busy_says_to_use_the_password(logins: Sandbox, tmp_path: Path) -> None:
    logins.control.settings(qr_busy=True)
    with pytest.raises(CheckFailure) as info:
        login_interactively(logins, tmp_path, "扫码登录店", None, lambda t: "", lambda line: None, qr=True)
    assert info.value.state is ShopState.LOGIN_REQUIRED and "请通过账密登录" in info.value.detail
