"""`pdd-agent check`: check shops once, send nothing, print JSON or a Chinese table; exit 0 / 1 / 2."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from agent.browser.check import Checker
from agent.browser.pool import BrowserPool
from agent.cli.loading import load_or_report, shared_sessions, shop_or_report
from agent.cli.terminal import HINTS, clean, remaining_text
from agent.config import Config, locators
from agent.core.models import Item, ShopResult


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:.2f}"


def render_table(results: Sequence[ShopResult], config_path: str, tz: ZoneInfo) -> str:
    lines = []
    for r in results:
        if not r.ok:
            hint = HINTS[r.state].format(shop=r.name, config=config_path)
            lines.append(f"✗ {r.name}  {r.state.value}: {clean(r.error or '', 120)}\n    {hint}")
            continue
        lines.append(
            f"✓ {r.name}  待商家处理 {len(r.aftersales)} 单，待商家举证 {len(r.evidence)} 单"
            f"（{r.mode}，{r.checked_at.astimezone(tz):%Y-%m-%d %H:%M:%S}）"
        )
        rows: list[tuple[datetime, str, str]] = [
            (
                i.deadline, "已逾期" if i.overdue else "剩余 " + remaining_text(i.remaining_seconds),
                f"{kind}  {i.order_sn}  {clean(i.type)}  {_yuan(i.refund_amount_fen):>9}  {_tags(i)}"
                f"{clean(i.reason, 24)}  {clean(i.goods_name, 20)}",
            )
            for kind, items in (("售后", r.aftersales), ("举证", r.evidence))
            for i in items
        ]
        for deadline, left, text in sorted(rows, key=lambda x: x[0]):
            lines.append(f"    {deadline.astimezone(tz):%m-%d %H:%M:%S}  {left:<15} {text}")
        if r.platform:
            lines.append(f"    平台处理中 {len(r.platform)} 单：" + "、".join(i.order_sn for i in r.platform))
        if r.money is not None:
            m = r.money
            lines.append(f"    {m['day']} 非商家同意的退款 {len(m['lost'])} 单，{_yuan(m['lost_fen'])}；"
                         f"可联系买家补款 {len(m['recoverable'])} 单")
        for f in r.findings:
            lines.append(f"    ! {f.kind}: {clean(f.message, 160)}")
    return "\n".join(lines)


def _tags(i: Item) -> str:
    tags = [t for t, on in (("投诉预警", i.complaint), ("买家已催", i.urged), ("品质退款风险", i.quality_risk)) if on]
    return "".join(f"【{t}】" for t in tags) + (" " if tags else "")


async def run_checks(config: Config, shop: str | None, mode: str) -> list[ShopResult]:
    sel = locators.load(config.agent.selectors_dir)
    shops = [s for s in config.shops if shop is None or s.name == shop]
    async with BrowserPool.from_config(config.browser) as pool:
        with shared_sessions(config) as saved_for:
            return await Checker(config, pool, sel, read_refunds=True, saved_for=saved_for).check_all(shops, mode)


def main(config_path: str, *, as_json: bool, shop: str | None, mode: str = "auto", out: TextIO = sys.stdout) -> int:
    config = load_or_report(config_path)
    if config is None:
        return 2
    if shop is not None and shop_or_report(config, shop, config_path) is None:
        return 2
    tz = ZoneInfo(config.agent.timezone)
    results = asyncio.run(run_checks(config, shop, mode))
    checked_at = max((r.checked_at for r in results), default=datetime.now(tz)).astimezone(tz)
    if as_json:
        doc: dict[str, Any] = {"checked_at": checked_at.isoformat(timespec="seconds"),
                               "shops": [r.to_json() for r in results]}
        out.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    else:
        out.write(render_table(results, config_path, tz) + "\n")
    return 0 if all(r.ok for r in results) else 1
