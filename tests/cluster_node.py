"""One node of the cluster tests, as its own process: the real schedule and procrastinate worker, a check that
takes `--check-seconds` and commits its record fenced on its lease (or records that it was fenced, or abandoned
when the node woke to find its lease taken).

Run: python -m tests.cluster_node URL NODE [--interval S] [--check-seconds S] [--stall S] [--migrate]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

from loguru import logger

from agent.cluster.schedule import Fenced, Schedule
from agent.cluster.work import Work, WorkOptions
from agent.outbox.engine import PostgresEngine

RECORDS = """
CREATE TABLE IF NOT EXISTS test_checks (
    shop TEXT NOT NULL, node TEXT NOT NULL, lease BIGINT NOT NULL, started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS test_fenced (shop TEXT NOT NULL, node TEXT NOT NULL, lease BIGINT NOT NULL)
"""


async def main(args: argparse.Namespace) -> None:
    db = PostgresEngine(args.url)
    schedule = Schedule(db)

    async def run_check(shop: str, lease: int) -> None:
        started = schedule.now()
        try:
            await asyncio.sleep(args.check_seconds)  # the check's work (reading the shop)
        except asyncio.CancelledError:  # abandoned on waking: another node holds the shop now
            if schedule.leases([shop]).get(shop) != lease:
                with db.tx():
                    db.execute("INSERT INTO test_fenced (shop, node, lease) VALUES (?, ?, ?)",
                               (shop, args.node, lease))
            raise
        try:
            with db.tx():
                schedule.fence(shop, lease)
                db.execute("INSERT INTO test_checks (shop, node, lease, started, ended) VALUES (?, ?, ?, ?, ?)",
                           (shop, args.node, lease, started, schedule.now()))
        except Fenced:
            with db.tx():
                db.execute("INSERT INTO test_fenced (shop, node, lease) VALUES (?, ?, ?)", (shop, args.node, lease))
            raise

    def next_due(shop: str, was: float, now: float) -> float:
        return max(was + args.interval, now)

    work = Work(args.url, schedule, run_check, next_due,
                WorkOptions(node=args.node, concurrency=20, tick_cron="* * * * * *", reap_cron="* * * * * *",
                            stall_seconds=args.stall, heartbeat_seconds=0.5, fetch_seconds=0.2))
    if args.migrate:
        await work.migrate()
        with db.tx():
            for statement in RECORDS.split(";"):
                if statement.strip():
                    db.execute(statement)
        print("migrated", flush=True)
        return
    task = asyncio.get_running_loop().create_task(work.run())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"node {args.node} running at {time.time():.1f}", flush=True)
    await stop.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    schedule.stopped(args.node)
    work.release([args.node])
    db.close()
    print(f"node {args.node} stopped", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("node")
    ap.add_argument("--interval", type=float, default=4.0)
    ap.add_argument("--check-seconds", type=float, default=0.5)
    ap.add_argument("--stall", type=float, default=4.0)
    ap.add_argument("--migrate", action="store_true")
    logger.remove()
    logger.add(lambda m: print(m, end="", flush=True), level="INFO")
    asyncio.run(main(ap.parse_args()))
