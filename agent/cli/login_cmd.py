"""`pdd-agent login`: the human path to a saved session (password, SMS code, QR scan, captcha by hand)."""

from __future__ import annotations

import asyncio
import getpass
import io
import sys
from pathlib import Path

import segno

from agent.browser.check import READ_CAPTCHA, hurdle_path, read_hurdle, shop_dir
from agent.browser.login_flow import CAPTCHA_TIMEOUT_SECONDS, PASSWORD_PROMPT, interactive_login, pass_read_captcha
from agent.browser.pool import BrowserPool
from agent.browser.session import ShopSession
from agent.cli.progress import Countdown
from agent.config import locators
from agent.config.schema import ConfigError, ShopConfig, load_config
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


async def _login(shop: ShopConfig, data_dir: Path, *, headed: bool, qr: bool, executable: str,
                 timeout: float, selectors_dir: Path | None, captcha_timeout: float = CAPTCHA_TIMEOUT_SECONDS) -> None:
    sel = locators.load(selectors_dir)
    async with BrowserPool(executable_path=executable, headless=not headed, timeout_seconds=timeout) as pool:
        session = ShopSession(
            pool, name=shop.name, base_url=shop.base_url, username=shop.username, password=shop.password(),
            state_path=shop_dir(data_dir, shop.name) / "state.json", site=sel["site"],
        )
        def out(text: str) -> None:
            print(text, flush=True)

        folder = shop_dir(data_dir, shop.name)
        await interactive_login(session, prompt=_prompt, qr_path=folder / "login-qr.png", headed=headed, out=out, qr=qr,
                                draw_qr=qr_terminal, countdown=Countdown)
        waiting = (read_hurdle(folder) or {}).get("where") == READ_CAPTCHA
        if waiting:  # the last check met 54001: a person passes the captcha on the workbench
            if not headed:
                out("上次检查时后台要求安全验证；请加 --headed 在窗口中完成 / a captcha is waiting: use --headed")
            await pass_read_captcha(session, out, captcha_timeout)
        hurdle_path(folder).unlink(missing_ok=True)  # a person logged in: checks may try again


def main(config_path: str, shop_name: str, *, headed: bool, qr: bool) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    shop = config.shop(shop_name)
    if shop is None:
        print(f"没有这个店铺 / no shop named {shop_name!r} in {config_path}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_login(
            shop, config.agent.data_dir, headed=headed, qr=qr, executable=config.browser.executable_path,
            timeout=config.browser.timeout_seconds, selectors_dir=config.agent.selectors_dir,
        ))
    except CheckFailure as exc:
        print(f"登录未完成 / login not finished: {exc.state.value}: {exc.detail}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt) as exc:
        print(f"登录已取消 / login cancelled: {exc}", file=sys.stderr)
        return 1
    print(f"登录成功，会话已保存 / logged in, session saved: {shop.name}")
    return 0
