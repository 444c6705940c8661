"""The long-running agent: APScheduler jobs for checks, keep-alive, dispatch, digest and heartbeat; clean stop."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger

from agent import __version__
from agent.browser.pool import BrowserPool
from agent.browser.qr_login import QR_TIMEOUT_SECONDS
from agent.clock import Clock
from agent.config import Config, ShopConfig
from agent.config.crontab import cron_trigger
from agent.config.durations import seconds
from agent.core.models import CheckFailure, OpenLogin, ShopResult, ShopState
from agent.core.money import Refund
from agent.outbox import holds
from agent.outbox.dispatch import Report
from agent.outbox.enqueue import queue_digest, queue_new_qr
from agent.outbox.store import Fence, Store
from agent.service.capacity import capacity
from agent.service.health import LoopLag, ShopStatus, Snapshot, channel_view, shop_statuses, write_heartbeat
from agent.service.nodes import NodeRole
from agent.service.pipeline import Pipeline
from agent.service.triggers import check_trigger, next_check_at, stale_after
from notifiers.base import Notifier

HEARTBEAT_SECONDS = 5.0
SWEEP_SECONDS = 2.0  # lapsed claims are found (and their due stage queued) within this
PUBLISH_DELAY = 0.5  # a finished check shows in /healthz, /metrics and the heartbeat file within this


def _no_max_instances_lines(record: logging.LogRecord) -> bool:
    """APScheduler logs each skipped run; `Service._skipped` reports them as one summary."""
    return "maximum number of running instances reached" not in record.getMessage()


def make_scheduler(tz: ZoneInfo) -> AsyncIOScheduler:
    """Jobs never overlap themselves; a run missed while the host slept or stalled runs once when it can:
    coalesced, and however late (misfire_grace_time None; APScheduler's default of 1 s would drop it)."""
    return AsyncIOScheduler(timezone=tz, job_defaults={"coalesce": True, "max_instances": 1,
                                                        "misfire_grace_time": None})


class Service:
    """Owns the scheduler and the in-flight work. `start()`, then `shutdown()` (or `run_once()` alone)."""

    def __init__(self, config: Config, store: Store, pool: BrowserPool, sel: Mapping[str, Any],
                 notifiers: Mapping[str, Notifier], *, qr_timeout: float = QR_TIMEOUT_SECONDS,
                 clock: Clock | None = None) -> None:
        self.config, self.store, self.pool, self.notifiers = config, store, pool, notifiers
        self.tz = ZoneInfo(config.agent.timezone)
        self.clock = clock or Clock(self.tz)
        # one node of several ([cluster] database_url): checks come from the shared schedule, not our timers, and
        # the shops' sessions are shared (encrypted in the database)
        self.role = NodeRole(config, self._check_leased) if config.cluster.database_url else None
        self.pipeline = Pipeline(config, store, pool, sel, notifiers, hold_qr_logins=True, clock=self.clock,
                                 saved_for=self.role.sessions.for_shop if self.role else None)
        store.probe_channels_now(self.clock.now())  # a restart tries failing channels at once
        self.qr_timeout = qr_timeout
        c = capacity(config)  # a crowded round is spread over the interval only where even twice its load fits
        self.spreads = c.interval is not None and 2 * c.round_seconds <= c.interval
        self.scheduler = make_scheduler(self.tz)
        self.started_at = self.clock.now()
        self.stopping = False
        self.inflight: set[asyncio.Task[Any]] = set()
        self.qr_waits: dict[str, asyncio.Task[None]] = {}
        self.dispatch_lock = asyncio.Lock()
        self._dispatch_kicked = False
        self._background: set[asyncio.Task[None]] = set()
        self.busy: set[str] = set()  # shops being checked right now
        self.skipped, self._skip_reported = 0, -1e9  # checks skipped since the last summary
        self.shops = {s.name: s for s in config.shops}
        self.status = {s.name: self._scheduled(self.shops[s.name], s)
                       for s in shop_statuses(config, store)}
        self.sent = Report()  # per-channel totals of this process (messages, alert rows, failures)
        self.lag = LoopLag()
        self.on_reload: list[Callable[[Config], None]] = []  # the team page takes the new config here
        # the config file's digest, load time and last refused reload (set by `run`, which re-reads it on SIGHUP)
        self.config_view: Callable[[], dict[str, Any]] | None = None
        self.latest = self._snapshot()
        self._publishing: asyncio.TimerHandle | None = None  # a publish booked by publish_soon
        self.on_check: Callable[[ShopResult], None] | None = None  # the demo listens here
        self.listeners: list[Callable[[str], None]] = []  # the team page: "items" | "shops" | "channels" changed
        self.qr_images: dict[str, bytes] = {}  # shops whose QR login waits for a scan: the QR the team was sent

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule everything (call inside the running loop). First checks start within the jitter."""
        sched, now = self.config.schedule, datetime.now(self.tz)
        spread = seconds(sched.jitter)
        for shop in self.config.shops:
            if shop.enabled:
                self.add_shop_jobs(shop, now + timedelta(seconds=random.uniform(0, min(spread, 5.0))))
        self.add_global_jobs(first_dispatch=now)
        self.scheduler.add_job(self._tracked(self.sweep_claims),
                               IntervalTrigger(seconds=SWEEP_SECONDS, timezone=self.tz),
                               id="claims", name="claims")
        self.scheduler.add_job(self.heartbeat, IntervalTrigger(seconds=HEARTBEAT_SECONDS, timezone=self.tz),
                               id="heartbeat", name="heartbeat", next_run_time=now)
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler.scheduler").addFilter(_no_max_instances_lines)
        self.scheduler.start()
        self.lag.start()
        if self.role is not None:
            self.spawn(self.role.start())
        logger.info("service started: {} shop(s), checks every {}, dispatch every {}", len(self.shops),
                    sched.check_cron or sched.check_interval, sched.dispatch_interval)

    def add_shop_jobs(self, shop: ShopConfig, first: datetime) -> None:
        """The shop's check timer (one machine; several nodes share the schedule) first at `first`, and its
        keep-alive; replaces the ones it had (a reload)."""
        sched = self.config.schedule
        if self.role is None:
            self.scheduler.add_job(self._tracked(self.check_shop), check_trigger(self.config, shop, self.tz),
                                   args=[shop.name], id=f"check:{shop.name}", name=f"check {shop.name}",
                                   next_run_time=first, replace_existing=True)
        keep, interval = seconds(sched.keepalive_interval), sched.interval_of(shop)
        if keep and (not interval or keep < interval):
            self.scheduler.add_job(self._tracked(self.keepalive), IntervalTrigger(seconds=keep, timezone=self.tz),
                                   args=[shop.name], id=f"keepalive:{shop.name}", name=f"keepalive {shop.name}",
                                   replace_existing=True)
        elif self.scheduler.get_job(f"keepalive:{shop.name}") is not None:
            self.scheduler.remove_job(f"keepalive:{shop.name}")

    def add_global_jobs(self, first_dispatch: datetime | None = None) -> None:
        """The dispatch timer and the daily digest (replaced on a reload)."""
        sched = self.config.schedule
        self.scheduler.add_job(self._tracked(self.dispatch), IntervalTrigger(
            seconds=seconds(sched.dispatch_interval), timezone=self.tz), id="dispatch", name="dispatch",
            next_run_time=first_dispatch or datetime.now(self.tz), replace_existing=True)
        if sched.digest_cron:
            self.scheduler.add_job(self._tracked(self.digest), cron_trigger(sched.digest_cron, self.tz),
                                   id="digest", name="digest", replace_existing=True)
        elif self.scheduler.get_job("digest") is not None:
            self.scheduler.remove_job("digest")

    def refresh_status(self) -> None:
        """Each configured shop's status after a reload: the ones it had keep their counters."""
        fresh = {st.name: st for st in shop_statuses(self.config, self.store)}
        self.status = {name: self._scheduled(self.shops[name], self.status.get(name) or fresh[name])
                       for name in self.shops}

    async def shutdown(self, grace: float | None = None, hurry: asyncio.Event | None = None) -> None:
        """Stop new work, give the work in flight `grace` seconds (a `hurry` event cuts it short), then
        send the outbox once. Cancelled checks lose nothing: a check commits only when it completes."""
        grace = seconds(self.config.schedule.shutdown_grace) if grace is None else grace
        self.stopping = True
        if self.scheduler.running:
            self.scheduler.pause()
        if self.role is not None:  # no new shared job; the checks in flight finish within the grace
            with suppress(Exception):
                await asyncio.wait_for(self.role.stop(), grace + 10)
        self.pipeline.stop_accepting()  # checks still waiting for a browser slot end without starting
        busy = {t for t in self.inflight if not t.done()}
        if busy:
            active = len(self.pipeline.in_flight)
            logger.info("stopping: waiting up to {:.0f} s for {} check(s) in flight; {} queued job(s) will not "
                        "start", grace, active, max(0, len(busy) - active))
            waiter = asyncio.ensure_future(asyncio.wait(busy, timeout=grace))
            hurried = asyncio.ensure_future(hurry.wait()) if hurry else None
            await asyncio.wait({waiter, *([hurried] if hurried else [])}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (waiter, hurried):
                if fut is not None and not fut.done():
                    fut.cancel()
        late = [t for t in self.inflight if not t.done()]
        for task in (*late, *self.qr_waits.values()):
            task.cancel()
        for task in (*late, *self.qr_waits.values()):
            with suppress(asyncio.CancelledError, Exception):
                await task
        if late:
            logger.warning("stopping: {} job(s) did not finish in time and were cancelled", len(late))
        with suppress(Exception):
            report = await self.dispatch()
            logger.info("stopping: outbox flushed ({} message(s) sent, {} left)", report.sent,
                        self.store.depth().get("pending", 0))
        self.lag.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        logging.getLogger("apscheduler.scheduler").removeFilter(_no_max_instances_lines)
        await self.heartbeat()

    def changed(self, topic: str) -> None:
        """Tell the listeners (the team page's event stream) that `topic` changed."""
        for listen in self.listeners:
            try:
                listen(topic)
            except Exception:  # a listener never breaks the service
                logger.exception("change listener failed")

    async def sweep_claims(self) -> None:
        """Claims that lapsed (TTL, member removed, deadline moved) open again; their due stage goes out now."""
        changed = holds.sweep(self.config, self.store, self.clock.backend_local(), self.clock.now())
        if changed:
            self.changed("items")
            self.kick_dispatch()

    def _skipped(self, event: JobSubmissionEvent) -> None:
        """A check came due while the previous one of the same shop still ran or waited for a browser slot:
        one summary every 10 minutes instead of a line per shop and run."""
        if not str(event.job_id).startswith("check:"):
            return  # a kicked dispatch or keep-alive that was already running: harmless
        self.skipped += 1
        now = time.monotonic()
        if now - self._skip_reported < 600:
            return
        cfg = self.config
        logger.warning(
            "checks are not keeping up: {} scheduled check(s) skipped because the previous check of the same shop "
            "had not finished ({} shops, max_concurrent_checks = {}, max_pages = {}, {:g} requests/s, pacing {} s); "
            "raise [schedule] check_interval, [agent] max_requests_per_second or [browser] max_concurrent_checks "
            "(检查跟不上排班：请加大检查间隔、请求预算或并发数)", self.skipped, len(self.shops),
            cfg.browser.max_concurrent_checks, cfg.browser.pages, cfg.agent.max_requests_per_second,
            cfg.agent.pacing_seconds)
        self._skip_reported, self.skipped = now, 0

    def _tracked(self, job: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """A job that is skipped while stopping and remembered while it runs (for the graceful stop)."""
        async def run(*args: Any) -> Any:
            if self.stopping:
                return None
            task = asyncio.current_task()
            if task is not None:
                self.inflight.add(task)
            try:
                return await job(*args)
            except asyncio.CancelledError:  # stopping: a check that never started, or one past the grace
                logger.debug("job {} cancelled", getattr(job, "__name__", job))
                return None
            except Exception:  # a job never dies silently; the next run tries again
                logger.exception("job {} failed", getattr(job, "__name__", job))
                return None
            finally:
                if task is not None:
                    self.inflight.discard(task)
        run.__name__ = getattr(job, "__name__", "job")
        return run

    # ---- jobs ---------------------------------------------------------------------------------
    async def _check_leased(self, name: str, fence: Fence) -> None:
        """A check the shared schedule gave this node; its commit is fenced on the node's lease."""
        if not self.stopping:
            await self.check_shop(name, fence)

    async def check_shop(self, name: str, fence: Fence | None = None) -> ShopResult | None:
        shop = self.shops.get(name)
        if shop is None or not shop.enabled:  # removed by a reload while its check was waiting
            logger.info("check of {} skipped: no longer in the config", name)
            return None
        if name in self.qr_waits:  # its QR login page is open for a scan: a new check would replace the QR
            logger.debug("check of {} skipped: waiting for the QR scan", name)
            return None
        self.busy.add(name)
        try:
            results = await (self.pipeline.check([shop], {name: fence}) if fence is not None
                             else self.pipeline.check([shop]))
        finally:
            self.busy.discard(name)
        if not results:  # a stop ended it before its work
            return None
        [result] = results
        await self._take_open_login(shop, result)
        self._record(shop, result, result.duration)
        # when the check's own work began by our clock (checked_at is the backend's time for a read shop)
        began = (datetime.fromtimestamp(result.began, self.tz) if result.began
                 else datetime.now(self.tz) - timedelta(seconds=result.duration))
        self._book_next(shop, began, spread=result.crowded and self.spreads)
        self.kick_dispatch()  # alerts go out now, not at the next dispatch tick
        if result.changed:  # the open pages refetch only when something they show moved
            self.changed("items")
        if self.on_check:
            self.on_check(result)
        return result

    async def check_all(self) -> list[ShopResult]:
        """Every enabled shop at once (within the concurrency limit): the first cycle and `--once`."""
        shops = [s for s in self.config.shops if s.enabled]
        self.busy.update(s.name for s in shops)
        try:
            results = await self.pipeline.check(shops)
        finally:
            self.busy.clear()
        for result in results:
            shop = self.shops[result.name]
            await self._take_open_login(shop, result)
            self._record(shop, result, result.duration)
        return results

    async def keepalive(self, name: str) -> None:
        shop = self.shops[name]
        if name in self.qr_waits or name in self.busy or (self.role is not None and not self.role.mine(name)):
            return
        try:
            alive = await self.pipeline.keepalive(shop)
        except (CheckFailure, TimeoutError) as exc:  # rate limited, backend down: the next check will tell
            logger.info("keep-alive {} skipped: {}", name, exc)
            return
        logger.info("keep-alive {}: session {}", name, "alive" if alive else "lost")
        if not alive:  # a check now tells the team (and logs in again if it can)
            self.kick(f"check:{name}")

    async def dispatch(self) -> Report:
        async with self.dispatch_lock:
            return await self._dispatch_locked()

    def kick_dispatch(self) -> None:
        """Send the outbox now (once more after the run in progress, if any)."""
        if self.stopping or self._dispatch_kicked:
            return
        self._dispatch_kicked = True

        async def kicked() -> None:
            async with self.dispatch_lock:
                self._dispatch_kicked = False
                await self._dispatch_locked()
        self.spawn(self._tracked(kicked)())

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run `work` in the background (kept referenced until done; its errors are logged)."""
        async def logged() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background work failed")
        task = asyncio.get_running_loop().create_task(logged())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _dispatch_locked(self) -> Report:
        if self.role is not None:  # several nodes: one sends at a time (the others' turn comes when it is done)
            if not self.role.try_dispatch_lock():
                return Report()
            try:
                report = await self.pipeline.dispatch(rate_now=self.role.schedule.now)
            finally:
                self.role.release_dispatch_lock()
        else:
            report = await self.pipeline.dispatch()
        self.sent.add(report)
        if report.sent or report.dead or report.retried:
            self.changed("items")
        return report

    async def digest(self) -> None:
        """Each shop's daily digest; shops with [watch].money read their 退款成功 list first (request-only). With
        several nodes, the first whose timer fires does it for the day."""
        if self.role is not None and not self.role.schedule.claim_run(
                "digest", self.clock.backend_local().date().isoformat(), self.role.node):
            return
        shops = [s for s in self.config.shops if s.enabled]
        reads = await asyncio.gather(*(self._refunds(s) for s in shops))
        now = self.clock.backend_local()
        queued = sum(queue_digest(self.config, self.store, s, now, self.clock.now(), refunds=r)
                     for s, r in zip(shops, reads, strict=True))
        logger.info("daily digest queued: {} message(s)", queued)
        self.kick_dispatch()

    async def _refunds(self, shop: ShopConfig) -> list[Refund] | str | None:
        """The shop's 退款成功 rows for its digest, why they could not be read, or None when not watched."""
        if "money" not in self.config.watching(shop):
            return None
        try:
            return await self.pipeline.checker.refunds(shop)
        except CheckFailure as exc:
            logger.warning("shop {}: 退款成功 not read for the digest: {}", shop.name, exc)
            return exc.detail[:200]
        except Exception as exc:  # the digest goes out without it
            logger.exception("shop {}: reading 退款成功 for the digest crashed", shop.name)
            return type(exc).__name__

    def _book_next(self, shop: ShopConfig, began: datetime, *, spread: bool = False) -> None:
        at, job = next_check_at(self.config, shop, began, spread=spread), self.scheduler.get_job(f"check:{shop.name}")
        if at is not None and job is not None and not self.stopping:
            job.modify(next_run_time=max(at, datetime.now(self.tz)))

    def kick(self, job_id: str) -> None:
        """Run a scheduled job now (unless stopping)."""
        job = self.scheduler.get_job(job_id)
        if job is not None and not self.stopping:
            job.modify(next_run_time=datetime.now(self.tz))

    # ---- QR logins pushed to the team ----------------------------------------------------------
    async def _take_open_login(self, shop: ShopConfig, result: ShopResult) -> None:
        """The check left the QR login page open (its image goes to the admins): wait there for the scan."""
        login, result.open_login = result.open_login, None
        if login is None:
            return
        if self.stopping or shop.name in self.qr_waits:
            await login.close()
            return
        if result.qr_png:
            self.qr_images[shop.name] = result.qr_png
        self.qr_waits[shop.name] = asyncio.create_task(self._wait_qr(shop, login))

    async def _wait_qr(self, shop: ShopConfig, login: OpenLogin) -> None:
        try:
            async def push(png: bytes) -> None:  # the pushed QR expired and the page renewed it
                self.qr_images[shop.name] = png
                self.changed("shops")
                queue_new_qr(self.config, self.store, shop, png, self.clock.local())
                self.kick_dispatch()

            await login.wait(self.qr_timeout, push)
            logger.info("shop {} logged in by a scan of the pushed QR code", shop.name)
            self.kick(f"check:{shop.name}")
        except Exception as exc:
            logger.info("QR login of {} did not complete: {}", shop.name, str(exc).splitlines()[0] if str(exc) else exc)
        finally:
            self.qr_waits.pop(shop.name, None)
            self.qr_images.pop(shop.name, None)
            await login.close()

    # ---- health ---------------------------------------------------------------------------------
    def _record(self, shop: ShopConfig, result: ShopResult, duration: float) -> None:
        now = self.clock.now()
        st = self.status.get(shop.name) or ShopStatus(name=shop.name)
        health = self.store.shop_health(shop.name)
        st = replace(st, state=result.state.value, last_check=now, checks=st.checks + 1,
                     failures=st.failures + (0 if result.ok else 1), last_duration=duration,
                     duration_sum=st.duration_sum + duration, consecutive_failures=health.consecutive_failures,
                     last_error=None if result.ok else result.error,
                     finding=result.findings[-1].message if result.findings else None)
        if result.ok:
            deadlines = [i.deadline.timestamp() - result.checked_at.timestamp() + now
                         for i in (*result.aftersales, *result.evidence)]
            st = replace(st, last_ok=now, pending_aftersale=len(result.aftersales),
                         pending_evidence=len(result.evidence), next_deadline=min(deadlines, default=None))
        self.status[shop.name] = self._scheduled(shop, st)
        self.changed("shops")
        self.publish_soon()  # /healthz and the heartbeat file (read by `status`) see it within PUBLISH_DELAY
        if result.state is not ShopState.OK:
            logger.warning("shop {} not read: {} ({} failure(s) in a row)", shop.name, result.state.value,
                           st.consecutive_failures)

    def _scheduled(self, shop: ShopConfig, st: ShopStatus) -> ShopStatus:
        """`st` with what follows from the shop's schedule: its interval and when it counts as stale (two
        scheduled checks after its last read, or after start-up)."""
        ref = datetime.fromtimestamp(max(st.last_ok or 0.0, self.started_at), self.tz)
        return replace(st, enabled=shop.enabled, interval_seconds=self.config.schedule.interval_of(shop),
                       stale_after=stale_after(self.config, shop, ref).timestamp() if shop.enabled else None)

    def _shared_reads(self) -> None:
        """Several nodes: a shop another node read counts as read (its time and state from the shared store)."""
        for name, (last_ok, state, failures, error) in self.store.shops_read().items():
            st, shop = self.status.get(name), self.shops.get(name)
            if st is None or shop is None or (last_ok or 0) <= (st.last_ok or 0):
                continue
            self.status[name] = self._scheduled(shop, replace(st, last_ok=last_ok, state=state or st.state,
                                                              consecutive_failures=failures, last_error=error))

    def _snapshot(self) -> Snapshot:
        now = self.clock.now()
        if self.role is not None:
            self._shared_reads()
        shops = []
        for shop in self.config.shops:
            job = self.scheduler.get_job(f"check:{shop.name}") if self.scheduler.running else None
            when = job.next_run_time if job is not None else None
            shops.append(replace(self.status[shop.name], next_run=when.timestamp() if when else None))
        counts = self.sent.by_channel
        return Snapshot(
            pid=os.getpid(), version=__version__, started_at=self.started_at, updated_at=now,
            scheduler_running=self.scheduler.running and not self.stopping, paused=self.stopping, shops=shops,
            outbox=self.store.depth(), messages_sent={k: v.messages for k, v in counts.items()},
            alerts_sent={k: v.rows for k, v in counts.items()},
            send_failures={k: v.failures for k, v in counts.items()},
            send_failure_classes={k: dict(v.classes) for k, v in counts.items() if v.classes},
            broken_channels=self.store.broken(), dispatch_interval=seconds(self.config.schedule.dispatch_interval),
            channels=channel_view(self.config.notifiers, self.store.channel_states(), self.store.owed(now),
                                  self.store.broken(), self.store.unverified(), self.store.maybe_repeated()),
            requests={**self.pipeline.checker.request_stats(), "loop_lag_max": round(self.lag.max, 3),
                      "loop_lag_recent": self.lag.take_recent()},
            cluster=self.role.view() if self.role is not None and self.role.started else {},
            config=self.config_view() if self.config_view is not None else {},
        )

    async def heartbeat(self) -> None:
        self._publish()

    def publish_soon(self) -> None:
        """Publish within PUBLISH_DELAY: the checks that finish together (a round of many shops) cost one
        snapshot and one heartbeat write, not one each (the event loop stays free for the requests' timing)."""
        if self._publishing is None:
            self._publishing = asyncio.get_running_loop().call_later(PUBLISH_DELAY, self._publish)

    def _publish(self) -> None:
        """A fresh snapshot for /healthz, written to the heartbeat file (a small atomic write)."""
        if self._publishing is not None:
            self._publishing.cancel()
            self._publishing = None
        self.latest = self._snapshot()
        try:
            write_heartbeat(self.config.agent.data_dir, self.latest)
        except OSError as exc:
            logger.error("cannot write the heartbeat file: {}", exc)

    def snapshot_for_http(self) -> Snapshot:
        """The latest snapshot, for the health server's thread; a wedged event loop reads as a stopped scheduler."""
        snap = self.latest
        if self.clock.now() - snap.updated_at > 6 * HEARTBEAT_SECONDS:
            return replace(snap, scheduler_running=False)
        return snap
