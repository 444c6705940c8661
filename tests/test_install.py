"""A non-editable install ships the default selectors and serves the demo scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_selectors_as_data_and_serves_the_demo(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("pdd_agent-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "agent/default_selectors/aftersale_list.toml" in names
    assert "agent/sandbox/scenarios/demo.json" in names and "agent/sandbox/static/workbench.js" in names
    assert not any(n.startswith("selectors/") for n in names)  # never a top-level `selectors` package
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "sandbox", "--port", "0", "--scenario", "demo"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while "Ctrl-C" not in lines[-1] and len(lines) < 20:
            lines.append(proc.stdout.readline())
        url = lines[0].rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), lines
        selectors_line = next(line for line in lines if "selectors" in line)
        assert str(target / "agent" / "default_selectors") in selectors_line
        state = httpx.get(url + "/__sandbox/state", timeout=10).json()
        assert state["scenario"] == "demo" and state["shops"][0]["name"] == "示例旗舰店"
        page = httpx.get(url + "/login/", timeout=10)
        assert page.status_code == 200 and "账号登录" in page.text
        assert httpx.get(url + "/static/workbench.js", timeout=10).status_code == 200
        origin = json.loads(
            subprocess.run(
                [sys.executable, "-c", "import agent, json; print(json.dumps(agent.__file__))"],
                cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
            ).stdout
        )
        assert origin.startswith(str(target))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
