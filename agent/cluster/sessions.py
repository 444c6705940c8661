"""Shops' saved sessions shared by the nodes: in PostgreSQL, encrypted with Fernet (MultiFernet: the first key
encrypts, every key decrypts, so keys can be rotated), never written to a node's disk. Any node can take any shop
without a new login."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from loguru import logger

from agent.outbox.engine import Engine

TABLE = """
CREATE TABLE IF NOT EXISTS shop_sessions (
    shop TEXT PRIMARY KEY, token BYTEA NOT NULL, updated_at DOUBLE PRECISION NOT NULL, node TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shop_plans (shop TEXT PRIMARY KEY, doc TEXT NOT NULL)
"""


def keys_of(text: str) -> MultiFernet:
    """The keys of `[cluster] session_keys` ("KEY1,KEY2": the first encrypts); ValueError names none of them."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValueError("no session key")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError):
        raise ValueError("a session key is not a Fernet key (32 url-safe base64 bytes)") from None


class SharedSessions:
    """The sessions table over one connection; `for_shop(name)` is what a shop's browser session loads and saves."""

    def __init__(self, db: Engine, keys: str, node: str) -> None:
        self.db, self.fernet, self.node = db, keys_of(keys), node

    def create(self) -> None:
        with self.db.tx():
            self.db.execute(TABLE)

    def for_shop(self, shop: str) -> ShopVault:
        return ShopVault(self, shop)

    def load(self, shop: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT token FROM shop_sessions WHERE shop = ?", (shop,)).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(self.fernet.decrypt(bytes(row[0])))
        except (InvalidToken, ValueError):
            logger.warning("shop {}: the shared session cannot be decrypted with the configured keys; starting "
                           "logged out", shop)
            return None
        return data if isinstance(data, dict) else None

    def save(self, shop: str, state: Mapping[str, Any]) -> None:
        token = self.fernet.encrypt(json.dumps(dict(state), ensure_ascii=False).encode("utf-8"))
        with self.db.tx():
            self.db.execute("INSERT INTO shop_sessions (shop, token, updated_at, node) VALUES (?, ?, "
                            "EXTRACT(EPOCH FROM clock_timestamp()), ?) ON CONFLICT (shop) DO UPDATE SET "
                            "token = excluded.token, updated_at = excluded.updated_at, node = excluded.node",
                            (shop, token, self.node))

    def load_plan(self, shop: str) -> Any:
        """The request plan a node learned for the shop (not secret: the bodies the page sends), or None."""
        row = self.db.execute("SELECT doc FROM shop_plans WHERE shop = ?", (shop,)).fetchone()
        try:
            return None if row is None else json.loads(row[0])
        except ValueError:
            return None

    def save_plan(self, shop: str, doc: Mapping[str, Any]) -> None:
        with self.db.tx():
            self.db.execute("INSERT INTO shop_plans (shop, doc) VALUES (?, ?) ON CONFLICT (shop) DO UPDATE SET "
                            "doc = excluded.doc", (shop, json.dumps(dict(doc), ensure_ascii=False)))

    def rotate(self) -> int:
        """Re-encrypt every saved session with the first key (then older keys may be removed); rows done."""
        rows = self.db.execute("SELECT shop, token FROM shop_sessions").fetchall()
        with self.db.tx():
            for shop, token in rows:
                self.db.execute("UPDATE shop_sessions SET token = ? WHERE shop = ?",
                                (self.fernet.rotate(bytes(token)), shop))
        return len(rows)

    def updated(self) -> dict[str, float]:
        """Shop → when its session was last saved (database time)."""
        return {str(s): float(t) for s, t in self.db.execute("SELECT shop, updated_at FROM shop_sessions")}


class ShopVault:
    """One shop's shared session, as the browser session loads and saves it."""

    where = "the cluster database (encrypted)"

    def __init__(self, sessions: SharedSessions, shop: str) -> None:
        self.sessions, self.shop = sessions, shop

    def load(self) -> dict[str, Any] | None:
        return self.sessions.load(self.shop)

    async def save(self, state: Mapping[str, Any]) -> None:
        self.sessions.save(self.shop, state)

    def plan(self) -> Any:
        return self.sessions.load_plan(self.shop)

    def keep_plan(self, doc: Mapping[str, Any]) -> None:
        self.sessions.save_plan(self.shop, doc)
