"""Sending the outbox: claim due rows, one message per shop and channel, rate limits, retries, broken channels."""

from __future__ import annotations

import base64
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger

from agent.config import Config, NotifierConfig, seconds
from agent.render import RenderedMessage, render_group
from agent.rules import Alert
from agent.store import OutboxRow, Store
from notifiers import REGISTRY
from notifiers.base import Message, Notifier, PermanentError, RetryableError

BACKOFF_MAX = 1800.0


def build_notifier(cfg: NotifierConfig) -> Notifier:
    """A notifier from its [notifiers.NAME] table (secrets read from the environment now)."""
    cls: Any = REGISTRY[cfg.type]
    if cfg.type == "wecom":
        return cls(cfg.webhook_url, mention_mobiles=cfg.mention_mobiles, timeout=cfg.timeout_seconds)  # type: ignore[no-any-return]
    return cls(  # type: ignore[no-any-return]
        cfg.host, cfg.smtp_port, cfg.security, cfg.username or None, cfg.password(), cfg.sender or cfg.username,
        cfg.to, cfg.timeout_seconds,
    )


def in_quiet_hours(spec: str, local: datetime) -> datetime | None:
    """When quiet hours ("23:00-07:30") are on at `local`, the local time they end; else None."""
    if not spec:
        return None
    start_s, end_s = spec.split("-")
    start = local.replace(hour=int(start_s[:2]), minute=int(start_s[3:]), second=0, microsecond=0)
    end = local.replace(hour=int(end_s[:2]), minute=int(end_s[3:]), second=0, microsecond=0)
    if start <= end:
        return end if start <= local < end else None
    if local >= start:
        return end + timedelta(days=1)
    return end if local < end else None


def urgent(alert: Alert) -> bool:
    """What never waits for quiet hours: the last stage and critical health (a shop that cannot be read)."""
    return alert.is_last_stage or (alert.kind == "health" and alert.severity == "critical")


@dataclass
class Report:
    sent: int = 0  # messages delivered
    rows_sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)
    by_channel: dict[str, list[int]] = field(default_factory=dict)  # channel → [messages, rows, failures]

    def count(self, channel: str, messages: int = 0, rows: int = 0, failures: int = 0) -> None:
        c = self.by_channel.setdefault(channel, [0, 0, 0])
        c[0], c[1], c[2] = c[0] + messages, c[1] + rows, c[2] + failures


class Dispatcher:
    def __init__(self, config: Config, store: Store, notifiers: Mapping[str, Notifier],
                 detail_url: Callable[[str, Alert], str] | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 wall: Callable[[], float] | None = None) -> None:
        self.config, self.store, self.notifiers = config, store, notifiers
        self.tz = ZoneInfo(config.agent.timezone)
        self.detail_url = detail_url
        # `clock`: the backend's time, for what messages say (remaining time) and quiet hours; `wall`: ours, for
        # when rows are due, retries and the per-minute send limits (the two agree on the live site)
        self.clock = clock
        self.wall = wall or clock
        self._skew = 0.0
        self.rng = rng or random.Random()

    def backoff(self, attempts: int, hint: float | None) -> float:
        base = seconds(self.config.alerts.retry_backoff)
        wait = min(base * 2 ** attempts, BACKOFF_MAX) * self.rng.uniform(0.8, 1.2)
        return max(wait, hint or 0.0)

    async def run_once(self) -> Report:
        report = Report()
        now = self.wall()
        self._skew = self.clock() - now
        groups: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
        for row in self.store.due(now):
            groups[(row.channel, row.shop)].append(row)
        for (channel, shop), rows in groups.items():
            await self._send_group(channel, shop, rows, now, report)
        return report

    async def _send_group(self, channel: str, shop: str, rows: list[OutboxRow], now: float, report: Report) -> None:
        notifier = self.notifiers.get(channel)
        if notifier is None:
            self.store.mark_dead([r.id for r in rows], f"channel {channel!r} is not configured")
            report.dead += len(rows)
            return
        local = datetime.fromtimestamp(now + self._skew, self.tz)
        alerts = {r.dedup_key: Alert.from_dict({**r.payload, "key": r.dedup_key})
                  for r in rows if "rendered" not in r.payload}
        by_key = {r.dedup_key: r for r in rows}
        quiet_end = in_quiet_hours(self.config.alerts.quiet_hours, local)
        if quiet_end is not None:
            waiting = [r for r in rows if r.dedup_key not in alerts or not urgent(alerts[r.dedup_key])]
            if waiting:
                until = quiet_end.timestamp() - self._skew
                self.store.mark_retry([r.id for r in waiting], until, "quiet hours", count=False)
                report.deferred += len(waiting)
            rows = [r for r in rows if r.dedup_key in alerts and urgent(alerts[r.dedup_key])]
            if not rows:
                return
        ready = [r for r in rows if "rendered" in r.payload]  # pre-rendered messages (the daily digest)
        for row in ready:
            msg = RenderedMessage(**row.payload["rendered"])
            if not await self._deliver(notifier, channel, shop, self._message(notifier, msg, []), [row], now, report):
                return
        rows = [r for r in rows if "rendered" not in r.payload]
        if not rows:
            return
        detail = (lambda a: self.detail_url(shop, a)) if self.detail_url else None
        parts = render_group(shop, [alerts[r.dedup_key] for r in rows], channel_kind=notifier.kind,
                             max_bytes=notifier.max_bytes, detail_url=detail, tz=self.tz, now=local)
        for n, part in enumerate(parts):
            later = [by_key[k] for p in parts[n:] for k in p.keys]
            if not await self._deliver(notifier, channel, shop, self._message(notifier, part, rows), later, now,
                                       report, sent=len(part.keys)):
                return

    async def _deliver(self, notifier: Notifier, channel: str, shop: str, message: Message, rows: list[OutboxRow],
                       now: float, report: Report, sent: int = 1) -> bool:
        """Send one message carrying the first `sent` of `rows`; on failure `rows` (this and later) are put back.
        True when it went out and the caller may go on."""
        cost = 2 if message.mention_mobiles else 1  # a WeCom @ is a second message
        limit = notifier.rate_per_minute
        ids = [r.id for r in rows]
        if limit and self.store.sent_within(notifier.rate_key, now) + cost > limit:
            oldest = self.store.oldest_within(notifier.rate_key, now) or now
            self.store.mark_retry(ids, oldest + 60.0, "rate limit (20/min per robot)", count=False)
            report.deferred += len(ids)
            return False
        try:
            answer = await notifier.send(message)
        except RetryableError as exc:
            attempts = max(r.attempts for r in rows)
            self.store.mark_retry(ids, now + self.backoff(attempts, exc.retry_after), str(exc))
            report.retried += len(ids)
            report.count(channel, failures=1)
            report.errors.append(f"{channel}: {exc}")
            logger.warning("send to {} failed, will retry: {}", channel, exc)
            return False
        except PermanentError as exc:
            self.store.mark_dead(ids, str(exc))
            report.dead += len(ids)
            report.count(channel, failures=1)
            report.errors.append(f"{channel}: {exc}")
            logger.error("channel {} refused the message permanently: {}", channel, exc)
            self._channel_broken(channel, shop, str(exc), now)
            return False
        for _ in range(cost):
            self.store.record_send(notifier.rate_key, now)
        self.store.mark_sent(ids[:sent], now)
        self.store.clear_broken(channel)
        report.sent += 1
        report.rows_sent += sent
        report.count(channel, messages=1, rows=sent)
        logger.info("sent {} alert(s) of {} to {}: {}", sent, shop, channel, answer[:80])
        return True

    def _message(self, notifier: Notifier, part: RenderedMessage, rows: list[OutboxRow]) -> Message:
        qr = next((base64.b64decode(r.payload["qr_png_b64"]) for r in rows
                   if r.payload.get("qr_png_b64") and r.dedup_key in part.keys), None)
        mentions = tuple(getattr(notifier, "mention_mobiles", ())) if part.mention else ()
        return Message(title=part.title, markdown=part.markdown, text=part.text, html=part.html,
                       mention_mobiles=mentions, image_png=qr)

    def _channel_broken(self, channel: str, shop: str, reason: str, now: float) -> None:
        """Tell the admins through another channel, once per breakage."""
        if not self.store.set_broken(channel, now, reason):
            return
        others = [c for c in (*self.config.alerts.admin_notify, *self.notifiers) if c != channel]
        others = list(dict.fromkeys(c for c in others if c in self.notifiers))
        if not others:
            logger.error("channel {} is broken and no other channel can tell anyone: {}", channel, reason)
            return
        at = datetime.fromtimestamp(now + self._skew, self.tz)
        alert = Alert(key=f"{shop}:health:channel_broken:{channel}:{int(now)}", shop=shop, kind="health",
                      severity="critical", created_at=at, event="channel_broken", state="channel_broken",
                      detail=f"通知渠道 {channel} 无法发送（{reason}），请检查配置")
        self.store.enqueue([(alert.key, c, shop, alert.to_dict()) for c in others[:1]], now)
