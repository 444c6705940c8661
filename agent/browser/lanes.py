"""Two limits on the browser's work: request-only checks (no page) in a wide lane, page work in a narrow one.

A check starts in the request lane (a context, checkLogin, API-mode reads: cheap) and moves to the page lane
only when it needs a page (a password login, a page-mode read, the login QR), giving its request slot back
first: page work, which costs memory, never holds up the request-only checks of other shops.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Lanes:
    """`max_concurrent_checks` request slots and `max_pages` page slots, shared by every shop of the process."""

    def __init__(self, checks: int, pages: int) -> None:
        self.checks, self.pages = checks, pages
        self._requests = asyncio.Semaphore(checks)
        self._pages = asyncio.Semaphore(pages)
        self.in_request_lane = 0
        self.in_page_lane = 0
        self.waiting = 0  # work waiting for a request slot (the lane is full)
        self.closing = False  # close(): work still waiting for a page slot ends without starting it

    def close(self) -> None:
        self.closing = True

    def slot(self) -> Slot:
        """A slot for one check (or keep-alive): `async with lanes.slot() as slot: … await slot.need_page()`."""
        return Slot(self)


class Slot:
    """One piece of work's place: a request slot, traded for a page slot once it needs a page."""

    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes
        self.lane = ""  # "" (waiting), "requests" or "pages"
        self.waited = 0.0  # seconds spent waiting for a page slot (a check's deadline does not count them)

    async def __aenter__(self) -> Slot:
        self.lanes.waiting += 1
        try:
            await self.lanes._requests.acquire()
        finally:
            self.lanes.waiting -= 1
        self.lanes.in_request_lane += 1
        self.lane = "requests"
        return self

    async def need_page(self) -> None:
        """Move to the page lane (waiting there without holding a request slot); a no-op once there."""
        if self.lane == "pages":
            return
        self._leave()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self.lanes._pages.acquire()
        finally:
            self.waited += loop.time() - started
        if self.lanes.closing:  # stopping: page work that had not started never starts
            self.lanes._pages.release()
            raise asyncio.CancelledError("stopping: this page work never started")
        self.lanes.in_page_lane += 1
        self.lane = "pages"

    def _leave(self) -> None:
        if self.lane == "requests":
            self.lanes.in_request_lane -= 1
            self.lanes._requests.release()
        elif self.lane == "pages":
            self.lanes.in_page_lane -= 1
            self.lanes._pages.release()
        self.lane = ""

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._leave()
