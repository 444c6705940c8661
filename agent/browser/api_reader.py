"""API mode: the routine check, replaying the learned request bodies with the shop's cookies (no page)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from loguru import logger
from playwright.async_api import BrowserContext
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent.browser.neterrors import describe, flatten
from agent.browser.reader import ROLES, Answer, ListRead, Pacer, RawRead, ReadOptions, Requester, server_time
from agent.core import parsers
from agent.core.models import CheckFailure, ShopState


class ContextRequester:
    """A Requester over a browser context's request API (its cookies, proxy and user agent; no page)."""

    gates_budget = False

    def __init__(self, context: BrowserContext) -> None:
        self.context = context

    async def send(self, method: str, url: str, body: Mapping[str, Any] | None, headers: Mapping[str, str],
                   timeout: float) -> Answer:
        try:
            if method == "GET":
                resp = await self.context.request.get(url, headers=dict(headers), max_redirects=0,
                                                      fail_on_status_code=False, timeout=timeout * 1000)
            else:
                resp = await self.context.request.post(url, data=None if body is None else dict(body),
                                                       headers=dict(headers), timeout=timeout * 1000)
        except PlaywrightTimeout as exc:
            raise TimeoutError(f"no answer in {timeout:.0f} s") from exc
        except PlaywrightError as exc:
            raise ConnectionError(exc.message.splitlines()[0]) from exc
        try:
            data = await resp.body()
        except PlaywrightError:  # a redirect: no body, its headers tell
            data = b""
        finally:  # the driver keeps every answer's body until it is disposed (or the context closes)
            with suppress(PlaywrightError):
                await resp.dispose()
        return Answer(resp.status, resp.headers, data)

    async def cookie(self, name: str, url: str) -> str:
        return next((c["value"] for c in await self.context.cookies(url) if c["name"] == name), "")


def as_requester(target: BrowserContext | Requester) -> Requester:
    """`target` itself when it sends requests, else its browser context's request API."""
    return target if isinstance(target, Requester) else ContextRequester(target)


class ApiReader:
    """The routine check: same-origin requests with the shop's cookies (a plain HTTP client or the browser
    context's request API), no page."""

    def __init__(self, context: BrowserContext | Requester, base_url: str, sel: Mapping[str, Any],
                 options: ReadOptions) -> None:
        self.context = context
        self.requester = as_requester(context)
        self.base_url = base_url
        self.site, self.lists = sel["site"], sel["aftersale_list"]
        self.pacer = Pacer(options)
        self.timeout = options.timeout_seconds
        self.server_time = 0.0
        self.last_status, self.last_headers = 200, {}  # of the last answer read with envelope=False

    async def _post(self, path: str, body: Mapping[str, Any] | None, where: str, *, envelope: bool = True) -> Any:
        """POST `body` (None: no body at all) and return the JSON answer; typed failures for errors (with
        `envelope=False` the caller reads the answer's envelope itself)."""
        await self.pacer.pause(gated=self.requester.gates_budget)
        headers = {
            "Origin": self.base_url,
            "Referer": self.base_url + self.site["paths"]["aftersale_list"] + "?msfrom=mms_sidenav",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers.update(await self._live_headers(path))
        try:
            resp = await self.requester.send("POST", self.base_url + path, body, headers, self.timeout)
        except TimeoutError as exc:
            raise CheckFailure(ShopState.TIMEOUT, f"{where}: no answer in {self.timeout:.0f} s") from exc
        except ConnectionError as exc:
            logger.info("{}: {}", where, flatten(exc))  # the full detail for the log file
            raise CheckFailure(ShopState.BACKEND_ERROR, f"{where}: {describe(exc, self.base_url)}") from exc
        self.server_time = server_time(resp.headers, self.server_time)
        try:
            data = resp.json()
        except (ValueError, UnicodeDecodeError) as exc:
            if resp.status >= 400:
                parsers.check_envelope(None, self.site, where, resp.status, resp.headers)
            raise CheckFailure(ShopState.LAYOUT_CHANGED, f"{where}: answer is not JSON") from exc
        if envelope:
            parsers.check_envelope(data, self.site, where, resp.status, resp.headers)
        else:
            self.last_status, self.last_headers = resp.status, resp.headers
        return data

    async def post_raw(self, path: str, body: Mapping[str, Any] | None, where: str) -> tuple[int, Any]:
        """One POST as the check sends it; the HTTP status and the JSON answer, whatever its envelope says."""
        data = await self._post(path, body, where, envelope=False)
        return self.last_status, data

    async def _live_headers(self, path: str) -> dict[str, str]:
        """What the live callers send besides the cookies (anti-content.md §4): `etag` = the `rckk` cookie, and
        while a passed captcha's cookie lives, its token as `verifyauthtoken` (names in selectors/site.toml)."""
        api, url, out = self.site["api"], self.base_url + path, {}
        etag = await self.requester.cookie(api["etag_cookie"], url)
        if etag:
            out[api["etag_header"]] = etag
        passed = await self.requester.cookie(api["captcha_cookie"], url)
        if passed:
            out[api["captcha_token_header"]] = passed
        return out

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

    async def read(self, bodies: Mapping[str, Mapping[str, Any]], *, check_login: bool = True,
                   counters: bool = True) -> RawRead:
        """Everything one check reads; `check_login=False` when the caller has just verified the session,
        `counters=False` leaves the 「售后数据」 counters (queryWaitHandleCount) for a later check."""
        if check_login and not await self.logged_in():
            raise CheckFailure(ShopState.LOGIN_REQUIRED, "checkLogin: login false")
        counts = await self.counts()
        board = await self.counters() if counters else {}
        lists = {role: await self.read_list(role, bodies[role]) for role in ROLES}
        return RawRead(mode="api", server_time=self.server_time, lists=lists, counts=counts, counters=board)
