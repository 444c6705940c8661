"""Benchmark of the team page: answer times with 1,000 shops and 5,000 open items, and what idle live pages cost.

Run: .venv/bin/python -m bench.team_bench [--shops 1000] [--items 5000] [--idle-seconds 30] [--json out.json]
A store is filled as the service fills it (open items with their 24 h stage sent, a claim and a note on every tenth,
as many closed items for 历史); the page is the real application (`agent.web.app`) served by this script in a child
process (`--serve`), asked over HTTP by a client here: medians and p95 of 20 requests per path after 3 warm-ups.
Then the child's CPU time is read (/proc) over an idle window with no page open, and again with ten event streams
open (what ten open browsers hold): "no measurable CPU" means the two differ by less than the clock tick (10 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.procstat import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")
PATHS = ("/", "/api/v1/items", "/fragment/items", "/api/v1/items?page_size=1000", "/shops", "/history",
         "/api/v1/status")


def fill(data_dir: Path, shops: int, items: int) -> Path:
    """A config and a store: `shops` shops, `items` open items spread over them (plus as many closed)."""
    from agent.config import load_config
    from agent.core.claims import item_key
    from agent.core.models import Item, ShopResult
    from agent.outbox import holds
    from agent.outbox.enqueue import record_result
    from agent.outbox.store import Store

    config = data_dir / "config.toml"
    lines = ["[agent]", f'data_dir = "{data_dir}"', "[web]", 'listen = "127.0.0.1:0"', "open_on_loopback = true",
             "[alerts]", 'notify = ["ops"]', "[notifiers.ops]", 'type = "wecom"',
             'webhook_url = "http://127.0.0.1:9/x?key=k"', "[[team.members]]", 'name = "张三"']
    for s in range(shops):
        lines += ["[[shops]]", f'name = "店铺{s:04d}"', f'username = "u{s}"']
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_config(config)
    store = Store(data_dir / "agent.db")
    now = datetime.now(TZ)
    per = max(1, items // shops)
    for s, shop in enumerate(cfg.shops):
        def item(n: int, left_h: float, s: int = s) -> Item:
            return Item(kind="aftersale", id=f"{s:04d}{n:05d}", order_sn=f"261121-{s:04d}{n:011d}", type="仅退款",
                        status="待商家处理", reason="不想要了，质量问题" * (n % 3 + 1), goods_name="保温杯 500ml",
                        refund_amount_fen=1290 + n, deadline=now + timedelta(hours=left_h),
                        remaining_seconds=int(left_h * 3600))
        closed = [item(per + n, 10) for n in range(per)]
        record_result(cfg, store, shop, ShopResult(name=shop.name, checked_at=now - timedelta(days=1),
                                                   aftersales=closed), now - timedelta(days=1))
        open_items = [item(n, 2.5 + (n * 7 + s) % 20) for n in range(per)]
        record_result(cfg, store, shop, ShopResult(name=shop.name, checked_at=now, aftersales=open_items), now)
        for n in range(0, per, 10):
            key = item_key(shop.name, "aftersale", open_items[n].id)
            holds.act(cfg, store, key, "claim", "张三", now, now.timestamp())
            holds.act(cfg, store, key, "note", "张三", now, now.timestamp(), text="已联系买家")
    store.db.execute("UPDATE outbox SET status = 'sent', sent_at = created_at")
    store.close()
    return config


def serve(config_path: str, cache: bool) -> None:
    """The child: the application on a free port with a still service (its snapshot from the config). Without
    `cache` every request computes its list, as the first page to ask after a change does."""
    import asyncio

    import agent.web.keys
    if not cache:
        agent.web.keys.CACHE_SECONDS = 0.0

    from agent.clock import Clock
    from agent.config import load_config
    from agent.outbox.store import Store
    from agent.service.health import ShopStatus, Snapshot
    from agent.web.app import WebServer, build_app

    cfg = load_config(config_path)
    store = Store(cfg.agent.data_dir / "agent.db")
    now = time.time()
    snap = Snapshot(pid=os.getpid(), version="bench", started_at=now, updated_at=now, scheduler_running=True,
                    shops=[ShopStatus(name=s.name, state="ok", last_ok=now, last_check=now, next_run=now + 600,
                                      stale_after=now + 3600, pending_aftersale=5) for s in cfg.shops])

    class Still:
        listeners: list[Any] = []
        qr_images: dict[str, bytes] = {}
        clock = Clock(TZ)

        def snapshot_for_http(self) -> Snapshot:
            return snap

        def kick_dispatch(self) -> None:
            pass

        def changed(self, topic: str) -> None:
            for f in self.listeners:
                f(topic)

    async def main() -> None:
        server = WebServer(build_app(cfg, store, Still(), lambda st: "https://mms.pinduoduo.com/"), ("127.0.0.1:0",))
        await server.start()
        print(server.urls[0], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def timings(client: httpx.Client, path: str, n: int = 20) -> dict[str, float]:
    for _ in range(3):
        assert client.get(path).status_code == 200, path
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        took.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    took.sort()
    return {"median_ms": round(statistics.median(took), 1), "p95_ms": round(took[int(0.95 * (n - 1))], 1),
            "bytes": len(r.content)}


def idle_cpu(pid: int, url: str, streams: int, seconds: float) -> float:
    """CPU seconds the child used over `seconds` with `streams` event streams open and nothing changing."""
    stop = threading.Event()
    opened = threading.Barrier(streams + 1) if streams else None

    def hold() -> None:
        try:
            with httpx.stream("GET", url + "/events", timeout=None) as r:
                assert opened is not None
                opened.wait()
                for _ in r.iter_bytes():
                    if stop.is_set():
                        return
        except httpx.HTTPError:  # the child stopped: the window is over
            return

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(streams)]
    for t in threads:
        t.start()
    if opened:
        opened.wait()
    time.sleep(1.0)
    before = cpu_seconds(pid)
    time.sleep(seconds)
    used = cpu_seconds(pid) - before
    stop.set()
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=1000)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, not args.no_cache)
        return
    with tempfile.TemporaryDirectory(prefix="team-bench-") as d:
        t0 = time.perf_counter()
        config = fill(Path(d), args.shops, args.items)
        print(f"store filled: {args.shops} shops, {args.items} open + {args.items} closed items in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        res: dict[str, Any] = {"shops": args.shops, "items": args.items, "paths": {}, "shared": {}}
        for cache, where in ((False, "paths"), (True, "shared")):
            print("after a change (each request computes its list):" if not cache else
                  "the other pages after the same change (the list shared):", flush=True)
            child = subprocess.Popen([sys.executable, "-m", "bench.team_bench", "--serve", str(config),
                                      *([] if cache else ["--no-cache"])], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            try:
                assert child.stdout is not None
                url = child.stdout.readline().strip()
                with httpx.Client(base_url=url, timeout=30) as client:
                    for path in PATHS:
                        t = res[where][path] = timings(client, path)
                        print(f"  {path:<32} median {t['median_ms']:>7.1f} ms   p95 {t['p95_ms']:>7.1f} ms   "
                              f"{t['bytes']:>8} bytes", flush=True)
                if cache:
                    res["idle_cpu_s"] = {str(n): round(idle_cpu(child.pid, url, n, args.idle_seconds), 3)
                                         for n in (0, 10)}
                    print(f"  idle {args.idle_seconds:g} s: CPU {res['idle_cpu_s']['0']} s with no page open, "
                          f"{res['idle_cpu_s']['10']} s with ten event streams open", flush=True)
            finally:
                child.terminate()
                child.wait(10)
    if args.json:
        Path(args.json).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
