"""The doctor's walk through the backend as a person would go, selector by selector: what matched, with captures
(and, asked for, the walk recorded as a redacted bundle)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from agent import __version__
from agent.browser.api_reader import ApiReader
from agent.browser.bundle import RecordingContext, origin, write_bundle
from agent.browser.check import Checker
from agent.browser.page_reader import PageReader
from agent.browser.pool import BrowserPool, Network, close_quietly
from agent.browser.probe_signing import SigningProbe, as_json, probe
from agent.browser.reader import ROLES, ReadOptions
from agent.browser.saved import SavedSession
from agent.browser.session import ShopSession
from agent.browser.shopfiles import shop_dir
from agent.browser.signer import Signer
from agent.browser.watch import apply_watch, quality_reasons, read_watch
from agent.config import Config, ShopConfig
from agent.core import parsers
from agent.core.models import CheckFailure, ShopResult
from agent.core.redact import Redactor
from agent.files import write_private


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
    def __init__(self, page: Page, sel: Mapping[str, Any], out_dir: Path, checker: Checker) -> None:
        self.page, self.sel, self.out_dir, self.checker = page, sel, out_dir, checker
        self.probes: list[Probe] = []
        self.notes: list[str] = []  # what the walk saw beside the selectors (the exit IP)
        self.pages: dict[str, str] = {}  # snapshot name -> the page's DOM, for a bundle
        self.items: list[dict[str, Any]] = []  # what an API-mode check reads with the learned bodies
        self.signing: list[SigningProbe] = []  # --probe-signing: each endpoint cookie-only and signed

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
        self.pages[name] = await self.page.content()
        write_private(self.out_dir / f"{name}.html", self.pages[name])

    async def login_page(self, session: ShopSession) -> None:
        """The login page: tabs, form, error element, and the canvas QR with its qrcode answer."""
        lg = self.sel["site"]["login"]
        try:  # the QR tab through the session: the qrcode endpoint must answer with result.uri
            self.page = await session.open_qr_page(self.page.context)
            uri = await session.qr_data(self.page)
            self.probes.append(Probe("login", "site.login.qr_create / qr_uri_field", lg["qr_create"], 1, f"uri={uri}"))
        except CheckFailure as exc:
            self.probes.append(Probe("login", "site.login.qr_create / qr_uri_field", lg["qr_create"], 0, exc.detail))
            await session.goto_login(self.page)
        for key in ("page_marker", "qr_tab", "account_tab", "qr_image"):
            await self.probe("login", f"site.login.{key}", lg[key])
        if not await self.probe("login", "site.login.qr_image (canvas)", f"{lg['qr_image']} canvas"):
            self.probes[-1] = replace(self.probes[-1], note="the live QR is a <canvas>, drawn from qr_create")
        if await self.page.locator(lg["account_tab"]).count():
            await self.page.locator(lg["account_tab"]).first.click()
        for key in ("username", "password", "submit", "error_text"):
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
        for key in ("row", "order_sn", "apply_time", "countdown", "countdown_time", "cell", "goods_name",
                    "amount_paid", "amount_refund"):
            await self.probe("workbench", f"aftersale_list.rows.{key}", lists["rows"][key])
        pg = lists["pagination"]
        for key in ("root", "next", "prev", "page_size"):
            await self.probe("workbench", f"aftersale_list.pagination.{key}", pg[key])
        status = await reader.pager_status()
        self.probes.append(Probe("workbench", "aftersale_list.pagination.status_pattern", pg["status_pattern"],
                                 1 if status else 0, f"(page size, page) = {status}"))
        await self.snapshot("3-workbench")

    async def cards(self, reader: PageReader) -> dict[str, dict[str, Any]]:
        """Click every card: the quickSearchType each sends vs [quick_filters.codes]; read the two roles."""
        lists = self.sel["aftersale_list"]
        q, req = lists["quick_filters"], lists["request"]
        for label in q["labels"]:
            card = self.page.locator(q["card"], has_text=label)
            if not await card.count():
                self.probes.append(Probe("card", "aftersale_list.quick_filters.labels", label, 0))
                continue
            try:
                body, _ = await reader._capture(lambda c=card: c.first.click(), f"queryList[{label}]")  # type: ignore[misc]
            except CheckFailure as exc:
                self.probes.append(Probe("card", "aftersale_list.quick_filters.card", label, 0, exc.detail))
                continue
            code, known = body.get(req["quick_search_type"]), q["codes"].get(label)
            note = f"quickSearchType={code}" + ("" if code == known else f", selectors say {known}: edit it")
            self.probes.append(Probe("card", f"aftersale_list.quick_filters.codes.「{label}」", label,
                                     1 if code == known else 0, note))
        learned: dict[str, dict[str, Any]] = {}
        for role in ROLES:
            label = q[role]
            try:
                read = await reader.read_role(role)
            except CheckFailure as exc:
                self.probes.append(Probe("card", f"aftersale_list.quick_filters.{role}", label, 0, str(exc)))
                continue
            learned[role] = read.body
            self.probes.append(Probe("card", f"aftersale_list.quick_filters.{role}", label, 1,
                                     f"total={read.total}, rows={len(read.rows)}"))
            await self.snapshot(f"4-card-{role}")
            self._fields(role, read.rows, read.dom_rows)
        for f in reader.findings:
            if f.kind.startswith("page_size") or f.kind == "pagination_stopped":
                self.probes.append(Probe("card", "aftersale_list.pagination.page_size", f.kind, 0, f.message))
        return learned

    def _fields(self, role: str, rows: list[Any], dom_rows: list[dict[str, Any]]) -> None:
        lists = self.sel["aftersale_list"]
        if rows:
            first = rows[0]
            names = {k: v for k, v in lists["fields"].items() if isinstance(v, str) and k not in ("total", "list")}
            for key, field in names.items():
                self.probes.append(Probe("api", f"aftersale_list.fields.{key}", field, 1 if field in first else 0))
            if role == "evidence":
                shapes = self.sel["evidence"]["deadline"]["shapes"]
                hit = next((s["remain"] for s in shapes if first.get(s["remain"]) is not None), None)
                self.probes.append(Probe("api", "evidence.deadline.shapes", " / ".join(s["remain"] for s in shapes),
                                         1 if hit else 0, f"deadline in {hit}" if hit else "no deadline field"))
        shown = [d for d in dom_rows if d.get("countdown")]
        matched = sum(1 for d in shown if parsers.dom_remaining(d, lists) is not None)
        self.probes.append(Probe("card", "aftersale_list.countdown.time", lists["countdown"]["time"],
                                 matched if shown else 1, f"{matched}/{len(shown)} rows"))

    async def api(self, context: BrowserContext, base_url: str, bodies: Mapping[str, Mapping[str, Any]],
                  watching: frozenset[str] = frozenset()) -> None:
        """API mode, endpoint by endpoint: checkLogin, queryCount's card keys, the header counters, queryList."""
        site, lists = self.sel["site"], self.sel["aftersale_list"]
        reader = ApiReader(context, base_url, self.sel, ReadOptions(pacing_seconds=0))
        steps: list[tuple[str, str, Any]] = [
            ("site.api.check_login", site["api"]["check_login"], reader.logged_in),
            ("site.api.query_count", site["api"]["query_count"], reader.counts),
            ("site.api.query_wait_handle_count", site["api"]["query_wait_handle_count"], reader.counters),
        ]
        for key, path, call in steps:
            try:
                got = await call()
            except CheckFailure as exc:
                self.probes.append(Probe("api", key, path, 0, exc.detail))
                continue
            self.probes.append(Probe("api", key, path, 1))
            if key == "site.api.query_count":
                for label, name in lists["count_keys"].items():
                    self.probes.append(Probe("api", f"aftersale_list.count_keys.「{label}」", name,
                                             1 if name in got else 0))
            if key == "site.api.query_wait_handle_count":
                for label, name in lists["counters"]["keys"].items():
                    self.probes.append(Probe("api", f"aftersale_list.counters.keys.「{label}」", name,
                                             1 if label in got else 0))
        for role, body in bodies.items():
            try:
                read = await reader.read_list(role, body)
                self.probes.append(Probe("api", "site.api.query_list", role, 1, f"total={read.total}"))
            except CheckFailure as exc:
                self.probes.append(Probe("api", "site.api.query_list", role, 0, exc.detail))
        if set(bodies) == set(ROLES):
            await self.check_read(reader, bodies, watching)

    async def check_read(self, reader: ApiReader, bodies: Mapping[str, Mapping[str, Any]],
                         watching: frozenset[str]) -> None:
        """A check's whole API-mode read (its watch cards too), last: its items are what a replay of the walk
        must read."""
        result = ShopResult(name="", checked_at=datetime.now(ZoneInfo("Asia/Shanghai")))
        try:
            raw = await reader.read(bodies, check_login=False)
            self.checker.parse_read(raw, result)
            read, found = await read_watch(reader.context, reader.base_url, self.sel, ReadOptions(pacing_seconds=0),
                                           raw.counts, watching, "doctor")
            lists = self.sel["aftersale_list"]
            apply_watch(result, read, lists, quality_reasons(self.checker.config, lists, watching), self.checker.tz)
            for f in found:
                self.probes.append(Probe("api", "aftersale_list.watch", f.kind, 0, f.message))
        except CheckFailure as exc:
            self.probes.append(Probe("api", "check read", "queryCount + queryList", 0, exc.detail))
            return
        self.items = [i.to_json() for i in (*result.aftersales, *result.evidence)]
        self.probes.append(Probe("api", "check read", "queryCount + queryList", 1, f"{len(self.items)} items"))


    async def exit_address(self, context: BrowserContext, shop: ShopConfig) -> None:
        """The address the backend sees this shop's requests come from, when the backend reports it."""
        header = str(self.sel["site"].get("diagnostics", {}).get("client_address_header", "")).lower()
        route = f"代理 / via proxy {shop.proxy_shown}" if shop.proxy else "直连 / direct, no proxy"
        seen = None
        try:
            resp = await context.request.get(shop.base_url + self.sel["site"]["api"]["check_login"],
                                             max_redirects=0, fail_on_status_code=False)
            seen = resp.headers.get(header) if header else None
            await resp.dispose()
        except PlaywrightError as exc:
            route += f"; {str(exc).splitlines()[0]}"
        shown = seen or "后台未报告 / not reported by the backend"
        self.notes.append(f"出口 IP / exit IP the backend sees: {shown} ({route})")


def report(probes: list[Probe]) -> str:
    """The selector report, a line per probe and the total."""
    lines = []
    for p in probes:
        mark = "✓" if p.ok else "✗"
        note = f"  ({p.note})" if p.note else ""
        lines.append(f"{mark} {p.step:<9} {p.key:<42} {p.hook}  → {p.found}{note}")
    bad = sum(1 for p in probes if not p.ok)
    tail = f"，{bad} 项未匹配 / not matched" if bad else ""
    lines.append(f"\n{len(probes) - bad}/{len(probes)} 项匹配 / matched{tail}")
    return "\n".join(lines)


async def run(config: Config, shop: ShopConfig, sel: Mapping[str, Any], bundle: Path | None = None,
              secrets: Iterable[str] = (), saved_for: Callable[[str], SavedSession] | None = None,
              probe_signing: bool = False) -> tuple[list[Probe], Path, list[str]]:
    """The whole walk for one shop: the probes, the folder of its screenshots and pages, and notes. With
    `bundle`, the walk is recorded (HAR) and written there redacted, `secrets` scrubbed wherever they show.
    `saved_for` keeps the shop's session where the service keeps it (several nodes: shared, encrypted)."""
    data_dir, timeout = config.agent.data_dir, config.browser.timeout_seconds
    stamp = datetime.now(ZoneInfo(config.agent.timezone)).strftime("%Y%m%d-%H%M%S")
    out_dir = shop_dir(data_dir, shop.name) / "doctor" / stamp
    hars = Path(tempfile.mkdtemp(prefix="pdd-agent-har-")) if bundle else None  # 0700, removed below
    cookies: list[str] = []
    try:
        async with BrowserPool.from_config(config.browser) as pool:
            session = ShopSession.for_shop(pool, shop, data_dir, sel["site"],
                                           saved=saved_for(shop.name) if saved_for else None)
            login_ctx = await pool.new_context(network=Network.of(shop), har=hars / "login.har" if hars else None)
            doc = Doctor(await pool.new_page(login_ctx), sel, out_dir, Checker(config, pool, sel, saved_for=saved_for))
            try:
                await doc.login_page(session)
            except CheckFailure as exc:
                doc.probes.append(Probe("login", exc.state.value, exc.detail, 0))
            cookies += [c["value"] for c in await login_ctx.cookies()]
            await close_quietly(login_ctx)
            opened = await session.open(har=hars / "walk.har" if hars else None)
            recorded = RecordingContext(opened) if hars else None
            context = cast(BrowserContext, recorded or opened)
            try:
                await session.ensure_logged_in(context)
                await doc.exit_address(context, shop)
                doc.page = await pool.new_page(context)
                reader = PageReader(doc.page, shop.base_url, sel,
                                    ReadOptions(pacing_seconds=0, timeout_seconds=timeout))
                await doc.workbench(reader)
                learned = await doc.cards(reader)
                await doc.api(context, shop.base_url, learned, doc.checker.config.watching(shop))
                await session.save(context)
                if probe_signing:  # the live canary: what the site demands of each endpoint
                    doc.signing = await _probe_signing(pool, session, shop, sel)
                    doc.notes += ["签名探测 / signing probe (cookie-only, then signed):",
                                  *(f"  {p.line()}" for p in doc.signing)]
            except CheckFailure as exc:
                doc.probes.append(Probe("session", exc.state.value, exc.detail, 0))
            finally:
                cookies += [c["value"] for c in await opened.cookies()]
                await close_quietly(opened)  # the HAR is written now
            if bundle is not None and hars is not None and recorded is not None:
                await _bundle(pool, bundle, hars, doc, config, shop, sel, [*secrets, *cookies],
                              recorded.request.entries)
                doc.notes.append(f"诊断包 / bundle: {bundle}（已脱敏 / redacted）")
    finally:
        if hars is not None:
            shutil.rmtree(hars, ignore_errors=True)
    return doc.probes, out_dir, doc.notes


async def _probe_signing(pool: BrowserPool, session: ShopSession, shop: ShopConfig,
                         sel: Mapping[str, Any]) -> list[SigningProbe]:
    """Each endpoint once cookie-only and once signed (by a signer page on the shop's own network identity)."""
    http = await session.requests()
    signer = Signer(pool, Network.of(shop), shop.base_url, sel, per_second=5)
    try:
        return await probe(http, signer, shop.base_url, sel)
    finally:
        await http.save()
        await signer.close()


async def _bundle(pool: BrowserPool, path: Path, hars: Path, doc: Doctor, config: Config, shop: ShopConfig,
                  sel: Mapping[str, Any], secrets: list[str], entries: list[dict[str, Any]]) -> None:
    """Write the recorded walk as a redacted bundle; screenshots drawn from the redacted DOM, never the live page."""
    redactor = Redactor(os.urandom(32), [*secrets, shop.username])
    origins = [origin(shop.base_url), *sel["site"].get("diagnostics", {}).get("bundle_origins", [])]
    context = await pool.new_context(block_assets=False)
    page = await pool.new_page(context, block_assets=False)
    await context.route("**/*", lambda route: route.continue_() if route.request.resource_type == "stylesheet"
                        and origin(route.request.url) in origins else route.abort())

    async def render(html: str) -> bytes:
        await page.set_content(html, wait_until="domcontentloaded")
        return await page.screenshot(full_page=True)

    about = {"agent_version": __version__, "chromium": pool.browser_version, "shop": shop.name,
             "selectors_dir": str(config.agent.selectors_dir) if config.agent.selectors_dir else "(built in)",
             **({"signing_probe": as_json(doc.signing)} if doc.signing else {})}
    try:
        await write_bundle(path, hars=sorted(hars.glob("*.har")), pages=doc.pages, report=report(doc.probes),
                           selectors=sel, redactor=redactor, origins=origins,
                           about=about, render=render, items=doc.items, entries=entries,
                           reasons=quality_reasons(config, sel["aftersale_list"], config.watching(shop)))
    finally:
        await close_quietly(context)

