"""The service as one node of several ([cluster] database_url): its checks come from the shared schedule through
procrastinate instead of its own per-shop timers, each committed fenced on its lease; the shops' sessions are
shared, encrypted; only one node sends the outbox at a time (a PostgreSQL advisory lock, released by the database
if the node dies); keep-alive visits only the shops this node checked last."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger

from agent.cluster.schedule import Schedule
from agent.cluster.sessions import SharedSessions
from agent.cluster.work import Work, WorkOptions, default_node_name
from agent.config import Config
from agent.config.crontab import cron_trigger
from agent.config.durations import seconds
from agent.outbox.engine import Engine, open_engine

DISPATCH_LOCK = 7221003  # the advisory lock of the node sending the outbox
CheckOne = Callable[[str, Callable[[Engine], None]], Awaitable[Any]]  # (shop, fence) → the service's check


class NodeRole:
    """This node's part: `start()` in the running loop, `stop()` on the way out."""

    def __init__(self, config: Config, check: CheckOne) -> None:
        self.config = config
        self.tz = ZoneInfo(config.agent.timezone)
        self.url = config.cluster.database_url
        self.node = config.cluster.node_name or default_node_name()
        # our own connection: the schedule, the dispatch lock (named after the node in pg_stat_activity)
        self.db = open_engine(self.url, f"pdd-agent node {self.node}")
        self.schedule = Schedule(self.db)
        self.sessions = SharedSessions(self.db, config.cluster.session_keys, self.node)
        self._check = check
        stall = seconds(self.config.cluster.stall_timeout)
        self.work = Work(self.url, self.schedule, self.run_check, self.next_due, WorkOptions(
            node=self.node, concurrency=config.browser.max_concurrent_checks, stall_seconds=stall,
            heartbeat_seconds=max(1.0, min(10.0, stall / 6)), grace_seconds=seconds(config.schedule.shutdown_grace)))
        self.shops = {s.name: s for s in config.shops if s.enabled}
        self._task: asyncio.Task[None] | None = None
        self.started = False  # the tables are in place (the snapshot may read them)

    async def start(self) -> None:
        """Tables when absent, this config's shops in the schedule (new ones spread over the jitter), the worker."""
        await self.work.migrate()
        self.sessions.create()
        now, spread = self.schedule.now(), min(seconds(self.config.schedule.jitter), 5.0)
        self.schedule.sync({name: now + random.uniform(0, spread) for name in self.shops})
        self._task = asyncio.get_running_loop().create_task(self.work.run())
        self.started = True
        logger.info("cluster node {}: sharing {} shop(s) on PostgreSQL", self.node, len(self.shops))

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: this node's shops and schedule settings; the shared schedule gets the shops the file
        now names (new ones spread over the jitter, removed ones dropped; every node reloads the same file)."""
        self.config = config
        self.shops = {s.name: s for s in config.shops if s.enabled}
        if self.started:
            now, spread = self.schedule.now(), min(seconds(config.schedule.jitter), 5.0)
            self.schedule.sync({name: now + random.uniform(0, spread) for name in self.shops})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            self.schedule.stopped(self.node)
            self.work.release([self.node])  # its waiting checks go to the shared queue
        finally:
            self.db.close()

    # ---- the shared schedule -----------------------------------------------------------------
    def next_due(self, shop: str, was: float, now: float) -> float:
        """A shop's next time (database time): its interval after the due time it had (never in the past), plus
        jitter; or its cron's next time."""
        cfg = self.shops.get(shop)
        sched = self.config.schedule
        if cfg is None:  # removed from this node's config: the next start's sync drops it
            return now + 3600
        cron = sched.cron_of(cfg)
        if cron:
            nxt = cron_trigger(cron, self.tz, seconds(sched.jitter)).get_next_fire_time(
                None, datetime.fromtimestamp(now + 1, self.tz))
            return nxt.timestamp() if nxt else now + 86400
        return max(was + sched.interval_of(cfg), now) + random.uniform(0, seconds(sched.jitter))

    async def run_check(self, shop: str, lease: int) -> None:
        await self._check(shop, lambda db: self.schedule.fence(shop, lease, db))

    def view(self) -> dict[str, Any]:
        """For the snapshot (status, /metrics, the health verdict): this node, every node, the check jobs."""
        running = self._task is not None and not self._task.done()
        error = ""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            error = f"{type(exc).__name__}: {str(exc)[:200]}" if exc else "ended"
        try:
            now, stall = self.schedule.now(), seconds(self.config.cluster.stall_timeout)
            nodes = [{"name": n.name, "age": round(now - n.heartbeat_at, 1),
                      "state": "stopped" if n.stopped_at else ("silent" if now - n.heartbeat_at > stall else "ok")}
                     for n in self.schedule.nodes()]
            jobs = dict(self.db.execute("SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name = "
                                        "'check_shop' GROUP BY status").fetchall())
        except Exception as exc:  # the database is unreachable: say so, the service goes on
            return {"node": self.node, "worker": False, "error": f"database: {type(exc).__name__}", "nodes": [],
                    "jobs": {}}
        return {"node": self.node, "worker": running, "error": error, "nodes": nodes, "jobs": jobs}

    # ---- one sender at a time -------------------------------------------------------------------
    def try_dispatch_lock(self) -> bool:
        return bool(self.db.execute("SELECT pg_try_advisory_lock(?)", (DISPATCH_LOCK,)).fetchone()[0])

    def release_dispatch_lock(self) -> None:
        self.db.execute("SELECT pg_advisory_unlock(?)", (DISPATCH_LOCK,))

    def mine(self, shop: str) -> bool:
        """This node checked the shop last (its keep-alive is ours)."""
        return self.schedule.last_nodes().get(shop) == self.node
