"""`pdd-agent status`: running or not from the heartbeat, the Chinese table from the store or the heartbeat, JSON."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.cli import status_cmd
from agent.cli.status_cmd import main, pid_alive
from agent.cli.terminal import cells
from agent.config import load_config
from agent.core.rules import ItemState
from agent.outbox.store import Store
from agent.service.health import ShopStatus, Snapshot, shop_statuses, write_heartbeat

T0 = 1_795_240_800.0  # 2026-11-21 14:00:00 in Asia/Shanghai
SH = ZoneInfo("Asia/Shanghai")

CONFIG = """\
[agent]
timezone = "Asia/Shanghai"
data_dir = "./data"

[schedule]
dispatch_interval = "10s"

[[shops]]
name = "示例旗舰店"
username = "示例旗舰店:客服01"

[[shops]]
name = "二号店"
username = "二号店"
check_interval = "5m"

[[shops]]
name = "停用店"
username = "停用店"
enabled = false
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(cfg: Path, as_json: bool = False, now: float = T0) -> tuple[int, str]:
    out = io.StringIO()
    code = main(str(cfg), as_json, out=out, clock=lambda: now)
    return code, out.getvalue()


def columns(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(name + " "))
    return re.split(r" {2,}", line)


def _item(kind: str, item_id: str, deadline: float, closed: bool = False) -> dict[str, object]:
    return ItemState(shop="示例旗舰店", kind=kind, item_id=item_id, order_sn=f"SN{item_id}",  # type: ignore[arg-type]
                     last_stage=None, alerted=False, deadline=datetime.fromtimestamp(deadline, UTC),
                     refund_amount_fen=1990, last_seen=datetime.fromtimestamp(T0 - 600, UTC), closed=closed).to_dict()


def seed(cfg: Path) -> Path:
    """Checks as a past service run left them: one shop read, one stuck at SMS, outbox rows, a broken channel."""
    data = cfg.parent / "data"
    store = Store(data / "agent.db")
    try:
        store.commit_check("示例旗舰店", [
            _item("aftersale", "1", T0 + 5000), _item("aftersale", "2", T0 + 9000),
            _item("aftersale", "3", T0 - 100, closed=True), _item("evidence", "4", T0 + 20000),
        ], [("a", "ops", {}), ("b", "ops", {}), ("c", "ops", {})], T0 - 600, check=(True, "ok", None, {}))
        a, b, _ = store.due(T0)
        store.mark_sent([a.id], T0 - 500)
        store.mark_dead([b.id], "errcode 93000")
        store.commit_check("二号店", [], [], T0 - 120, check=(False, "sms_required", "SMS code asked", {}))
        store.set_broken("ops", T0 - 400, "webhook removed")
    finally:
        store.close()
    (data / "shops" / "示例旗舰店").mkdir(parents=True)
    (data / "shops" / "示例旗舰店" / "state.json").write_text("{}", encoding="utf-8")
    (data / "shops" / "二号店").mkdir(parents=True)
    hurdle = {"state": "sms_required", "detail": "SMS", "at": T0 - 120, "since": "2026-11-21T13:58:00+08:00"}
    (data / "shops" / "二号店" / "hurdle.json").write_text(json.dumps(hurdle), encoding="utf-8")
    return data


def heartbeat(cfg: Path, *, updated_at: float = T0 - 5, pid: int | None = None, stale: str = "") -> Snapshot:
    """A heartbeat as the service writes it: the store's view plus next_run / stale_after."""
    config = load_config(cfg)
    store = Store(config.agent.data_dir / "agent.db")
    try:
        shops = shop_statuses(config, store)
    finally:
        store.close()
    shops = [replace(s, next_run=T0 + 90, stale_after=T0 + (-1 if s.name == stale else 1200)) for s in shops]
    snap = Snapshot(pid=os.getpid() if pid is None else pid, version="0.1.0", started_at=T0 - 3600,
                    updated_at=updated_at, scheduler_running=True, shops=shops,
                    outbox={"pending": 5, "sent": 6, "dead": 0}, dispatch_interval=10.0)
    write_heartbeat(config.agent.data_dir, snap)
    return snap


# ---- not running -------------------------------------------------------------------------------
def test_nothing_has_run_yet(cfg: Path) -> None:
    code, out = run(cfg)
    assert code == 1
    assert "尚未运行过检查" in out and "服务：未运行" in out
    assert columns(out, "示例旗舰店") == ["示例旗舰店", "未检查", "无", "-", "0", "0", "0", "-", "-"]
    assert columns(out, "停用店")[-1] == "已停用"
    assert "待发送 0，已发送 0，失败 0" in out
    assert not (cfg.parent / "data" / "agent.db").exists()  # status never creates the store


def test_not_running_reads_the_store(cfg: Path) -> None:
    seed(cfg)
    code, out = run(cfg)
    assert code == 1
    assert "尚未运行过检查" not in out
    assert out.splitlines()[0].split() == ["店铺", "状态", "会话", "上次成功读取", "连续失败", "待处理", "待举证",
                                          "最近截止", "下次检查"]
    assert columns(out, "示例旗舰店") == ["示例旗舰店", "正常", "已保存", "11-21 13:50（10分钟前）", "0", "2", "1",
                                        "11-21 15:23（剩余 1小时23分）", "-"]
    assert columns(out, "二号店") == ["二号店", "需要短信验证", "无，待登录（需要短信验证）", "-", "1", "0", "0", "-",
                                    "-"]
    assert "pdd-agent login --shop 二号店" in out and "自 2026-11-21T13:58:00+08:00 起等待人工登录" in out
    assert "SMS code asked" in out
    assert "服务：未运行（没有心跳文件 heartbeat.json）" in out
    assert "待发送 1，已发送 1，失败 1" in out
    assert "通知渠道故障：ops" in out and "  ops：故障（webhook removed），待发" in out


def test_columns_are_aligned_in_terminal_cells(cfg: Path) -> None:
    seed(cfg)
    _, out = run(cfg)
    table = out.split("\n\n")[0].splitlines()[:4]  # header and the three shops

    def starts(line: str) -> list[int]:
        return [cells(line[: m.end()]) for m in re.finditer(r" {2,}", line)]

    assert len({tuple(starts(line)[:8]) for line in table}) == 1, "\n".join(table)
    assert cells("示例旗舰店") == 10 and cells("ok") == 2


def test_an_overdue_deadline_says_so(cfg: Path) -> None:
    seed(cfg)
    _, out = run(cfg, now=T0 + 6000)  # item 1 was due at T0 + 5000
    assert columns(out, "示例旗舰店")[7] == "11-21 15:23（已超时）"
    assert columns(out, "示例旗舰店")[3] == "11-21 13:50（1小时50分钟前）"


def test_a_stale_heartbeat_is_not_running(cfg: Path) -> None:
    seed(cfg)
    heartbeat(cfg, updated_at=T0 - 120)  # older than max(3 × 10 s, 60 s)
    code, out = run(cfg)
    assert code == 1
    assert "服务：未运行（最后心跳 2026-11-21 13:58:00，2分钟前）" in out
    assert columns(out, "示例旗舰店")[-1] == "-"  # no next run without a service
    assert "待发送 1，已发送 1，失败 1" in out  # the store, not the stale heartbeat


def test_a_dead_pid_is_not_running(cfg: Path) -> None:
    seed(cfg)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    heartbeat(cfg, pid=child.pid)
    code, out = run(cfg)
    assert code == 1 and f"进程 {child.pid} 已不存在" in out


def test_pid_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(-1)

    def denied(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(status_cmd.os, "kill", denied)
    assert pid_alive(1)


# ---- running -----------------------------------------------------------------------------------
def test_running_and_healthy(cfg: Path) -> None:
    seed(cfg)
    heartbeat(cfg)
    code, out = run(cfg)
    assert code == 0, out
    assert f"服务：运行中（pid {os.getpid()}，版本 0.1.0，启动于 2026-11-21 13:00:00）" in out
    assert "健康检查：正常" in out
    assert columns(out, "示例旗舰店")[-1] == "11-21 14:01:30"  # next_run from the heartbeat
    assert columns(out, "停用店")[-1] == "已停用"
    assert "待发送 5，已发送 6，失败 0" in out  # the heartbeat's outbox
    assert "通知渠道：正常" in out
    assert "检查容量：2 家店铺一轮约" in out and "capacity:" not in out  # Chinese first, like the rest of status
    assert "检查间隔 300 秒最多约 600 家" in out


def test_signed_hosts_and_the_config_show_in_status(cfg: Path) -> None:
    seed(cfg)
    snap = replace(heartbeat(cfg), requests={"signed_hosts": 1, "signers": 1},
                   config={"digest": "3f2a9c1b0d4e", "loaded_at": T0 - 600, "failed_at": None, "error": ""})
    write_heartbeat(load_config(cfg).agent.data_dir, snap)
    code, out = run(cfg)
    assert "签名请求：1 个后台要求 Anti-Content" in out and "签名页 1 个" in out
    assert "配置：3f2a9c1b0d4e，加载于" in out and "配置重新加载失败" not in out


def test_running_within_three_dispatch_intervals(cfg: Path) -> None:
    seed(cfg)
    heartbeat(cfg, updated_at=T0 - 60)  # exactly the 60 s floor: still running
    assert run(cfg)[0] == 0
    assert run(cfg, now=T0 + 0.5)[0] == 1


def test_running_but_a_shop_is_stale(cfg: Path) -> None:
    seed(cfg)
    heartbeat(cfg, stale="二号店")
    code, out = run(cfg)
    assert code == 1
    assert "服务：运行中" in out and "健康检查：异常" in out
    assert "  - shop 二号店: never read (超过两个检查周期未成功读取), last state sms_required" in out


# ---- JSON and errors ----------------------------------------------------------------------------
def test_json_when_running(cfg: Path) -> None:
    seed(cfg)
    snap = heartbeat(cfg, stale="二号店")
    code, out = run(cfg, as_json=True)
    doc = json.loads(out)
    assert code == 1
    assert doc["running"] is True and doc["healthy"] is False
    assert doc["reasons"] == ["shop 二号店: never read (超过两个检查周期未成功读取), last state sms_required"]
    assert doc["snapshot"]["pid"] == snap.pid and doc["snapshot"]["outbox"] == {"pending": 5, "sent": 6, "dead": 0}
    first = ShopStatus(**doc["snapshot"]["shops"][0])
    assert (first.name, first.pending_aftersale, first.pending_evidence) == ("示例旗舰店", 2, 1)
    assert first.next_run == T0 + 90


def test_json_when_not_running(cfg: Path) -> None:
    seed(cfg)
    code, out = run(cfg, as_json=True)
    doc = json.loads(out)
    assert code == 1
    assert (doc["running"], doc["healthy"], doc["reasons"]) == (False, False, ["service not running (服务未运行)"])
    assert [s["name"] for s in doc["snapshot"]["shops"]] == ["示例旗舰店", "二号店", "停用店"]
    assert [s["state"] for s in doc["snapshot"]["shops"]] == ["ok", "sms_required", "unknown"]
    assert doc["snapshot"]["outbox"] == {"pending": 1, "sent": 1, "dead": 1}
    assert doc["snapshot"]["broken_channels"] == {"ops": "webhook removed"}


def test_json_when_running_and_healthy(cfg: Path) -> None:
    seed(cfg)
    heartbeat(cfg)
    code, out = run(cfg, as_json=True)
    assert code == 0 and json.loads(out)["healthy"] is True and json.loads(out)["reasons"] == []


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent(CONFIG).replace('timezone = "Asia/Shanghai"', 'timezone = "Mars/Base"'),
                   encoding="utf-8")
    assert main(str(bad)) == 2
    assert "Mars/Base" in capsys.readouterr().err
    assert main(str(tmp_path / "missing.toml")) == 2
    assert "找不到配置文件" in capsys.readouterr().err
