"""Re-reading the config of a running service (SIGHUP, `systemctl reload`, `pdd-agent reload`): a file that does
not load is refused and the old config kept; a good one is applied in place, shops, channels and schedules changed
without a restart and without cutting a check in flight. What only a restart can change is named, and kept."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent.config import Config, ConfigError, load_config, locators
from agent.config.durations import seconds
from agent.core.notices import config_refused

if TYPE_CHECKING:
    from agent.service.scheduler import Service

ADMIN_SHOP = "pdd-agent"  # the "shop" of the agent's own notices about its config


@dataclass
class ConfigState:
    """Which file the service runs on, and how its last reload went (shown by `status` and /metrics)."""

    digest: str  # the first 12 hex digits of the file's SHA-256
    loaded_at: float
    failed_at: float | None = None
    error: str = ""  # the refused file's problems, one per line (file:line: key: problem)

    def view(self) -> dict[str, Any]:
        return {"digest": self.digest, "loaded_at": self.loaded_at, "failed_at": self.failed_at, "error": self.error}


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "-"


def restart_only(old: Config, new: Config) -> tuple[Config, list[str]]:
    """`new` with what a running service cannot change put back to `old`'s values, and the keys that differed."""
    kept: list[str] = []
    agent, web = new.agent, new.web
    for key in ("data_dir", "timezone", "health_port", "health_host", "log_level"):
        if getattr(old.agent, key) != getattr(new.agent, key):
            kept.append(f"agent.{key}")
            agent = replace(agent, **{key: getattr(old.agent, key)})
    if old.web.listen != new.web.listen:
        kept.append("web.listen")
        web = replace(web, listen=old.web.listen)
    if old.browser != new.browser:
        kept.append("browser")
    if old.cluster != new.cluster:
        kept.append("cluster")
    return replace(new, agent=agent, web=web, browser=old.browser, cluster=old.cluster), kept


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Names added, removed and changed between two name → settings maps."""
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    changed = [n for n in new if n in old and new[n] != old[n]]
    return added, removed, changed


class Reloader:
    """Applies a config file to a running `Service`; one reload at a time (the caller serialises SIGHUPs)."""

    def __init__(self, service: Service, path: Path) -> None:
        self.service, self.path = service, Path(path)
        self.state = ConfigState(file_digest(self.path), time.time())

    async def reload(self) -> bool:
        """Read the file again; True when it was applied (also when nothing changed)."""
        svc = self.service
        try:
            new = load_config(self.path)
            sel = locators.load(new.agent.selectors_dir)
        except (ConfigError, locators.LocatorError) as exc:
            self._refused(str(exc))
            return False
        new, kept = restart_only(svc.config, new)
        for key in kept:
            logger.warning("config reload: {} changed but takes effect only after a restart (需要重启才能生效)", key)
        await self._apply(new, sel)
        self.state = ConfigState(file_digest(self.path), time.time())
        logger.info("config reloaded from {} ({}): {} shop(s), {} channel(s)", self.path, self.state.digest,
                    sum(1 for s in new.shops if s.enabled), len(new.notifiers))
        svc.changed("shops")
        svc.publish_soon()  # status, /metrics and `pdd-agent reload` see the new digest at once
        return True

    def _refused(self, problems: str) -> None:
        svc, digest = self.service, file_digest(self.path)
        first = self.state.error != problems
        self.state = replace(self.state, failed_at=time.time(), error=problems)
        logger.error("config reload refused, still running on the previous config (配置未重新加载):\n{}", problems)
        if first:  # the admins hear of each bad file once
            alert = config_refused(ADMIN_SHOP, problems, svc.clock.backend_local(), digest)
            channels = [c for c in dict.fromkeys((*svc.config.alerts.admin_notify, *svc.config.alerts.notify))
                        if c in svc.notifiers]
            svc.store.enqueue([(alert.key, c, ADMIN_SHOP, alert.to_dict()) for c in channels[:1]], svc.clock.now())
            svc.kick_dispatch()
        svc.changed("shops")
        svc.publish_soon()

    async def _apply(self, new: Config, sel: Mapping[str, Any]) -> None:
        svc, old = self.service, self.service.config
        await self._channels(old, new)
        before = {s.name: s for s in old.shops if s.enabled}
        after = {s.name: s for s in new.shops if s.enabled}
        added, removed, changed = changes(before, after)
        svc.config = new
        svc.pipeline.reconfigure(new, sel)
        svc.shops = {s.name: s for s in new.shops}
        svc.refresh_status()
        for callback in svc.on_reload:
            callback(new)
        for name in removed:
            task = svc.qr_waits.pop(name, None)
            if task is not None:
                task.cancel()
        if svc.role is not None:  # several nodes: the shared schedule holds the checks; our timers the keep-alive
            svc.role.reconfigure(new)
        self._jobs(added, removed, changed, schedule_changed=old.schedule != new.schedule)
        self._globals(old, new)
        for what, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                logger.info("config reload: shop(s) {}: {}", what, ", ".join(names))

    async def _channels(self, old: Config, new: Config) -> None:
        """Rebuild the channels whose settings changed; the others keep their objects (token caches, clients).
        Their retry state and rate windows live in the store, so they survive either way."""
        from agent.outbox.dispatch import build_notifiers

        svc = self.service
        added, removed, changed = changes(old.notifiers, new.notifiers)
        fresh = build_notifiers(replace(new, notifiers={n: new.notifiers[n] for n in (*added, *changed)}))
        notifiers: dict[str, Any] = svc.notifiers  # type: ignore[assignment]  # the service's own dict
        for name in (*removed, *changed):
            gone = notifiers.pop(name, None)
            if gone is not None:
                await gone.aclose()
        notifiers.update(fresh)
        for what, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                logger.info("config reload: channel(s) {}: {}", what, ", ".join(names))

    def _jobs(self, added: list[str], removed: list[str], changed: list[str], *, schedule_changed: bool) -> None:
        """One machine: the shops' timers. New shops start spread over the first interval (or jitter), removed
        ones lose their timers (a check in flight finishes), changed ones keep their next time on a new trigger."""
        svc = self.service
        for name in removed:
            for prefix in ("check", "keepalive"):
                if svc.scheduler.get_job(f"{prefix}:{name}") is not None:
                    svc.scheduler.remove_job(f"{prefix}:{name}")
        now = datetime.now(svc.tz)
        for name in added:
            shop = svc.shops[name]
            window = min(seconds(svc.config.schedule.jitter) or 60.0, svc.config.schedule.interval_of(shop) or 60.0)
            svc.add_shop_jobs(shop, now + timedelta(seconds=random.uniform(0, max(window, 1.0))))
        for name in (*changed, *(n for n in svc.shops if schedule_changed and n not in added and n not in changed)):
            shop = svc.shops[name]
            if not shop.enabled:
                continue
            job = svc.scheduler.get_job(f"check:{name}")
            svc.add_shop_jobs(shop, job.next_run_time if job is not None and job.next_run_time else now)

    def _globals(self, old: Config, new: Config) -> None:
        if old.schedule.dispatch_interval != new.schedule.dispatch_interval or \
                old.schedule.digest_cron != new.schedule.digest_cron:
            self.service.add_global_jobs()
