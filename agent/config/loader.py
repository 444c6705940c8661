"""Loading the admin's TOML file into the schema: ${ENV} references, validation naming file, line and key, masking."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.config.schema import Config, ConfigError, _Bad, _show, mask_url
from agent.config.toml_lines import _BARE_KEY, KeyPath, line_map


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve a config file; raises ConfigError naming file, line and key path."""
    file, p = str(path), Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([f"{file}: file not found (找不到配置文件)"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the file: {exc.strerror or exc} (无法读取配置文件)"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file}: not UTF-8 text (配置文件必须是 UTF-8 编码)"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg, line = str(exc), text.count("\n") + 1  # "(at end of document)" keeps the last line
        if m := re.search(r" \(at line (\d+), column (\d+)\)$", msg):
            msg, line = f"{msg[:m.start()]} (column {m.group(2)})", int(m.group(1))
        raise ConfigError([f"{file}:{line}: TOML syntax error: {msg} (TOML 语法错误)"]) from None
    walker = _Walker(file, line_map(text), p.resolve().parent)
    config = walker.table(data, Config, ())
    if walker.problems or not isinstance(config, Config):
        raise ConfigError(walker.problems)
    return dataclasses.replace(config, path=p.resolve())


_FAILED: Any = object()  # stands for a value that already produced a problem
_SCALARS: dict[Any, str] = {str: "a string", int: "an integer", float: "a number", bool: "a boolean (true/false)",
                            Path: "a path (a string)"}
_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${NAME}; $${NAME} stays a literal ${NAME}
_SECRET = re.compile(r"(^|_)(password|passwd|secret|token|key|keys|webhook|webhook_url|urls)(_|$)", re.IGNORECASE)


def dotted(key: KeyPath) -> str:
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            out += f".{part}" if out else part
    return out


def _expand(s: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(0)[1:]
        if (value := os.environ.get(m.group(2))) is None:
            raise _Bad(f"environment variable {m.group(2)} is not set (环境变量未设置)")
        return value
    return _ENV_REF.sub(sub, s)


class _Walker:
    """Converts parsed TOML into the config dataclasses, collecting every problem with its line."""

    def __init__(self, file: str, lines: dict[KeyPath, int], base: Path) -> None:
        self.file, self.lines, self.base = file, lines, base
        self.problems: list[str] = []

    def problem(self, key: KeyPath, msg: str) -> None:
        where = key  # a missing key: its table's header; inline tables, array items: the enclosing key's line
        while where and where not in self.lines:
            where = where[:-1]
        prefix = f"{self.file}:{self.lines[where]}" if where else self.file
        self.problems.append(f"{prefix}: {dotted(key)}: {msg}" if key else f"{prefix}: {msg}")

    def table(self, data: Any, cls: type, key: KeyPath) -> Any:
        if not isinstance(data, dict):
            raise _Bad(f"expected a table, got {_show(data)} (类型错误)")
        fields = {f.metadata.get("toml", f.name): f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            if name not in fields:
                what = "table" if isinstance(value, dict) or value and isinstance(value, list) and isinstance(
                    value[0], dict) else "key"
                close = difflib.get_close_matches(name, fields, n=1)
                self.problem(key + (name,), f"unknown {what} (未知的配置项)" + (f'; did you mean "{close[0]}"?'
                                                                                 if close else ""))
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in data:
                raw = data[name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.problem(key + (name,), "missing (required) (缺少必填项)")
                values[name] = _FAILED
                continue
            else:  # defaults take the same path: relative paths resolve, absent tables get their defaults
                d = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                raw = ({} if dataclasses.is_dataclass(d) else list(d) if isinstance(d, tuple)
                       else "" if d is None else str(d) if isinstance(d, Path) else d)
            values[f.name] = self.value(raw, hints[f.name], key + (name,), f.metadata)
        if any(v is _FAILED for v in values.values()):
            return _FAILED
        obj = cls(**values)
        problems = obj.check_fields() if hasattr(obj, "check_fields") else []
        for sub, msg in problems:  # cross-field rules: (key path below this table, message)
            self.problem(key + sub, msg)
        return _FAILED if problems else obj

    def value(self, raw: Any, tp: Any, key: KeyPath, meta: Mapping[str, Any]) -> Any:
        try:
            raw = _expand(raw) if isinstance(raw, str) else raw
            if isinstance(tp, types.UnionType) and type(None) in tp.__args__:  # X | None: "" means None
                if raw == "":
                    return None
                tp = next(a for a in tp.__args__ if a is not type(None))
            if dataclasses.is_dataclass(tp):
                return self.table(raw, tp, key)
            if typing.get_origin(tp) is tuple:
                items = self.array(raw, typing.get_args(tp)[0], key, meta)
                return meta["check"](items) if meta.get("check") and items is not _FAILED else items
            if typing.get_origin(tp) is dict:  # [name.*] tables: names are free, values one schema
                if not isinstance(raw, dict):
                    raise _Bad(f"expected a table of [{key[-1]}.NAME] tables, got {_show(raw)} (类型错误)")
                value_tp = typing.get_args(tp)[1]
                out = {str(k): self.value(v, value_tp, key + (str(k),), {}) for k, v in raw.items()}
                return _FAILED if any(v is _FAILED for v in out.values()) else out
            if tp not in _SCALARS:  # a schema mistake, not the admin's
                raise TypeError(f"config schema: unsupported type {tp!r} for {dotted(key)}")
            if not (type(raw) is tp if tp in (int, bool) else type(raw) in (int, float) if tp is float
                    else isinstance(raw, str)):
                secret = _SECRET.search(str(key[-1]))  # never echo what may be a password
                got = f"got a value of type {type(raw).__name__}" if secret else f"got {_show(raw)}"
                raise _Bad(f"expected {_SCALARS.get(tp, tp)}, {got} (类型错误)")
            out: Any = float(raw) if tp is float else raw
            if tp is Path:
                out = Path(raw).expanduser()
                out = out if out.is_absolute() else self.base / out
            return meta["check"](out) if meta.get("check") else out
        except _Bad as exc:
            self.problem(key, str(exc))
            return _FAILED

    def array(self, raw: Any, item_tp: Any, key: KeyPath, meta: Mapping[str, Any]) -> Any:
        name, least = str(key[-1]), meta.get("min_items", 0)
        if not isinstance(raw, list):
            what = f"an array of tables ([[{name}]])" if dataclasses.is_dataclass(item_tp) else "an array"
            raise _Bad(f"expected {what}, got {_show(raw)} (类型错误)")
        if len(raw) < least:
            raise _Bad(f"at least {least} required; add a [[{name}]] table (至少需要 {least} 项)")
        items = [self.value(v, item_tp, key + (i,), {}) for i, v in enumerate(raw)]
        if any(v is _FAILED for v in items):
            return _FAILED
        if attr := meta.get("unique"):
            seen: dict[Any, int] = {}
            for i, item in enumerate(items):
                if (v := getattr(item, attr)) in seen:
                    self.problem(key + (i, attr), f"duplicate {_show(v)}, already used by "
                                 f"{dotted(key + (seen[v],))} (名称重复)")
                seen.setdefault(v, i)
            if len(seen) < len(items):
                return _FAILED
        return tuple(items)


def _mask(value: Any, name: str) -> Any:
    if name.endswith("_env") and isinstance(value, str):  # the variable's name and whether it is set, never its value
        return value and (f"{value} (set)" if os.environ.get(value) else f"{value} (未设置 / not set)")
    if _SECRET.search(name) and value not in ("", None):
        return "***"
    if name in ("proxy", "database_url") and isinstance(value, str):
        return mask_url(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _mask(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, name) for v in value]
    return str(value) if isinstance(value, Path) else value


def masked(config: Config) -> dict[str, Any]:
    """A JSON-able view of the resolved config: env var names with set/not set, secret-named keys as "***"."""
    return dict(_mask(config, ""))
