"""`pdd-agent doctor`: walk the flow as a person would and print, selector by selector, what matched."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO
from zoneinfo import ZoneInfo

from agent.browser.doctor import Probe, run
from agent.config import locators
from agent.config.schema import ConfigError, load_config


def report(probes: list[Probe]) -> str:
    lines = []
    for p in probes:
        mark = "✓" if p.ok else "✗"
        note = f"  ({p.note})" if p.note else ""
        lines.append(f"{mark} {p.step:<9} {p.key:<42} {p.hook}  → {p.found}{note}")
    bad = sum(1 for p in probes if not p.ok)
    tail = f"，{bad} 项未匹配 / not matched" if bad else ""
    lines.append(f"\n{len(probes) - bad}/{len(probes)} 项匹配 / matched{tail}")
    return "\n".join(lines)


def main(config_path: str, shop_name: str, out: TextIO = sys.stdout) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    shop = next((s for s in config.shops if s.name == shop_name), None)
    if shop is None:
        print(f"没有这个店铺 / no shop named {shop_name!r} in {config_path}", file=sys.stderr)
        return 2
    sel = locators.load(config.agent.selectors_dir)
    probes, out_dir = asyncio.run(run(
        shop, sel, config.agent.data_dir, ZoneInfo(config.agent.timezone), config.browser.executable_path,
        config.browser.headless, config.browser.timeout_seconds,
    ))
    out.write(report(probes) + f"\n截图和页面 / captures: {out_dir}\n")
    return 0 if all(p.ok for p in probes) else 1
