"""The team's records in the store: claims with versions, the item timeline (every action, who and when), notes,
read-only API tokens, and the reads the team page makes (open items, an item's sends, 30 days of history)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from agent.core.claims import Claim, item_key
from agent.core.rules import ItemState
from agent.outbox.engine import Engine
from agent.outbox.store import Store

_CLAIM = "SELECT shop, kind, item_id, member, claimed_at, renewed_at, deadline, done_by, done_at, version FROM claims"


class Conflict(Exception):
    """The item changed since the page showed it (a stale version): 409 with what it is now."""

    def __init__(self, current: Claim) -> None:
        super().__init__(f"item changed (version {current.version})")
        self.current = current


class NotFound(KeyError):
    """No item has this key."""


@dataclass(frozen=True, slots=True)
class Event:
    """One line of an item's timeline: a claim, a note, a quiet stage, a close (who, when, what)."""

    id: int
    at: float
    actor: str
    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class Send:
    """One alert row of an item: which stage or notice, to which channel, sent or still waiting."""

    event: str
    channel: str
    status: str
    created_at: float
    sent_at: float | None


def _claim(r: Any) -> Claim:
    return Claim(shop=r[0], kind=r[1], item_id=r[2], member=r[3], claimed_at=r[4], renewed_at=r[5], deadline=r[6],
                 done_by=r[7], done_at=r[8], version=int(r[9]))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Team:
    """Claims, timeline and tokens over the agent's store (same database, same transactions)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db: Engine = store.db

    # ---- items --------------------------------------------------------------------------------
    def open_index(self) -> list[tuple[str, str, str, float, bool]]:
        """(shop, kind, item_id, deadline epoch, quality) of every open item, most urgent first — without parsing
        each item's JSON (the 待办 list parses only the page it shows)."""
        # the ISO deadline with its offset as epoch seconds, sorted in SQL
        db = self.db
        rows = db.execute(
            f"SELECT shop, kind, item_id, {db.iso_epoch(db.json_text('data', 'deadline'))} AS d, "
            f"{db.json_true('data', 'quality')} FROM items WHERE closed = 0 ORDER BY d, shop, item_id")
        return [(s, k, i, round(d, 3), bool(q)) for s, k, i, d, q in rows]

    def states(self, keys: Iterable[tuple[str, str, str]]) -> list[ItemState]:
        """The items of (shop, kind, item_id) keys, in that order (unknown keys left out)."""
        out = []
        for k in keys:
            r = self.db.execute("SELECT data FROM items WHERE shop = ? AND kind = ? AND item_id = ?", k).fetchone()
            if r:
                out.append(ItemState.from_dict(json.loads(r[0])))
        return out

    def open_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items WHERE closed = 0").fetchone()[0])

    def closed_since(self, since: float) -> list[ItemState]:
        rows = self.db.execute(
            f"SELECT data FROM items WHERE closed = 1 AND {self.db.json_num('data', 'last_seen_ts')} >= ?", (since,))
        return [ItemState.from_dict(json.loads(d)) for (d,) in rows]

    def find(self, key: str) -> ItemState:
        """The item of a key (`core.claims.item_key`); NotFound otherwise."""
        kind, _, rest = key.partition("-")
        item_id, _, _ = rest.rpartition("-")
        for shop, data in self.db.execute("SELECT shop, data FROM items WHERE kind = ? AND item_id = ?",
                                          (kind, item_id)):
            if item_key(shop, kind, item_id) == key:
                return ItemState.from_dict(json.loads(data))
        raise NotFound(key)

    def sends(self, shop: str, kind: str, item_id: str) -> list[Send]:
        """The item's alert rows (stages and notices; failover copies folded in), oldest first."""
        prefix = f"{shop}:{kind}:{item_id}:"
        rows = self.db.execute(
            "SELECT dedup_key, channel, status, created_at, sent_at FROM outbox WHERE dedup_key >= ? AND dedup_key < ? "
            "ORDER BY created_at, id", (prefix, prefix + "\U0010ffff"))
        return [Send(k[len(prefix):].split("#")[0], ch, st, c, s) for k, ch, st, c, s in rows]

    # ---- claims -------------------------------------------------------------------------------
    def claims(self, shop: str | None = None) -> dict[tuple[str, str, str], Claim]:
        q, args = (_CLAIM + " WHERE shop = ?", (shop,)) if shop is not None else (_CLAIM, ())
        return {(c.shop, c.kind, c.item_id): c for c in map(_claim, self.db.execute(q, args))}

    def held(self) -> list[Claim]:
        """Claims that hold or mark an item (the sweep checks them for lapses)."""
        return [_claim(r) for r in self.db.execute(_CLAIM + " WHERE member IS NOT NULL OR done_by IS NOT NULL")]

    def claim_of(self, shop: str, kind: str, item_id: str) -> Claim:
        r = self.db.execute(_CLAIM + " WHERE shop = ? AND kind = ? AND item_id = ?", (shop, kind, item_id)).fetchone()
        return _claim(r) if r else Claim(shop=shop, kind=kind, item_id=item_id)

    def _write(self, db: Engine, c: Claim) -> Claim:
        c = replace(c, version=c.version + 1)
        db.execute(
            "INSERT INTO claims (shop, kind, item_id, member, claimed_at, renewed_at, deadline, done_by, done_at, "
            "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shop, kind, item_id) DO UPDATE SET "
            "member = excluded.member, claimed_at = excluded.claimed_at, renewed_at = excluded.renewed_at, "
            "deadline = excluded.deadline, done_by = excluded.done_by, done_at = excluded.done_at, "
            "version = excluded.version",
            (c.shop, c.kind, c.item_id, c.member, c.claimed_at, c.renewed_at, c.deadline, c.done_by, c.done_at,
             c.version))
        return c

    @staticmethod
    def _event(db: Engine, c: Claim, at: float, actor: str, action: str, detail: str = "") -> None:
        db.execute("INSERT INTO item_events (shop, kind, item_id, at, actor, action, detail) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (c.shop, c.kind, c.item_id, at, actor, action, detail))

    def act(self, state: ItemState, action: str, actor: str, now: float, *, expected: int | None = None,
            member: str | None = None, text: str = "") -> Claim:
        """One member action, in one transaction with its timeline line: claim (take, renew, or reassign to
        `member`), release, done, note (`text`). `expected`: the version the page showed (Conflict if it moved)."""
        with self.store.tx() as db:
            c = self.claim_of(state.shop, state.kind, state.item_id)
            if expected is not None and expected != c.version:
                raise Conflict(c)
            deadline = state.deadline.timestamp()
            if action == "claim":
                target = member or actor
                if c.member == target:
                    c, what, detail = replace(c, renewed_at=now, deadline=deadline), "renewed", ""
                else:
                    what = "claimed" if target == actor else "reassigned"
                    detail = f"{c.member} → {target}" if c.member else (target if target != actor else "")
                    c = replace(c, member=target, claimed_at=now, renewed_at=None, deadline=deadline,
                                done_by=None, done_at=None)
            elif action == "release":
                c, what, detail = replace(c, member=None, claimed_at=None, renewed_at=None), "released", c.member or ""
            elif action == "done":
                c, what, detail = replace(c, member=None, claimed_at=None, renewed_at=None, done_by=actor,
                                          done_at=now, deadline=deadline), "done", ""
            elif action == "note":
                what, detail = "note", text
            else:
                raise ValueError(f"unknown action {action!r}")
            c = self._write(db, c)
            self._event(db, c, now, actor, what, detail)
            return c

    def lapse(self, c: Claim, reason: str, now: float) -> Claim | None:
        """The sweep found `c` no longer holding: open it again (unless it changed meanwhile)."""
        with self.store.tx() as db:
            cur = self.claim_of(c.shop, c.kind, c.item_id)
            if cur.version != c.version:
                return None
            new = self._write(db, replace(cur, member=None, claimed_at=None, renewed_at=None, done_by=None,
                                          done_at=None))
            self._event(db, new, now, "系统", "lapsed", f"{c.member or c.done_by or ''}:{reason}")
            return new

    # ---- timeline -----------------------------------------------------------------------------
    def events(self, shop: str, kind: str, item_id: str) -> list[Event]:
        rows = self.db.execute("SELECT id, at, actor, action, detail FROM item_events WHERE shop = ? AND kind = ? "
                               "AND item_id = ? ORDER BY id", (shop, kind, item_id))
        return [Event(*r) for r in rows]

    def note_counts(self) -> dict[tuple[str, str, str], int]:
        rows = self.db.execute("SELECT shop, kind, item_id, COUNT(*) FROM item_events WHERE action = 'note' "
                               "GROUP BY shop, kind, item_id")
        return {(s, k, i): n for s, k, i, n in rows}

    def latest_notes(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        out: dict[tuple[str, str, str], str] = {}
        for k in keys:
            r = self.db.execute("SELECT detail FROM item_events WHERE shop = ? AND kind = ? AND item_id = ? AND "
                                "action = 'note' ORDER BY id DESC LIMIT 1", k).fetchone()
            if r:
                out[k] = r[0]
        return out

    def handled_by(self, shop: str, since: float, until: float) -> dict[str, int]:
        """Per member, the shop's items they marked done or held when PDD closed them (the digest's 「按成员」)."""
        rows = self.db.execute(
            "SELECT actor, COUNT(DISTINCT kind || ':' || item_id) FROM item_events WHERE shop = ? AND action IN "
            "('done', 'closed_by') AND at >= ? AND at < ? GROUP BY actor", (shop, since, until))
        return dict(rows.fetchall())

    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, shop, kind, item_id, at, actor, action, detail FROM item_events "
                               "WHERE actor != '系统' ORDER BY id DESC LIMIT ?", (limit,))
        keys = ("id", "shop", "kind", "item_id", "at", "actor", "action", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # ---- API tokens ---------------------------------------------------------------------------
    def new_token(self, name: str, now: float) -> str:
        """A new read-only token named `name` (replacing one of that name); only its hash is kept."""
        token = "pdt_" + secrets.token_urlsafe(24)
        with self.store.tx() as db:
            db.execute("INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO "
                       "UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at, "
                       "last_used_at = NULL", (name, token_hash(token), now))
        return token

    def token_name(self, token: str, now: float) -> str | None:
        """The name of a valid token (its use recorded), else None."""
        r = self.db.execute("SELECT name FROM api_tokens WHERE token_hash = ?", (token_hash(token),)).fetchone()
        if r is None:
            return None
        with self.store.tx() as db:
            db.execute("UPDATE api_tokens SET last_used_at = ? WHERE name = ?", (now, r[0]))
        return str(r[0])

    def revoke(self, name: str) -> bool:
        with self.store.tx() as db:
            return db.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount > 0
