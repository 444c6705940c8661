"""Unit tests for agent.browser.chromium: which executable is chosen, and the launch flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.browser import chromium


def _fake_exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env override, an empty PATH, an empty Playwright browsers dir and no /usr/bin fallback."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "browsers").mkdir()
    monkeypatch.delenv(chromium.ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "browsers"))
    monkeypatch.setattr(chromium, "FALLBACK_PATHS", ())
    monkeypatch.setattr(chromium, "_playwright_revision", lambda: "1234")
    return tmp_path


def test_explicit_missing_path_raises(isolated: Path) -> None:
    missing = isolated / "nope" / "chrome"
    with pytest.raises(FileNotFoundError, match="not an executable file") as excinfo:
        chromium.find_chromium(str(missing))
    assert str(missing) in str(excinfo.value)


def test_explicit_non_executable_file_raises(isolated: Path) -> None:
    plain = isolated / "chrome.txt"
    plain.write_text("not a browser")
    plain.chmod(0o644)
    with pytest.raises(FileNotFoundError):
        chromium.find_chromium(str(plain))


def test_explicit_executable_wins_over_env(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _fake_exe(isolated / "explicit" / "chrome")
    monkeypatch.setenv(chromium.ENV_VAR, str(_fake_exe(isolated / "env" / "chrome")))
    assert chromium.find_chromium(str(explicit)) == str(explicit)


def test_env_var_honoured_before_path(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_exe(isolated / "bin" / "chromium")
    env_exe = _fake_exe(isolated / "env" / "chrome")
    monkeypatch.setenv(chromium.ENV_VAR, str(env_exe))
    assert chromium.find_chromium() == str(env_exe)
    assert chromium.find_chromium("") == str(env_exe)


def test_env_var_pointing_nowhere_is_ignored(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _fake_exe(isolated / "bin" / "chromium")
    monkeypatch.setenv(chromium.ENV_VAR, str(isolated / "gone"))
    assert chromium.find_chromium() == str(on_path)


def test_playwright_own_browser_means_none(isolated: Path) -> None:
    _fake_exe(isolated / "bin" / "chromium")
    own = _fake_exe(isolated / "browsers" / "chromium-1234" / "chrome-linux64" / "chrome")
    assert chromium.playwright_chromium() == str(own)
    assert chromium.find_chromium() is None
    assert "executable_path" not in chromium.launch_options()


def test_playwright_browser_of_other_revision_is_not_used(isolated: Path) -> None:
    _fake_exe(isolated / "browsers" / "chromium-999" / "chrome-linux" / "chrome")
    on_path = _fake_exe(isolated / "bin" / "chromium-browser")
    assert chromium.playwright_chromium() is None
    assert chromium.find_chromium() == str(on_path)


def test_unknown_revision_accepts_any_download(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chromium, "_playwright_revision", lambda: None)
    own = _fake_exe(isolated / "browsers" / "chromium-999" / "chrome-linux" / "chrome")
    assert chromium.playwright_chromium() == str(own)


def test_browsers_path_defaults_to_xdg_cache(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAYWRIGHT_BROWSERS_PATH")
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "cache"))
    own = _fake_exe(isolated / "cache" / "ms-playwright" / "chromium-1234" / "chrome-linux64" / "chrome")
    assert chromium.find_chromium() is None
    assert chromium.playwright_chromium() == str(own)


def test_installed_playwright_revision_is_read_from_its_package() -> None:
    revision = chromium._playwright_revision()
    assert revision is not None and revision.isdigit()


def test_system_names_in_order_then_fallback(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stable = _fake_exe(isolated / "bin" / "google-chrome-stable")
    assert chromium.find_chromium() == str(stable)
    browser = _fake_exe(isolated / "bin" / "chromium-browser")
    assert chromium.find_chromium() == str(browser)
    stable.unlink()
    browser.unlink()
    fallback = _fake_exe(isolated / "usr-bin-chromium")
    monkeypatch.setattr(chromium, "FALLBACK_PATHS", (str(fallback),))
    assert chromium.find_chromium() == str(fallback)


def test_nothing_found_raises_bilingual_install_hint(isolated: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        chromium.find_chromium()
    message = str(excinfo.value)
    assert "没有找到 Chromium" in message
    assert "no chromium found" in message.lower()
    assert "apt-get install chromium fonts-noto-cjk" in message
    assert "python -m playwright install chromium" in message


def test_root_gets_no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    args = chromium.launch_args()
    assert args[: len(chromium.LAUNCH_ARGS)] == list(chromium.LAUNCH_ARGS)
    assert args.count("--no-sandbox") == 1


def test_non_root_keeps_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    assert "--no-sandbox" not in chromium.launch_args()
    assert chromium.launch_args() == list(chromium.LAUNCH_ARGS)


def test_launch_args_is_a_fresh_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    chromium.launch_args().append("--mutated")
    assert "--mutated" not in chromium.launch_args()


def test_launch_options_include_executable_path(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    exe = _fake_exe(isolated / "bin" / "chromium")
    options = chromium.launch_options(headless=False)
    assert options == {"headless": False, "args": chromium.launch_args(), "executable_path": str(exe)}
    explicit = _fake_exe(isolated / "other" / "chrome")
    assert chromium.launch_options(str(explicit))["executable_path"] == str(explicit)
    assert chromium.launch_options()["headless"] is True


def test_launch_options_propagates_missing_explicit(isolated: Path) -> None:
    with pytest.raises(FileNotFoundError):
        chromium.launch_options(str(isolated / "missing"))
