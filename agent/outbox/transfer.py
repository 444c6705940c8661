"""Moving a store from one engine to another (`pdd-agent cluster import`: one machine's SQLite file into the
PostgreSQL several nodes share): every table, row for row, ids kept, in one transaction on the target."""

from __future__ import annotations

from agent.outbox.engine import POSTGRES
from agent.outbox.store import Store

TABLES = ("items", "outbox", "sends", "channels", "shops", "claims", "item_events", "api_tokens", "qr_links")
IDENTITY = ("outbox", "item_events")  # tables whose id the target numbers on from the largest copied


class TargetNotEmpty(RuntimeError):
    """The target store already holds state: importing would mix two histories."""


def columns(store: Store, table: str) -> list[str]:
    if store.db.dialect == POSTGRES:
        rows = store.db.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                "ORDER BY ordinal_position", (table,))
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in store.db.execute(f"PRAGMA table_info({table})")]


def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copy every table of `source` into the empty `target` (both at the same schema version); rows per table."""
    busy = [t for t in ("items", "outbox", "shops") if target.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]]
    if busy:
        raise TargetNotEmpty(f"the target store already has rows in {', '.join(busy)} (目标数据库不是空的)")
    counts: dict[str, int] = {}
    with target.tx():
        for table in TABLES:
            names = [c for c in columns(source, table) if c in set(columns(target, table))]
            rows = source.db.execute(f"SELECT {', '.join(names)} FROM {table}").fetchall()
            marks = ", ".join("?" for _ in names)
            target.db.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})",
                                  [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows])
            counts[table] = len(rows)
        if target.db.dialect == POSTGRES:
            for table in IDENTITY:
                target.db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
    return counts
