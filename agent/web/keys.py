"""The application's typed state: what the handlers use (`Deps`, under `DEPS`) and what they read of the service."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from loguru import logger

from agent.config import Config
from agent.core.claims import LOCAL_MEMBER, clean_note
from agent.core.rules import ItemState
from agent.outbox import holds
from agent.outbox.enqueue import rules_config, team_rules
from agent.outbox.store import Store
from agent.outbox.team_store import Team
from agent.service.health import Snapshot
from agent.web.auth import Signer, Throttle
from agent.web.hub import Hub
from agent.web.model import PAGE_SIZE, Filters, View

CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Who:
    """Who asks: a member (None: nobody), the session's nonce (CSRF), and how: session | loopback | token."""

    member: str | None = None
    nonce: str = ""
    via: str = ""


WHO = web.RequestKey("who", Who)


class Source(Protocol):
    """What the page reads from the running service (`agent.service.scheduler.Service` is one)."""

    listeners: list[Callable[[str], None]]
    qr_images: dict[str, bytes]

    def snapshot_for_http(self) -> Snapshot: ...
    def kick_dispatch(self) -> None: ...
    def changed(self, topic: str) -> None: ...
    @property
    def clock(self) -> Any: ...


@dataclass
class Deps:
    """Everything the handlers use, built once per application."""

    config: Config
    store: Store
    source: Source
    mms_url: Callable[[ItemState], str]
    signer: Signer
    env: jinja2.Environment
    hub: Hub = field(default_factory=Hub)
    throttle: Throttle = field(default_factory=Throttle)
    cache: dict[Any, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    @property
    def team(self) -> Team:
        return Team(self.store)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.agent.timezone)

    def view(self) -> View:
        return View(self.team, rules_config(self.config), team_rules(self.config), self.tz, self.mms_url,
                    self.source.clock.from_backend)

    def items(self, f: Filters, me: str, page_size: int = PAGE_SIZE) -> dict[str, Any]:
        """The 待办 list, shared by the pages that ask between two changes (every open page refetches after the
        same event): kept until the next "items" change, at most CACHE_SECONDS."""
        key = (self.hub.versions.get("items", 0), f, me if f.mine else "", page_size)
        now = time.monotonic()
        hit = self.cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        if len(self.cache) > 64 or (self.cache and next(iter(self.cache))[0] != key[0]):
            self.cache.clear()
        data = self.view().items(f, me, self.now(), page_size=page_size)
        self.cache[key] = (now, data)
        return data

    def act(self, key: str, action: str, actor: str, *, version: int | None = None, member: str | None = None,
            text: str = "") -> None:
        """A member's action from the page or the API (`outbox.holds.act`), then the pages hear of it and the
        outbox goes (a release's due stage at once). Raises NotFound, Conflict, ValueError (a bad note too)."""
        note = clean_note(text, self.config.team.note_max_chars) if action == "note" else ""
        holds.act(self.config, self.store, key, action, actor, self.source.clock.backend_local(), self.now(),
                  expected=version, member=member, text=note)
        logger.info("team page: {} {} {}", actor, action, key)
        self.source.changed("items")
        self.source.kick_dispatch()

    def now(self) -> float:
        return float(self.source.clock.now())

    def open_member(self) -> str:
        members = self.config.team.members
        return members[0].name if len(members) == 1 else LOCAL_MEMBER


DEPS = web.AppKey("deps", Deps)


