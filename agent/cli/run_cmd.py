"""`pdd-agent run`: start-up checks, then the scheduled service until SIGTERM / Ctrl-C, or one cycle (--once)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from agent.browser.pool import BrowserPool
from agent.cli import logsetup
from agent.cli.loading import load_or_report
from agent.cli.progress import Progress
from agent.config import Config, locators
from agent.config.durations import seconds
from agent.core.models import CheckFailure
from agent.outbox.dispatch import Report, build_notifiers
from agent.outbox.store import ChannelState, Store
from agent.service.capacity import capacity_lines, capacity_warnings
from agent.service.reload import Reloader
from agent.service.scheduler import Service
from agent.web.app import WebServer, build_app
from notifiers.base import Notifier
from notifiers.wecom import parse_webhook


def secrets_of(config: Config) -> list[str]:
    """Everything the logs must never show: webhook URLs and keys, passwords read from the environment, proxy
    credentials."""
    out: list[str] = []
    for cfg in config.notifiers.values():
        if cfg.webhook_url:
            out.append(cfg.webhook_url)
            try:
                out.append(parse_webhook(cfg.webhook_url)[1])
            except ValueError:
                pass
        out.append(cfg.password() or "")
    out += [shop.password() or "" for shop in config.shops]
    for shop in config.shops:  # a proxy's URL and its password (its host may show, masked: proxy_shown)
        parts = shop.proxy_parts()
        if parts is not None and parts[2]:
            out += [shop.proxy, parts[2]]
    return [s for s in out if s]


def preflight(config: Config) -> tuple[list[str], list[str]]:
    """(problems, warnings) found before anything is scheduled; problems stop the start."""
    problems: list[str] = []
    warnings: list[str] = []
    for name, cfg in config.notifiers.items():
        try:
            Notifier.from_config(cfg.table())  # validates the URL / key / ports; opens no connection
        except ValueError as exc:
            problems.append(f"notifiers.{name}: {exc} (通知渠道配置无效)")
        if cfg.password_env and not cfg.password():
            problems.append(f"notifiers.{name}.password_env: environment variable {cfg.password_env} is not set "
                            "(环境变量未设置)")
    for i, shop in enumerate(config.shops):
        if not shop.enabled:
            continue
        if not config.channels_for(shop):
            problems.append(f"shops[{i}] ({shop.name}): no channel would receive its alerts; set notify here or "
                            "[alerts].notify (没有接收提醒的渠道)")
        if shop.password_env and not shop.password():
            warnings.append(f"shops[{i}] ({shop.name}): environment variable {shop.password_env} is not set; the "
                            "shop can only use its saved session or a QR login (未设置密码环境变量)")
    warnings += config.deprecations() + capacity_warnings(config)
    if not any(s.enabled for s in config.shops):
        problems.append("shops: every shop is disabled; nothing to do (所有店铺都已停用)")
    data_dir = config.agent.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = data_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        problems.append(f"agent.data_dir: {data_dir} is not writable: {exc.strerror or exc} (数据目录不可写)")
    return problems, warnings


def main(config_path: str, *, once: bool = False, log_json: bool = False) -> int:
    config = load_or_report(config_path)
    if config is None:
        return 2
    logsetup.add_secrets(secrets_of(config))
    problems, warnings = preflight(config)
    log_dir = config.agent.data_dir / "logs" if not problems else None
    logsetup.setup(config.agent.log_level, json_lines=log_json, log_dir=log_dir)
    for w in warnings:
        logger.warning(w)
    for line in capacity_lines(config):
        logger.info(line)
    try:
        sel = locators.load(config.agent.selectors_dir)
    except locators.LocatorError as exc:
        problems.append(f"agent.selectors_dir: {exc} (选择器文件无效)")
    if problems:
        for p in problems:
            logger.error(p)
        print("启动检查未通过 / start-up checks failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(config, sel, once))
    except KeyboardInterrupt:  # a Ctrl-C before the handlers were installed
        return 130


async def _main(config: Config, sel: Mapping[str, Any], once: bool) -> int:
    store = Store(config.store_at())
    notifiers: dict[str, Notifier] = build_notifiers(config)
    pool = BrowserPool.from_config(config.browser)
    try:
        try:
            await pool.start()
        except CheckFailure as exc:
            logger.error("the browser cannot start: {}", exc.detail)
            print(f"浏览器无法启动 / the browser cannot start: {exc.detail}", file=sys.stderr)
            return 1
        service = Service(config, store, pool, sel, notifiers)
        if once:
            return await _once(service)
        return await _serve(config, service, sel)
    finally:
        for n in notifiers.values():
            await n.aclose()
        await pool.stop()
        store.close()


async def _once(service: Service) -> int:
    """Check every shop, then deliver; while a channel fails transiently keep delivering for up to
    [schedule] once_grace. Exit 0 only when every shop was read and nothing owed is still queued."""
    results = await service.check_all()
    end = time.monotonic() + seconds(service.config.schedule.once_grace)
    total = Report()
    while True:
        report = await service.dispatch()
        for name in ("sent", "rows_sent", "retried", "dead", "deferred", "failed_over"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        now = service.clock.now()
        owed = service.store.owed(now)
        owing = sum(c["due"] + c["later"] for c in owed.values())
        left = end - time.monotonic()
        if not owing or left <= 0:
            break
        states = service.store.channel_states()
        wake = [t for t in (*(st.next_try for st in states.values() if st.failing), service.store.next_deferred(now))
                if t is not None]
        await asyncio.sleep(min(max(0.2, min(wake, default=now + 1.0) - now), left))
    await service.heartbeat()
    for r in results:
        line = "✓ 已读取" if r.ok else f"✗ 未读取 {r.state.value}: {r.error or ''}"
        print(f"{r.name}: {line}")
    print(f"已发送 {total.sent} 条消息（{total.rows_sent} 条提醒），失败重试 {total.retried}，无法发送 {total.dead}，"
          f"转发 {total.failed_over}，免打扰/限速暂缓 {total.deferred}")
    for line in owed_lines(owed, service.store.channel_states(), service.tz):
        print(line)
    every = len(results) == sum(1 for s in service.config.shops if s.enabled)
    return 0 if every and all(r.ok for r in results) and not owing and not total.dead else 1


def owed_lines(owed: Mapping[str, Mapping[str, int]], states: Mapping[str, ChannelState], tz: Any) -> list[str]:
    """What is still queued per channel, and why (failing, the per-minute limit, quiet hours)."""
    out = []
    for channel, n in sorted(owed.items()):
        st = states.get(channel)
        if n["due"] and st is not None and st.failing:
            at = datetime.fromtimestamp(st.next_try or 0, tz).strftime("%H:%M:%S")
            out.append(f"✗ {channel}：{n['due']} 条未发出（发送失败 {st.failures} 次：{st.last_error}；下次重试 {at}）")
        elif n["due"]:
            out.append(f"✗ {channel}：{n['due']} 条待发送")
        if n["later"]:
            out.append(f"✗ {channel}：{n['later']} 条等待限速（每分钟条数上限）后发送")
        if n["quiet"]:
            out.append(f"· {channel}：{n['quiet']} 条在免打扰时段结束后发送")
    if not any(n["due"] or n["later"] for n in owed.values()):
        out.append("队列已清空 / nothing owed is queued")
    return out


def mms_url(config: Config, sel: Mapping[str, Any]) -> Any:
    """An item's detail page on mms (the team page's 「后台」 link)."""
    detail = sel["site"]["paths"]["detail"]

    def url(state: Any) -> str:
        shop = config.shop(state.shop)
        return shop.base_url + detail.format(id=state.item_id, order_sn=state.order_sn) if shop else ""
    return url


async def start_web(config: Config, service: Service, sel: Mapping[str, Any]) -> WebServer | None:
    """The team page, /healthz and /metrics on [web] listen (and the deprecated health port); None when an address
    cannot be bound (said on stderr)."""
    web = WebServer(build_app(config, service.store, service, mms_url(config, sel)), config.listen_addresses(),
                    config.health_addresses())
    where = ", ".join((*config.listen_addresses(), *config.health_addresses()))
    try:
        await web.start()
    except OSError as exc:
        await web.stop()
        logger.error("cannot listen on {}: {}", where, exc)
        print(f"团队页面无法监听 / the team page cannot listen on {where}: {exc} (可在 [web] listen 改端口)",
              file=sys.stderr)
        return None
    for url in web.urls:
        logger.info("team page on {}/ (also /healthz, /metrics, /api/v1/status)", url)
    for url in web.health_urls:
        logger.info("health endpoint on {}/healthz and /metrics (deprecated [agent] health_port)", url)
    if not config.web_on_loopback() and config.web.open_on_loopback:
        logger.warning("[web] open_on_loopback is ignored: the page also listens beyond loopback, a login is required")
    return web


async def _serve(config: Config, service: Service, sel: Mapping[str, Any]) -> int:
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal(signame: str) -> None:
        if stop.is_set():
            logger.warning("{} again: not waiting for the work in flight", signame)
            hurry.set()
        else:
            logger.info("{}: stopping (new work paused, the check in flight may finish)", signame)
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    reloader = Reloader(service, config.path)
    service.config_view = lambda: reloader.state.view()
    reloading = asyncio.Lock()

    async def reload() -> None:
        async with reloading:  # one reload at a time; a SIGHUP during one runs after it
            await reloader.reload()

    def on_hup() -> None:  # `systemctl reload`, `pdd-agent reload`, `kill -HUP`: re-read the file, never stop
        logger.info("SIGHUP: reloading the config from {}", config.path)
        service.spawn(reload())

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    web = await start_web(config, service, sel)
    if web is None:
        return 2
    service.on_reload.append(web.reconfigure)
    _first_check_progress(service)
    service.start()
    logger.info("pdd-agent {} running (pid {}); data in {}", service.latest.version, os.getpid(),
                Path(config.agent.data_dir).resolve())
    try:
        await stop.wait()
        await service.shutdown(hurry=hurry)
    finally:
        await web.stop()  # the page's streams end before the store closes
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    logger.info("stopped")
    return 0


def _first_check_progress(service: Service) -> None:
    """On a terminal, the first round of checks shows a progress line (many shops take a while)."""
    shops = {s.name for s in service.config.shops if s.enabled}
    progress = Progress(len(shops), "首次检查店铺 / first check")
    seen: set[str] = set()

    def advance(result: Any) -> None:
        if result.name in seen or result.name not in shops:
            return
        seen.add(result.name)
        progress.advance(1, f"{result.name} {'✓' if result.ok else '✗ ' + result.state.value}")
        if seen == shops:
            progress.close()
    service.on_check = advance
