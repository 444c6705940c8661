"""API mode: the routine check, replaying the learned request bodies through the shop's context (no page)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from playwright.async_api import BrowserContext
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent.browser.reader import ROLES, ListRead, Pacer, RawRead, ReadOptions, server_time
from agent.core import parsers
from agent.core.models import CheckFailure, ShopState


class ApiReader:
    """The routine check: same-origin requests through the shop's context, no page."""

    def __init__(self, context: BrowserContext, base_url: str, sel: Mapping[str, Any], options: ReadOptions) -> None:
        self.context = context
        self.base_url = base_url
        self.site, self.lists = sel["site"], sel["aftersale_list"]
        self.pacer = Pacer(options)
        self.timeout_ms = options.timeout_seconds * 1000
        self.server_time = 0.0
        self.last_status, self.last_headers = 200, {}  # of the last answer read with envelope=False

    async def _post(self, path: str, body: Mapping[str, Any] | None, where: str, *, envelope: bool = True) -> Any:
        """POST `body` (None: no body at all) and return the JSON answer; typed failures for errors (with
        `envelope=False` the caller reads the answer's envelope itself)."""
        await self.pacer.pause()
        headers = {
            "Origin": self.base_url,
            "Referer": self.base_url + self.site["paths"]["aftersale_list"] + "?msfrom=mms_sidenav",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            resp = await self.context.request.post(
                self.base_url + path, data=None if body is None else dict(body), headers=headers,
                timeout=self.timeout_ms,
            )
        except PlaywrightTimeout as exc:
            raise CheckFailure(ShopState.TIMEOUT, f"{where}: no answer in {self.timeout_ms / 1000:.0f} s") from exc
        except PlaywrightError as exc:
            raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: {exc.message.splitlines()[0]}") from exc
        self.server_time = server_time(resp.headers, self.server_time)
        try:
            data = await resp.json()
        except (PlaywrightError, ValueError) as exc:
            if resp.status >= 400:
                parsers.check_envelope(None, self.site, where, resp.status, resp.headers)
            raise CheckFailure(ShopState.LAYOUT_CHANGED, f"{where}: answer is not JSON") from exc
        finally:  # the driver keeps every answer's body until it is disposed (or the context closes)
            with suppress(PlaywrightError):
                await resp.dispose()
        if envelope:
            parsers.check_envelope(data, self.site, where, resp.status, resp.headers)
        else:
            self.last_status, self.last_headers = resp.status, resp.headers
        return data

    async def logged_in(self) -> bool:
        async def once() -> bool:
            data = await self._post(self.site["api"]["check_login"], {}, "checkLogin", envelope=False)
            return parsers.login_state(data, self.site, "checkLogin", self.last_status, self.last_headers)

        return bool(await self.pacer.retry(once))

    async def counts(self) -> dict[str, Any]:
        """queryCount's result (the page sends no body)."""
        data = await self.pacer.retry(lambda: self._post(self.site["api"]["query_count"], None, "queryCount"))
        result = data.get("result")
        return dict(result) if isinstance(result, Mapping) else {}

    async def counters(self) -> dict[str, int]:
        """The 「售后数据」 header counters by label, from queryWaitHandleCount."""
        path = self.site["api"]["query_wait_handle_count"]
        data = await self.pacer.retry(lambda: self._post(path, {}, "queryWaitHandleCount"))
        return parsers.wait_counters(data.get("result"), self.lists)

    async def read_list(self, role: str, body: Mapping[str, Any], max_pages: int | None = None) -> ListRead:
        """Every row of the list (or of its first `max_pages` pages)."""
        req = self.lists["request"]
        size = int(self.site["api"]["max_page_size"])
        rows: list[Any] = []
        times: list[float] = []
        page, total = 1, 0
        while True:
            page_body = {**body, req["page_number"]: page, req["page_size"]: size}
            where = f"queryList[{role} p{page}]"
            total, got = await self.pacer.retry(
                lambda b=page_body, w=where: self._page(b, w)  # type: ignore[misc]
            )
            rows += got
            times += [self.server_time] * len(got)
            if len(rows) >= total or not got or (max_pages is not None and page >= max_pages):
                return ListRead(role=role, body=dict(body), total=total, rows=rows, row_times=times)
            page += 1

    async def _page(self, body: Mapping[str, Any], where: str) -> tuple[int, list[Any]]:
        data = await self._post(self.site["api"]["query_list"], body, where)
        return parsers.result_page(data, self.site, self.lists, where)

    async def read(self, bodies: Mapping[str, Mapping[str, Any]], *, check_login: bool = True) -> RawRead:
        """Everything one check reads; `check_login=False` when the caller has just verified the session."""
        if check_login and not await self.logged_in():
            raise CheckFailure(ShopState.LOGIN_REQUIRED, "checkLogin: login false")
        counts = await self.counts()
        counters = await self.counters()
        lists = {role: await self.read_list(role, bodies[role]) for role in ROLES}
        return RawRead(mode="api", server_time=self.server_time, lists=lists, counts=counts, counters=counters)
