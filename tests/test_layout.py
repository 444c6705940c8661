"""The repository layout rules: the import rules between the rooms, selectors/ stays data, defaults are found."""

from __future__ import annotations

import selectors
import subprocess
import sys
from pathlib import Path

from agent.config import locators
from tests.layout_rules import MAY_IMPORT, modules, room, violations

ROOT = Path(__file__).resolve().parent.parent


def test_selectors_is_not_a_package() -> None:
    assert not (ROOT / "selectors" / "__init__.py").exists()
    assert not list((ROOT / "selectors").glob("*.py"))


def test_import_selectors_is_the_stdlib_module_even_from_the_repo_root() -> None:
    assert hasattr(selectors, "DefaultSelector")
    out = subprocess.run(
        [sys.executable, "-c", "import selectors, asyncio; print(selectors.DefaultSelector.__name__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip().endswith("Selector")


def test_default_selectors_load() -> None:
    data = locators.load()
    assert set(data) == set(locators.FILES)
    assert data["site"]["api"]["query_list"] == "/mercury/mms/afterSales/queryList"


def test_override_dir_replaces_single_keys(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text('[api]\nquery_list = "/x/queryList"\n', encoding="utf-8")
    data = locators.load(tmp_path)
    assert data["site"]["api"]["query_list"] == "/x/queryList"
    assert data["site"]["api"]["check_login"] == "/janus/api/checkLogin"


def test_bad_override_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text('[api]\nquery_list = \n', encoding="utf-8")
    try:
        locators.load(tmp_path)
    except locators.LocatorError as exc:
        assert "site.toml:2: TOML syntax error" in str(exc)
    else:
        raise AssertionError("bad TOML accepted")


def test_the_product_keeps_its_import_rules() -> None:
    """core and config import nothing of the product, Playwright stays in browser/, only cli/ imports cli/ and
    the sandbox, the sandbox imports only the shared HTTP server, notifiers import no agent, no import cycle."""
    problems = violations(ROOT)
    assert not problems, "the layout rules are broken:\n" + "\n".join(problems)


def test_every_module_lives_in_a_known_room() -> None:
    rooms = {room(m) for m in modules(ROOT)}
    assert rooms <= set(MAY_IMPORT), rooms - set(MAY_IMPORT)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"agent/__init__.py": "", "notifiers/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_rules_catch_core_importing_the_product(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"agent/core/__init__.py": "", "agent/outbox/__init__.py": "",
                            "agent/core/rules.py": "from agent.outbox.store import Store\n",
                            "agent/outbox/store.py": "Store = 1\n"})
    [problem] = violations(root)
    assert "agent/core/rules.py:1" in problem and "agent.core may import nothing else of the product" in problem


def test_rules_catch_playwright_outside_browser_even_inside_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"agent/service/__init__.py": "",
                            "agent/service/jobs.py": "def f():\n    from playwright.async_api import Page\n"})
    [problem] = violations(root)
    assert "agent/service/jobs.py:2" in problem and "Playwright" in problem


def test_rules_catch_the_product_importing_cli_or_sandbox(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"agent/service/__init__.py": "", "agent/sandbox/__init__.py": "",
                            "agent/outbox/__init__.py": "", "agent/cli/__init__.py": "",
                            "agent/service/health.py": "import agent.sandbox.serving\n",
                            "agent/sandbox/serving.py": "", "agent/cli/progress.py": "",
                            "agent/outbox/dispatch.py": "from agent.cli import progress\n"})
    problems = violations(root)
    assert len(problems) == 2
    assert any("agent.service imports" not in p and "agent.sandbox.serving" in p for p in problems)
    assert any("agent.cli.progress" in p for p in problems)


def test_rules_catch_the_sandbox_and_notifiers_importing_the_product(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"agent/sandbox/__init__.py": "", "agent/config/__init__.py": "",
                            "agent/sandbox/run.py": "from agent.config import locators\n",
                            "agent/config/locators.py": "",
                            "notifiers/wecom.py": "from agent.config import locators\n"})
    problems = violations(root)
    assert len(problems) == 2 and all("may import" in p for p in problems)


def test_rules_catch_one_notifier_channel_importing_another(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"notifiers/base.py": "", "notifiers/webhook.py": "from notifiers import base\n",
                            "notifiers/wecom.py": "from notifiers.base import Notifier\n",
                            "notifiers/dingtalk.py": "from notifiers.webhook import x\n"
                                                     "from notifiers.wecom import y\n"})
    [problem] = violations(root)
    assert "notifiers/dingtalk.py:2" in problem and "may import only notifiers.base, notifiers.webhook" in problem


def test_rules_catch_a_database_driver_outside_the_store_engine(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"agent/outbox/__init__.py": "",
                            "agent/outbox/engine.py": "import psycopg\nimport sqlite3\n",
                            "agent/outbox/store.py": "def f():\n    import sqlite3\n"})
    [problem] = violations(root)
    assert "agent/outbox/store.py:2" in problem and "only agent.outbox.engine may import a database driver" in problem


def test_rules_catch_an_import_cycle_inside_one_room(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"agent/config/__init__.py": "", "agent/config/a.py": "from . import b\n",
                            "agent/config/b.py": "from agent.config.a import x\n"})
    assert violations(root) == ["import cycle: agent.config.a -> agent.config.b -> agent.config.a"]
