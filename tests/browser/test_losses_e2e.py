"""End to end, the losses beyond the deadlines: sandbox → check (real Chromium) → outbox → fake WeCom.

投诉预警, 品质退款风险, 买家已催, 平台已介入, 工单 and 平台退款 notices, each told once, what to do and by when."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.browser.pool import BrowserPool
from agent.config import load_config, locators
from agent.outbox.dispatch import build_notifiers
from agent.outbox.enqueue import queue_digest
from agent.outbox.store import Store
from agent.sandbox.wecom import FakeWeCom
from agent.service.pipeline import Pipeline
from tests.browser.test_alerts_e2e import _env, cycle_once, make_config, markdown_since, smtp  # noqa: F401
from tests.conftest import Sandbox, run_async

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]
ROOT = Path(__file__).resolve().parents[2]
MALL = 100001
NOTICES = ("投诉预警", "品质退款风险", "买家已催", "平台已介入，请准备凭证")
BLOCK = re.compile(r"^\d+\. .*?订单 (\d{6}-\d{15})", re.M)


def blocks(messages: list[str]) -> dict[str, list[str]]:
    """order number → the text of its block(s), over all messages."""
    out: dict[str, list[str]] = {}
    for m in messages:
        starts = [(x.start(), x.group(1)) for x in BLOCK.finditer(m)]
        ends = [at for at, _ in starts[1:]] + ([len(m)] if starts else [])
        for (at, sn), end in zip(starts, ends, strict=True):
            out.setdefault(sn, []).append(m[at:end])
    return out


def told(messages: list[str]) -> Counter[tuple[str, str]]:
    """(order number, notice) per block that carries the notice's tag."""
    return Counter((sn, n) for sn, texts in blocks(messages).items() for t in texts for n in NOTICES
                   if f"【{n}】" in t)


def sn_of(sandbox: Sandbox) -> dict[int, str]:
    return {int(i["id"]): str(i["orderSn"]) for i in sandbox.control.items(MALL)}


def test_each_loss_is_told_once_with_what_to_do(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, smtp: tuple[object, int],  # noqa: F811
) -> None:
    config = make_config(tmp_path, sandbox, wecom, smtp[1], watch=True)
    store = Store(config.agent.data_dir / "agent.db")
    sandbox.control.set_clock(freeze=True)
    sn = sn_of(sandbox)

    cycle_once(config, store)
    first = markdown_since(wecom, 0)
    got = told(first)
    # 投诉预警 on the card's pending item, merged into its stage alert; quality reasons on first sight
    assert got[(sn[22750431608471], "投诉预警")] == 1
    assert {s for (s, n) in got if n == "品质退款风险"} == {
        sn[22750431616269], sn[22750431608471], sn[22750431613948], sn[22750431611419]}
    assert {s for (s, n) in got if n == "平台已介入，请准备凭证"} == {sn[22750431613948], sn[22750431611419]}
    assert got[(sn[22750431607660], "买家已催")] == 1  # urged before any alert: its first alert says so
    text = "\n".join(first)
    assert "请立即联系买家协商" in text and "赔一单也比一笔品质退款划算" in text and "请准备聊天记录" in text
    owed = blocks(first)[sn[22750431611419]][0]
    assert "举证截止" in owed and "【紧急·待举证】" in owed  # the platform notice rides on its evidence stage
    assert max(got.values()) == 1

    # an alerted item is urged, a quiet item appears on 投诉预警: each told now, once
    sandbox.control.mark(22750431605991, buyer_urged=True)
    sandbox.control.mark(22750431611748, complaint_risk=True)
    mark = len(wecom.messages("k1"))
    cycle_once(config, store)
    second = told(markdown_since(wecom, mark))
    assert second == Counter({(sn[22750431605991], "买家已催"): 1, (sn[22750431611748], "投诉预警"): 1})

    # work orders due within 24 h: told with the link, again when more, 「已处理」 at zero
    link = f"{sandbox.url}/aftersales/work_order/list"
    for count, expect in ((2, "24小时内将逾期工单 **2 单**"), (3, "（此前 2 单）"), (0, "24小时内将逾期工单已清零")):
        sandbox.control.set_tickets(MALL, count)
        mark = len(wecom.messages("k1"))
        cycle_once(config, store)
        [msg] = markdown_since(wecom, mark)
        assert expect in msg, msg
        assert (f"[工单管理]({link})" in msg) is (count > 0)

    # the platform refunds an item it handled: 24小时内平台同意退款 rises, a notice to review it
    sandbox.control.platform_refund(22750431613948)
    mark = len(wecom.messages("k1"))
    cycle_once(config, store)
    refunds = "\n".join(markdown_since(wecom, mark))
    assert "24小时内平台同意退款 **1 单**" in refunds and "联系买家补款" in refunds

    # nothing new: nothing told
    mark = len(wecom.messages("k1"))
    cycle_once(config, store)
    assert markdown_since(wecom, mark) == []
    every = told(markdown_since(wecom, 0))
    assert max(every.values()) == 1, every  # none twice across the whole run
    store.close()


def test_a_complaint_warning_is_not_held_by_quiet_hours(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, smtp: tuple[object, int],  # noqa: F811
) -> None:
    sandbox.control.set_clock(freeze=True)
    hour = datetime.fromtimestamp(sandbox.control.clock()["now"], ZoneInfo("Asia/Shanghai")).hour
    make_config(tmp_path, sandbox, wecom, smtp[1], watch=True)
    text = (tmp_path / "config.toml").read_text(encoding="utf-8").replace(  # quiet now, for two hours
        'retry_backoff = "30s"', f'retry_backoff = "30s"\nquiet_hours = "{hour:02d}:00-{(hour + 2) % 24:02d}:00"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "config.toml")
    store = Store(config.agent.data_dir / "agent.db")
    sn = sn_of(sandbox)
    sandbox.control.mark(22750431611748, complaint_risk=True)  # 25 h left: no stage of its own yet
    cycle_once(config, store)
    got = told(markdown_since(wecom, 0))
    assert got[(sn[22750431611748], "投诉预警")] == 1
    assert (sn[22750431616269], "品质退款风险") not in got  # not urgent: it waits for the quiet hours' end
    waiting = [r for r in store.rows("pending") if ":quality" in r["dedup_key"]]
    assert waiting and all(r["last_error"] == "quiet hours" for r in waiting)
    store.close()


def refunded(n: int, ago: float, **kw: object) -> dict[str, object]:
    return {"id": 9_000_000 + n, "orderSn": f"261121-{9_000_000 + n:015d}", "afterSalesType": kw.pop("type", 1),
            "state": "refunded", "refundAmount": 1000 * n, "refunded_ago": ago, "reason": "质量问题", **kw}


def test_the_digest_tells_yesterdays_money_lost_and_to_recover(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, smtp: tuple[object, int],  # noqa: F811
) -> None:
    config = make_config(tmp_path, sandbox, wecom, smtp[1], watch=True)
    store = Store(config.agent.data_dir / "agent.db")
    sandbox.control.set_clock(freeze=True)
    tz = ZoneInfo(config.agent.timezone)
    now = datetime.fromtimestamp(sandbox.control.clock()["now"], tz)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)  # yesterday, local
    ago = (now - noon).total_seconds()
    sandbox.control.add_items(MALL, [
        refunded(1, ago, refundedBy="timeout"),                          # lost: the clock ran out
        refunded(2, ago + 600, refundTag="极速退款", signed=True),        # lost, and signed for: ask back
        refunded(3, ago + 1200, signed=True),                            # the merchant agreed: ask back only
        refunded(4, ago + 1800, type=2, refundedBy="platform"),          # lost: the platform decided
        refunded(5, ago + 86400, refundedBy="timeout"),                  # the day before: not yesterday's
    ])

    async def digest() -> None:
        notifiers = build_notifiers(config)
        async with BrowserPool(timeout_seconds=8) as pool:
            pipeline = Pipeline(config, store, pool, locators.load(), notifiers)
            await pipeline.check()
            refunds = await pipeline.checker.refunds(config.shops[0])
            queue_digest(config, store, config.shops[0], pipeline.clock.backend_local(), pipeline.clock.now(),
                         refunds=refunds)
            await pipeline.dispatch()
        for n in notifiers.values():
            await n.aclose()

    run_async(digest())
    [msg] = [m.content for m in wecom.messages("k1") if "每日售后汇总" in m.content]
    assert "**昨日退款（非商家同意）：****3 单**，共 ¥70.00" in msg, msg  # 1 + 2 + 4
    assert "超时自动退款 · 仅退款 订单 261121-000000009000001 · ¥10.00" in msg
    assert "平台代为同意（极速退款） · 仅退款 订单 261121-000000009000002" in msg
    assert "平台判定 · 退货退款 订单 261121-000000009000004 · ¥40.00" in msg
    assert "261121-000000009000005" not in msg
    assert "**可联系买家补款：****2 单**，共 ¥50.00" in msg and "已签收 · 仅退款 订单 261121-000000009000003" in msg
    assert "本周品质类售后：**4 单**" in msg  # the demo's four quality reasons, first seen this week

    # `check --json` carries the same section
    env = {**os.environ, "PDD_TEST_PASSWORD": "demo-pass", "PDD_TEST_SMTP": "smtp-pass"}
    done = subprocess.run([sys.executable, "-m", "agent", "check", "--json", "--config", str(config.path)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    section = json.loads(done.stdout)["shops"][0]["money"]
    assert section["day"] == noon.date().isoformat() and section["lost_fen"] == 7000
    assert [x["by"] for x in section["lost"]] == ["timeout", "helper", "platform"]
    assert {x["order_sn"] for x in section["recoverable"]} == {"261121-000000009000002", "261121-000000009000003"}
    store.close()


def test_slow_watch_cards_are_read_again_only_when_their_count_changes(
    sandbox: Sandbox, wecom: FakeWeCom, tmp_path: Path, smtp: tuple[object, int],  # noqa: F811
) -> None:
    config = make_config(tmp_path, sandbox, wecom, smtp[1], watch=True)
    store = Store(config.agent.data_dir / "agent.db")
    sandbox.control.set_clock(freeze=True)
    sn = sn_of(sandbox)

    def cards() -> Counter[int]:
        return Counter(int(b["quickSearchType"]) for b in sandbox.control.stats()["query_bodies"]
                       if b.get("quickSearchType") in (18, 20, 6))

    async def checks() -> list[Counter[int]]:
        notifiers = build_notifiers(config)
        seen = []
        async with BrowserPool(timeout_seconds=8) as pool:
            pipeline = Pipeline(config, store, pool, locators.load(), notifiers)  # one checker: the service's
            for step in range(4):
                if step == 3:
                    sandbox.control.mark(22750431605991, buyer_urged=True)  # 买家催处理: 1 → 2
                sandbox.control.reset_stats()
                await pipeline.check()
                seen.append(cards())
            await pipeline.dispatch()
        for n in notifiers.values():
            await n.aclose()
        return seen

    first, warm, same, urged = run_async(checks())
    # the first check logs in and reads in page mode (no queryCount numbers of its own to remember), the second
    # is the first in API mode: both read every card showing items
    assert first[20] == 1 and first[6] == 1 and warm == Counter({18: 1, 20: 1, 6: 1})
    assert same == Counter({18: 1})  # 投诉预警 every check; the others' counts did not change
    assert urged == Counter({18: 1, 20: 1})  # its count changed: read again, and told
    assert told(markdown_since(wecom, 0))[(sn[22750431605991], "买家已催")] == 1
    store.close()
