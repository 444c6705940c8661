"""The store's two database engines: SQLite (one process, the default) and PostgreSQL (several nodes), behind one
connection surface — `execute` with `?` placeholders, `tx()`, and the few SQL fragments that differ by dialect.

The store's SQL is written once (portable: `ON CONFLICT`, `COALESCE`, `||`); only JSON access, ISO times to epoch
seconds and the schema differ. psycopg is imported here alone, and only for a `postgresql://` URL.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SQLITE, POSTGRES = "sqlite", "postgres"


class Engine:
    """One connection in one dialect. Transactions are the caller's (`with engine.tx():`); nested ones are
    savepoints on PostgreSQL and must not happen on SQLite."""

    dialect: str

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    @contextmanager
    def tx(self) -> Iterator[Engine]:
        raise NotImplementedError
        yield self

    def close(self) -> None:
        raise NotImplementedError

    # ---- fragments --------------------------------------------------------------------------
    def json_text(self, column: str, *path: str) -> str:
        """A JSON member of a text column as text (NULL when absent)."""
        raise NotImplementedError

    def json_num(self, column: str, *path: str) -> str:
        """A JSON member as a number."""
        raise NotImplementedError

    def json_true(self, column: str, *path: str) -> str:
        """A boolean condition: the JSON member is true (or a non-zero number)."""
        raise NotImplementedError

    def iso_epoch(self, expr: str) -> str:
        """An ISO-8601 time with its offset (text) as epoch seconds."""
        raise NotImplementedError


class SqliteEngine(Engine):
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        self.path = path
        # explicit transactions; one user at a time, from any thread
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        if new:
            os.chmod(path, 0o600)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    @contextmanager
    def tx(self) -> Iterator[Engine]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def json_text(self, column: str, *path: str) -> str:
        return f"json_extract({column}, '$.{'.'.join(path)}')"

    json_num = json_text

    def json_true(self, column: str, *path: str) -> str:
        return f"COALESCE({self.json_text(column, *path)}, 0) != 0"

    def iso_epoch(self, expr: str) -> str:
        return f"((julianday({expr}) - 2440587.5) * 86400.0)"


class PostgresEngine(Engine):
    dialect = POSTGRES

    def __init__(self, url: str, name: str = "pdd-agent") -> None:
        import psycopg  # the optional [cluster] extra; only a postgresql:// store needs it

        self.url = url
        # the name shows in pg_stat_activity (which node holds a lock, whose query is slow)
        self.conn = psycopg.connect(url, autocommit=True, application_name=name[:63])

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._sql(sql), tuple(args))  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)  # type: ignore[arg-type]

    @contextmanager
    def tx(self) -> Iterator[Engine]:
        with self.conn.transaction():
            yield self

    def close(self) -> None:
        self.conn.close()

    def json_text(self, column: str, *path: str) -> str:
        return f"({column}::jsonb #>> '{{{','.join(path)}}}')"

    def json_num(self, column: str, *path: str) -> str:
        return f"({self.json_text(column, *path)})::double precision"

    def json_true(self, column: str, *path: str) -> str:
        return f"COALESCE({self.json_text(column, *path)} IN ('true', '1'), false)"

    def iso_epoch(self, expr: str) -> str:
        return f"EXTRACT(EPOCH FROM ({expr})::timestamptz)::double precision"


def database_errors() -> tuple[type[BaseException], ...]:
    """What either engine raises for a database problem (a locked, corrupt or unreachable store)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def open_engine(where: Path | str, name: str = "pdd-agent") -> Engine:
    """The engine of a store location: a `postgresql://` (or `postgres://`) URL (`name`: its application name),
    else a SQLite file path."""
    text = str(where)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresEngine(text, name)
    return SqliteEngine(Path(where))
