"""`pdd-agent doctor`: walk the flow as a person would and report, selector by selector, what matched."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.async_api import Page

from agent import locators, parsers
from agent.browser import BrowserPool, close_quietly
from agent.checker import shop_dir
from agent.config import ConfigError, ShopConfig, load_config
from agent.models import CheckFailure
from agent.reader import ROLES, PageReader, ReadOptions
from agent.session import ShopSession


@dataclass(frozen=True, slots=True)
class Probe:
    step: str
    key: str  # where in selectors/ the hook lives
    hook: str
    found: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.found > 0


class Doctor:
    def __init__(self, page: Page, sel: Mapping[str, Any], out_dir: Path) -> None:
        self.page, self.sel, self.out_dir = page, sel, out_dir
        self.probes: list[Probe] = []

    async def probe(self, step: str, key: str, selector: str, note: str = "") -> int:
        try:
            n = await self.page.locator(selector).count()
        except Exception as exc:  # an invalid selector is a finding, not a crash
            n, note = 0, f"invalid selector: {str(exc).splitlines()[0]}"
        self.probes.append(Probe(step, key, selector, n, note))
        return n

    def text(self, step: str, key: str, text: str, haystack: str) -> None:
        self.probes.append(Probe(step, key, text, 1 if text in haystack else 0))

    async def snapshot(self, name: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.page.screenshot(path=str(self.out_dir / f"{name}.png"), full_page=True)
        (self.out_dir / f"{name}.html").write_text(await self.page.content(), encoding="utf-8")

    async def login_page(self, base_url: str) -> None:
        site = self.sel["site"]
        lg = site["login"]
        await self.page.goto(base_url + site["paths"]["login"])
        for key in ("page_marker", "account_tab", "qr_image"):
            await self.probe("login", f"site.login.{key}", lg[key])
        if await self.page.locator(lg["account_tab"]).count():
            await self.page.locator(lg["account_tab"]).first.click()
        for key in ("username", "password", "submit"):
            await self.probe("login", f"site.login.{key}", lg[key])
        await self.snapshot("1-login")

    async def workbench(self, reader: PageReader) -> None:
        site, lists = self.sel["site"], self.sel["aftersale_list"]
        await self.page.goto(reader.base_url + site["paths"]["home"])
        await self.probe("home", "site.home.sidebar_link", site["home"]["sidebar_link"])
        await self.snapshot("2-home")
        await reader.open_workbench()
        trapped = urlsplit(self.page.url).path == site["paths"]["aftersale_setup"]
        self.probes.append(Probe("workbench", "site.paths.aftersale_list", self.page.url, 0 if trapped else 1))
        body = await self.page.inner_text("body")
        for label in lists["counters"]["labels"]:
            self.text("workbench", "aftersale_list.counters.labels", label, body)
        await self.probe("workbench", "aftersale_list.quick_filters.card", lists["quick_filters"]["card"])
        await self.probe("workbench", "aftersale_list.quick_filters.count", lists["quick_filters"]["count"])
        for label in lists["quick_filters"]["labels"]:
            self.text("workbench", "aftersale_list.quick_filters.labels", label, body)
        for key in ("row", "order_sn", "apply_time", "countdown", "cell", "goods_name", "amount_refund"):
            await self.probe("workbench", f"aftersale_list.rows.{key}", lists["rows"][key])
        for key in ("next", "active", "page_size"):
            await self.probe("workbench", f"aftersale_list.pagination.{key}", lists["pagination"][key])
        await self.snapshot("3-workbench")

    async def cards(self, reader: PageReader) -> None:
        lists, evidence = self.sel["aftersale_list"], self.sel["evidence"]
        for role in ROLES:
            label = lists["quick_filters"][role]
            try:
                read = await reader.read_role(role)
            except CheckFailure as exc:
                self.probes.append(Probe("card", f"aftersale_list.quick_filters.{role}", label, 0, str(exc)))
                continue
            code = read.body.get(lists["request"]["quick_search_type"])
            self.probes.append(Probe("card", f"aftersale_list.quick_filters.{role}", label, 1,
                                     f"quickSearchType={code}, total={read.total}, rows={len(read.rows)}"))
            await self.snapshot(f"4-card-{role}")
            if not read.rows:
                continue
            first = read.rows[0]
            names = dict(lists["fields"])
            names.pop("total"), names.pop("list"), names.pop("timeout_refund_action")
            if role == "evidence":
                wanted = ("proof_status", "proof_remain")
                names.update({f"evidence.{k}": v for k, v in evidence["fields"].items() if k in wanted})
            for key, field in names.items():
                self.probes.append(Probe("api", f"fields.{key}", field, 1 if field in first else 0))
            rx = lists["countdown"]["evidence" if role == "evidence" else "aftersale"]
            shown = [d["countdown"] for d in read.dom_rows if d.get("countdown")]
            matched = sum(1 for t in shown if parsers.countdown_seconds(t, rx) is not None)
            self.probes.append(Probe("card", "aftersale_list.countdown", rx, matched, f"{matched}/{len(shown)} rows"))


def report(probes: list[Probe]) -> str:
    lines = []
    for p in probes:
        mark = "✓" if p.ok else "✗"
        note = f"  ({p.note})" if p.note else ""
        lines.append(f"{mark} {p.step:<9} {p.key:<42} {p.hook}  → {p.found}{note}")
    bad = sum(1 for p in probes if not p.ok)
    tail = f"，{bad} 项未匹配 / not matched" if bad else ""
    lines.append(f"\n{len(probes) - bad}/{len(probes)} 项匹配 / matched{tail}")
    return "\n".join(lines)


async def run(shop: ShopConfig, sel: Mapping[str, Any], data_dir: Path, tz: ZoneInfo, executable: str,
              headless: bool, timeout: float) -> tuple[list[Probe], Path]:
    out_dir = shop_dir(data_dir, shop.name) / "doctor" / datetime.now(tz).strftime("%Y%m%d-%H%M%S")
    async with BrowserPool(executable_path=executable, headless=headless, timeout_seconds=timeout) as pool:
        login_ctx = await pool.new_context()
        doc = Doctor(await pool.new_page(login_ctx), sel, out_dir)
        await doc.login_page(shop.base_url)
        await close_quietly(login_ctx)
        session = ShopSession(pool, name=shop.name, base_url=shop.base_url, username=shop.username,
                              password=shop.password(), state_path=shop_dir(data_dir, shop.name) / "state.json",
                              site=sel["site"])
        context = await session.open()
        try:
            await session.ensure_logged_in(context)
            doc.page = await pool.new_page(context)
            reader = PageReader(doc.page, shop.base_url, sel, ReadOptions(pacing_seconds=0, timeout_seconds=timeout))
            await doc.workbench(reader)
            await doc.cards(reader)
            await session.save(context)
        except CheckFailure as exc:
            doc.probes.append(Probe("session", exc.state.value, exc.detail, 0))
        finally:
            await close_quietly(context)
    return doc.probes, out_dir


def main(config_path: str, shop_name: str, out: TextIO = sys.stdout) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    shop = next((s for s in config.shops if s.name == shop_name), None)
    if shop is None:
        print(f"没有这个店铺 / no shop named {shop_name!r} in {config_path}", file=sys.stderr)
        return 2
    sel = locators.load(config.agent.selectors_dir)
    probes, out_dir = asyncio.run(run(
        shop, sel, config.agent.data_dir, ZoneInfo(config.agent.timezone), config.browser.executable_path,
        config.browser.headless, config.browser.timeout_seconds,
    ))
    out.write(report(probes) + f"\n截图和页面 / captures: {out_dir}\n")
    return 0 if all(p.ok for p in probes) else 1
