"""Loading the `selectors/` data files (site facts as TOML) with an optional admin override folder."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from agent.config.toml_lines import KeyPath, line_map

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
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{path}:{at.group(1)}" if at else str(path)
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        column = f" (column {at.group(2)})" if at else ""
        raise LocatorError(f"{where}: TOML syntax error: {what}{column} (选择器文件 TOML 语法错误)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LocatorError(f"{path}: cannot read the file: {exc} (无法读取选择器文件)") from exc


def unknown_keys(base: Mapping[str, Any], over: Mapping[str, Any], prefix: KeyPath = ()) -> list[KeyPath]:
    """Key paths of an override that the shipped file does not have (a typo would otherwise change nothing)."""
    out: list[KeyPath] = []
    for key, value in over.items():
        path = (*prefix, key)
        if key not in base:
            out.append(path)
        elif isinstance(value, dict) and isinstance(base[key], dict):
            out += unknown_keys(base[key], value, path)
    return out


def load(override_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """All selectors files by name; tables in `override_dir/<name>.toml` replace keys one by one."""
    base = default_dir()
    out: dict[str, dict[str, Any]] = {}
    for name in FILES:
        path = base / f"{name}.toml"
        if not path.is_file():
            raise LocatorError(f"default selectors file missing: {path}")
        data = _read(path)
        over_path = override_dir / f"{name}.toml" if override_dir is not None else None
        if over_path is not None and over_path.is_file():
            over = _read(over_path)
            unknown = unknown_keys(data, over)
            if unknown:
                lines = line_map(over_path.read_text(encoding="utf-8-sig"))
                raise LocatorError("\n".join(
                    f"{over_path}:{lines.get(k, '?')}: {'.'.join(map(str, k))}: not a key of the shipped {name}.toml "
                    "(选择器中没有这个键，检查拼写)" for k in unknown))
            data = _merge(data, over)
        out[name] = data
    return out
