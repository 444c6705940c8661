"""Running the sandbox from the command line: `pdd-agent sandbox` and the demo."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.httpserve import BackgroundServer
from agent.sandbox.backend import Backend
from agent.sandbox.control_api import builtin_scenario, builtin_scenarios
from agent.sandbox.server import SandboxServer


def load_scenario_arg(value: str) -> dict[str, Any]:
    """A scenario from a file path, or a built-in one by name."""
    path = Path(value)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise SystemExit(f"场景文件不存在 / scenario file not found: {value}")
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"场景文件不是合法 JSON / {value}: line {exc.lineno}: {exc.msg}") from exc
        return data
    try:
        return builtin_scenario(value)
    except FileNotFoundError:
        raise SystemExit(
            f"没有这个内置场景 / no built-in scenario {value!r}; choose from {', '.join(builtin_scenarios())}"
        ) from None


def banner(server: SandboxServer, extra: Sequence[str] = ()) -> str:
    b = server.backend
    lines = [
        f"模拟商家后台已启动 / sandbox running at {server.url}",
        f"场景 / scenario: {b.scenario_name} ({len(b.shops)} 家店铺 / shops)",
    ]
    for shop in list(b.shops.values())[:10]:
        for acc in (a for a in b.accounts.values() if a.mall_id == shop.mall_id):
            lines.append(f"  {shop.name:<12} 账号 {acc.username}  密码 {acc.password}  登录方式 {acc.login}")
    if len(b.shops) > 10:
        lines.append(f"  … 以及另外 {len(b.shops) - 10} 家店铺 / and {len(b.shops) - 10} more")
    lines += [
        *extra,
        f"登录页 / login page:     {server.url}/login",
        f"控制接口 / control API:  {server.url}/__sandbox/state",
        "按 Ctrl-C 停止 / press Ctrl-C to stop",
    ]
    return "\n".join(lines)


def _serve_until_stopped(server: BackgroundServer, duration: float = 0) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    try:
        stop.wait(duration if duration > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print("模拟商家后台已停止 / sandbox stopped", flush=True)


def run_sandbox(
    *, host: str, port: int, scenario: str, build: str | None = None, blind_navigation: str | None = None,
    clock_rate: float | None = None, verbose: bool = False, extra: Sequence[str] = (),
) -> int:
    """Serve until Ctrl-C / SIGTERM; `extra` lines (what the caller wants said) join the banner."""
    backend = Backend()
    data = load_scenario_arg(scenario)
    try:
        backend.load_scenario(data)
        settings: dict[str, Any] = {}
        if build:
            settings["build"] = build
        if blind_navigation:
            settings["blind_navigation"] = blind_navigation
        backend.configure(settings)
        if clock_rate:
            backend.clock.set_rate(clock_rate)
    except (KeyError, ValueError, TypeError) as exc:
        print(f"场景无效 / invalid scenario {scenario}: {exc}")
        return 2
    server = SandboxServer(backend, host=host, port=port, verbose=verbose)
    print(banner(server, extra), flush=True)
    _serve_until_stopped(server)
    return 0


def run_replay(*, host: str, port: int, bundle: str, verbose: bool = False) -> int:
    """Serve a diagnostics bundle until Ctrl-C / SIGTERM (exit 2 when the file is no bundle)."""
    from agent.sandbox.replay import ReplayServer

    try:
        server = ReplayServer(Path(bundle), host=host, port=port, verbose=verbose)
    except ValueError as exc:
        print(f"无法回放 / cannot replay: {exc}")
        return 2
    m = server.manifest
    print("\n".join([
        f"回放诊断包 / replaying {bundle} at {server.url}",
        f"  店铺 / shop: {m.get('shop', '?')}  录制于 / recorded {m.get('created_at', '?')}  "
        f"pdd-agent {m.get('agent_version', '?')}  Chromium {m.get('chromium', '?')}",
        f"  {server.recording.count} 个请求 / recorded requests; "
        f"检查请用 base_url = \"{server.url}\" / point a shop's base_url here",
        "按 Ctrl-C 停止 / press Ctrl-C to stop",
    ]), flush=True)
    _serve_until_stopped(server)
    return 0
