"""The store, on both engines (a SQLite file and a real PostgreSQL): one-transaction checks, dedup across restarts,
retries, rates, channels, shop health, the urgency order, QR links, unverified sends, the schema version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.outbox.store import Store

T0 = 1_795_240_800.0


def state(item: str, stage: int) -> dict[str, object]:
    return {"kind": "aftersale", "item_id": item, "last_stage": stage}


@pytest.fixture
def db(store_at: Path | str) -> Iterator[Store]:
    store = Store(store_at)
    yield store
    store.close()


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    db = Store(tmp_path / "agent.db")
    assert db.db.dialect == "sqlite" and Path(db.path).stat().st_mode & 0o777 == 0o600
    assert db.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_check_writes_states_and_alerts_together_and_dedups(db: Store) -> None:
    alerts = [("s:aftersale:1:0", "ops", {"n": 1}), ("s:aftersale:1:0", "mail", {"n": 1})]
    assert db.commit_check("s", [state("1", 0)], alerts, T0) == 2
    assert db.commit_check("s", [state("1", 0)], alerts, T0 + 60) == 0  # same keys: ignored
    assert db.load_items("s") == {("aftersale", "1"): {"kind": "aftersale", "item_id": "1", "last_stage": 0}}
    assert [(r.dedup_key, r.channel) for r in db.due(T0)] == [("s:aftersale:1:0", "ops"), ("s:aftersale:1:0", "mail")]


def test_a_failed_transaction_leaves_nothing(db: Store) -> None:
    states = [state("1", 2), {"item_id": "2"}]  # the second state has no kind: the check fails midway
    with pytest.raises(KeyError):
        db.commit_check("s", states, [("k0", "ops", {})], T0)
    assert db.load_items("s") == {} and db.due(T0) == []


def test_crash_between_check_and_dispatch_loses_nothing_and_sends_nothing_twice(store_at: Path | str) -> None:
    first = Store(store_at)
    first.commit_check("s", [state("1", 0)], [("a", "ops", {}), ("b", "ops", {})], T0)
    first.db.close()  # "killed" before dispatching
    second = Store(store_at)
    rows = second.due(T0)
    assert [r.dedup_key for r in rows] == ["a", "b"]
    second.mark_sent([rows[0].id], T0 + 1)
    second.close()
    third = Store(store_at)
    assert [r.dedup_key for r in third.due(T0 + 2)] == ["b"]
    assert third.commit_check("s", [], [("a", "ops", {})], T0 + 3) == 0  # a re-check after restart re-sends nothing
    third.close()


def test_retry_and_dead(db: Store) -> None:
    db.commit_check("s", [], [("a", "ops", {}), ("b", "ops", {})], T0)
    a, b = db.due(T0)
    db.mark_retry([a.id], T0 + 30, "errcode -1")
    assert [r.dedup_key for r in db.due(T0 + 10)] == ["b"]
    assert [(r.dedup_key, r.attempts) for r in db.due(T0 + 30)] == [("a", 1), ("b", 0)]
    db.mark_dead([b.id], "errcode 93000")
    assert db.depth() == {"pending": 1, "dead": 1}
    assert db.rows("dead")[0]["last_error"] == "errcode 93000"


def test_send_rate_survives_a_restart(store_at: Path | str) -> None:
    db = Store(store_at)
    for i in range(20):
        db.record_send("wecom:abc", T0 + i)
    db.close()
    db = Store(store_at)
    assert db.sent_within("wecom:abc", T0 + 30) == 20
    assert db.oldest_within("wecom:abc", T0 + 30) == T0
    assert db.sent_within("wecom:abc", T0 + 70) == 9  # T0+11 … T0+19 are within the last 60 s
    assert db.sent_within("wecom:other", T0 + 30) == 0
    db.close()


def test_broken_channels(db: Store) -> None:
    assert db.set_broken("ops", T0, "93000") is True
    assert db.set_broken("ops", T0 + 1, "93000") is False
    assert db.broken() == {"ops": "93000"}
    db.clear_broken("ops")
    assert db.broken() == {}


def test_shop_health_counts_consecutive_failures(db: Store) -> None:
    assert db.shop_health("s").consecutive_failures == 0
    db.commit_check("s", [], [], T0, check=(False, "timeout", "x", {}))
    db.commit_check("s", [], [], T0 + 60, check=(False, "timeout", "y", {"s:health:timeout": T0 + 60}))
    h = db.shop_health("s")
    assert (h.consecutive_failures, h.last_ok, h.last_error, h.health) == (2, None, "y", {"s:health:timeout": T0 + 60})
    db.commit_check("s", [], [], T0 + 120, check=(True, "ok", None, {}))
    h = db.shop_health("s")
    assert (h.consecutive_failures, h.last_ok, h.last_error) == (0, T0 + 120, None)


def test_most_urgent_first_on_either_engine(db: Store) -> None:
    def alert(key: str, **payload: object) -> tuple[str, str, dict[str, object]]:
        return key, "ops", payload

    db.commit_check("s", [], [
        alert("later", kind="aftersale", item={"deadline": "2026-11-22T10:00:00+08:00"}),
        alert("sooner", kind="aftersale", item={"deadline": "2026-11-21T18:00:00+08:00"}),
        alert("health", kind="health", severity="critical"),
        alert("last", kind="aftersale", is_last_stage=True, item={"deadline": "2026-11-23T10:00:00+08:00"}),
        alert("info", kind="health", severity="info"),
        alert("complaint", kind="complaint", item={"deadline": "2026-11-24T10:00:00+08:00"}),
    ], T0)
    assert [r.dedup_key for r in db.due(T0)] == ["last", "complaint", "health", "sooner", "later", "info"]


def test_qr_links_unverified_sends_and_closed_items_on_either_engine(db: Store) -> None:
    token = db.qr_link("s", b"\x89PNG-bytes", T0 + 900)
    assert db.qr_png(token, T0) == b"\x89PNG-bytes" and db.qr_png(token, T0 + 901) is None
    db.commit_check("s", [], [("a", "push", {}), ("b", "ops", {})], T0)
    a, b = db.due(T0)
    db.mark_sent([a.id], T0, verified=False)
    db.mark_sent([b.id], T0)
    assert db.unverified() == {"push": 1}
    closed = {"kind": "aftersale", "item_id": "9", "closed": True, "last_seen_ts": T0 - 40 * 86400}
    db.commit_check("s", [closed, state("10", 1)], [], T0)
    db.commit_check("s", [], [], T0, drop_closed_before=T0 - 31 * 86400)  # kept 31 days, then forgotten
    assert set(db.load_items("s")) == {("aftersale", "10")}


def test_a_store_written_by_a_newer_version_is_refused(store_at: Path | str) -> None:
    from agent.outbox.schema import VERSION, SchemaTooNew

    db = Store(store_at)
    with db.tx():
        if db.db.dialect == "sqlite":
            db.db.execute(f"PRAGMA user_version = {VERSION + 1}")
        else:
            db.db.execute("UPDATE pdd_schema SET version = ?", (VERSION + 1,))
    db.close()
    with pytest.raises(SchemaTooNew, match="upgrade pdd-agent"):
        Store(store_at)


def test_a_sqlite_store_moves_into_an_empty_store_whole(tmp_path: Path, store_at: Path | str) -> None:
    from agent.outbox.team_store import Team
    from agent.outbox.transfer import TargetNotEmpty, copy_store

    if isinstance(store_at, Path):
        store_at = tmp_path / "target.db"
    source = Store(tmp_path / "agent.db")
    source.commit_check("s", [state("1", 2)], [("a", "ops", {"n": 1}), ("b", "ops", {"n": 2})], T0,
                        check=(False, "timeout", "x", {}), events=[("aftersale", "1", "张三", "note", "已联系")])
    [a, _b] = source.due(T0)
    source.mark_sent([a.id], T0 + 1)
    source.record_send("wecom:abc", T0 + 1)
    source.channel_failed("ops", T0 + 2, "errcode -1", T0 + 10)
    token = Team(source).new_token("monitor", T0)
    png = source.qr_link("s", b"\x89PNG", T0 + 900)
    target = Store(store_at)
    counts = copy_store(source, target)
    assert counts["outbox"] == 2 and counts["item_events"] == 1
    assert target.load_items("s") == source.load_items("s")
    assert [r.dedup_key for r in target.due(T0 + 20)] == ["b"] and target.depth() == {"sent": 1, "pending": 1}
    assert target.sent_within("wecom:abc", T0 + 30) == 1 and target.channel_state("ops") == source.channel_state("ops")
    assert target.shop_health("s").consecutive_failures == 1
    assert Team(target).token_name(token, T0 + 5) == "monitor" and target.qr_png(png, T0) == b"\x89PNG"
    target.commit_check("s2", [], [("c", "ops", {})], T0 + 30)  # new rows number on after the copied ones
    assert max(r["id"] for r in target.rows()) == 3
    with pytest.raises(TargetNotEmpty):
        copy_store(source, target)
    source.close()
    target.close()


def test_the_import_knows_every_table_of_the_store(tmp_path: Path) -> None:
    from agent.outbox.transfer import TABLES

    db = Store(tmp_path / "agent.db")
    names = {r[0] for r in db.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert names - {"sqlite_sequence"} == set(TABLES)  # a new table must be added to the import
