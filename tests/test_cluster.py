"""Three node processes sharing the checks on a real PostgreSQL (procrastinate + the shared schedule): no shop's
checks overlap, every shop is checked every interval, `kill -9` of a node mid-check hands its shops to another
within the stall timeout plus a tick (its job ends failed), a node frozen past the stall timeout (SIGSTOP) and
woken after the takeover cannot commit, SIGTERM leaves no job running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.browser.shopfiles import shop_dir
from agent.cluster.schedule import Schedule
from agent.cluster.sessions import SharedSessions
from agent.cluster.work import Work, WorkOptions
from agent.outbox.engine import PostgresEngine
from tests.conftest import run_async

ROOT = Path(__file__).resolve().parent.parent
INTERVAL, CHECK, STALL, TICK = 3.0, 1.0, 3.0, 1.0
SESSION_KEY = "X3vXb0Hq0P0pqgC3mJbYx6m6z8b9Vq2Zr0cW8m4kLhE="  # a test Fernet key


class Node:
    def __init__(self, url: str, name: str, tmp: Path, interval: float = INTERVAL, check: float = CHECK) -> None:
        self.name, self.log = name, tmp / f"{name}.log"
        with self.log.open("w") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.cluster_node", url, name, "--interval", str(interval),
                 "--check-seconds", str(check), "--stall", str(STALL)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def db(pg_cluster: Any, tmp_path: Path) -> Iterator[tuple[str, PostgresEngine]]:
    url = pg_cluster.database()
    out = subprocess.run([sys.executable, "-m", "tests.cluster_node", url, "setup", "--migrate"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    engine = PostgresEngine(url)
    yield url, engine
    engine.close()


def three_nodes(db: tuple[str, PostgresEngine], tmp_path: Path, **node: float,
                ) -> tuple[PostgresEngine, Schedule, list[str], list[Node]]:
    """24 shops due now in the shared schedule, and three node processes taking them."""
    url, engine = db
    schedule = Schedule(engine)
    shops = [f"店{i:02d}" for i in range(24)]
    schedule.sync(dict.fromkeys(shops, schedule.now()))
    return engine, schedule, shops, [Node(url, f"n{i}", tmp_path, **node) for i in range(3)]


def wait_for(check: Callable[[], Any], what: str, nodes: list[Node], timeout: float = 30) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(n.text()[-1500:] for n in nodes))


def test_three_nodes_share_checks_survive_a_kill_and_fence_a_frozen_node(
    db: tuple[str, PostgresEngine], tmp_path: Path,
) -> None:
    engine, schedule, shops, nodes = three_nodes(db, tmp_path)
    try:
        def held(node: str) -> list[str]:
            return [s for s, n in schedule.held_by().items() if n == node]

        time.sleep(INTERVAL + 2)  # everyone works a round
        killed_shops = wait_for(lambda: held("n2"), "n2 in the middle of a check", nodes)
        nodes[2].proc.send_signal(signal.SIGKILL)  # kill -9 mid-check
        killed_at = schedule.now()
        nodes[2].proc.wait(timeout=10)
        frozen_shops = wait_for(lambda: held("n1"), "n1 in the middle of a check", nodes)
        os.kill(nodes[1].proc.pid, signal.SIGSTOP)  # presumed dead: no heartbeat, its check half done
        time.sleep(0.3)  # a statement n1 sent just before it froze still lands
        frozen_shops = sorted({*frozen_shops, *held("n1")})  # what it holds as it freezes
        wait_for(lambda: not set(frozen_shops) & set(held("n1")), "n1's shops taken back", nodes[:1],
                 timeout=STALL + 6 * TICK)
        os.kill(nodes[1].proc.pid, signal.SIGCONT)  # it wakes up and tries to commit
        wait_for(lambda: engine.execute("SELECT count(*) FROM test_fenced WHERE node = 'n1'").fetchone()[0],
                 "n1's late commit refused", nodes[:2])
        time.sleep(INTERVAL + 2)
        for n in nodes[:2]:
            n.proc.send_signal(signal.SIGTERM)
        for n in nodes[:2]:
            assert n.proc.wait(timeout=30) == 0, n.text()[-2000:]
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                os.kill(n.proc.pid, signal.SIGCONT)
                n.proc.kill()
                n.proc.wait()

    checks: dict[str, list[tuple[float, float, str, int]]] = defaultdict(list)
    for shop, node, lease, started, ended in engine.execute(
            "SELECT shop, node, lease, started, ended FROM test_checks ORDER BY started"):
        checks[shop].append((float(started), float(ended), str(node), int(lease)))
    assert set(checks) == set(shops)  # none skipped
    worked = {r[2] for runs in checks.values() for r in runs}  # a node started late may first work after the kill
    worked |= {str(r[0]) for r in engine.execute("SELECT DISTINCT node FROM test_fenced")}  # checked, then refused
    assert worked | {"n2"} == {"n0", "n1", "n2"} and killed_shops  # every node worked (n2: held checks when killed)
    for shop, runs in checks.items():
        for (s1, e1, *_), (s2, _e2, *_) in zip(runs, runs[1:], strict=False):
            assert s2 >= e1, f"{shop}: two checks overlap"  # never two at once
            assert s2 - s1 <= INTERVAL + STALL + 4 * TICK + CHECK, f"{shop}: a gap of {s2 - s1:.1f} s"
    for shop in killed_shops:  # taken over within the stall timeout plus a tick (and the check itself)
        after = [s for s, _, node, _ in checks[shop] if s > killed_at and node != "n2"]
        assert after and after[0] - killed_at <= STALL + 3 * TICK + CHECK, (shop, after[:1], killed_at)
    fenced = engine.execute("SELECT shop, lease FROM test_fenced WHERE node = 'n1'").fetchall()
    assert {s for s, _ in fenced} & set(frozen_shops)  # the checks it held as it froze were refused
    for shop, lease in fenced:  # each refused lease was n1's own: no other node held or wrote that lease
        assert all(c[3] != lease for c in checks[shop] if c[2] != "n1"), (shop, lease)
    assert not [r for r in fenced if (r[1], "n1") in {(c[3], c[2]) for c in checks[r[0]]}]  # nothing written
    statuses = dict(engine.execute("SELECT status, count(*) FROM procrastinate_jobs WHERE task_name = 'check_shop' "
                                   "GROUP BY status").fetchall())
    assert statuses.get("failed", 0) >= 1  # the killed node's job ended failed (never retried)
    assert statuses.get("doing", 0) == 0  # SIGTERM left no job running


def test_a_node_that_wakes_abandons_the_checks_whose_leases_were_taken(db: tuple[str, PostgresEngine]) -> None:
    """A frozen node's checks go on when it wakes (a timed-out request falls back to a page); at its next heartbeat
    it cancels those whose leases another node has taken, and nothing else: not a check still its own, and a stop
    is not mistaken for a lost lease."""
    url, engine = db
    schedule = Schedule(engine)
    schedule.sync({"店A": schedule.now(), "店B": schedule.now()})
    started: list[str] = []
    cancelled: list[str] = []

    async def run_check(shop: str, lease: int) -> None:
        started.append(shop)
        try:
            await asyncio.Event().wait()  # a long read (a page) in flight
        except asyncio.CancelledError:
            cancelled.append(shop)
            raise

    async def scenario() -> None:
        work = Work(url, schedule, run_check, lambda shop, was, now: now, WorkOptions(node="n1"))
        a = asyncio.ensure_future(work.check_leased("店A"))
        b = asyncio.ensure_future(work.check_leased("店B"))
        while len(started) < 2:
            await asyncio.sleep(0.01)
        assert work.abandon_lost() == []  # both leases still n1's
        schedule.begin("店A", "n2")  # n2 took 店A over while n1 was silent
        assert work.abandon_lost() == ["店A"]
        await asyncio.wait_for(a, 5)  # abandoned: the job ends without an error
        assert not b.done() and cancelled == ["店A"]
        b.cancel()  # a stop: the cancel goes through
        with pytest.raises(asyncio.CancelledError):
            await b

    run_async(scenario())  # in its own thread: a browser test may have left this one's loop marked running
    assert cancelled == ["店A", "店B"]
    assert schedule.held_by() == {"店A": "n2"}  # n1's end left n2's lease alone


def test_three_dispatchers_keep_one_robots_rate_in_database_time_despite_skewed_clocks(
    pg_cluster: Any, tmp_path: Path,
) -> None:
    from datetime import timedelta

    from agent.clock import Clock as AgentClock
    from agent.outbox.dispatch import Dispatcher
    from agent.outbox.store import Store
    from notifiers.base import Message
    from tests.conftest import run_async
    from tests.test_dispatch import NOON, TZ, Scripted, config

    class Timed(Scripted):
        rate_limits = ((5, 2.0),)  # a robot that takes 5 in any 2 s

        async def send(self, message: Message) -> str:
            self.at.append(time.time())
            return await super().send(message)

    url = pg_cluster.database()
    cfg = config(tmp_path)
    stores = [Store(url) for _ in range(3)]
    robot = Timed("ops")
    robot.at = []
    try:
        for n in range(20):
            stores[0].commit_check(f"店{n}", [], [(f"k{n}", "ops", {"kind": "health", "shop": f"店{n}",
                                                                      "severity": "warning", "event": "failing",
                                                                      "created_at": NOON.isoformat(), "key": f"k{n}"})],
                                   time.time())
        dispatchers = []
        for i, store in enumerate(stores):  # each node's clock is off by up to a second
            skew = (i - 1) * 1.0
            clock = AgentClock(TZ, source=lambda skew=skew: time.time() + skew)
            schedule = Schedule(store.db)
            dispatchers.append(Dispatcher(cfg, store, {"ops": robot, "mail": Scripted("mail")}, clock=clock,
                                          rate_now=schedule.now))
        end = time.time() + 12
        while time.time() < end and stores[0].depth().get("pending", 0):
            for d in dispatchers:  # one at a time, as the advisory lock makes them
                run_async(d.run_once())
            time.sleep(0.1)
    finally:
        for s in stores:
            s.close()
    assert len(robot.sent) == 20  # all went out
    at = sorted(robot.at)
    assert all(at[i + 5] - at[i] >= 2.0 - 0.05 for i in range(len(at) - 5)), at  # never 6 within 2 s
    assert timedelta(seconds=at[-1] - at[0]) >= timedelta(seconds=6)  # the limit really held them back


def test_a_periodic_run_goes_to_one_node_per_period(pg_cluster: Any) -> None:
    engines = [PostgresEngine(pg_cluster.database())]
    url = engines[0].url
    engines += [PostgresEngine(url) for _ in range(2)]
    try:
        schedules = [Schedule(e) for e in engines]
        schedules[0].create()
        won = [s.claim_run("digest", "2026-12-07", f"n{i}") for i, s in enumerate(schedules)]
        assert won.count(True) == 1  # the digest of a day: once, whichever node's timer fired first
        assert schedules[1].claim_run("digest", "2026-12-08", "n1") is True  # the next day is a new period
    finally:
        for e in engines:
            e.close()


def test_cluster_import_moves_a_single_machines_store_once(pg_cluster: Any, tmp_path: Path) -> None:
    from agent.outbox.store import Store

    url = pg_cluster.database()
    single = Store(tmp_path / "data" / "agent.db")
    single.commit_check("店", [{"kind": "aftersale", "item_id": "1", "last_stage": 1}], [("k", "ops", {})], 1.0e9)
    single.close()
    folder = shop_dir(tmp_path / "data", "店")
    folder.mkdir(parents=True)
    (folder / "state.json").write_text('{"cookies": [{"name": "PASS_ID", "value": "v"}], "origins": []}', "utf-8")
    (folder / "plan.json").write_text('{"learned_at": "x", "bodies": {"aftersales": {}, "evidence": {}}}', "utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\ndata_dir = "data"\n[[shops]]\nname = "店"\nusername = "店"\n'
                      f'[cluster]\ndatabase_url = "{url}"\nsession_keys = "{SESSION_KEY}"\n', encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", "cluster", *args, "--config", str(config)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    first = cli("import")
    assert first.returncode == 0 and "items 1" in first.stdout and "outbox 1" in first.stdout, first.stderr
    assert "removed from this disk: 1" in first.stdout and not (folder / "state.json").exists()
    again = cli("import")
    assert again.returncode == 1 and "目标数据库不是空的" in again.stderr  # never mixes two histories
    shared = Store(url)
    try:
        assert [r.dedup_key for r in shared.due(2.0e9)] == ["k"]
        sessions = SharedSessions(shared.db, SESSION_KEY, "test")
        assert sessions.load("店") == {"cookies": [{"name": "PASS_ID", "value": "v"}], "origins": []}
        assert sessions.load_plan("店")["bodies"] == {"aftersales": {}, "evidence": {}}  # any node reads warm
    finally:
        shared.close()


def test_shared_sessions_are_encrypted_rotatable_and_refused_under_a_wrong_key(pg_cluster: Any) -> None:
    from cryptography.fernet import Fernet

    from tests.conftest import run_async

    db = PostgresEngine(pg_cluster.database())
    try:
        old, new = SESSION_KEY, Fernet.generate_key().decode()
        state = {"cookies": [{"name": "PASS_ID", "value": "secret-cookie-value", "domain": "x"}], "origins": []}
        first = SharedSessions(db, old, "n0")
        first.create()
        run_async(first.for_shop("店").save(state))
        raw = bytes(db.execute("SELECT token FROM shop_sessions").fetchone()[0])
        assert b"secret-cookie-value" not in raw and b"PASS_ID" not in raw  # nothing readable at rest
        assert SharedSessions(db, old, "n1").for_shop("店").load() == state  # another node, no login
        rotating = SharedSessions(db, f"{new},{old}", "n1")
        assert rotating.load("店") == state and rotating.rotate() == 1  # re-encrypted with the new key
        assert SharedSessions(db, new, "n2").load("店") == state  # the old key can go now
        assert SharedSessions(db, old, "n2").load("店") is None  # a wrong key: logged out, not a crash
    finally:
        db.close()


def test_a_shop_stays_on_the_node_that_checked_it_once_the_load_is_even(
    db: tuple[str, PostgresEngine], tmp_path: Path,
) -> None:
    engine, schedule, shops, nodes = three_nodes(db, tmp_path, interval=2.0, check=0.2)
    try:
        time.sleep(16)  # eight rounds: the first spread at random, then the fair share settles
        settled = schedule.now() - 6
    finally:
        for n in nodes:
            n.proc.send_signal(signal.SIGTERM)
        for n in nodes:
            n.proc.wait(timeout=30)
    runs: dict[str, list[str]] = defaultdict(list)
    for shop, node in engine.execute("SELECT shop, node FROM test_checks WHERE started >= ? ORDER BY started",
                                     (settled,)):
        runs[str(shop)].append(str(node))
    stays = [a == b for seq in runs.values() for a, b in zip(seq, seq[1:], strict=False)]
    assert stays and sum(stays) >= 0.8 * len(stays), f"{sum(stays)} of {len(stays)}"  # warm: the same node
    per_node = Counter(seq[-1] for seq in runs.values())
    assert len(per_node) == 3 and max(per_node.values()) <= 12, per_node  # and the load is shared


def test_the_tick_and_the_reaper_run_every_few_seconds_all_day() -> None:
    import croniter

    from agent.cluster.work import WorkOptions

    opts = WorkOptions(node="n")
    for cron, period in ((opts.tick_cron, 2.0), (opts.reap_cron, 5.0)):  # procrastinate: seconds are the 6th field
        it = croniter.croniter(cron, 1_796_643_600.0)  # an odd minute too: no minute field may gate it
        times = [it.get_next(float) for _ in range(40)]
        assert {round(b - a, 3) for a, b in zip(times, times[1:], strict=False)} == {period}, cron
