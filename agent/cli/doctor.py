"""`pdd-agent doctor`: walk the flow as a person would and print, selector by selector, what matched."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from agent.browser.doctor import Probe, run
from agent.cli.loading import config_and_shop
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
    found = config_and_shop(config_path, shop_name)
    if found is None:
        return 2
    config, shop = found
    sel = locators.load(config.agent.selectors_dir)
    probes, out_dir, notes = asyncio.run(run(config, shop, sel))
    out.write(report(probes) + "".join(f"\n{n}" for n in notes) + f"\n截图和页面 / captures: {out_dir}\n")
    return 0 if all(p.ok for p in probes) else 1
