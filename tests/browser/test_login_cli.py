"""`pdd-agent login` as a process: the SMS code typed at the prompt, and the QR scanned from the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.browser.shopfiles import shop_dir
from tests.browser.test_checker import make_config
from tests.conftest import Sandbox

pytestmark = pytest.mark.browser


def start(config: Path, shop: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PDD_TEST_PASSWORD": "sandbox-pass"}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "login", "--config", str(config), "--shop", shop, *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        ch = proc.stdout.read(1)
        if not ch or time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} never came; output so far:\n{seen}")
        seen += ch
    return seen


def test_login_with_the_sms_code_typed_at_the_prompt(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.load("logins")
    config = make_config(tmp_path, sandbox.url, [("短信验证店", "短信验证店")])
    proc = start(config.path, "短信验证店")
    try:
        read_until(proc, "短信验证码 / SMS code: ")
        code = sandbox.control.sms_code("短信验证店")
        assert code and proc.stdin
        proc.stdin.write(code + "\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "sandbox-pass" not in out and code not in out
    state = shop_dir(config.agent.data_dir, "短信验证店") / "state.json"
    assert state.stat().st_mode & 0o777 == 0o600


def test_qr_login_saves_the_png_and_waits_for_the_scan(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.control.load("logins")
    config = make_config(tmp_path, sandbox.url, [("扫码登录店", "扫码登录店")])
    proc = start(config.path, "扫码登录店", "--qr")
    png = shop_dir(config.agent.data_dir, "扫码登录店") / "login-qr.png"

    def scan() -> None:
        for _ in range(300):
            if png.exists() and any(t["status"] == 1 for t in sandbox.control.qr_tokens()):
                sandbox.control.scan_qr("扫码登录店")
                return
            time.sleep(0.1)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
        scanner.join()
    assert proc.returncode == 0, out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in out
    assert (shop_dir(config.agent.data_dir, "扫码登录店") / "state.json").exists()
