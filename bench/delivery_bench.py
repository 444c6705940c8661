"""Benchmark of delivery after a channel outage: from the channel's recovery to the last queued alert delivered.

Run: .venv/bin/python -m bench.delivery_bench [--rows 1,50,500] [--repeat 5]
The real dispatcher and WeCom notifier against the fake WeCom over HTTP (errcode in an HTTP 200 body, byte limits,
20 messages a minute per robot). Rows are queued for 10 shops (500 rows: 50 alerts each) while the robot answers
HTTP 503 for 10 simulated minutes, so the channel is at its capped backoff; the robot then recovers at a random
moment of the backoff and the dispatcher keeps running every dispatch interval (the default 10 s), as the service
does. Reported: seconds from the recovery to the last alert delivered (median, min, max), messages, and tries
during the outage.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from loguru import logger

from agent.clock import Clock
from agent.config import load_config
from agent.config.durations import seconds
from agent.core.models import Item
from agent.core.rules import Alert
from agent.outbox.dispatch import Dispatcher
from agent.outbox.store import Store
from agent.sandbox.wecom import FakeWeCom
from notifiers.base import Notifier

TZ = ZoneInfo("Asia/Shanghai")
SHOPS = 10


def config_text(webhook: str) -> str:
    return f"""
[agent]
data_dir = "data"
[[shops]]
name = "店0"
username = "店0"
[alerts]
notify = ["ops"]
failover_after = "0"
[notifiers.ops]
type = "wecom"
webhook_url = "{webhook}"
"""


def alerts(n: int, now: datetime) -> list[tuple[str, str, str, dict[str, object]]]:
    out = []
    for i in range(n):
        shop = f"店{i % SHOPS}"
        item = Item(kind="aftersale", id=str(10_000 + i), order_sn=f"261121-{i:015d}", type="仅退款",
                        status="买家申请退款，待商家处理", reason="不想要了",
                        goods_name="加厚珊瑚绒睡衣女冬季家居服套装",
                        refund_amount_fen=5990, deadline=now + timedelta(hours=5, minutes=i % 60),
                        remaining_seconds=5 * 3600 + i % 60 * 60)
        alert = Alert(key=f"{shop}:aftersale:{item.id}:stage1", shop=shop, kind="aftersale", severity="warning",
                      created_at=now, event="stage1", stage_index=1, stage_count=4, threshold_seconds=6 * 3600,
                      item=item)
        out.append((alert.key, "ops", shop, alert.to_dict()))
    return out


async def one(rows: int, seed: int, tmp: Path) -> tuple[float, int, int]:
    """(seconds from recovery to the last delivery, messages, tries during the outage)"""
    clock = [time.time()]
    wecom = FakeWeCom(keys={"k"}, clock=lambda: clock[0]).start()
    try:
        path = tmp / f"config-{rows}-{seed}.toml"
        path.write_text(config_text(wecom.webhook_url("k")), encoding="utf-8")
        cfg = load_config(path)
        store = Store(tmp / f"agent-{rows}-{seed}.db")
        notifier = Notifier.from_config(cfg.notifiers["ops"].table())
        d = Dispatcher(cfg, store, {"ops": notifier}, clock=Clock(TZ, source=lambda: clock[0]), rng=random.Random(seed))
        store.enqueue(alerts(rows, datetime.fromtimestamp(clock[0], TZ)), clock[0])
        interval = seconds(cfg.schedule.dispatch_interval)
        wecom.outage("k", "http:503")
        start = clock[0]
        while clock[0] - start < 600:  # ten simulated minutes of outage, one dispatch run per interval
            await d.run_once()
            clock[0] += interval
        tries = len(wecom.rejections("k"))
        clock[0] += random.Random(seed).uniform(0, interval)  # the recovery comes at any moment
        wecom.restore("k")
        recovered = clock[0]
        while store.depth().get("pending", 0):
            await d.run_once()
            if store.depth().get("pending", 0):
                nxt = min([t for t in (store.channel_states()["ops"].next_try, store.next_deferred(clock[0]))
                           if t is not None] + [clock[0] + interval])
                # the service's next dispatch run: the next interval tick at or after the next due moment
                ticks = max(1, int((nxt - clock[0] + interval - 1e-9) // interval))
                clock[0] += ticks * interval
        done = max(float(r[0]) for r in store.db.execute("SELECT sent_at FROM outbox WHERE status = 'sent'"))
        messages = len(wecom.messages("k"))
        await notifier.aclose()
        store.close()
        return done - recovered, messages, tries
    finally:
        wecom.stop()


async def main_async(rows_list: list[int], repeat: int) -> None:
    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        for rows in rows_list:
            got = [await one(rows, seed, Path(tmp)) for seed in range(repeat)]
            waits = [g[0] for g in got]
            print(f"{rows:>4} rows queued: recovery → last delivered median {statistics.median(waits):.1f} s "
                  f"(min {min(waits):.1f}, max {max(waits):.1f}); {got[0][1]} messages; "
                  f"{got[0][2]} tries in the 10-min outage (n={repeat})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1,50,500", help="rows queued, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(main_async([int(x) for x in args.rows.split(",")], args.repeat))


if __name__ == "__main__":
    main()
