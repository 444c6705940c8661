"""The repository layout rules: selectors/ stays data, and the default selectors are found."""

from __future__ import annotations

import selectors
import subprocess
import sys
from pathlib import Path

from agent.config import locators

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
        assert "site.toml" in str(exc) and "line 2" in str(exc)
    else:
        raise AssertionError("bad TOML accepted")
