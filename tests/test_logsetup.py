"""Logging setup: human and JSON sinks, the private rotated file, stdlib routing, and secret redaction everywhere."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from loguru import logger

from agent.cli import logsetup
from agent.cli.logsetup import add_secrets, clear_secrets, redact, setup

LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) +(.*)$")
WEBHOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bbb-8ccc-1234567890ab"
WEBHOOK_KEY = "693a91f6-7aaa-4bbb-8ccc-1234567890ab"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    """Each test configures logging at will; afterwards the suite gets the CLI's setup back, stdlib as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logsetup.STDLIB_LEVELS}
    yield
    logger.remove()
    clear_secrets()
    setup("WARNING")
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def raise_and_log(message: str) -> None:
    try:
        raise ValueError(message)
    except ValueError:
        logger.exception("the check failed")


# --- formats ---


def test_human_lines_without_colours_off_a_tty() -> None:
    out = io.StringIO()
    setup("INFO", stream=out)
    logger.debug("hidden")
    logger.info("检查店铺 示例旗舰店 {n} items", n=3)
    logger.warning("slow")
    matches = [LINE.match(x) for x in out.getvalue().splitlines()]
    assert [m.groups() if m else None for m in matches] == [
        ("INFO", "检查店铺 示例旗舰店 3 items"), ("WARNING", "slow")
    ]
    assert "\x1b[" not in out.getvalue()


def test_colours_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = Tty()
    setup("info", stream=out)
    logger.info("hello <not a tag>")
    text = out.getvalue()
    assert "\x1b[" in text and "hello <not a tag>" in text


def test_json_lines_one_object_per_line() -> None:
    out = io.StringIO()
    setup("DEBUG", json_lines=True, stream=out)
    logger.bind(shop="示例旗舰店").debug("扫码 {}", "ok")
    raise_and_log("parse error")
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(rows) == 2
    first, second = rows
    assert {"time", "level", "message", "name", "function", "line"} <= first.keys()
    assert first["level"] == "DEBUG" and first["message"] == "扫码 ok"
    assert first["name"] == __name__ and first["function"] == "test_json_lines_one_object_per_line"
    assert isinstance(first["line"], int)
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None
    assert first["extra"] == {"shop": "示例旗舰店"}
    assert "exception" not in first
    assert "示例旗舰店" in out.getvalue()  # ensure_ascii=False
    assert second["level"] == "ERROR" and second["function"] == "raise_and_log"
    assert "Traceback" in second["exception"] and "ValueError: parse error" in second["exception"]
    assert "extra" not in second


def test_human_exception_prints_the_traceback_once() -> None:
    out = io.StringIO()
    setup(stream=out)
    raise_and_log("parse error")
    text = out.getvalue()
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count("ValueError: parse error") == 1
    assert LINE.match(text.splitlines()[0])


def test_tracebacks_show_no_local_variables() -> None:
    out = io.StringIO()
    setup(stream=out)
    try:
        cookie_jar = "zz-local-value-zz"
        raise RuntimeError(f"{len(cookie_jar)} cookies")
    except RuntimeError:
        logger.exception("failed")
    assert "zz-local-value-zz" not in out.getvalue()
    assert "RuntimeError: 17 cookies" in out.getvalue()


def test_console_false_writes_nothing() -> None:
    out = io.StringIO()
    setup(console=False, stream=out)
    logger.error("nowhere")
    assert out.getvalue() == ""


# --- the file sink ---


@pytest.mark.parametrize("json_lines", [False, True])
def test_file_sink_is_private_and_same_format(tmp_path: Path, json_lines: bool) -> None:
    log_dir = tmp_path / "var" / "logs"
    out = io.StringIO()
    setup("INFO", json_lines=json_lines, log_dir=log_dir, stream=out)
    logger.debug("hidden")
    logger.info("写入日志")
    logger.remove()  # closes the file
    path = log_dir / "pdd-agent.log"
    assert log_dir.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="utf-8")
    assert text == out.getvalue()
    assert "hidden" not in text
    if json_lines:
        assert json.loads(text)["message"] == "写入日志"
    else:
        assert LINE.match(text.strip())


def test_existing_log_file_becomes_private(tmp_path: Path) -> None:
    (tmp_path / "pdd-agent.log").write_text("old\n")
    (tmp_path / "pdd-agent.log").chmod(0o644)
    setup(log_dir=tmp_path, console=False)
    logger.info("new")
    logger.remove()
    assert (tmp_path / "pdd-agent.log").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pdd-agent.log").read_text().startswith("old\n")


def test_rotation_and_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (logsetup.ROTATION, logsetup.RETENTION) == ("10 MB", 10)
    monkeypatch.setattr(logsetup, "ROTATION", "1 KB")
    monkeypatch.setattr(logsetup, "RETENTION", 2)
    setup(log_dir=tmp_path, console=False)
    for i in range(200):
        logger.info("line {} {}", i, "x" * 40)
    logger.remove()
    files = sorted(tmp_path.iterdir())
    assert tmp_path / "pdd-agent.log" in files
    assert 2 <= len(files) <= 3, files
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert "line 199 " in (tmp_path / "pdd-agent.log").read_text()


# --- stdlib logging ---


def test_stdlib_logging_is_routed_with_quiet_libraries() -> None:
    out = io.StringIO()
    setup("INFO", json_lines=True, stream=out)
    logging.getLogger("apscheduler.scheduler").info("Scheduler started")
    logging.getLogger("apscheduler.executors.default").info('Running job "check"')
    logging.getLogger("httpx").info("HTTP Request: GET https://example.com")
    logging.getLogger("httpcore.connection").info("connect_tcp.started")
    logging.getLogger("playwright").info("driver")
    logging.getLogger("asyncio").info("poll took 1s")
    logging.getLogger("mail.log").info("Peer connected")
    logging.getLogger("somelib").debug("debug below INFO")
    logging.getLogger("httpx").warning("retrying %s", "later")
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    assert [(r["name"], r["level"], r["message"]) for r in rows + [
        json.loads(x) for x in out.getvalue().splitlines()[len(rows):]]] == [
        ("httpx", "WARNING", "retrying later"),
        ("apscheduler.scheduler", "WARNING", "Run time of job was missed"),
    ]
    assert rows[0]["function"] == "test_stdlib_logging_is_routed_with_quiet_libraries"


def test_setup_twice_does_not_duplicate() -> None:
    out = io.StringIO()
    setup("INFO", stream=out)
    setup("INFO", stream=out)
    logger.info("once")
    logging.getLogger("apscheduler.scheduler").warning("once too")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("once") and lines[1].endswith("once too")
    assert len(logging.getLogger().handlers) == 1


def test_cli_style_call_keeps_working() -> None:
    out = io.StringIO()
    setup("WARNING", stream=out)
    logger.info("quiet")
    logger.warning("loud")
    assert out.getvalue().splitlines()[-1].endswith("loud") and "quiet" not in out.getvalue()


# --- redaction ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"POST {WEBHOOK}&debug=1 failed", f"POST {WEBHOOK.replace(WEBHOOK_KEY, '***')}&debug=1 failed"),
        ("Cookie: PASS_ID=abc123; _nano_fp=XyZ; rckk=r1", "Cookie: ***"),
        ("> set-cookie: JSESSIONID=deadbeef; Path=/\nnext line", "> set-cookie: ***\nnext line"),
        ("jar PASS_ID=a1; SUB_PASS_ID=b2, api_uid=c3 JSESSIONID=d4 _nano_fp=e5&rckk=f6",
         "jar PASS_ID=***; SUB_PASS_ID=***, api_uid=*** JSESSIONID=*** _nano_fp=***&rckk=***"),
        ("form password=hunter22&user=bob", "form password=***&user=bob"),
        ('{"password": "hun\\"ter", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ("{'passwd': 'hunter22', 'n': 1}", "{'passwd': '***', 'n': 1}"),
        ("passwd: hunter22", "passwd: ***"),
        ("authorization: Bearer eyJhbGciOi.xx-x.yy_y", "authorization: Bearer ***"),
        ("{'Authorization': 'Bearer abc', 'Cookie': 'PASS_ID=1'}", "{'Authorization': '***', 'Cookie': '***'}"),
        ('[{"name": "PASS_ID", "value": "v-1", "domain": ".pinduoduo.com"}]',
         '[{"name": "PASS_ID", "value": "***", "domain": ".pinduoduo.com"}]'),
    ],
)
def test_redact_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    ["等待扫码 / waiting for the scan 87s", "key points: the password reset page", "monkey=1 cookies: 3", "passport=x"],
)
def test_redact_leaves_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_add_secrets_longest_first_and_short_values_ignored() -> None:
    add_secrets(["abcd", "abcd-efgh", "xy", ""])
    assert redact("abcd-efgh abcd xy") == "*** *** xy"
    add_secrets(iter(["p@ss word!"]))
    assert redact("p@ss word! p%40ss%20word%21 p%40ss+word%21") == "*** *** ***"
    clear_secrets()
    assert redact("abcd") == "abcd"


@pytest.mark.parametrize("json_lines", [False, True])
def test_secrets_never_reach_any_sink(tmp_path: Path, json_lines: bool) -> None:
    out = io.StringIO()
    setup("INFO", json_lines=json_lines, log_dir=tmp_path, stream=out)
    add_secrets(["demo-pass-1234"])
    logger.info("sending to {}", WEBHOOK)
    logger.info("login as 示例旗舰店 with demo-pass-1234, Cookie: PASS_ID=zz-cookie-zz")
    logger.bind(password="demo-pass-1234", shop="示例旗舰店").warning("extra fields")
    raise_and_log(f"webhook {WEBHOOK} refused; password=demo-pass-1234 PASS_ID=zz-cookie-zz")
    logging.getLogger("httpx").warning('HTTP Request: POST %s "HTTP/1.1 200 OK"', WEBHOOK)
    try:
        raise ConnectionError(f"Set-Cookie: _nano_fp=zz-cookie-zz for {WEBHOOK}")
    except ConnectionError:
        logging.getLogger("apscheduler.scheduler").exception("Job raised")
    logger.remove()
    file_text = (tmp_path / "pdd-agent.log").read_text(encoding="utf-8")
    for text in (out.getvalue(), file_text):
        for secret in (WEBHOOK_KEY, "demo-pass-1234", "zz-cookie-zz"):
            assert secret not in text
        assert text.count("***") >= 8
        assert "Traceback" in text and "ValueError: webhook" in text and "ConnectionError: Set-Cookie: ***" in text
        assert "示例旗舰店" in text
    if json_lines:
        rows = [json.loads(x) for x in out.getvalue().splitlines()]
        assert rows[2]["extra"] == {"password": "***", "shop": "示例旗舰店"}
        assert rows[3]["exception"].endswith("refused; password=*** PASS_ID=***")
        assert rows[5]["name"] == "apscheduler.scheduler" and "ConnectionError" in rows[5]["exception"]


def test_redaction_holds_when_the_patcher_is_replaced() -> None:
    out = io.StringIO()
    setup(stream=out)
    logger.configure(patcher=lambda record: None)
    logger.info("password=hunter22")
    raise_and_log("Cookie: PASS_ID=zz-cookie-zz")
    assert "hunter22" not in out.getvalue() and "zz-cookie-zz" not in out.getvalue()
    assert out.getvalue().count("Traceback") == 1
