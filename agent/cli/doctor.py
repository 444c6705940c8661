"""`pdd-agent doctor`: walk the flow as a person would and print, selector by selector, what matched."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from agent.browser.doctor import Probe, run
from agent.cli.loading import load_or_report, shop_or_report
from agent.config import locators


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
    config = load_or_report(config_path)
    if config is None:
        return 2
    shop = shop_or_report(config, shop_name, config_path)
    if shop is None:
        return 2
    sel = locators.load(config.agent.selectors_dir)
    probes, out_dir = asyncio.run(run(config, shop, sel))
    out.write(report(probes) + f"\n截图和页面 / captures: {out_dir}\n")
    return 0 if all(p.ok for p in probes) else 1
