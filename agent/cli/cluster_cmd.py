"""`pdd-agent cluster migrate|status|import`: prepare the shared PostgreSQL, show the nodes, their shops and jobs,
move one machine's SQLite store into it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agent.browser.saved import FileSession
from agent.browser.shopfiles import shop_dir, state_path
from agent.cli.loading import load_or_report
from agent.cli.terminal import ago, clean
from agent.cluster.schedule import Schedule
from agent.cluster.sessions import SharedSessions
from agent.cluster.work import Work, WorkOptions
from agent.config import Config
from agent.config.durations import seconds
from agent.outbox.engine import database_errors
from agent.outbox.store import Store
from agent.outbox.transfer import TargetNotEmpty, copy_store


def main(config_path: str, action: str, source: str | None = None) -> int:
    if action == "key":  # needs no config: a new key to put in the environment
        from cryptography.fernet import Fernet

        print(Fernet.generate_key().decode("ascii"))
        return 0
    config = load_or_report(config_path)
    if config is None:
        return 2
    if not config.cluster.database_url:
        print("未配置 [cluster] database_url：单机运行，不需要 cluster 命令 / no [cluster] database_url: one machine",
              file=sys.stderr)
        return 2
    try:
        if action == "import":
            return import_sqlite(config, Path(source) if source else config.agent.data_dir / "agent.db")
        return migrate(config) if action == "migrate" else status(config)
    except database_errors() as exc:
        print(f"数据库不可用 / database unavailable: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return 1


def migrate(config: Config) -> int:
    """The store's schema, procrastinate's and the shared schedule's (each only when missing); safe to repeat."""
    store = Store(config.store_at())  # the store's own migrations run on open
    try:
        work = Work(config.cluster.database_url, Schedule(store.db), _no_check, lambda s, w, n: n,
                    WorkOptions(node="migrate"))
        asyncio.run(work.migrate())
        sessions = SharedSessions(store.db, config.cluster.session_keys, "migrate")
        sessions.create()
        rotated = sessions.rotate()  # every saved session under the first key (older keys may then go)
    finally:
        store.close()
    print("数据库已就绪 / database ready: store, job queue and shop schedule tables are in place; "
          f"{rotated} saved session(s) encrypted with the first key")
    return 0


def import_sqlite(config: Config, source_path: Path) -> int:
    """One machine's SQLite store into the (empty) PostgreSQL: items, alerts sent and queued, channel state, claims,
    the timeline, tokens. Stop the single-node service first; start the nodes after."""
    if not source_path.exists():
        print(f"没有找到 SQLite 数据库 / no SQLite store at {source_path}", file=sys.stderr)
        return 2
    source, target = Store(source_path), Store(config.store_at())
    try:
        counts = copy_store(source, target)
        moved = import_sessions(config, SharedSessions(target.db, config.cluster.session_keys, "import"))
    except TargetNotEmpty as exc:
        print(f"未导入 / not imported: {exc}", file=sys.stderr)
        return 1
    finally:
        source.close()
        target.close()
    print("已导入 / imported: " + "，".join(f"{t} {n}" for t, n in counts.items()))
    print(f"登录会话已加密存入数据库并从本机删除 / saved sessions moved into the database (encrypted) and removed "
          f"from this disk: {moved}")
    return 0


def import_sessions(config: Config, sessions: SharedSessions) -> int:
    """Each configured shop's saved session and learned plan from its folder into the shared store; the session
    file is removed once the database holds a copy that decrypts (no plaintext session stays on the disk)."""
    sessions.create()
    moved = 0
    for shop in config.shops:
        folder = FileSession(state_path(shop_dir(config.agent.data_dir, shop.name)))
        plan = folder.plan()
        if isinstance(plan, dict) and sessions.load_plan(shop.name) is None:
            sessions.save_plan(shop.name, plan)
        state = folder.load()
        if state is None:
            continue
        if sessions.load(shop.name) is None:  # a node may have logged in since: its session is the newer
            sessions.save(shop.name, state)
            moved += 1
        if sessions.load(shop.name) is not None:
            folder.path.unlink()
    return moved


async def _no_check(shop: str, lease: int) -> None:  # migrate runs no job
    raise RuntimeError("migrate runs no check")


def status(config: Config) -> int:
    store = Store(config.store_at())
    try:
        schedule = Schedule(store.db)
        now, stall = schedule.now(), seconds(config.cluster.stall_timeout)
        held, last = schedule.held_by(), schedule.last_nodes()
        jobs = dict(store.db.execute("SELECT status::text, count(*) FROM procrastinate_jobs "
                                     "WHERE task_name = 'check_shop' GROUP BY status").fetchall())
        lines = ["节点 / nodes:"]
        for n in schedule.nodes():
            silent = now - n.heartbeat_at > stall
            alive = "已停止" if n.stopped_at else ("失联（店铺已交给其他节点）" if silent else "正常")
            mine = sum(1 for v in last.values() if v == n.name)
            busy = sum(1 for v in held.values() if v == n.name)
            lines.append(f"  {clean(n.name, 60)}：{alive}，心跳 {ago(now - n.heartbeat_at)}，上次检查的店铺 {mine} 家，"
                         f"正在检查 {busy} 家（pid {n.pid} @ {clean(n.host, 40)}）")
        lines.append(f"检查任务 / check jobs: 等待 {jobs.get('todo', 0)}，进行中 {jobs.get('doing', 0)}，"
                     f"失败 {jobs.get('failed', 0)}")
        depth = store.depth()
        lines.append(f"待发消息 / outbox: 待发 {depth.get('pending', 0)}，已发 {depth.get('sent', 0)}，"
                     f"失败 {depth.get('dead', 0)}")
        print("\n".join(lines))
    finally:
        store.close()
    return 0
