"""`pdd-agent doctor`: walk the flow as a person would and print, selector by selector, what matched (and, with
`--bundle`, save the walk as a redacted diagnostics bundle)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from agent.browser.doctor import report, run
from agent.cli.loading import config_and_shop, shared_sessions
from agent.cli.run_cmd import secrets_of
from agent.config import locators


def main(config_path: str, shop_name: str, out: TextIO = sys.stdout, bundle: str | None = None,
         probe_signing: bool = False) -> int:
    found = config_and_shop(config_path, shop_name)
    if found is None:
        return 2
    config, shop = found
    target = Path(bundle).expanduser().resolve() if bundle else None
    if target is not None and target.suffix.lower() != ".zip":
        print(f"诊断包文件名须以 .zip 结尾 / --bundle: expected a FILE.zip, got {bundle}", file=sys.stderr)
        return 2
    sel = locators.load(config.agent.selectors_dir)
    secrets = [*secrets_of(config), *(s.username for s in config.shops)]
    with shared_sessions(config) as saved_for:
        probes, out_dir, notes = asyncio.run(run(config, shop, sel, bundle=target, secrets=secrets,
                                                 saved_for=saved_for, probe_signing=probe_signing))
    out.write(report(probes) + "".join(f"\n{n}" for n in notes) + f"\n截图和页面 / captures: {out_dir}\n")
    return 0 if all(p.ok for p in probes) else 1
