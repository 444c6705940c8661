"""Sharing the checks among nodes with procrastinate: a periodic tick (one node wins each tick) defers the shops
the schedule says are due, one job per shop with a per-shop `lock` (never two checks of a shop at once) and
`queueing_lock` (never two waiting); a periodic reaper gives the shops of a silent node back to the schedule.

Checks are never retried by procrastinate (its retry collides with `queueing_lock`, procrastinate #1446/#1543):
a failed or stalled check ends failed and the schedule defers the shop again. A node presumed dead that wakes
up cannot write: every check carries its lease, and the commit is fenced on it (`Schedule.fence`); and at its
next heartbeat it abandons the checks whose leases were taken over, so that it does not go on reading (pages,
fallbacks) a shop another node is checking now.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.jobs import Status

from agent.cluster.schedule import Fenced, Schedule

SHARED = "default"  # the queue every node takes from; each node also has its own, "node:NAME"
RunCheck = Callable[[str, int], Awaitable[None]]  # (shop, lease): check it, commit fenced on the lease
NextDue = Callable[[str, float, float], float]  # (shop, was due, now) → next due (database time)


@dataclass(frozen=True)
class WorkOptions:
    """How a node takes part: its name, checks at once, the tick and reaper periods (6-field crons: the sixth
    field is the seconds), how long a silent node is given before its shops are taken back, its heartbeat."""

    node: str
    concurrency: int = 10
    tick_cron: str = "* * * * * */2"  # every 2 s
    reap_cron: str = "* * * * * */5"  # every 5 s
    stall_seconds: float = 60.0
    heartbeat_seconds: float = 5.0
    fetch_seconds: float = 1.0
    grace_seconds: float | None = None  # on stop, how long checks in flight may take (None: as long as they need)


def default_node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Work:
    """One node's share of the checks: `await run()` until cancelled (then it stops taking jobs)."""

    def __init__(self, url: str, schedule: Schedule, run_check: RunCheck, next_due: NextDue,
                 options: WorkOptions) -> None:
        self.schedule, self.run_check, self.next_due, self.options = schedule, run_check, next_due, options
        self.app = App(connector=PsycopgConnector(conninfo=url))
        self._running: dict[str, tuple[int, asyncio.Task[None]]] = {}  # shop → (lease, its check) in flight
        self._lost: dict[str, int] = {}  # shop → the lease abandoned (taken over while this node was silent)
        self._register()

    async def check_leased(self, shop: str) -> None:
        """One check of `shop` on a new lease: run, fenced at its commit, abandoned if the lease is taken over
        before that (`abandon_lost`); the shop is free for the next check when it ends."""
        node = self.options.node
        lease = self.schedule.begin(shop, node)
        run = asyncio.ensure_future(self.run_check(shop, lease))
        self._running[shop] = (lease, run)
        try:
            await run
        except Fenced as exc:
            logger.warning("node {}: {}", node, exc)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._lost.pop(shop, None) != lease or (current is not None and current.cancelling()):
                raise  # a stop, not a lost lease
            logger.warning("node {}: the check of {!r} (lease {}) was taken over while this node was silent: "
                           "abandoned, nothing written", node, shop, lease)
        finally:
            self._running.pop(shop, None)
            self._lost.pop(shop, None)  # a shop's checks never overlap on one node: any mark left was this one's
            self.schedule.end(shop, lease)

    def abandon_lost(self) -> list[str]:
        """Cancel the checks in flight whose leases another node has taken (this node was presumed dead);
        the shops abandoned."""
        if not self._running:
            return []
        now = self.schedule.leases(list(self._running))
        lost = []
        for shop, (lease, run) in list(self._running.items()):
            if now.get(shop) != lease and not run.done():
                self._lost[shop] = lease
                run.cancel()
                lost.append(shop)
        return lost

    def _register(self) -> None:
        opts = self.options

        @self.app.task(name="check_shop", retry=False)
        async def check_shop(shop: str) -> None:
            await self.check_leased(shop)

        @self.app.periodic(cron=opts.tick_cron)
        @self.app.task(name="tick", queueing_lock="tick", retry=False)
        async def tick(timestamp: int) -> None:
            due = self.schedule.claim_due(self.next_due)
            queues = self.affinity(due) if due else {}
            for shop in due:
                try:
                    await check_shop.configure(lock=f"shop:{shop}", queueing_lock=f"shop:{shop}",
                                               queue=queues[shop]).defer_async(shop=shop)
                except AlreadyEnqueued:  # waiting already: late, not skipped
                    logger.debug("check of {} is already waiting", shop)

        @self.app.periodic(cron=opts.reap_cron)
        @self.app.task(name="reap", queueing_lock="reap", retry=False)
        async def reap(timestamp: int) -> None:
            await self.reap()

        self.check_shop = check_shop

    def affinity(self, shops: list[str]) -> dict[str, str]:
        """Each due shop's queue: the node that checked it last (warm connections, the same exit) while that node
        is alive and the shop is within its fair share (its first shops by name, up to all shops / live nodes),
        else the shared queue any node takes from: a node that joins, or whose peer died, gets shops, and the
        load evens out while every node keeps a stable set."""
        now, last = self.schedule.now(), self.schedule.last_nodes()
        alive = {n.name for n in self.schedule.nodes()
                 if n.stopped_at is None and now - n.heartbeat_at <= self.options.stall_seconds}
        fair = -(-len(last) // max(1, len(alive)))  # ceil
        kept: set[str] = set()
        by_node: dict[str, list[str]] = {}
        for shop, node in sorted(last.items()):
            if node in alive:
                by_node.setdefault(node, []).append(shop)
        for own in by_node.values():
            kept.update(own[:fair])
        return {shop: f"node:{last[shop]}" if shop in kept else SHARED for shop in shops}

    def release(self, nodes: list[str]) -> int:
        """Jobs waiting in the queues of `nodes` (dead or stopped) go to the shared queue; how many."""
        if not nodes:
            return 0
        marks = ", ".join("?" for _ in nodes)
        with self.schedule.db.tx():
            cur = self.schedule.db.execute(
                f"UPDATE procrastinate_jobs SET queue_name = ? WHERE status = 'todo' AND queue_name IN ({marks})",
                (SHARED, *(f"node:{n}" for n in nodes)))
        return int(cur.rowcount or 0)

    async def reap(self) -> list[tuple[str, str]]:
        """Fail the jobs of silent workers (never retried: the schedule defers their shops again) and take back
        the shops their nodes held."""
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.options.stall_seconds)
        for job in stalled:
            assert job.id is not None
            await self.app.job_manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
            logger.warning("node {}: job {} ({} {}) of a silent node marked failed", self.options.node, job.id,
                           job.task_name, job.task_kwargs)
        taken = self.schedule.take_back(self.options.stall_seconds)
        for shop, node in taken:
            logger.warning("node {}: shop {} taken back from silent node {}", self.options.node, shop, node)
        now = self.schedule.now()
        gone = [n.name for n in self.schedule.nodes()
                if n.stopped_at is not None or now - n.heartbeat_at > self.options.stall_seconds]
        moved = self.release(gone)
        if moved:
            logger.warning("node {}: {} waiting check(s) of stopped or silent nodes moved to the shared queue",
                           self.options.node, moved)
        return taken

    async def migrate(self) -> None:
        """procrastinate's own tables (when absent) and ours."""
        async with self.app.open_async():
            exists = await self.app.connector.execute_query_one_async(
                "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
            if not exists["present"]:
                await self.app.schema_manager.apply_schema_async()
        self.schedule.create()

    async def run(self) -> None:
        """Beat and take jobs until cancelled; a cancel stops the worker gracefully (jobs in flight finish
        within procrastinate's shutdown timeout, else are aborted and end failed)."""
        loop = asyncio.get_running_loop()
        beat = loop.create_task(self._beat())
        loop.set_exception_handler(self._reaped_job_handler(loop.get_exception_handler()))
        try:
            async with self.app.open_async():
                await self.app.run_worker_async(
                    queues=[f"node:{self.options.node}", SHARED],
                    name=self.options.node, concurrency=self.options.concurrency, install_signal_handlers=False,
                    update_heartbeat_interval=self.options.heartbeat_seconds,
                    stalled_worker_timeout=self.options.stall_seconds,
                    fetch_job_polling_interval=self.options.fetch_seconds, delete_jobs="successful",
                    listen_notify=True, **({"shutdown_graceful_timeout": self.options.grace_seconds}
                                           if self.options.grace_seconds is not None else {}))
        finally:
            beat.cancel()

    def _reaped_job_handler(self, previous: Any) -> Any:
        """A node that was presumed dead (frozen, cut off) and wakes up finds its jobs already ended failed by
        another node's reaper; procrastinate then fails to finish them in a task nobody awaits. That is the fence
        working, not a crash: one warning instead of an ERROR with a traceback."""
        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            cause = getattr(exc, "__cause__", None)
            if isinstance(exc, ConnectorException) and 'not in "doing"' in str(cause):
                task = context.get("future")
                logger.warning("node {}: {} had been ended by another node while this one was silent",
                               self.options.node, task.get_name() if isinstance(task, asyncio.Task) else "a job")
            elif previous is None:
                loop.default_exception_handler(context)
            else:
                previous(loop, context)
        return handler

    async def _beat(self) -> None:
        host = socket.gethostname()
        while True:
            self.schedule.beat(self.options.node, os.getpid(), host)
            self.abandon_lost()
            await asyncio.sleep(self.options.heartbeat_seconds)
