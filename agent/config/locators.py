"""Loading the `selectors/` data files (site facts as TOML) with an optional admin override folder."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

FILES = ("site", "aftersale_list", "evidence")


class LocatorError(ValueError):
    """A selectors file is missing or does not parse; the message names the file and line."""


def default_dir() -> Path:
    """The shipped selectors: inside an installed wheel, else the source checkout's `selectors/`."""
    packaged = Path(str(resources.files("agent"))) / "default_selectors"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "selectors"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise LocatorError(f"{path}: {exc}") from exc


def load(override_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """All selectors files by name; tables in `override_dir/<name>.toml` replace keys one by one."""
    base = default_dir()
    out: dict[str, dict[str, Any]] = {}
    for name in FILES:
        path = base / f"{name}.toml"
        if not path.is_file():
            raise LocatorError(f"default selectors file missing: {path}")
        data = _read(path)
        if override_dir is not None and (override_dir / f"{name}.toml").is_file():
            data = _merge(data, _read(override_dir / f"{name}.toml"))
        out[name] = data
    return out
