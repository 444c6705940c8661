"""Benchmark of each chat channel under a burst: how long the service needs to deliver N shops' alerts within the
channel's own limits, what each message costs us, and that the channel never throttles or drops one.

Run: .venv/bin/python -m bench.channel_bench [--shops 20,200] [--repeat 3]
The real dispatcher, store and notifiers (WeCom robot, DingTalk, Feishu, WeCom app) against their fakes over
loopback HTTP: each fake signs, limits and answers as documented (DingTalk blocks 10 minutes past 20 a minute,
Feishu refuses past 5 a second, the WeCom app silently drops past 30 a minute per member). Every shop has 3
alerts queued at once (one message per shop); the dispatcher runs every dispatch interval (10 s) on a simulated
clock that the fakes share (real time inside a run, the idle rest of each interval skipped), so the drain time
is the one the service would see. Reported per channel: simulated minutes until the last message, the
wall-clock milliseconds of the runs per message (render, sign, HTTP, store, and the in-run waits of a
per-second limit), refusals and silent drops by the service (both must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger

from agent.clock import Clock
from agent.config import load_config
from agent.core.models import Item
from agent.core.rules import Alert
from agent.outbox.dispatch import Dispatcher, build_notifiers
from agent.outbox.store import Store
from agent.sandbox.dingtalk import FakeDingTalk, Robot
from agent.sandbox.feishu import Bot, FakeFeishu
from agent.sandbox.wecom import FakeWeCom
from agent.sandbox.wecom_app import FakeWeComApp

TZ = ZoneInfo("Asia/Shanghai")
SEC = "SEC" + "9" * 64
INTERVAL = 10.0  # [schedule] dispatch_interval's default


def channel_table(kind: str, fake: Any) -> str:
    if kind == "wecom":
        return f'type = "wecom"\nwebhook_url = "{fake.webhook_url("k")}"\n'
    if kind == "dingtalk":
        return f'type = "dingtalk"\nwebhook_url = "{fake.webhook_url("dt")}"\nsecret = "{SEC}"\n'
    if kind == "feishu":
        return f'type = "feishu"\nwebhook_url = "{fake.webhook_url("fs")}"\nsecret = "fs"\n'
    return (f'type = "wecom_app"\ncorp_id = "ww1"\ncorp_secret = "s"\nagent_id = 1000002\nto_users = ["boss"]\n'
            f'api_base = "{fake.url}"\n')


def start_fake(kind: str, clock: Callable[[], float]) -> Any:
    if kind == "wecom":
        return FakeWeCom(keys={"k"}, clock=clock).start()
    if kind == "dingtalk":
        return FakeDingTalk({"dt": Robot(secret=SEC)}, clock=clock).start()
    if kind == "feishu":
        return FakeFeishu({"fs": Bot(secret="fs")}, clock=clock).start()
    return FakeWeComApp("ww1", "s", 1000002, ["boss"], clock=clock).start()


def queue(store: Store, shops: int, now: datetime) -> None:
    rows = []
    for s in range(shops):
        shop = f"店{s}"
        for i in range(3):
            n = s * 3 + i
            item = Item(kind="aftersale", id=str(10_000 + n), order_sn=f"261121-{n:015d}", type="仅退款",
                        status="买家申请退款，待商家处理", reason="不想要了",
                        goods_name="加厚珊瑚绒睡衣女冬季家居服套装",
                        refund_amount_fen=5990, deadline=now + timedelta(hours=5, minutes=i),
                        remaining_seconds=5 * 3600 + i * 60)
            alert = Alert(key=f"{shop}:aftersale:{item.id}:stage1", shop=shop, kind="aftersale", severity="warning",
                          created_at=now, event="stage1", stage_index=1, stage_count=4, threshold_seconds=6 * 3600,
                          item=item)
            rows.append((alert.key, "ch", shop, alert.to_dict()))
    store.enqueue(rows, now.timestamp())


async def one(kind: str, shops: int, tmp: Path) -> tuple[float, float, int, int, int]:
    """(simulated minutes to drain, wall ms of the runs per message, messages, refusals, silent drops)"""
    skip = [0.0]  # simulated time: real time, plus the idle intervals between dispatch runs skipped over

    def now() -> float:
        return time.time() + skip[0]

    fake = start_fake(kind, now)
    try:
        path = tmp / f"config-{kind}-{shops}.toml"
        path.write_text('[agent]\ndata_dir = "data"\n[[shops]]\nname = "店0"\nusername = "店0"\n'
                        '[alerts]\nnotify = ["ch"]\nfailover_after = "0"\n[notifiers.ch]\n'
                        + channel_table(kind, fake), encoding="utf-8")
        cfg = load_config(path)
        store = Store(tmp / f"agent-{kind}-{shops}.db")
        notifiers = build_notifiers(cfg)
        d = Dispatcher(cfg, store, notifiers, clock=Clock(TZ, source=now))
        start = now()
        queue(store, shops, datetime.fromtimestamp(start, TZ))
        busy = 0.0
        while store.depth().get("pending", 0):
            t0 = time.perf_counter()
            await d.run_once()
            took = time.perf_counter() - t0
            busy += took
            skip[0] += max(0.0, INTERVAL - took)  # the next run comes one interval after this one began
        done = max(float(r[0]) for r in store.db.execute("SELECT sent_at FROM outbox WHERE status = 'sent'"))
        messages = store.db.execute("SELECT COUNT(DISTINCT shop) FROM outbox WHERE status = 'sent'").fetchone()[0]
        refused = len(fake.rejections())
        dropped = len(getattr(fake, "dropped", []))
        for n in notifiers.values():
            await n.aclose()
        store.close()
        return (done - start) / 60, busy * 1000 / max(1, messages), messages, refused, dropped
    finally:
        fake.stop()


async def main_async(shop_counts: list[int], repeat: int) -> None:
    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        for shops in shop_counts:
            for kind in ("wecom", "dingtalk", "feishu", "wecom_app"):
                got = [await one(kind, shops, Path(tmp) / f"{kind}{shops}-{r}") for r in range(repeat)
                       if (Path(tmp) / f"{kind}{shops}-{r}").mkdir() is None]
                minutes, ms = statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)
                print(f"{shops:>4} shops × 3 alerts → {kind:<9}: last message after {minutes:5.1f} simulated min; "
                      f"{ms:5.1f} ms of run time per message; {got[0][2]} messages, refused {got[0][3]}, "
                      f"silently dropped {got[0][4]} (n={repeat})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", default="20,200", help="shops with alerts at once, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(main_async([int(x) for x in args.shops.split(",")], args.repeat))


if __name__ == "__main__":
    main()
