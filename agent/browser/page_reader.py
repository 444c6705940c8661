"""Page mode: the shop's lists read as a person sees them, capturing the page's own queryList answers."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, Request, Response
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent.browser.reader import ROLES, ListRead, Pacer, RawRead, ReadOptions, server_time
from agent.core import parsers
from agent.core.models import CaptchaRequired, CheckFailure, Finding, ShopState

# One evaluate per page: the DOM rows as plain strings, for the fallback and the countdown cross-check.
_ROWS_JS = """([row, sn, countdown, time, cell, applied]) => Array.from(document.querySelectorAll(row)).map(r => ({
  order_sn: (r.querySelector(sn) || {}).textContent || '',
  countdown: (r.querySelector(countdown) || {}).textContent || '',
  countdown_time: (r.querySelector(time) || {}).textContent || '',
  apply_time: (r.querySelector(applied) || {}).textContent || '',
  cells: Array.from(r.querySelectorAll(cell)).map(c => c.innerText)
}))"""


class PageReader:
    """As a person does: /home, the sidebar link, the cards; captures the page's own queryList answers."""

    def __init__(self, page: Page, base_url: str, sel: Mapping[str, Any], options: ReadOptions) -> None:
        self.page = page
        self.base_url = base_url
        self.site, self.lists = sel["site"], sel["aftersale_list"]
        self.options = options
        self.pacer = Pacer(options)
        self.server_time = 0.0
        self.skew = 0.0  # backend clock minus ours, from the workbench navigation's Date header
        self.findings: list[Finding] = []
        self.captcha: CaptchaRequired | None = None  # a 54001 the page itself met (its floating captcha)
        api = self.site["api"]
        self._business = {api["query_list"], api["query_count"], api["query_wait_handle_count"]}
        self._issued: list[Request] = []  # the page's list requests, to tell the one an action sent
        page.on("response", self._watch)
        page.on("request", self._on_request)

    async def _watch(self, resp: Response) -> None:
        """Remember a 54001 on any business call the page makes (the page then shows PDD's captcha)."""
        if self.captcha is not None or urlsplit(resp.url).path not in self._business:
            return
        try:
            parsers.check_envelope(await resp.json(), self.site, urlsplit(resp.url).path)
        except CaptchaRequired as exc:
            self.captcha = exc
        except (CheckFailure, PlaywrightError, ValueError):
            pass

    def _is_query_list(self, resp: Response) -> bool:
        return urlsplit(resp.url).path == self.site["api"]["query_list"] and resp.request.method == "POST"

    def _on_request(self, request: Request) -> None:
        if urlsplit(request.url).path == self.site["api"]["query_list"]:
            self._issued.append(request)

    async def _capture(self, action: Callable[[], Awaitable[Any]], where: str) -> tuple[dict[str, Any], Any]:
        """Run a UI action and return (request body, parsed JSON) of the queryList call it triggers.

        `self.server_time` becomes that answer's Date: the time reference of the rows it carries.
        """

        async def once() -> tuple[dict[str, Any], Any]:
            await self.pacer.pause()
            earlier = set(map(id, self._issued))  # a list request still in flight (e.g. the page's load) is not ours

            def ours(resp: Response) -> bool:
                return self._is_query_list(resp) and id(resp.request) not in earlier

            try:
                async with self.page.expect_response(ours, timeout=self.options.timeout_seconds * 1000) as info:
                    await action()
                resp = await info.value
                headers = await resp.all_headers()
                try:
                    data = await resp.json()
                except (PlaywrightError, ValueError):
                    data = None
            except PlaywrightTimeout as exc:
                raise CheckFailure(ShopState.TIMEOUT, f"{where}: the page sent no queryList request") from exc
            self.server_time = server_time(headers, self.server_time)
            parsers.result_page(data, self.site, self.lists, where, resp.status, headers)  # typed errors
            body = resp.request.post_data_json
            return (dict(body) if isinstance(body, Mapping) else {}), data

        result: tuple[dict[str, Any], Any] = await self.pacer.retry(once)
        return result

    async def _need(self, selector: str, what: str) -> None:
        """Wait for `selector`; a captcha the page met meanwhile is the failure, not the missing element."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.options.timeout_seconds
        while True:
            try:
                await self.page.wait_for_selector(selector, timeout=250)
                return
            except PlaywrightTimeout as exc:
                if self.captcha is not None:
                    raise self.captcha from exc
                if loop.time() >= end:
                    raise CheckFailure(
                        ShopState.LAYOUT_CHANGED, f"{what}: selector {selector!r} matched nothing"
                    ) from exc

    async def open_workbench(self) -> None:
        """/home, then the sidebar link; recovers once from the /aftersales/setup interstitial."""
        paths = self.site["paths"]
        for attempt in range(2):
            try:
                await self.page.goto(self.base_url + paths["home"])
            except PlaywrightTimeout as exc:  # a slow or held backend: a timeout like any other, never a crash
                raise CheckFailure(ShopState.TIMEOUT, f"{paths['home']}: the page did not load in time") from exc
            if urlsplit(self.page.url).path.startswith(paths["login"].rstrip("/")):
                raise CheckFailure(ShopState.LOGIN_REQUIRED, "/home redirected to the login page")
            link = self.site["home"]["sidebar_link"]
            await self._need(link, "home sidebar link (site.toml [home].sidebar_link)")
            async with self.page.expect_navigation() as nav:
                await self.page.locator(link).first.click()
            resp = await nav.value
            if resp is not None:
                local = time.time()
                self.skew = server_time(await resp.all_headers(), local) - local
                self.server_time = self.server_time or local + self.skew
            if urlsplit(self.page.url).path != paths["aftersale_setup"]:
                break
            if attempt == 1:
                raise CheckFailure(ShopState.LAYOUT_CHANGED, "the sidebar link keeps landing on /aftersales/setup")
        await self._need(self.lists["quick_filters"]["card"], "quick-filter cards ([quick_filters].card)")

    async def dom_rows(self, rows: list[Any]) -> list[dict[str, Any]]:
        """The DOM rows once the page shows the captured answer (its first order number)."""
        r = self.lists["rows"]
        if rows:
            first = rows[0].get(self.lists["fields"]["order_sn"]) if isinstance(rows[0], Mapping) else None
            if not isinstance(first, str):
                return []  # the field is gone: parsing reports it; nothing to wait for
            try:
                await self.page.wait_for_function(
                    """([sel, snSel, sn, n]) => { const rs = document.querySelectorAll(sel);
                        return rs.length === n && (rs[0].querySelector(snSel) || {}).textContent === sn; }""",
                    arg=[r["row"], r["order_sn"], first, len(rows)], timeout=self.options.timeout_seconds * 1000,
                )
            except PlaywrightTimeout:
                return []  # the rows did not render: the JSON stays the source, the cross-check is skipped
        args = [r["row"], r["order_sn"], r["countdown"], r["countdown_time"], r["cell"], r["apply_time"]]
        found: list[dict[str, Any]] = await self.page.evaluate(_ROWS_JS, args)
        read_at = time.time() + self.skew  # the countdowns shown now, in the backend's time
        for row in found:
            row["read_at"] = read_at
        return found

    async def pager_status(self) -> tuple[int, int] | None:
        """(page size, current page) from the pagination's data-status, or None when not shown."""
        pg = self.lists["pagination"]
        root = self.page.locator(pg["root"])
        if await root.count() == 0:
            return None
        value = await root.first.get_attribute(pg["status_attribute"]) or ""
        m = re.search(pg["status_pattern"], value)
        return (int(m.group(1)), int(m.group(2))) if m else None

    async def _size_option(self, size: int) -> Locator | None:
        """Open the custom page-size Select and return its option for `size`, or None (a finding says why)."""
        pg = self.lists["pagination"]
        sizer = self.page.locator(pg["page_size"])
        if await sizer.count() == 0:
            self.findings.append(Finding(
                "page_size_fixed",
                f"no page-size changer ([pagination].page_size): paging {await self._size()} per page",
            ))
            return None
        await sizer.first.click()
        option = self.page.locator(pg["page_size_option"], has_text=pg["page_size_option_text"].format(size=size))
        try:
            await option.first.wait_for(state="visible", timeout=3000)
        except PlaywrightTimeout:
            await self.page.keyboard.press("Escape")
            self.findings.append(Finding(
                "page_size_fixed",
                f"the page-size dropdown shows no option 「{pg['page_size_option_text'].format(size=size)}」"
                " ([pagination].page_size_option / page_size_option_text): paging at the default size",
            ))
            return None
        return option.first

    async def _size(self) -> int | str:
        status = await self.pager_status()
        return status[0] if status else "?"

    async def _confirm_size(self, size: int) -> None:
        status = await self.pager_status()
        if status is None or status[0] != size:
            self.findings.append(Finding(
                "page_size_unconfirmed",
                f"asked for {size} per page; the pagination's data-status says {status} ([pagination].status_pattern)",
            ))

    async def read_role(self, role: str) -> ListRead:
        q, pg, req = self.lists["quick_filters"], self.lists["pagination"], self.lists["request"]
        label = q[role]
        card = self.page.locator(q["card"], has_text=label)
        if await card.count() == 0:
            raise CheckFailure(
                ShopState.LAYOUT_CHANGED, f"quick-filter card 「{label}」 not found ([quick_filters].card)"
            )
        try:
            body, data = await self._capture(lambda: card.first.click(), f"queryList[{role} card]")
        except CheckFailure as exc:
            if exc.state is not ShopState.TIMEOUT:
                raise
            return await self.read_role_from_dom(role)
        learned = {k: v for k, v in body.items() if k != req["page_number"]}
        size = max(pg["page_sizes"])
        total, rows = parsers.result_page(data, self.site, self.lists, f"queryList[{role}]")
        asked = int(body.get(req["page_size"], 0))
        if total > len(rows) and asked < size:
            option = await self._size_option(size)
            if option is not None:
                _, data = await self._capture(lambda: option.click(), f"queryList[{role} size]")
                total, rows = parsers.result_page(data, self.site, self.lists, f"queryList[{role}]")
                await self.dom_rows(list(rows))  # rendered: data-status shows the new size
                await self._confirm_size(size)
        rows = list(rows)
        times = [self.server_time] * len(rows)
        dom = await self.dom_rows(rows)
        page_no = 1
        nxt = self.page.locator(pg["next"])
        while len(rows) < total:
            if await nxt.count() == 0 or pg["disabled_class"] in (await nxt.first.get_attribute("class") or ""):
                self.findings.append(Finding(
                    "pagination_stopped", f"{label}: no next page after {len(rows)} of {total} ([pagination].next)"
                ))
                break
            page_no += 1
            _, data = await self._capture(lambda: nxt.first.click(), f"queryList[{role} p{page_no}]")
            _, more = parsers.result_page(data, self.site, self.lists, f"queryList[{role} p{page_no}]")
            if not more:
                break
            rows += more
            times += [self.server_time] * len(more)
            dom += await self.dom_rows(more)
        learned[req["page_size"]] = size
        return ListRead(role=role, body=learned, total=total, rows=rows, dom_rows=dom, row_times=times)

    async def read_role_from_dom(self, role: str) -> ListRead:
        """Fallback: the card was clicked but no queryList answer was seen; read the rows the page shows."""
        r, pg = self.lists["rows"], self.lists["pagination"]
        timeout = self.options.timeout_seconds * 1000
        try:
            await self.page.wait_for_selector(r["row"], timeout=timeout)
        except PlaywrightTimeout:
            return ListRead(role=role, body={}, total=0, rows=[], from_dom=True)  # an empty list shows no rows
        size = max(pg["page_sizes"])
        option = await self._size_option(size)
        if option is not None:
            before = await self.pager_status()
            await option.click()
            await self._status_change(before)
            await self._confirm_size(size)
        page_rows = await self.dom_rows([])
        dom = list(page_rows)
        nxt = self.page.locator(pg["next"])
        for _ in range(1000):
            if await nxt.count() == 0 or pg["disabled_class"] in (await nxt.first.get_attribute("class") or ""):
                break
            before = await self.pager_status()
            await self.pacer.pause()
            await nxt.first.click()
            if not await self._status_change(before):
                break  # the page did not move: that was the last one
            page_rows = await self.dom_rows([])
            dom += page_rows
        return ListRead(role=role, body={}, total=len(dom), rows=[], dom_rows=dom, from_dom=True)

    async def _status_change(self, before: tuple[int, int] | None) -> bool:
        """Wait until the pagination's data-status differs from `before` and the rows rendered; False if not."""
        pg = self.lists["pagination"]
        want = "" if before is None else f"-{before[0]}-{before[1]}"
        try:
            await self.page.wait_for_function(
                """([root, attr, old]) => { const e = document.querySelector(root);
                    return !!e && !(e.getAttribute(attr) || '').endsWith(old); }""",
                arg=[pg["root"], pg["status_attribute"], want], timeout=3000,
            )
        except PlaywrightTimeout:
            return False
        return True

    async def read(self) -> RawRead:
        await self.open_workbench()
        text = await self.page.inner_text("body")
        counters = parsers.parse_counters(text, self.lists)
        if not counters:
            self.findings.append(Finding("counters_missing", "header counters not found ([counters].labels)"))
        lists = {role: await self.read_role(role) for role in ROLES}
        return RawRead(
            mode="page", server_time=self.server_time, lists=lists, counters=counters, findings=self.findings,
            learned={role: lr.body for role, lr in lists.items()},
        )
