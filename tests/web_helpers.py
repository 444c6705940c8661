"""The team page's application served for tests: a fake service (snapshot, clock, listeners) and a thread that runs
the aiohttp application on a loopback port."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.config import Config
from agent.outbox.store import Store
from agent.service.health import Snapshot
from agent.web.app import WebServer, build_app


@dataclass
class FakeClock:
    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def from_backend(self, backend: float) -> float:
        return backend

    def backend_local(self, now: float | None = None) -> Any:
        from datetime import datetime
        from zoneinfo import ZoneInfo
        return datetime.fromtimestamp(self.now() if now is None else now, ZoneInfo("Asia/Shanghai"))


@dataclass
class FakeService:
    """What the page reads of the running service; `snapshot` may be swapped or raise."""

    snapshot: Callable[[], Snapshot]
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    qr_images: dict[str, bytes] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)
    kicks: int = 0

    def snapshot_for_http(self) -> Snapshot:
        return self.snapshot()

    def kick_dispatch(self) -> None:
        self.kicks += 1

    def changed(self, topic: str) -> None:
        for f in self.listeners:
            f(topic)


@contextmanager
def served_app(config: Config, store: Store, service: Any) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """The application on 127.0.0.1:<free port> in a thread's own loop; yields (base URL, that loop)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        server = WebServer(build_app(config, store, service, lambda st: f"https://mms.example/{st.item_id}"),
                           ("127.0.0.1:0",))
        await server.start()
        holder["server"], holder["url"] = server, server.urls[0]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # told to the test, not lost in the thread
            holder["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True, name="web-test")
    thread.start()
    assert ready.wait(30), "the web app did not start"
    if "error" in holder:
        thread.join(5)
        loop.close()
        raise holder["error"]
    try:
        yield holder["url"], loop
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
