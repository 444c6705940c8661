"""Owns finding a Chromium executable for Playwright and the flags it is launched with."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
from pathlib import Path

ENV_VAR = "PDD_AGENT_CHROMIUM"
SYSTEM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FALLBACK_PATHS: tuple[str, ...] = ("/usr/bin/chromium",)
# Inside a Playwright browser directory such as chromium-1255/ (older builds: chrome-linux/chrome).
_PLAYWRIGHT_EXECUTABLE = "chrome-linux*/chrome"

LAUNCH_ARGS: tuple[str, ...] = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup",
    "--disable-blink-features=AutomationControlled",
)

INSTALL_HINT = (
    "没有找到 Chromium，请安装：apt-get install chromium fonts-noto-cjk，"
    "或 python -m playwright install chromium。\n"
    "No Chromium found: install it with `apt-get install chromium fonts-noto-cjk`"
    " or `python -m playwright install chromium`, or set PDD_AGENT_CHROMIUM to its path."
)


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _playwright_package_dir() -> Path | None:
    spec = importlib.util.find_spec("playwright")  # locates the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "driver" / "package"


def _playwright_browsers_dir() -> Path | None:
    """Where Playwright keeps downloaded browsers, computed as its registry does on Linux."""
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH", "")
    if configured == "0":
        package = _playwright_package_dir()
        return package / ".local-browsers" if package else None
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ms-playwright"


def _playwright_revision() -> str | None:
    """The Chromium revision the installed playwright package wants, read without starting its driver."""
    try:
        package = _playwright_package_dir()
        if package is None:
            return None
        data = json.loads((package / "browsers.json").read_text(encoding="utf-8"))
        return next(str(b["revision"]) for b in data["browsers"] if b.get("name") == "chromium")
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None


def playwright_chromium() -> str | None:
    """Path of Playwright's own downloaded Chromium (of the wanted revision when known), if present."""
    base = _playwright_browsers_dir()
    if base is None:
        return None
    revision = _playwright_revision()
    name = f"chromium-{glob.escape(revision)}" if revision else "chromium-*"
    browser_dir = f"{glob.escape(str(base))}/{name}"
    for candidate in sorted(glob.glob(f"{browser_dir}/{_PLAYWRIGHT_EXECUTABLE}"), reverse=True):
        if _is_executable(candidate):
            return candidate
    return None


def find_chromium(explicit: str | None = None) -> str | None:
    """Return the Chromium to launch, or None to let Playwright use its own downloaded build."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not _is_executable(path):
            raise FileNotFoundError(f"Chromium 不存在或不可执行 / Chromium is not an executable file: {path}")
        return path
    from_env = os.environ.get(ENV_VAR, "")
    if from_env and _is_executable(from_env):
        return from_env
    if playwright_chromium() is not None:
        return None
    for name in SYSTEM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for path in FALLBACK_PATHS:
        if _is_executable(path):
            return path
    raise FileNotFoundError(INSTALL_HINT)


def launch_args() -> list[str]:
    """LAUNCH_ARGS, plus --no-sandbox as root (Chromium will not start as root with its sandbox)."""
    args = list(LAUNCH_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


def launch_options(explicit: str | None = None, headless: bool = True) -> dict[str, object]:
    """Keyword arguments for Playwright's `chromium.launch(**options)`."""
    options: dict[str, object] = {"headless": headless, "args": launch_args()}
    executable = find_chromium(explicit)
    if executable is not None:
        options["executable_path"] = executable
    return options
