"""`pdd-agent status`: is the service running and healthy, and how each shop stands; a Chinese table or JSON."""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from agent.browser import shopfiles
from agent.browser.shopfiles import shop_dir, state_path
from agent.cli.loading import load_or_report
from agent.cli.terminal import HINTS, ago, clean, remaining_text, state_label, table
from agent.config import Config
from agent.core.models import ShopState
from agent.outbox.dispatch import CHANNEL_LABELS
from agent.outbox.engine import database_errors
from agent.outbox.store import Store
from agent.service.capacity import capacity_status_lines
from agent.service.health import ShopStatus, Snapshot, channel_view, healthz, read_heartbeat, shop_statuses

HEADERS = ("店铺", "状态", "会话", "上次成功读取", "连续失败", "待处理", "待举证", "最近截止", "下次检查")
NONE = "-"


# ---- is the service there ---------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negatives would signal process groups
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def service_running(snap: Snapshot | None, now: float) -> bool:
    """A heartbeat whose process is alive and that was written within max(3 dispatch intervals, 60 s)."""
    if snap is None or not pid_alive(snap.pid):
        return False
    return now - snap.updated_at <= max(3 * snap.dispatch_interval, 60.0)


def _at(ts: float, tz: tzinfo, fmt: str = "%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(ts, tz).strftime(fmt)


# ---- per-shop files ----------------------------------------------------------------------------
def pending_hurdle(config: Config, name: str, now: float) -> dict[str, Any] | None:
    """The login stop waiting for `pdd-agent login` (hurdle.json), as the checker would still honour it."""
    return shopfiles.pending_hurdle(shop_dir(config.agent.data_dir, name), config.agent.login_retry_hours * 3600, now)


def session_text(config: Config, name: str, hurdle: dict[str, Any] | None) -> str:
    saved = state_path(shop_dir(config.agent.data_dir, name)).exists()
    text = "已保存" if saved else "无"
    if hurdle is not None:
        text += f"，待登录（{state_label(str(hurdle.get('state', '')))}）"
    return text


# ---- gathering -----------------------------------------------------------------------------------
# shops, outbox depth, broken channels, each channel's delivery state
_Gathered = tuple[list[ShopStatus], dict[str, int], dict[str, str], dict[str, dict[str, Any]]]


def _db_error(exc: BaseException, config: Config) -> str:
    """A database error's text without the database password (psycopg may quote the connection string)."""
    text, url = str(exc), config.cluster.database_url
    password = urlsplit(url).password if url else None
    return text.replace(password, "***") if password else text


def _from_store(config: Config, now: float, notes: list[str]) -> _Gathered:
    """Shops, outbox depth and broken channels from the store (defaults when no check has run)."""
    where = config.store_at()
    shown = "the cluster database" if config.cluster.database_url else str(where)  # a URL may hold a password
    blank = [ShopStatus(name=s.name, enabled=s.enabled, interval_seconds=config.schedule.interval_of(s))
             for s in config.shops]
    no_channels = channel_view(config.notifiers, {}, {}, {})
    if isinstance(where, Path) and not where.exists():
        notes.append(f"尚未运行过检查 (no check has run yet: {where} does not exist)")
        return blank, {}, {}, no_channels
    try:
        store = Store(where)
    except (*database_errors(), OSError) as exc:
        notes.append(f"无法读取数据库 (cannot read {shown}: {_db_error(exc, config)})")
        return blank, {}, {}, no_channels
    try:
        broken = store.broken()
        channels = channel_view(config.notifiers, store.channel_states(), store.owed(now), broken,
                                store.unverified(), store.maybe_repeated())
        return shop_statuses(config, store), store.depth(), broken, channels
    except database_errors() as exc:
        notes.append(f"无法读取数据库 (cannot read {shown}: {_db_error(exc, config)})")
        return blank, {}, {}, no_channels
    finally:
        store.close()


def _row(config: Config, s: ShopStatus, now: float, tz: tzinfo, running: bool) -> list[str]:
    hurdle = pending_hurdle(config, s.name, now)
    last_ok = NONE if s.last_ok is None else f"{_at(s.last_ok, tz)}（{ago(now - s.last_ok)}）"
    if s.next_deadline is None:
        deadline = NONE
    else:
        left = s.next_deadline - now
        deadline = f"{_at(s.next_deadline, tz)}（{'剩余 ' + remaining_text(int(left)) if left > 0 else '已超时'}）"
    if not s.enabled:
        next_run = "已停用"
    elif running and s.next_run is not None:
        next_run = _at(s.next_run, tz, "%m-%d %H:%M:%S")
    else:
        next_run = NONE
    return [clean(s.name, 24), state_label(s.state), session_text(config, s.name, hurdle), last_ok,
            str(s.consecutive_failures), str(s.pending_aftersale), str(s.pending_evidence), deadline, next_run]


def _shop_notes(config: Config, config_path: str, shops: Sequence[ShopStatus], now: float) -> list[str]:
    """What a failing shop needs from a human (the hints of `pdd-agent check`) and a login stop still waiting."""
    out = []
    for s in shops:
        hurdle = pending_hurdle(config, s.name, now)
        waiting = "" if hurdle is None else f"（自 {clean(str(hurdle.get('since', '')), 32)} 起等待人工登录）"
        if s.enabled and s.state in HINTS:
            out.append(f"! {clean(s.name, 24)}：{HINTS[ShopState(s.state)].format(shop=s.name, config=config_path)}"
                       + waiting)
            if s.last_error:
                out.append(f"    {clean(s.last_error, 160)}")
        elif hurdle is not None:
            out.append(f"! {clean(s.name, 24)}：{state_label(str(hurdle.get('state', '')))}{waiting}")
    return out


def _merge(configured: Sequence[ShopStatus], live: Sequence[ShopStatus]) -> list[ShopStatus]:
    """The running service's view of each shop, in config order; shops only one side knows are kept."""
    by_name = {s.name: s for s in live}
    out = [by_name.pop(s.name, s) for s in configured]
    return out + list(by_name.values())


def main(config_path: str, as_json: bool = False, *, out: TextIO | None = None,
         clock: Callable[[], float] = time.time) -> int:
    """Print the service's and the shops' status; 0 when the service runs and is healthy, 1 otherwise, 2 bad config."""
    out = out or sys.stdout
    config = load_or_report(config_path)
    if config is None:  # the running service may still be on the last good file: say how it is
        running_on_old(config_path, clock(), out)
        return 2
    now, tz = clock(), config.agent.zone
    notes: list[str] = []
    heartbeat = read_heartbeat(config.agent.data_dir)
    running = service_running(heartbeat, now)
    shops, outbox, broken, channels = _from_store(config, now, notes)
    if running and heartbeat is not None:
        shops, outbox, broken = _merge(shops, heartbeat.shops), heartbeat.outbox, heartbeat.broken_channels
        channels = heartbeat.channels
        healthy, reasons = healthz(heartbeat, now, tz)
    else:
        healthy, reasons = False, ["service not running (服务未运行)"]

    if as_json:
        snapshot = asdict(heartbeat) if heartbeat is not None else {}
        if not running:  # the stale heartbeat's identity, the store's view of the shops
            snapshot.update(scheduler_running=False, shops=[asdict(s) for s in shops], outbox=outbox,
                            broken_channels=broken, channels=channels)
        doc = {"running": running, "healthy": running and healthy, "reasons": reasons, "snapshot": snapshot}
        out.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        return 0 if running and healthy else 1

    lines = [*notes, table([HEADERS, *(_row(config, s, now, tz, running) for s in shops)])]
    lines += _shop_notes(config, config_path, shops, now)
    lines.append("")
    lines += _service_lines(heartbeat, running, healthy, reasons, now, tz)
    lines.append(f"待发消息：待发送 {outbox.get('pending', 0)}，已发送 {outbox.get('sent', 0)}，"
                 f"失败 {outbox.get('dead', 0)}")
    lines += channel_lines(channels, tz)
    if heartbeat is not None and running and heartbeat.config:
        lines += config_lines(heartbeat.config, tz)
    signed = int(heartbeat.requests.get("signed_hosts", 0)) if heartbeat is not None and running else 0
    if signed:
        lines.append(f"签名请求：{signed} 个后台要求 Anti-Content，检查请求由签名页签名（签名页 "
                     f"{int(heartbeat.requests.get('signers', 0))} 个，[api] signing_memory 内保持）")
    if heartbeat is not None and running and heartbeat.cluster:
        lines += cluster_lines(heartbeat.cluster)
    lines += capacity_status_lines(config)
    out.write("\n".join(lines) + "\n")
    return 0 if running and healthy else 1


def running_on_old(config_path: str, now: float, out: TextIO) -> None:
    """The config file does not load: when its data_dir can still be read and a service runs there, show which
    config that service runs on (it refused the broken file, or has not been told to reload yet)."""
    try:
        raw = tomllib.loads(Path(config_path).read_text(encoding="utf-8-sig"))
        agent = raw.get("agent", {})
        folder = Path(str(agent.get("data_dir", "data")))
        tz = ZoneInfo(str(agent.get("timezone", "Asia/Shanghai")))
    except (OSError, ValueError, KeyError):
        return
    if not folder.is_absolute():
        folder = Path(config_path).resolve().parent / folder
    beat = read_heartbeat(folder)
    if beat is None or not service_running(beat, now):
        return
    out.write("\n".join([f"服务仍在运行（pid {beat.pid}），按上次成功加载的配置 / the service runs on its last good "
                         "config:", *config_lines(beat.config, tz)]) + "\n")


def config_lines(c: Mapping[str, Any], tz: tzinfo) -> list[str]:
    """The config the service runs on, and a refused reload (Chinese first, like the rest)."""
    loaded = _at(float(c.get("loaded_at", 0)), tz, "%m-%d %H:%M:%S")
    out = [f"配置：{clean(str(c.get('digest', '')), 20)}，加载于 {loaded}"]
    failed = c.get("failed_at") or 0
    if failed > float(c.get("loaded_at", 0)):
        first = clean(str(c.get("error", "")).splitlines()[0] if c.get("error") else "", 200)
        out.append(f"  配置重新加载失败（{_at(float(failed), tz, '%m-%d %H:%M:%S')}），仍按上面的配置运行：{first}")
    return out


def cluster_lines(c: Mapping[str, Any]) -> list[str]:
    """Several nodes: this node, every node's heartbeat, the shared check jobs."""
    states = {"ok": "正常", "silent": "失联（店铺已交给其他节点）", "stopped": "已停止"}
    me = f"多机：本节点 {clean(str(c.get('node', '')), 60)}" + ("" if c.get("worker") else "（未在分担检查）")
    out = [me]
    for n in c.get("nodes", []):
        out.append(f"  {clean(str(n['name']), 60)}：{states.get(n['state'], n['state'])}，心跳 {ago(float(n['age']))}")
    jobs = c.get("jobs", {})
    out.append(f"  检查任务：等待 {jobs.get('todo', 0)}，进行中 {jobs.get('doing', 0)}，失败 {jobs.get('failed', 0)}")
    return out


def channel_lines(channels: Mapping[str, Mapping[str, Any]], tz: tzinfo) -> list[str]:
    """One line per channel: ok / failing since / failures / last error / next try / rows waiting."""
    bad = [n for n, v in channels.items() if v.get("state") != "ok"]
    out = [f"通知渠道故障：{'、'.join(clean(n, 40) for n in sorted(bad))}" if bad else "通知渠道：正常"]
    for name, v in sorted(channels.items()):
        waiting = f"待发 {v.get('waiting', 0)} 条"
        if v.get("unverified"):  # Apprise: the service took it, delivery is not confirmed
            waiting += f"，已发送未确认送达 {v['unverified']} 条"
        if v.get("maybe_repeated"):  # a send whose outcome was lost, sent again
            waiting += f"，可能重复发送 {v['maybe_repeated']} 条"
        kind = str(v.get("type") or "")
        label = clean(name, 40) + (f"（{CHANNEL_LABELS.get(kind, clean(kind, 20))}）" if kind else "")
        if v.get("limited"):
            nxt = _at(float(v.get("next_try") or 0), tz, "%H:%M:%S")
            out.append(f"  {label}：被渠道限流（{clean(str(v.get('last_error') or ''), 80)}，{nxt} 后再发），{waiting}")
        elif v.get("state") == "broken":
            out.append(f"  {label}：故障（{clean(str(v.get('last_error') or ''), 80)}），{waiting}")
        elif v.get("state") == "failing":
            since = _at(float(v.get("failing_since") or 0), tz, "%m-%d %H:%M:%S")
            nxt = _at(float(v.get("next_try") or 0), tz, "%H:%M:%S")
            out.append(f"  {label}：发送失败（自 {since} 起 {v.get('failures', 0)} 次，最近错误 "
                       f"{clean(str(v.get('last_error') or ''), 80)}，下次重试 {nxt}），{waiting}")
        else:
            out.append(f"  {label}：正常，{waiting}")
    return out


def _service_lines(heartbeat: Snapshot | None, running: bool, healthy: bool, reasons: Sequence[str],
                   now: float, tz: tzinfo) -> list[str]:
    if heartbeat is None:
        return ["服务：未运行（没有心跳文件 heartbeat.json）"]
    if not running:
        gone = "" if pid_alive(heartbeat.pid) else f"，进程 {heartbeat.pid} 已不存在"
        return [f"服务：未运行（最后心跳 {_at(heartbeat.updated_at, tz, '%Y-%m-%d %H:%M:%S')}，"
                f"{ago(now - heartbeat.updated_at)}{gone}）"]
    lines = [f"服务：运行中（pid {heartbeat.pid}，版本 {clean(heartbeat.version, 20)}，"
             f"启动于 {_at(heartbeat.started_at, tz, '%Y-%m-%d %H:%M:%S')}）"]
    if healthy:
        lines.append("健康检查：正常")
    else:
        lines.append("健康检查：异常")
        lines += [f"  - {clean(r, 200)}" for r in reasons]
    return lines
