"""Benchmark of a shop check against the sandbox (pacing off): floor, warm API check, page check, many shops.

Run: .venv/bin/python -m bench.run_bench [--repeat 7] [--shops 1,50,200]
The sandbox runs in its own process so its CPU is not counted; CPU and memory are the agent's process tree
(Python, the Playwright driver and every Chromium process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from agent.browser.check import Checker
from agent.browser.pool import BrowserPool
from agent.browser.reader import ReadOptions
from agent.browser.shopfiles import shop_dir
from agent.config import Config, load_config, locators
from agent.core.models import ShopResult
from agent.sandbox.control import SandboxControl, http_login
from agent.sandbox.generate import generate_scenario
from bench.procstat import PeakMemory, cpu_seconds

PASSWORD = "sandbox-pass"


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "sandbox", "--port", "0", "--scenario", "big_shop"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().rsplit(" ", 1)[-1].strip()
    return proc, url


def write_config(path: Path, url: str, shops: list[dict[str, Any]], data_dir: Path) -> Config:
    lines = [
        "[agent]", f'data_dir = "{data_dir}"', "pacing_seconds = 0",
        "[browser]", "max_pages = 2", "max_concurrent_checks = 50", "timeout_seconds = 30",
    ]
    for shop in shops:
        lines += ["[[shops]]", f'name = "{shop["name"]}"', f'base_url = "{url}"',
                  f'username = "{shop["accounts"][0]["username"]}"', 'password_env = "BENCH_PASSWORD"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def prime_sessions(url: str, config: Config, plan: dict[str, Any] | None) -> None:
    """Saved sessions (and a learned plan) for every shop, as after a first check: logins over HTTP."""
    host = httpx.URL(url).host
    for shop in config.shops:
        with httpx.Client(base_url=url) as c:
            c.get("/login/")
            assert http_login(c, shop.username, PASSWORD)["success"]
            cookies = [
                {"name": k, "value": v, "domain": host, "path": "/", "expires": -1, "httpOnly": k == "PASS_ID",
                 "secure": False, "sameSite": "Lax"}
                for k, v in c.cookies.items()
            ]
        d = shop_dir(config.agent.data_dir, shop.name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "state.json").write_text(json.dumps({"cookies": cookies, "origins": []}), encoding="utf-8")
        if plan is not None:
            (d / "plan.json").write_text(json.dumps({"bodies": plan}), encoding="utf-8")


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], list[float], Any]:
    walls, cpus, last = [], [], None
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        last = await fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    return walls, cpus, last


def floor_requests(url: str, state: Path, plan: dict[str, Any]) -> Callable[[], Awaitable[int]]:
    cookies = {c["name"]: c["value"] for c in json.loads(state.read_text())["cookies"]}
    api = locators.load()["site"]["api"]

    async def run() -> int:
        async with httpx.AsyncClient(base_url=url, cookies=cookies) as c:
            assert (await c.post(api["check_login"], json={})).json()["result"]["login"]
            await c.post(api["query_count"])
            await c.post(api["query_wait_handle_count"], json={})
            rows = 0
            for body in plan.values():
                page = 1
                while True:
                    res = (await c.post(api["query_list"], json={**body, "pageNumber": page, "pageSize": 100})).json()
                    rows += len(res["result"]["list"])
                    if page * 100 >= res["result"]["total"]:
                        break
                    page += 1
            return rows

    return run


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} (min {min(xs):.3f}, max {max(xs):.3f})"


async def single_shop(url: str, tmp: Path, repeat: int) -> dict[str, Any]:
    ctl = SandboxControl(url)
    ctl.settings(rate_limit_per_minute=10**6)
    shop = ctl.state()["shops"][0]
    config = write_config(tmp / "one.toml", url, [{"name": shop["name"], "accounts": [{"username": shop["name"]}]}],
                          tmp / "data-one")
    sel = locators.load()
    opts = ReadOptions(pacing_seconds=0, timeout_seconds=30)
    async with BrowserPool(executable_path=config.browser.executable_path) as pool:
        checker = Checker(config, pool, sel, opts)
        first = await checker.check_shop(config.shops[0], "page")  # logs in, learns the bodies
        assert first.ok, first.error
        plan = checker.load_plan(config.shops[0])
        assert plan is not None
        state = shop_dir(config.agent.data_dir, shop["name"]) / "state.json"
        floor = await timed(floor_requests(url, state, plan), repeat)
        api = await timed(lambda: checker.check_shop(config.shops[0], "api"), repeat)
        page = await timed(lambda: checker.check_shop(config.shops[0], "page"), max(3, repeat // 2))
    r: ShopResult = api[2]
    ctl.close()
    return {"items": len(r.aftersales) + len(r.evidence), "floor": floor, "api": api, "page": page, "plan": plan}


async def many_shops(url: str, tmp: Path, n: int, plan: dict[str, Any]) -> dict[str, Any]:
    ctl = SandboxControl(url)
    scenario = generate_scenario(42, n, pending=20, expiring=3, evidence=2, closed=2)
    scenario["settings"] = {"rate_limit_per_minute": 10**6}
    for shop in scenario["shops"]:
        for acc in shop["accounts"]:
            acc["password"] = PASSWORD
    ctl.load(scenario)
    config = write_config(tmp / f"many-{n}.toml", url, scenario["shops"], tmp / f"data-{n}")
    prime_sessions(url, config, plan)
    sel = locators.load()
    c0, t0 = cpu_seconds(), time.perf_counter()
    async with PeakMemory() as mem:
        async with BrowserPool(executable_path=config.browser.executable_path) as pool:
            results = await Checker(config, pool, sel, ReadOptions(pacing_seconds=0)).check_all()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    ok = sum(1 for r in results if r.ok)
    ctl.load("big_shop")
    ctl.close()
    return {"shops": n, "ok": ok, "wall": wall, "cpu": cpu, "peak_pss_mib": mem.peak,
            "modes": sorted({r.mode for r in results})}


async def main_async(repeat: int, shop_counts: list[int]) -> None:
    import os

    os.environ["BENCH_PASSWORD"] = PASSWORD
    proc, url = start_sandbox()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            one = await single_shop(url, tmp, repeat)
            print(f"single shop (sandbox big_shop), {one['items']} items, pacing off, n={repeat}")
            print(f"  floor  (httpx, same requests)   wall s {med(one['floor'][0])}   CPU s {med(one['floor'][1])}")
            print(f"  warm routine check (API mode)   wall s {med(one['api'][0])}   CPU s {med(one['api'][1])}")
            print(f"  page-mode check                 wall s {med(one['page'][0])}   CPU s {med(one['page'][1])}")
            ratio = statistics.median(one["api"][0]) / statistics.median(one["floor"][0])
            print(f"  API check / floor = {ratio:.2f}x")
            for n in shop_counts:
                r = await many_shops(url, tmp, n, one["plan"])
                print(f"{n:>4} shops (pacing and budget off, 50 request slots): {r['ok']}/{n} ok, "
                      f"total {r['wall']:.1f} s, "
                      f"CPU {r['cpu']:.1f} s, peak PSS {r['peak_pss_mib']:.0f} MiB, modes {r['modes']}")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--shops", default="1,50,200")
    args = ap.parse_args()
    asyncio.run(main_async(args.repeat, [int(x) for x in args.shops.split(",") if x]))


if __name__ == "__main__":
    main()
