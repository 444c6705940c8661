"""`pdd-agent login`: the human path to a saved session (password, SMS code, QR scan, captcha by hand)."""

from __future__ import annotations

import asyncio
import getpass
import io
import sys

import segno

from agent.browser.login_flow import CAPTCHA_TIMEOUT_SECONDS, PASSWORD_PROMPT, interactive_login, pass_read_captcha
from agent.browser.pool import BrowserPool
from agent.browser.session import ShopSession
from agent.browser.shopfiles import READ_CAPTCHA, clear_hurdle, read_hurdle, shop_dir
from agent.cli.loading import config_and_shop, shared_sessions
from agent.cli.progress import Countdown
from agent.config import Config, ShopConfig, locators
from agent.core.models import CheckFailure


def qr_terminal(data: str) -> str:
    """The QR code of `data` drawn with block characters."""
    buf = io.StringIO()
    segno.make(data, error="m").terminal(out=buf, compact=True)
    return buf.getvalue()


def _prompt(text: str) -> str:
    if not sys.stdin.isatty():  # a pipe (scripts, tests): say what is wanted, read one line
        print(text, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            raise EOFError("no terminal to ask on / 没有可输入的终端")
        return line.rstrip("\n")
    return getpass.getpass(text) if text == PASSWORD_PROMPT else input(text)


async def _login(config: Config, shop: ShopConfig, *, headed: bool, qr: bool,
                 captcha_timeout: float = CAPTCHA_TIMEOUT_SECONDS) -> None:
    sel, data_dir = locators.load(config.agent.selectors_dir), config.agent.data_dir
    async with BrowserPool.from_config(config.browser, headless=not headed) as pool:
        with shared_sessions(config) as saved_for:
            session = ShopSession.for_shop(pool, shop, data_dir, sel["site"],
                                           saved=saved_for(shop.name) if saved_for else None)
            await _log_in(session, config, shop, headed=headed, qr=qr, captcha_timeout=captcha_timeout)


async def _log_in(session: ShopSession, config: Config, shop: ShopConfig, *, headed: bool, qr: bool,
                  captcha_timeout: float) -> None:
    def out(text: str) -> None:
        print(text, flush=True)

    folder = shop_dir(config.agent.data_dir, shop.name)
    await interactive_login(session, prompt=_prompt, qr_path=folder / "login-qr.png", headed=headed, out=out, qr=qr,
                            draw_qr=qr_terminal, countdown=Countdown)
    waiting = (read_hurdle(folder) or {}).get("where") == READ_CAPTCHA
    if waiting:  # the last check met 54001: a person passes the captcha on the workbench
        if not headed:
            out("上次检查时后台要求安全验证；请加 --headed 在窗口中完成 / a captcha is waiting: use --headed")
        await pass_read_captcha(session, out, captcha_timeout)
    clear_hurdle(folder)  # a person logged in: checks may try again


def main(config_path: str, shop_name: str, *, headed: bool, qr: bool) -> int:
    found = config_and_shop(config_path, shop_name)
    if found is None:
        return 2
    config, shop = found
    try:
        asyncio.run(_login(config, shop, headed=headed, qr=qr))
    except CheckFailure as exc:
        print(f"登录未完成 / login not finished: {exc.state.value}: {exc.detail}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt) as exc:
        print(f"登录已取消 / login cancelled: {exc}", file=sys.stderr)
        return 1
    print(f"登录成功，会话已保存 / logged in, session saved: {shop.name}")
    return 0
