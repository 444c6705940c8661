"""The durable state (data_dir/agent.db, SQLite WAL; or PostgreSQL): item states, the alert outbox, send rates,
shop health.

A check writes item states and its new alerts in ONE transaction (deduplicated on (key, channel)); the
dispatcher claims due rows later. A crash between the two loses nothing and a restart sends nothing twice.
Times are epoch seconds passed in by the caller (no clock reads here).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.outbox.engine import Engine, open_engine
from agent.outbox.schema import migrate

Fence = Callable[[Engine], None]  # runs first in a commit's transaction; raises to refuse it


def _urgency(db: Engine) -> str:
    """Most urgent first: the last stage, complaint warnings and critical health, then by the item's deadline (ISO
    text, one zone), then age."""
    kind = db.json_text("payload", "kind")
    return (f"CASE WHEN {db.json_true('payload', 'is_last_stage')} OR {kind} = 'complaint' "
            f"OR ({kind} = 'health' AND {db.json_text('payload', 'severity')} = 'critical') THEN 0 ELSE 1 END, "
            f"COALESCE({db.json_text('payload', 'item', 'deadline')}, '9999'), created_at, id")


@dataclass(frozen=True, slots=True)
class ChannelState:
    """A channel's delivery state: failing since when, how often, the last error, when it is tried next."""

    name: str
    failing_since: float | None
    failures: int
    last_error: str | None
    next_try: float | None
    noticed_at: float | None  # when the admins were told it is failing (None: not yet)

    @property
    def failing(self) -> bool:
        return self.failing_since is not None


def _channel(r: Any) -> ChannelState:
    return ChannelState(r[0], r[1], int(r[2] or 0), r[3], r[4], r[5])


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    dedup_key: str
    channel: str
    shop: str
    payload: dict[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class ShopHealth:
    shop: str
    last_ok: float | None
    last_error: str | None
    last_state: str | None
    consecutive_failures: int
    health: dict[str, float]  # active health alerts: key -> when last sent
    counters: dict[str, Any] = field(default_factory=dict)  # the counter rules' memory (core.losses)


class Store:
    """The agent's durable state in one database: a SQLite file (`Path`, the default) or PostgreSQL (a
    `postgresql://` URL, for several nodes). The SQL is shared; `agent.outbox.engine` holds what differs."""

    def __init__(self, where: Path | str) -> None:
        self.db: Engine = open_engine(where)
        self.path = where
        try:
            migrate(self.db)
        except BaseException:
            self.db.close()
            raise
        self._order = _urgency(self.db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[Engine]:
        with self.db.tx() as db:
            yield db

    # ---- items and the check's transaction ---------------------------------------------------
    def load_items(self, shop: str) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self.db.execute("SELECT kind, item_id, data FROM items WHERE shop = ?", (shop,))
        return {(kind, item_id): json.loads(data) for kind, item_id, data in rows}

    def commit_check(
        self, shop: str, states: Iterable[Mapping[str, Any]], alerts: Iterable[tuple[str, str, Mapping[str, Any]]],
        now: float, *, drop_closed_before: float | None = None,
        check: tuple[bool, str, str | None, Mapping[str, float]] | None = None, queued_at: float | None = None,
        counters: Mapping[str, Any] | None = None, events: Iterable[tuple[str, str, str, str, str]] = (),
        fence: Fence | None = None,
    ) -> int:
        """Item states and new (key, channel, payload) alerts in one transaction; returns alerts queued.

        States need `kind` and `item_id`. An alert already queued or sent for the same (key, channel) is
        ignored: that is the deduplication across checks and restarts. `check` = (ok, state, error, active
        health alerts) records the shop's health in the same transaction. `queued_at` (default `now`) stamps
        the outbox rows: the dispatcher's own clock, when `now` is the backend's. `counters` replaces the
        counter rules' memory (with `check` given). `events` (kind, item_id, actor, action, detail) are lines of
        the items' timelines (quiet stages, closes), stamped `queued_at`. `fence(db)` runs first in the
        transaction and may raise to refuse the whole commit (a check whose lease was taken over).
        """
        queued, at = 0, now if queued_at is None else queued_at
        prev = self.shop_health(shop)
        with self.tx() as db:
            if fence is not None:
                fence(db)
            if check is not None:  # when the shop was last read: our clock (the service's own), not the backend's
                self._write_health(db, prev, at, *check)
                if counters is not None:
                    db.execute("UPDATE shops SET counters = ? WHERE shop = ?", (json.dumps(dict(counters)), shop))
            for st in states:
                db.execute(
                    "INSERT INTO items (shop, kind, item_id, data, closed) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (shop, kind, item_id) DO UPDATE SET data = excluded.data, closed = excluded.closed",
                    (shop, st["kind"], str(st["item_id"]), json.dumps(st, ensure_ascii=False, default=str),
                     1 if st.get("closed") else 0),
                )
            for key, channel, payload in alerts:
                cur = db.execute(
                    "INSERT INTO outbox (dedup_key, channel, shop, payload, next_attempt_at, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (key, channel, shop, json.dumps(payload, ensure_ascii=False, default=str), at, at),
                )
                queued += cur.rowcount
            db.executemany("INSERT INTO item_events (shop, kind, item_id, at, actor, action, detail) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(shop, k, i, at, who, what, d) for k, i, who, what, d in events])
            if drop_closed_before is not None:
                # closed items are kept a while (to answer late questions), then forgotten
                db.execute(
                    f"DELETE FROM items WHERE shop = ? AND closed = 1 AND {db.json_num('data', 'last_seen_ts')} < ?",
                    (shop, drop_closed_before),
                )
                db.execute(
                    "DELETE FROM claims WHERE shop = ? AND NOT EXISTS (SELECT 1 FROM items i WHERE i.shop = "
                    "claims.shop AND i.kind = claims.kind AND i.item_id = claims.item_id)", (shop,))
                db.execute("DELETE FROM item_events WHERE shop = ? AND at < ?", (shop, drop_closed_before))
        return queued

    def enqueue(self, alerts: Iterable[tuple[str, str, str, Mapping[str, Any]]], now: float) -> int:
        """Queue (key, channel, shop, payload) alerts outside a check (health, channel-broken notices)."""
        with self.tx() as db:
            n = 0
            for key, channel, shop, payload in alerts:
                n += db.execute(
                    "INSERT INTO outbox (dedup_key, channel, shop, payload, next_attempt_at, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (key, channel, shop, json.dumps(payload, ensure_ascii=False, default=str), now, now),
                ).rowcount
            return n

    # ---- outbox -----------------------------------------------------------------------------
    def due(self, now: float, limit: int = 500, channel: str | None = None) -> list[OutboxRow]:
        """Pending rows whose time has come, most urgent first (per channel: `channel`)."""
        where = "status = 'pending' AND next_attempt_at <= ?" + (" AND channel = ?" if channel else "")
        args: tuple[Any, ...] = (now, channel, limit) if channel else (now, limit)
        rows = self.db.execute(
            "SELECT id, dedup_key, channel, shop, payload, attempts, created_at FROM outbox "
            f"WHERE {where} ORDER BY {self._order} LIMIT ?", args,
        )
        return [OutboxRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def owed(self, now: float) -> dict[str, dict[str, int]]:
        """Pending rows per channel: {"due": n, "later": n, "quiet": n} — due now (or waiting for their failing
        channel's next try), deferred (the per-minute limit), held by quiet hours."""
        out: dict[str, dict[str, int]] = {}
        for channel, kind, n in self.db.execute(
            "SELECT channel, CASE WHEN next_attempt_at <= ? THEN 'due' WHEN last_error = 'quiet hours' THEN 'quiet' "
            "ELSE 'later' END AS kind, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY channel, kind",
            (now,),
        ):
            out.setdefault(channel, {"due": 0, "later": 0, "quiet": 0})[kind] += n
        return out

    def next_deferred(self, now: float) -> float | None:
        """When the next row deferred by the per-minute limit comes due (quiet hours not counted)."""
        row = self.db.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND "
                              "next_attempt_at > ? AND COALESCE(last_error, '') != 'quiet hours'", (now,)).fetchone()
        return None if row[0] is None else float(row[0])

    def find(self, dedup_key: str, channel: str) -> tuple[int, str] | None:
        """(id, status) of the row for (key, channel), if any."""
        row = self.db.execute("SELECT id, status FROM outbox WHERE dedup_key = ? AND channel = ?",
                              (dedup_key, channel)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def mark_attempt(self, ids: Iterable[int], error: str) -> None:
        """A failed try, for the record: the row's next try is its channel's (`channel_failed`)."""
        with self.tx() as db:
            db.executemany("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                           [(error, i) for i in ids])

    def mark_delivered_elsewhere(self, dedup_key: str, channel: str, via: str, now: float) -> bool:
        """The alert went out through `via` while `channel` failed: never send it through `channel` again."""
        with self.tx() as db:
            cur = db.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = ? "
                "WHERE dedup_key = ? AND channel = ? AND status = 'pending'",
                (now, f"delivered via {via} while {channel} failed", dedup_key, channel),
            )
            return cur.rowcount > 0

    def mark_sending(self, ids: Iterable[int], now: float) -> None:
        """These rows are about to be sent (committed before the send). A row still marked from an earlier send
        whose outcome was never recorded (a crash, a node's death, an unanswered request) may reach the team twice:
        it is marked `maybe_repeated`."""
        with self.tx() as db:
            db.executemany("UPDATE outbox SET maybe_repeated = CASE WHEN sending_at IS NOT NULL THEN 1 "
                           "ELSE maybe_repeated END, sending_at = ? WHERE id = ?", [(now, i) for i in ids])

    def not_sent(self, ids: Iterable[int]) -> None:
        """The send is known not to have arrived (refused, throttled): no repeat can follow from it."""
        with self.tx() as db:
            db.executemany("UPDATE outbox SET sending_at = NULL WHERE id = ?", [(i,) for i in ids])

    def mark_sent(self, ids: Iterable[int], now: float, *, verified: bool = True) -> None:
        """Sent; `verified=False` when the channel's success does not prove delivery (Apprise)."""
        with self.tx() as db:
            db.executemany("UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL, unverified = ?, "
                           "sending_at = NULL WHERE id = ?", [(now, 0 if verified else 1, i) for i in ids])

    def maybe_repeated(self) -> dict[str, int]:
        """Per channel, sent rows that may have reached the team twice (a send whose outcome was lost)."""
        q = "SELECT channel, COUNT(*) FROM outbox WHERE status = 'sent' AND maybe_repeated = 1 GROUP BY channel"
        return dict(self.db.execute(q).fetchall())

    def unverified(self) -> dict[str, int]:
        """Per channel, how many sent rows were only accepted, not confirmed delivered ("sent, unverified")."""
        q = "SELECT channel, COUNT(*) FROM outbox WHERE status = 'sent' AND unverified = 1 GROUP BY channel"
        return dict(self.db.execute(q).fetchall())

    # ---- login QR images behind short-lived links ---------------------------------------------
    def qr_link(self, shop: str, png: bytes, expires_at: float) -> str:
        """A new unguessable token for `png` until `expires_at` (expired links are dropped now)."""
        token = secrets.token_urlsafe(24)
        with self.tx() as db:
            db.execute("DELETE FROM qr_links WHERE expires_at < ?", (expires_at - 86400,))
            db.execute("INSERT INTO qr_links (token, shop, png, expires_at) VALUES (?, ?, ?, ?)",
                       (token, shop, png, expires_at))
        return token

    def qr_png(self, token: str, now: float) -> bytes | None:
        """The image behind a live token; None when unknown or expired."""
        row = self.db.execute("SELECT png FROM qr_links WHERE token = ? AND expires_at > ?", (token, now)).fetchone()
        return None if row is None else bytes(row[0])

    def mark_retry(self, ids: Iterable[int], next_at: float, error: str, *, count: bool = True) -> None:
        """Try again at `next_at`; `count=False` for deferrals (quiet hours, rate limit) that are no failure."""
        with self.tx() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                [(1 if count else 0, next_at, error, i) for i in ids],
            )

    def mark_dead(self, ids: Iterable[int], error: str) -> None:
        with self.tx() as db:
            db.executemany("UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ? WHERE id = ?",
                           [(error, i) for i in ids])

    def depth(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT id, dedup_key, channel, shop, status, attempts, last_error, payload FROM outbox"
        args: tuple[Any, ...] = ()
        if status:
            q, args = q + " WHERE status = ?", (status,)
        keys = ("id", "dedup_key", "channel", "shop", "status", "attempts", "last_error", "payload")
        return [dict(zip(keys, r, strict=True)) for r in self.db.execute(q + " ORDER BY id", args)]

    # ---- send rate (per webhook, across restarts) ---------------------------------------------
    def sent_within(self, rate_key: str, now: float, window: float = 60.0) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sends WHERE rate_key = ? AND at > ?",
                                   (rate_key, now - window)).fetchone()[0])

    def oldest_within(self, rate_key: str, now: float, window: float = 60.0) -> float | None:
        row = self.db.execute("SELECT MIN(at) FROM sends WHERE rate_key = ? AND at > ?", (rate_key, now - window))
        value = row.fetchone()[0]
        return None if value is None else float(value)

    def record_send(self, rate_key: str, now: float) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO sends (rate_key, at) VALUES (?, ?)", (rate_key, now))
            db.execute("DELETE FROM sends WHERE at < ?", (now - 3600,))

    def begin_sends(self, rate_keys: Iterable[str], at: float, cost: int) -> list[tuple[str, float]]:
        """A send about to go, counted in its channel's windows at `at` (the latest the service may count it) until
        `settle_sends` moves it to when the answer came or `drop_sends` removes it: a sender that dies in between
        leaves it counted, so the next sender cannot go over the limit by the message it never saw answered."""
        attempt = [(key, at) for key in rate_keys for _ in range(cost)]
        with self.tx() as db:
            db.executemany("INSERT INTO sends (rate_key, at) VALUES (?, ?)", attempt)
        return attempt

    def settle_sends(self, attempt: list[tuple[str, float]], at: float) -> None:
        with self.tx() as db:
            db.executemany("UPDATE sends SET at = ? WHERE rate_key = ? AND at = ?", [(at, k, t) for k, t in attempt])
            db.execute("DELETE FROM sends WHERE at < ?", (at - 3600,))

    def drop_sends(self, attempt: list[tuple[str, float]]) -> None:
        with self.tx() as db:
            db.executemany("DELETE FROM sends WHERE rate_key = ? AND at = ?", attempt)

    # ---- channels ---------------------------------------------------------------------------
    def set_broken(self, channel: str, now: float, reason: str) -> bool:
        """Mark a channel broken; True when it was not already."""
        with self.tx() as db:
            was = db.execute("SELECT broken_at FROM channels WHERE name = ?", (channel,)).fetchone()
            db.execute("INSERT INTO channels (name, broken_at, reason) VALUES (?, ?, ?) ON CONFLICT (name) "
                       "DO UPDATE SET broken_at = excluded.broken_at, reason = excluded.reason", (channel, now, reason))
            return was is None or was[0] is None

    def clear_broken(self, channel: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE channels SET broken_at = NULL, reason = NULL WHERE name = ?", (channel,))

    def broken(self) -> dict[str, str]:
        rows = self.db.execute("SELECT name, reason FROM channels WHERE broken_at IS NOT NULL")
        return {name: reason or "" for name, reason in rows}

    _CHANNEL = "SELECT name, failing_since, failures, last_error, next_try, noticed_at FROM channels"

    def channel_states(self) -> dict[str, ChannelState]:
        return {r[0]: _channel(r) for r in self.db.execute(self._CHANNEL)}

    def channel_state(self, channel: str) -> ChannelState | None:
        r = self.db.execute(self._CHANNEL + " WHERE name = ?", (channel,)).fetchone()
        return None if r is None else _channel(r)

    def channel_failed(self, channel: str, now: float, error: str, next_try: float) -> None:
        """One more failed try of `channel` (its first failure starts the episode)."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO channels (name, failing_since, failures, last_error, next_try) VALUES (?, ?, 1, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET "
                "failing_since = COALESCE(channels.failing_since, excluded.failing_since), "
                "failures = channels.failures + 1, last_error = excluded.last_error, next_try = excluded.next_try",
                (channel, now, error, next_try),
            )

    def channel_ok(self, channel: str) -> ChannelState | None:
        """A send went through: the failing episode (if any) ends. Returns the episode that ended."""
        before = self.channel_state(channel)
        if before is None or not before.failing:
            return None
        with self.tx() as db:
            db.execute("UPDATE channels SET failing_since = NULL, failures = 0, next_try = NULL, noticed_at = NULL "
                       "WHERE name = ?", (channel,))
        return before

    def channel_noticed(self, channel: str, now: float) -> bool:
        """Record that the admins were told `channel` is failing; True the first time in the episode."""
        with self.tx() as db:
            cur = db.execute("UPDATE channels SET noticed_at = ? WHERE name = ? AND failing_since IS NOT NULL "
                             "AND noticed_at IS NULL", (now, channel))
            return cur.rowcount > 0

    def probe_channels_now(self, now: float) -> None:
        """A (re)started service tries failing channels at once instead of waiting out an old backoff."""
        with self.tx() as db:
            db.execute("UPDATE channels SET next_try = ? WHERE failing_since IS NOT NULL", (now,))

    # ---- shop health ------------------------------------------------------------------------
    def shop_health(self, shop: str) -> ShopHealth:
        row = self.db.execute(
            "SELECT last_ok, last_error, last_state, consecutive_failures, health, counters FROM shops WHERE shop = ?",
            (shop,),
        ).fetchone()
        if row is None:
            return ShopHealth(shop, None, None, None, 0, {})
        return ShopHealth(shop, row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]))

    def shops_read(self) -> dict[str, tuple[float | None, str | None, int, str | None]]:
        """Every shop's (last read, last state, failures in a row, last error) in one query: what the other nodes
        of a cluster learned."""
        rows = self.db.execute("SELECT shop, last_ok, last_state, consecutive_failures, last_error FROM shops")
        return {str(r[0]): (r[1], r[2], int(r[3] or 0), r[4]) for r in rows}

    @staticmethod
    def _write_health(db: Engine, prev: ShopHealth, now: float, ok: bool, state: str,
                      error: str | None, health: Mapping[str, float]) -> None:
        failures = 0 if ok else prev.consecutive_failures + 1
        db.execute(
            "INSERT INTO shops (shop, last_ok, last_error, last_state, consecutive_failures, health) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (shop) DO UPDATE SET last_ok = excluded.last_ok, "
            "last_error = excluded.last_error, last_state = excluded.last_state, "
            "consecutive_failures = excluded.consecutive_failures, health = excluded.health",
            (prev.shop, now if ok else prev.last_ok, None if ok else error, state, failures, json.dumps(dict(health))),
        )
