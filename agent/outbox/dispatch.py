"""Sending the outbox: due rows most urgent first, one message per shop and channel, rate limits, retry state per
channel (a failing channel is probed with a short capped backoff, then flushed), failover of urgent alerts."""

from __future__ import annotations

import asyncio
import base64
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from loguru import logger

from agent.clock import Clock
from agent.config import Config
from agent.config.durations import seconds
from agent.core import notices
from agent.core.claims import item_key
from agent.core.digest import render_digest
from agent.core.models import Item
from agent.core.render import RenderedMessage, render_group
from agent.core.rules import Alert
from agent.outbox.store import OutboxRow, Store
from notifiers.base import Message, Notifier, PermanentError, RateLimitedError, RetryableError

FAILOVER_NOTE = "（{channel}发送失败，改由此渠道发送）"
SENT, DEFERRED, FAILED = "sent", "deferred", "failed"  # what one delivery did
CHANNEL_LABELS = {"wecom": "企业微信", "wecom_app": "企业微信应用", "dingtalk": "钉钉", "feishu": "飞书",
                  "email": "邮件", "apprise": "Apprise"}
RATE_LIMITED = "rate-limited: "  # how a channel's own throttling is marked in its last error
QR_LINK_SECONDS = 900.0  # a login QR linked from a channel that cannot carry the image: valid this long
PACE_WITHIN_RUN = 1.5  # a rate window that frees up this soon is waited for inside the run


def build_notifiers(config: Config) -> dict[str, Notifier]:
    """Every [notifiers.NAME] channel (secrets read from the environment now); opens no connection."""
    return {name: Notifier.from_config(cfg.table()) for name, cfg in config.notifiers.items()}


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
    """What never waits for quiet hours: the last stage, complaint warnings (投诉预警) and critical health (a shop
    that cannot be read)."""
    return alert.is_last_stage or alert.kind == "complaint" or (alert.kind == "health" and alert.severity == "critical")


def _is_digest(row: OutboxRow) -> bool:
    return "digest" in row.payload or "rendered" in row.payload


def _digest(row: OutboxRow, shop: str, notifier: Notifier, local: datetime, tz: ZoneInfo) -> RenderedMessage:
    """The daily digest of `row`, rendered now for this channel (its size limit, the remaining times now)."""
    if "rendered" in row.payload:  # queued by a version that rendered digests when queueing them
        return RenderedMessage(**row.payload["rendered"])
    d = row.payload["digest"]
    items = {k: [Item.from_json(i) for i in d[k]] for k in ("aftersales", "evidence", "missed")}
    return render_digest(shop, items["aftersales"], items["evidence"], items["missed"], local, tz,
                         day=date.fromisoformat(d["day"]), max_bytes=notifier.max_bytes, money=d.get("money"),
                         quality=d.get("quality"), only_money=bool(d.get("only_money")), team=d.get("team"),
                         dialect=notifier.dialect)


@dataclass
class Sent:
    """One channel's totals: messages delivered, alert rows they carried, failed attempts (and by class:
    transient, rate_limited, permanent)."""

    messages: int = 0
    rows: int = 0
    failures: int = 0
    classes: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    sent: int = 0  # messages delivered
    rows_sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    failed_over: int = 0  # urgent alerts copied to other channels
    errors: list[str] = field(default_factory=list)
    by_channel: dict[str, Sent] = field(default_factory=dict)

    def count(self, channel: str, messages: int = 0, rows: int = 0, failures: int = 0, cls: str = "") -> None:
        c = self.by_channel.setdefault(channel, Sent())
        c.messages, c.rows, c.failures = c.messages + messages, c.rows + rows, c.failures + failures
        if cls:
            c.classes[cls] = c.classes.get(cls, 0) + failures

    def add(self, other: Report) -> None:
        """Add `other`'s per-channel totals to this report's (the service's running totals)."""
        for channel, c in other.by_channel.items():
            self.count(channel, c.messages, c.rows, c.failures - sum(c.classes.values()))
            for cls, n in c.classes.items():
                self.count(channel, failures=n, cls=cls)


class Dispatcher:
    def __init__(self, config: Config, store: Store, notifiers: Mapping[str, Notifier],
                 detail_url: Callable[[str, Alert], str] | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 rate_now: Callable[[], float] | None = None) -> None:
        self.config, self.store, self.notifiers = config, store, notifiers
        self.tz = ZoneInfo(config.agent.timezone)
        self.detail_url = detail_url
        # ours: when rows are due, retries and the per-minute send limits; the backend's: what messages say
        # (remaining time) and quiet hours
        self.clock = clock or Clock(self.tz)
        self.rng = rng or random.Random()
        self._limited: dict[str, tuple[float, str]] = {}  # in a run: channel → when its limit lets the next go, why
        # the clock of the rate windows: ours, or the database's when several nodes share them
        self.rate_now = rate_now

    def backoff(self, failures: int, hint: float | None) -> float:
        """The wait before a failing channel's next try: the channel's own hint when it gives one, else
        retry_backoff doubling per failure up to retry_max, with ±20 % jitter."""
        if hint:
            return hint
        base = seconds(self.config.alerts.retry_backoff)
        cap = seconds(self.config.alerts.retry_max)
        return min(base * 2 ** max(0, failures - 1) * self.rng.uniform(0.8, 1.2), cap)

    def page_url(self, alert: Alert) -> str:
        """The item's page on the team page ([web] public_url): 「认领 / 查看」 in the alert; "" without an item."""
        if alert.item is None:
            return ""
        return f"{self.config.web.public_url}/items/{item_key(alert.shop, alert.item.kind, alert.item.id)}"

    async def run_once(self) -> Report:
        report = Report()
        now = self.clock.now()
        self._failover(now, report)
        states = self.store.channel_states()
        by_channel: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in self.store.due(now):  # most urgent first
            by_channel[row.channel].append(row)
        self._limited = {}
        for channel, rows in by_channel.items():
            st = states.get(channel)
            if st is not None and st.failing and (st.next_try or 0) > now:
                continue  # one probe at a time: this channel's next try is later
            groups: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
            for row in rows:
                groups[(row.shop, str(row.payload.get("failover_from") or ""))].append(row)
            waiting: list[int] = []
            for (shop, _), group in groups.items():
                if channel in self._limited:  # the robot's minute is used up: the rest waits, unrendered
                    waiting += [r.id for r in group]
                    continue
                if not await self._send_group(channel, shop, group, now, report):
                    break  # the channel failed: the rest waits for its next try
                await asyncio.sleep(0)  # many shops' groups: the event loop (the checks' timing) goes on
            if waiting:
                self.store.mark_retry(waiting, *self._limited[channel], count=False)
                report.deferred += len(waiting)
        return report

    async def _send_group(self, channel: str, shop: str, rows: list[OutboxRow], now: float, report: Report) -> bool:
        """Send one shop's rows on one channel; False when the channel failed (the caller stops there)."""
        notifier = self.notifiers.get(channel)
        if notifier is None:
            self.store.mark_dead([r.id for r in rows], f"channel {channel!r} is not configured")
            report.dead += len(rows)
            return True
        local = self.clock.backend_local(now)
        alerts = {r.dedup_key: Alert.from_dict({**r.payload, "key": r.dedup_key})
                  for r in rows if not _is_digest(r)}
        by_key = {r.dedup_key: r for r in rows}
        quiet_end = in_quiet_hours(self.config.alerts.quiet_hours, local)
        if quiet_end is not None:
            waiting = [r for r in rows if r.dedup_key not in alerts or not urgent(alerts[r.dedup_key])]
            if waiting:
                until = self.clock.from_backend(quiet_end.timestamp())
                self.store.mark_retry([r.id for r in waiting], until, "quiet hours", count=False)
                report.deferred += len(waiting)
            rows = [r for r in rows if r.dedup_key in alerts and urgent(alerts[r.dedup_key])]
            if not rows:
                return True
        for row in (r for r in rows if _is_digest(r)):
            msg = _digest(row, shop, notifier, local, self.tz)
            outcome = await self._deliver(notifier, channel, shop, self._message(notifier, msg, []), [row], now, report)
            if outcome != SENT:
                return outcome != FAILED
        rows = [r for r in rows if not _is_digest(r)]
        if not rows:
            return True
        detail = (lambda a: self.detail_url(shop, a)) if self.detail_url else None
        parts = render_group(shop, [alerts[r.dedup_key] for r in rows], dialect=notifier.dialect,
                             max_bytes=notifier.max_bytes, detail_url=detail, tz=self.tz, now=local,
                             page_url=self.page_url if self.config.web.public_url else None,
                             qr_links=None if notifier.images else self._qr_links(shop, rows, now))
        if rows[0].payload.get("failover_from"):  # copies of urgent alerts whose channel fails: say so
            label = str(rows[0].payload.get("failover_label") or rows[0].payload["failover_from"])
            parts = [self._failover_note(p, label) for p in parts]
        for n, part in enumerate(parts):
            later = [by_key[k] for p in parts[n:] for k in p.keys]
            outcome = await self._deliver(notifier, channel, shop, self._message(notifier, part, rows), later, now,
                                          report, sent=len(part.keys))
            if outcome != SENT:
                return outcome != FAILED
        return True

    async def _deliver(self, notifier: Notifier, channel: str, shop: str, message: Message, rows: list[OutboxRow],
                       now: float, report: Report, sent: int = 1) -> str:
        """Send one message carrying the first `sent` of `rows`: SENT, DEFERRED (the per-minute limit; `rows`
        wait) or FAILED (the channel failed; `rows` wait for its next try, or are dead when it refused them)."""
        cost = notifier.cost(message)  # e.g. a WeCom @ is a second message
        ids = [r.id for r in rows]
        now = max(now, self.clock.now())  # sends are counted at their own time: a long run must not bunch them
        limited = self._rate_limited(notifier, cost, now)
        if limited is not None and limited[0] - now <= PACE_WITHIN_RUN:  # a per-second limit (Feishu's 5 a
            await asyncio.sleep(limited[0] - now)  # second): wait here, not for the next run 10 s away
            now = max(now, self.clock.now())
            limited = self._rate_limited(notifier, cost, now)
        if limited is not None:
            self.store.mark_retry(ids, *limited, count=False)
            self._limited[channel] = limited
            report.deferred += len(ids)
            return DEFERRED
        # counted before it goes, at the latest time the service may count it (settled to the answer's time below)
        latest = (self.rate_now() if self.rate_now else now) + float(getattr(notifier, "timeout", 30.0))
        latest += random.random() / 1000  # its own mark in the table, settled or dropped alone
        attempt = self.store.begin_sends(notifier.rate_keys, latest, cost)
        self.store.mark_sending(ids[:sent], now)
        try:
            answer = await notifier.send(message)
        except RetryableError as exc:
            self.store.drop_sends(attempt)
            prev = self.store.channel_state(channel)
            failures = (prev.failures if prev is not None and prev.failing else 0) + 1
            wait = self.backoff(failures, exc.retry_after)
            limited = isinstance(exc, RateLimitedError)  # the service throttles us: nothing was delivered
            if limited:
                self.store.not_sent(ids[:sent])
            error = f"{RATE_LIMITED}{exc}" if limited else str(exc)
            self.store.mark_attempt(ids, error)  # for the record; the rows' next try is the channel's
            self.store.channel_failed(channel, now, error, now + wait)
            report.retried += len(ids)
            report.count(channel, failures=1, cls="rate_limited" if limited else "transient")
            report.errors.append(f"{channel}: {exc}")
            logger.warning("send to {} failed ({} in a row), next try in {:.1f} s: {}", channel, failures, wait, exc)
            return FAILED
        except PermanentError as exc:
            self.store.drop_sends(attempt)
            self.store.not_sent(ids[:sent])
            self.store.mark_dead(ids, str(exc))
            report.dead += len(ids)
            if seconds(self.config.alerts.failover_after):  # refused for good: urgent alerts go elsewhere at once
                for row in rows:
                    if not _is_digest(row) and not row.payload.get("failover_from") and \
                            urgent(Alert.from_dict({**row.payload, "key": row.dedup_key})):
                        report.failed_over += self._copy(row, channel, now)
            report.count(channel, failures=1, cls="permanent")
            report.errors.append(f"{channel}: {exc}")
            logger.error("channel {} refused the message permanently: {}", channel, exc)
            if self.store.set_broken(channel, now, str(exc)):  # once per breakage
                self._notice(channel, notices.channel_broken(channel, shop, str(exc), self._at(now)), now)
            return FAILED
        # counted when the answer came: never before the service counted it
        self.store.settle_sends(attempt, self.rate_now() if self.rate_now else max(now, self.clock.now()))
        self.store.mark_sent(ids[:sent], now, verified=notifier.verified)
        self.store.clear_broken(channel)
        for row in rows[:sent]:
            origin = row.payload.get("failover_from")
            if origin:  # the team has it: the failing channel must not send it again once it recovers
                self.store.mark_delivered_elsewhere(str(row.payload["failover_key"]), str(origin), channel, now)
        ended = self.store.channel_ok(channel)
        if ended is not None:
            logger.info("channel {} delivers again after {} failure(s)", channel, ended.failures)
            if ended.noticed_at is not None:
                self._notice(channel, notices.channel_recovered(channel, shop, ended.failures, self._at(now)), now)
        report.sent += 1
        report.rows_sent += sent
        report.count(channel, messages=1, rows=sent)
        logger.info("sent {} alert(s) of {} to {}: {}", sent, shop, channel, answer[:80])
        return SENT

    def _rate_limited(self, notifier: Notifier, cost: int, now: float) -> tuple[float, str] | None:
        """When a message of `cost` would break one of the channel's rate limits in one of its buckets: the time
        (ours) to try again and why; None when it may go now. The windows run on `rate_now` when given."""
        at = self.rate_now() if self.rate_now else now
        for key in notifier.rate_keys:
            for count, window in notifier.rate_limits:
                if self.store.sent_within(key, at, window) + cost > count:
                    oldest = self.store.oldest_within(key, at, window) or at
                    return now + (oldest + window - at), f"rate limit ({count} per {window:g} s, {notifier.kind})"
        return None

    def _qr_links(self, shop: str, rows: list[OutboxRow], now: float) -> dict[str, str]:
        """For a channel that cannot carry the login QR image: each QR alert's short-lived link on the team page
        ([web] public_url), or no link (the message then says which command shows the QR)."""
        if not self.config.web.public_url:
            return {}
        out = {}
        for r in rows:
            if r.payload.get("qr_png_b64"):
                token = self.store.qr_link(shop, base64.b64decode(r.payload["qr_png_b64"]), now + QR_LINK_SECONDS)
                out[r.dedup_key] = f"{self.config.web.public_url}/qr/{token}.png"
        return out

    def _message(self, notifier: Notifier, part: RenderedMessage, rows: list[OutboxRow]) -> Message:
        qr = next((base64.b64decode(r.payload["qr_png_b64"]) for r in rows
                   if r.payload.get("qr_png_b64") and r.dedup_key in part.keys), None) if notifier.images else None
        mentions = tuple(dict.fromkeys((*(notifier.mention_mobiles if part.mention else ()), *part.mention_mobiles)))
        open_ids = tuple(dict.fromkeys((*(notifier.mention_open_ids if part.mention else ()),
                                        *part.mention_open_ids)))
        return Message(title=part.title, markdown=part.markdown, text=part.text, html=part.html,
                       mention_mobiles=mentions, image_png=qr, body=part.body, mention_open_ids=open_ids,
                       urgent=part.mention)

    def _at(self, now: float) -> datetime:
        """Our time `now` as the backend's local time (what messages say)."""
        return self.clock.backend_local(now)

    def _notice(self, channel: str, alert: Alert, now: float) -> None:
        """A notice about `channel` to the admins, through the first other channel."""
        others = [c for c in (*self.config.alerts.admin_notify, *self.notifiers) if c != channel]
        others = list(dict.fromkeys(c for c in others if c in self.notifiers))
        if not others:
            logger.error("channel {}: {} and no other channel can tell anyone", channel, alert.detail)
            return
        self.store.enqueue([(alert.key, c, alert.shop, alert.to_dict()) for c in others[:1]], now)

    # ---- failover -----------------------------------------------------------------------------
    def _failover(self, now: float, report: Report) -> None:
        """Channels failing longer than failover_after: the admins hear of it (once), and each urgent alert
        waiting on them is copied, once, to the shop's other channels and the admin channels."""
        after = seconds(self.config.alerts.failover_after)
        if not after:
            return
        for name, st in self.store.channel_states().items():
            if not st.failing or now - (st.failing_since or now) < after:
                continue
            rows = [r for r in self.store.due(now, channel=name)
                    if not _is_digest(r) and not r.payload.get("failover_from")]
            if rows and self.store.channel_noticed(name, now):
                alert = notices.channel_failing(name, rows[0].shop, now - (st.failing_since or now),
                                                st.last_error or "", self._at(now))
                self._notice(name, alert, now)
            for row in rows:
                alert = Alert.from_dict({**row.payload, "key": row.dedup_key})
                if not urgent(alert):
                    continue
                report.failed_over += self._copy(row, name, now)
                via = self._delivered_elsewhere(row, name)
                if via:  # e.g. a last stage routed to the admin channels too: the team has it
                    self.store.mark_delivered_elsewhere(row.dedup_key, name, via, now)

    def _delivered_elsewhere(self, row: OutboxRow, failing: str) -> str:
        """Another channel that already sent this alert (routed there too), or ""."""
        for channel in self.notifiers:
            if channel != failing and (self.store.find(row.dedup_key, channel) or (0, ""))[1] == "sent":
                return channel
        return ""

    def _copy(self, row: OutboxRow, failing: str, now: float) -> int:
        shop = self.config.shop(row.shop)
        own = self.config.channels_for(shop) if shop is not None else ()
        targets = [c for c in dict.fromkeys((*own, *self.config.alerts.admin_notify))
                   if c != failing and c in self.notifiers and self.store.find(row.dedup_key, c) is None]
        label = CHANNEL_LABELS.get(self.notifiers[failing].kind, failing) if failing in self.notifiers else failing
        payload = {**row.payload, "failover_from": failing, "failover_key": row.dedup_key, "failover_label": label}
        return self.store.enqueue([(f"{row.dedup_key}#failover:{failing}", c, row.shop, payload) for c in targets], now)

    @staticmethod
    def _failover_note(part: RenderedMessage, origin: str) -> RenderedMessage:
        note = FAILOVER_NOTE.format(channel=origin)
        return replace(part, title=part.title + note, markdown=f"{note}\n{part.markdown}", text=f"{note}\n{part.text}",
                       html=f"<p>{note}</p>{part.html}")
