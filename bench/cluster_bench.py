"""Benchmark of what sharing the checks through PostgreSQL costs: 1–3 node processes, many shops at a compressed
interval, each check a fixed pause (the browser's work is measured by bench/service_bench.py; this measures the
scheduling around it: the tick, the per-shop jobs, the leases, the fenced commit).

Run: .venv/bin/python -m bench.cluster_bench [--shops 1000] [--interval 30] [--seconds 90] [--nodes 1,2,3]
A throwaway PostgreSQL cluster (Debian's server, as in the tests) is started for the run. Reported per node count:
checks per minute, the lateness of checks (the gap between a shop's consecutive checks minus the interval: median
and p95), CPU seconds and peak PSS per node and of PostgreSQL, and the growth of the job tables per hour.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from agent.cluster.schedule import Schedule
from agent.outbox.engine import PostgresEngine

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """A process's CPU time; `reaped`: plus its exited children's (a server's closed connections)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = int(fields[11]) + int(fields[12])  # utime + stime
    if reaped:
        total += int(fields[13]) + int(fields[14])  # cutime + cstime
    return total / TICK


def server_cpu(postmaster: int) -> float:
    return cpu_seconds(postmaster, reaped=True) + sum(cpu_seconds(p) for p in children(postmaster))


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(parent: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def table_bytes(db: PostgresEngine) -> int:
    row = db.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relkind = 'r' "
                     "AND (c.relname LIKE 'procrastinate%' OR c.relname IN ('shop_schedule', 'cluster_nodes'))")
    return int(row.fetchone()[0])


def one(cluster: object, nodes: int, shops: int, interval: float, seconds: float, tmp: Path) -> dict[str, float]:
    url = cluster.database()  # type: ignore[attr-defined]
    py = [sys.executable, "-m", "tests.cluster_node", url]
    subprocess.run([*py, "setup", "--migrate"], cwd=ROOT, check=True, capture_output=True, timeout=120)
    db = PostgresEngine(url)
    schedule = Schedule(db)
    now = schedule.now()
    schedule.sync({f"店{i:05d}": now + i * interval / shops for i in range(shops)})  # spread over one interval
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])  # type: ignore[attr-defined]
    pg_cpu0 = server_cpu(postmaster)
    size0 = table_bytes(db)
    procs = []
    for i in range(nodes):
        with (tmp / f"n{i}.log").open("w") as log:
            procs.append(subprocess.Popen([*py, f"n{i}", "--interval", str(interval), "--check-seconds", "0.2",
                                           "--stall", "30"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    peak = defaultdict(float)
    pg_peak = 0.0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(1)
        for i, p in enumerate(procs):
            peak[i] = max(peak[i], pss_mib(p.pid))
        pg_peak = max(pg_peak, sum(pss_mib(p) for p in [postmaster, *children(postmaster)]))
    cpu = [cpu_seconds(p.pid) for p in procs]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)
    time.sleep(0.5)  # the nodes' connections end: their server processes are reaped
    pg_cpu = server_cpu(postmaster) - pg_cpu0
    rows = db.execute("SELECT shop, started FROM test_checks ORDER BY shop, started").fetchall()
    size = table_bytes(db) - size0
    db.close()
    by: dict[str, list[float]] = defaultdict(list)
    for shop, started in rows:
        by[shop].append(float(started))
    late = sorted(b - a - interval for runs in by.values() for a, b in zip(runs, runs[1:], strict=False))
    return {"checks_per_min": len(rows) / seconds * 60, "late_median": statistics.median(late) if late else 0.0,
            "late_p95": late[int(0.95 * (len(late) - 1))] if late else 0.0, "node_cpu": statistics.mean(cpu),
            "node_pss": statistics.mean(peak.values()), "pg_cpu": pg_cpu, "pg_pss": pg_peak,
            "growth_mib_per_hour": size / 2**20 / seconds * 3600, "shops_checked": len(by)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=30.0, help="each shop's check interval, seconds")
    ap.add_argument("--seconds", type=float, default=90.0, help="how long each run lasts")
    ap.add_argument("--nodes", default="1,2,3")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.pg import Cluster

    cluster = Cluster()
    try:
        for n in (int(x) for x in args.nodes.split(",")):
            tmp = Path(cluster.dir) / f"run{n}"
            tmp.mkdir()
            r = one(cluster, n, args.shops, args.interval, args.seconds, tmp)
            print(f"{n} node(s), {args.shops} shops every {args.interval:g} s, {args.seconds:g} s: "
                  f"{r['checks_per_min']:.0f} checks/min (of {args.shops * 60 / args.interval:.0f} due); late median "
                  f"{r['late_median']:.2f} s, p95 {r['late_p95']:.2f} s; per node CPU {r['node_cpu']:.1f} s, "
                  f"PSS {r['node_pss']:.0f} MiB; PostgreSQL CPU {r['pg_cpu']:.1f} s, PSS {r['pg_pss']:.0f} MiB; "
                  f"job tables +{r['growth_mib_per_hour']:.1f} MiB/h; {r['shops_checked']} shops checked",
                  flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
