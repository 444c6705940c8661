"""Shared fixtures: a live sandbox on a free loopback port, and Chromium launch options for pytest-playwright."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from agent.browser.chromium import launch_options
from agent.sandbox.backend import Backend
from agent.sandbox.control import SandboxControl, http_login
from agent.sandbox.server import SandboxServer

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a fresh thread: pytest-playwright's sync fixtures leave an event loop marked as
    running in the main thread once any `page` test has run, and asyncio.run refuses to nest."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


@dataclass
class Sandbox:
    url: str
    backend: Backend
    control: SandboxControl
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        """An httpx client on the sandbox, closed when the test ends."""
        c = httpx.Client(base_url=self.url, timeout=10)
        self.clients.append(c)
        return c

    def login_http(self, username: str, password: str = "demo-pass") -> httpx.Client:
        """An httpx client logged in through the password API (no browser)."""
        c = self.client()
        c.get("/login/")
        r = auth(c, username, password)
        assert r["success"], r
        return c


auth = http_login  # the login page's own request, for tests over plain HTTP


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh sandbox with the demo scenario; tests load others through `sandbox.control`."""
    backend = Backend(seed=1)
    server = SandboxServer(backend).start()
    control = SandboxControl(server.url)
    control.load("demo")
    box = Sandbox(server.url, backend, control)
    try:
        yield box
    finally:
        for c in box.clients:
            c.close()
        control.close()
        server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Debian's Chromium when Playwright's own download is absent. A missing browser raises here:
    # browser tests error out, they are never skipped.
    opts = launch_options()
    merged = {**browser_type_launch_args, "args": opts["args"]}
    if "executable_path" in opts:
        merged["executable_path"] = opts["executable_path"]
    return merged


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """One real PostgreSQL for the whole run, started the first time a test asks for it."""
    from tests.pg import Cluster

    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_at(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Where a store lives, once per engine: a SQLite file, or a fresh database of the real PostgreSQL. The store's
    tests take it so that both engines keep every promise. PostgreSQL connections a test left open are closed
    after it (as a process exit would)."""
    if request.param == "sqlite":
        yield tmp_path / "agent.db"
        return
    from agent.outbox import engine

    opened: list[engine.PostgresEngine] = []
    original = engine.PostgresEngine.__init__

    def tracked(self: engine.PostgresEngine, url: str, name: str = "pdd-agent") -> None:
        original(self, url, name)
        opened.append(self)

    monkeypatch.setattr(engine.PostgresEngine, "__init__", tracked)
    yield request.getfixturevalue("pg_cluster").database()
    for e in opened:
        e.close()
