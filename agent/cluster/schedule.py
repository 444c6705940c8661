"""The shared schedule of several nodes (PostgreSQL): when each shop is due, who holds it (a lease whose number
fences late commits), the nodes' heartbeats, and taking back the shops of a node that stopped beating.

The schedule is the source of truth (not the job queue): a shop is due at `next_due_at` (database time, epoch
seconds); claiming it moves `next_due_at` to its next time in the same statement that locks it, so two nodes
never claim one shop for one period and a period missed while every node was down is still claimed after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.outbox.engine import Engine

TABLES = """
CREATE TABLE IF NOT EXISTS shop_schedule (
    shop TEXT PRIMARY KEY, next_due_at DOUBLE PRECISION NOT NULL, lease BIGINT NOT NULL DEFAULT 0,
    lease_node TEXT, last_node TEXT, leased_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS cluster_nodes (
    name TEXT PRIMARY KEY, heartbeat_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION NOT NULL,
    pid INTEGER NOT NULL, host TEXT NOT NULL, stopped_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS cluster_runs (
    job TEXT NOT NULL, period TEXT NOT NULL, node TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job, period)
)
"""


class Fenced(RuntimeError):
    """A check's lease is no longer the shop's: another node took the shop over. Its result must not be
    written (a node presumed dead that wakes up)."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    heartbeat_at: float
    started_at: float
    pid: int
    host: str
    stopped_at: float | None


class Schedule:
    """The shop schedule and node table over a PostgreSQL engine (the store's own connection)."""

    def __init__(self, db: Engine) -> None:
        if db.dialect != "postgres":
            raise ValueError("the shared schedule needs PostgreSQL ([cluster] database_url)")
        self.db = db

    def create(self) -> None:
        with self.db.tx():
            self.db.execute("SELECT pg_advisory_xact_lock(7221002)")
            for statement in TABLES.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def now(self) -> float:
        """Database time (one clock for every node), epoch seconds."""
        return float(self.db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::double precision").fetchone()[0])

    # ---- shops --------------------------------------------------------------------------------
    def sync(self, first_due: dict[str, float]) -> None:
        """Every configured shop (name → when it is first due if new) in the schedule; others removed."""
        with self.db.tx():
            for shop, at in first_due.items():
                self.db.execute("INSERT INTO shop_schedule (shop, next_due_at) VALUES (?, ?) "
                                "ON CONFLICT (shop) DO NOTHING", (shop, at))
            names = list(first_due)
            if names:
                marks = ", ".join("?" for _ in names)
                self.db.execute(f"DELETE FROM shop_schedule WHERE shop NOT IN ({marks})", names)
            else:
                self.db.execute("DELETE FROM shop_schedule")

    def claim_due(self, next_due: Callable[[str, float, float], float], limit: int = 500) -> list[str]:
        """The shops due now, each moved to its next time (`next_due(shop, was_due, now)`) in the same
        transaction; rows another node is claiming are skipped, not waited for."""
        with self.db.tx():
            now = self.now()
            rows = self.db.execute("SELECT shop, next_due_at FROM shop_schedule WHERE next_due_at <= ? "
                                   "ORDER BY next_due_at LIMIT ? FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()
            for shop, due in rows:
                self.db.execute("UPDATE shop_schedule SET next_due_at = ? WHERE shop = ?",
                                (next_due(shop, float(due), now), shop))
        return [str(r[0]) for r in rows]

    def begin(self, shop: str, node: str) -> int:
        """Take the shop for one check: its new lease number (every earlier lease is void from now)."""
        with self.db.tx():
            row = self.db.execute("UPDATE shop_schedule SET lease = lease + 1, lease_node = ?, last_node = ?, "
                                  "leased_at = EXTRACT(EPOCH FROM clock_timestamp()) WHERE shop = ? RETURNING lease",
                                  (node, node, shop)).fetchone()
        if row is None:
            raise Fenced(f"shop {shop!r} is not in the schedule (removed from the config?)")
        return int(row[0])

    def end(self, shop: str, lease: int) -> None:
        """The check with `lease` is over (the shop is free for the next one)."""
        with self.db.tx():
            self.db.execute("UPDATE shop_schedule SET lease_node = NULL WHERE shop = ? AND lease = ?", (shop, lease))

    def fence(self, shop: str, lease: int, db: Engine | None = None) -> None:
        """Inside the caller's transaction (on `db`, the store's connection, default ours): lock the shop's row
        and refuse (Fenced) unless `lease` still holds."""
        row = (db or self.db).execute("SELECT lease FROM shop_schedule WHERE shop = ? FOR UPDATE",
                                      (shop,)).fetchone()
        if row is None or int(row[0]) != lease:
            raise Fenced(f"the check of {shop!r} (lease {lease}) was taken over (now lease "
                         f"{None if row is None else row[0]}): its result is not written")

    def leases(self, shops: list[str]) -> dict[str, int]:
        """Shop → its current lease number (a shop not in the schedule is left out)."""
        if not shops:
            return {}
        marks = ", ".join("?" for _ in shops)
        rows = self.db.execute(f"SELECT shop, lease FROM shop_schedule WHERE shop IN ({marks})", tuple(shops))
        return {str(s): int(n) for s, n in rows}

    def held_by(self) -> dict[str, str]:
        """Shop → the node checking it now."""
        rows = self.db.execute("SELECT shop, lease_node FROM shop_schedule WHERE lease_node IS NOT NULL")
        return {str(s): str(n) for s, n in rows}

    def last_nodes(self) -> dict[str, str]:
        """Shop → the node that checked it last (a node prefers these: warm connections, the same exit)."""
        rows = self.db.execute("SELECT shop, last_node FROM shop_schedule WHERE last_node IS NOT NULL")
        return {str(s): str(n) for s, n in rows}

    def claim_run(self, job: str, period: str, node: str) -> bool:
        """True for the one node that runs `job` for `period` (e.g. the digest of a local day); False for the
        others, whose timers fired too."""
        with self.db.tx():
            cur = self.db.execute("INSERT INTO cluster_runs (job, period, node, at) VALUES (?, ?, ?, "
                                  "EXTRACT(EPOCH FROM clock_timestamp())) ON CONFLICT DO NOTHING", (job, period, node))
            return cur.rowcount > 0

    # ---- nodes --------------------------------------------------------------------------------
    def beat(self, node: str, pid: int, host: str) -> None:
        with self.db.tx():
            self.db.execute(
                "INSERT INTO cluster_nodes (name, heartbeat_at, started_at, pid, host) VALUES (?, "
                "EXTRACT(EPOCH FROM clock_timestamp()), EXTRACT(EPOCH FROM clock_timestamp()), ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, pid = excluded.pid, "
                "host = excluded.host, stopped_at = NULL, started_at = CASE WHEN cluster_nodes.pid = excluded.pid "
                "THEN cluster_nodes.started_at ELSE excluded.started_at END", (node, pid, host))

    def stopped(self, node: str) -> None:
        """A clean stop: the node hands back whatever it still holds."""
        with self.db.tx():
            self.db.execute("UPDATE cluster_nodes SET stopped_at = EXTRACT(EPOCH FROM clock_timestamp()) "
                            "WHERE name = ?", (node,))
            self.db.execute("UPDATE shop_schedule SET lease = lease + 1, lease_node = NULL WHERE lease_node = ?",
                            (node,))

    def nodes(self) -> list[Node]:
        rows = self.db.execute("SELECT name, heartbeat_at, started_at, pid, host, stopped_at FROM cluster_nodes "
                               "ORDER BY name")
        return [Node(str(r[0]), float(r[1]), float(r[2]), int(r[3]), str(r[4]),
                     None if r[5] is None else float(r[5])) for r in rows]

    def take_back(self, stall: float) -> list[tuple[str, str]]:
        """Shops held by a node whose heartbeat is older than `stall` seconds: their leases are voided (a late
        commit of that node is refused) and they are due now. Returns (shop, dead node) pairs."""
        with self.db.tx():
            now = self.now()
            rows = self.db.execute(
                "UPDATE shop_schedule s SET lease = s.lease + 1, lease_node = NULL, next_due_at = ? "
                "FROM cluster_nodes n WHERE s.lease_node = n.name AND n.heartbeat_at < ? "
                "RETURNING s.shop, n.name", (now, now - stall)).fetchall()
            orphans = self.db.execute(  # held by a node that never registered (or was removed)
                "UPDATE shop_schedule SET lease = lease + 1, lease_node = NULL, next_due_at = ? "
                "WHERE lease_node IS NOT NULL AND lease_node NOT IN (SELECT name FROM cluster_nodes) "
                "AND leased_at < ? RETURNING shop, lease_node", (now, now - stall)).fetchall()
        return [(str(s), str(n)) for s, n in (*rows, *orphans)]
