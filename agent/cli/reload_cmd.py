"""`pdd-agent reload`: check the config file, then ask the running service to re-read it (SIGHUP to the pid in its
heartbeat) and say whether it took it."""

from __future__ import annotations

import os
import signal
import sys
import time

from agent.cli.loading import load_or_report
from agent.cli.status_cmd import pid_alive
from agent.service.health import read_heartbeat

WAIT_SECONDS = 15.0


def main(config_path: str) -> int:
    config = load_or_report(config_path)  # a file that does not load is never sent to the service
    if config is None:
        print("未重新加载：服务继续按原配置运行 / not reloaded: the service keeps its config", file=sys.stderr)
        return 2
    beat = read_heartbeat(config.agent.data_dir)
    if beat is None or not pid_alive(beat.pid):
        print(f"服务未运行 / the service is not running (no live pid in {config.agent.data_dir}/heartbeat.json)",
              file=sys.stderr)
        return 1
    asked = time.time()
    os.kill(beat.pid, signal.SIGHUP)
    deadline = asked + WAIT_SECONDS
    while time.time() < deadline:
        time.sleep(0.2)
        now = read_heartbeat(config.agent.data_dir)
        conf = now.config if now is not None else {}
        if (conf.get("failed_at") or 0) >= asked:
            print(f"服务拒绝了新配置，仍按原配置运行 / refused, still running on the previous config:\n"
                  f"{conf.get('error', '')}", file=sys.stderr)
            return 1
        if float(conf.get("loaded_at") or 0) >= asked:
            print(f"已重新加载 / reloaded: {conf.get('digest', '')} (pid {beat.pid})")
            return 0
    print(f"已发送 SIGHUP，但 {WAIT_SECONDS:g} 秒内未见结果，请查看日志 / SIGHUP sent (pid {beat.pid}); no answer "
          f"within {WAIT_SECONDS:g} s: see the log", file=sys.stderr)
    return 1
