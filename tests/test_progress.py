"""Terminal status lines: drawn in place on a tty, silent elsewhere, a newline at the end only when shown."""

from __future__ import annotations

import io
import sys

import pytest

from agent.cli.progress import Countdown, Progress
from agent.cli.terminal import cells


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_rewrites_one_line_on_a_tty() -> None:
    out = Tty()
    with Progress(3, "检查店铺", stream=out) as p:
        p.advance(note="示例旗舰店")
        p.advance(note="b")
        p.advance()
    assert out.getvalue() == (
        "\r检查店铺 1/3 示例旗舰店"
        "\r检查店铺 2/3 b" + " " * (cells("示例旗舰店") - 1)
        + "\r检查店铺 3/3" + " " * 2
        + "\n"
    )
    assert p.done == 3


def test_progress_is_silent_off_a_tty() -> None:
    out = Pipe()
    with Progress(2, "checking", stream=out) as p:
        p.advance(2, "done")
    assert out.getvalue() == ""


def test_no_newline_when_nothing_was_drawn_and_close_is_idempotent() -> None:
    out = Tty()
    with Progress(5, "x", stream=out):
        pass
    assert out.getvalue() == ""
    p = Progress(5, "x", stream=out)
    p.advance()
    p.close()
    p.close()
    assert out.getvalue() == "\rx 1/5\n"


def test_newline_on_exception_too() -> None:
    out = Tty()
    with pytest.raises(RuntimeError), Progress(2, "x", stream=out) as p:
        p.advance()
        raise RuntimeError
    assert out.getvalue().endswith("x 1/2\n")


def test_countdown_shows_whole_seconds_left() -> None:
    out = Tty()
    with Countdown("等待扫码", 120, stream=out) as c:
        c.tick(87.2)
        c.tick(87.1)  # same second: nothing redrawn
        c.tick(9.0)
        c.tick(-3)
        c.tick(500)  # clamped to the total
    assert out.getvalue() == "\r等待扫码 88s\r等待扫码 9s \r等待扫码 0s\r等待扫码 120s\n"


def test_countdown_clear_erases_the_line_before_other_output() -> None:
    out = Tty()
    c = Countdown("wait", 10, stream=out)
    c.clear()  # nothing shown yet: nothing written
    c.tick(5)
    c.clear()
    assert out.getvalue() == "\rwait 5s\r       \r"
    c.close()  # the line is empty again: no newline
    assert out.getvalue().endswith("\r       \r")
    c.tick(4)
    c.close()
    assert out.getvalue().endswith("\rwait 4s\n")


def test_countdown_is_silent_off_a_tty() -> None:
    out = Pipe()
    with Countdown("wait", 10, stream=out) as c:
        c.tick(3)
        c.clear()
    assert out.getvalue() == ""


def test_default_stream_is_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Tty()
    monkeypatch.setattr(sys, "stderr", out)
    with Countdown("wait", 10) as c:
        c.tick(3)
    assert out.getvalue() == "\rwait 3s\n"


def test_display_width_counts_cjk_double() -> None:
    assert cells("ab") == 2
    assert cells("扫码") == 4
    assert cells("ＡＢ") == 4


def test_a_log_line_steps_around_a_progress_line() -> None:
    from loguru import logger

    from agent.cli import logsetup

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    logsetup.setup("INFO", stream=out)
    try:
        with Progress(3, "首次检查", stream=out) as p:
            p.advance(1, "甲 ✓")
            logger.info("shop 乙 checked")
            p.advance(1, "乙 ✓")
        text = out.getvalue()
        # the status line was erased before the log line and drawn again after it
        before, after = text.split("shop 乙 checked", 1)
        assert before.endswith("\r") or "\r" + " " * 3 in before
        assert "首次检查 1/3 甲 ✓" in after.split("\n", 1)[1]
        assert "首次检查 2/3 乙 ✓" in after
    finally:
        logsetup.setup("WARNING")
