"""Logging setup: loguru sinks (console, rotated private file, JSON lines), stdlib routing, and secret redaction."""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from loguru import logger

from agent.cli.progress import around_output

LOG_FILE = "pdd-agent.log"
ROTATION = "10 MB"
RETENTION = 10  # rotated files kept
MASK = "***"
HUMAN_FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level:<7}</level> {message}{extra[_pdd_exception]}\n"
JSON_FORMAT = "{extra[_pdd_json]}\n"

# stdlib loggers that would flood the service (or leak secrets: httpx logs request URLs, WeCom keys included)
STDLIB_LEVELS = {
    "apscheduler": logging.WARNING,  # INFO is a line per job added or run; the service logs its own summary
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "playwright": logging.WARNING,
    "asyncio": logging.WARNING,
    "mail.log": logging.WARNING,  # aiosmtpd
}

_COOKIE_NAMES = r"PASS_ID|SUB_PASS_ID|_nano_fp|rckk|api_uid|JSESSIONID"
_KEYS = r"password|passwd|pwd|secret|cookie|set-cookie|authorization"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # webhook URLs: ...webhook/send?key=693a91f6-... (and access_token= of similar bots)
    (re.compile(r"(?i)([?&](?:key|access_token)=)[^&#\s\"'<>]+"), rf"\g<1>{MASK}"),
    # quoted values: "password": "x", 'Cookie': 'a=b', password="x"
    (re.compile(rf"(?i)([\"']?\b(?:{_KEYS})\b[\"']?\s*[:=]\s*)([\"'])(?:\\.|(?!\2).)*\2"), rf"\g<1>\g<2>{MASK}\g<2>"),
    # header lines: Cookie: a=b; c=d / Set-Cookie: ... (to the end of the line)
    (re.compile(r"(?im)(\b(?:set-)?cookie\s*:[ \t]*)(?![\"'\s])[^\r\n]+"), rf"\g<1>{MASK}"),
    # authorization: Bearer xyz / Authorization=Basic xyz, and any bare "Bearer xyz"
    (re.compile(r"(?i)(\bauthorization\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?)(?![\"'\s])[^\s,;\"'}]+"),
     rf"\g<1>{MASK}"),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*"), rf"\g<1>{MASK}"),
    # unquoted password=x, passwd: x
    (re.compile(r"(?i)(\b(?:password|passwd|pwd|secret)\b\s*[:=]\s*)(?![\"'\s*])[^\s&,;\"'}]+"), rf"\g<1>{MASK}"),
    # session cookies as pairs (PASS_ID=x) and as Playwright storage state ({"name": "PASS_ID", "value": "x"})
    (re.compile(rf"(?<![\w-])({_COOKIE_NAMES})=[^;\s&,\"']+"), rf"\g<1>={MASK}"),
    (re.compile(rf"(\"name\"\s*:\s*\"(?:{_COOKIE_NAMES})\"\s*,\s*\"value\"\s*:\s*\")(?:\\.|[^\"\\])*"),
     rf"\g<1>{MASK}"),
]

_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def add_secrets(values: Iterable[str]) -> None:
    """Register literal secrets (passwords, webhook keys) masked in every log line; values under 4 chars are ignored.

    Their URL-encoded, repr and JSON-escaped spellings are masked too (tracebacks and URLs show them so).
    """
    global _secrets_re
    with _secrets_lock:
        for value in values:
            if not isinstance(value, str) or len(value) < 4:
                continue
            spellings = {value, quote(value, safe=""), quote_plus(value), repr(value)[1:-1],
                         json.dumps(value, ensure_ascii=False)[1:-1]}
            _secrets.update(s for s in spellings if len(s) >= 4)
        if _secrets:
            ordered = sorted(_secrets, key=lambda s: (-len(s), s))  # longest first: no partial masking
            _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget every registered literal (tests)."""
    global _secrets_re
    with _secrets_lock:
        _secrets.clear()
        _secrets_re = None


def redact(text: str) -> str:
    """`text` with registered literals, webhook keys, cookies, passwords and bearer tokens replaced by ***."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    """A JSON-friendly copy of an `extra` value with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 4 and isinstance(value, dict):
        return {str(k): MASK if re.fullmatch(_KEYS, str(k), re.I) else _redact_value(v, depth + 1)
                for k, v in value.items()}
    if depth < 4 and isinstance(value, list | tuple | set):
        return [_redact_value(v, depth + 1) for v in value]
    return redact(str(value))


def _prepare(record: Any) -> None:
    """Patcher: redact the message and `extra`; turn the exception into redacted text in extra["_pdd_exception"]."""
    extra = record["extra"]
    if extra.get("_pdd_redacted"):
        return
    record["message"] = redact(str(record["message"]))
    for key in [k for k in extra if not k.startswith("_pdd_")]:
        extra[key] = MASK if re.fullmatch(_KEYS, str(key), re.I) else _redact_value(extra[key])
    text = ""
    if record["exception"] is not None:
        type_, value, tb = record["exception"]
        if type_ is not None:
            text = redact("".join(traceback.format_exception(type_, value, tb)).rstrip("\n"))
        record["exception"] = None  # loguru must not print the raw traceback
    extra["_pdd_exception"] = "\n" + text if text else ""
    extra["_pdd_exception_text"] = text
    extra["_pdd_redacted"] = True


def _human(record: Any) -> str:
    _prepare(record)  # again here in case another patcher replaced ours: no sink ever prints unredacted text
    return HUMAN_FORMAT


def _json(record: Any) -> str:
    _prepare(record)
    extra = record["extra"]
    if "_pdd_json" not in extra:
        line: dict[str, Any] = {
            "time": record["time"].isoformat(timespec="milliseconds"),
            "level": record["level"].name,
            "message": record["message"],
            "name": record["name"],
            "function": record["function"],
            "line": record["line"],
        }
        fields = {k: v for k, v in extra.items() if not k.startswith("_pdd_")}
        if fields:
            line["extra"] = fields
        if extra["_pdd_exception_text"]:
            line["exception"] = extra["_pdd_exception_text"]
        extra["_pdd_json"] = json.dumps(line, ensure_ascii=False, default=str)
    return JSON_FORMAT


class InterceptHandler(logging.Handler):
    """Routes stdlib `logging` records into loguru (the loguru documentation's recipe), keeping the logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        try:
            message = record.getMessage()
        except Exception:  # bad %-arguments: logging's own error report
            self.handleError(record)
            return
        frame, depth = inspect.currentframe(), 0
        while frame is not None:
            filename = frame.f_code.co_filename
            frozen = "importlib" in filename and "_bootstrap" in filename
            if depth > 0 and filename != logging.__file__ and not frozen:
                break
            frame = frame.f_back
            depth += 1
        name = record.name

        def rename(r: Any) -> None:
            r["name"] = name

        logger.opt(depth=depth, exception=record.exc_info).patch(rename).log(level, message)


def _private_opener(path: str, flags: int) -> int:
    """open() opener: log files may hold shop data, so they are created (and kept) owner-only."""
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass
    return fd


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Console:
    """The terminal sink: a log line steps around a progress line being shown (erased, then drawn again)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, message: str) -> None:
        def out() -> None:
            self.stream.write(message)
            self.stream.flush()
        around_output(out)


def setup(
    level: str = "INFO",
    *,
    json_lines: bool = False,
    log_dir: Path | None = None,
    console: bool = True,
    stream: TextIO | None = None,
) -> None:
    """(Re)configure logging: console and/or rotated file sinks, stdlib routed in, secrets redacted everywhere.

    `diagnose=False`/`backtrace=False` keep variable values (cookies, passwords) out of tracebacks. Safe to call
    again: handlers are replaced, never added twice.
    """
    level = level.upper()
    fmt = _json if json_lines else _human
    logger.remove()
    logger.configure(patcher=_prepare)
    if console:
        out = sys.stderr if stream is None else stream
        colorize = not json_lines and _isatty(out) and "NO_COLOR" not in os.environ
        logger.add(_Console(out), level=level, format=fmt, colorize=colorize, diagnose=False, backtrace=False)
    if log_dir is not None:
        log_dir = Path(log_dir)
        if not log_dir.is_dir():
            log_dir.mkdir(parents=True, exist_ok=True)
            log_dir.chmod(0o700)
        logger.add(log_dir / LOG_FILE, level=level, format=fmt, colorize=False, diagnose=False, backtrace=False,
                   rotation=ROTATION, retention=RETENTION, encoding="utf-8", opener=_private_opener)
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name, lvl in STDLIB_LEVELS.items():
        logging.getLogger(name).setLevel(lvl)
