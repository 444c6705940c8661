"""Terminal status lines for long operations (progress counts, countdowns): drawn on a tty only, silent otherwise."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from agent.cli.terminal import cells

_SHOWN: list[_StatusLine] = []  # status lines drawn right now (log output steps around them)


def around_output(write: Callable[[], None]) -> None:
    """Run `write` (a log line going to the terminal) with the status lines erased, then draw them again."""
    shown = list(_SHOWN)
    texts = [line._text for line in shown]
    for line in shown:
        line.clear()
    try:
        write()
    finally:
        for line, text in zip(shown, texts, strict=True):
            if text is not None:
                line.draw(text)


class _StatusLine:
    """One line rewritten in place with `\\r`; nothing is written unless the stream is a tty."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = sys.stderr if stream is None else stream
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError, OSError):
            self.tty = False
        self._width = 0  # columns drawn on the current line; 0 = nothing shown
        self._text: str | None = None

    def draw(self, text: str) -> None:
        if not self.tty or text == self._text:
            return
        width = cells(text)
        self.stream.write("\r" + text + " " * max(0, self._width - width))
        self.stream.flush()
        self._width, self._text = max(width, 1), text
        if self not in _SHOWN:
            _SHOWN.append(self)

    def clear(self) -> None:
        """Erase the line (before printing something else); the next draw starts afresh."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._width, self._text = 0, None
        if self in _SHOWN:
            _SHOWN.remove(self)

    def close(self) -> None:
        """End the line with a newline, only when something is shown."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
        self._width, self._text = 0, None
        if self in _SHOWN:
            _SHOWN.remove(self)

    def __enter__(self) -> _StatusLine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Progress(_StatusLine):
    """`{label} {done}/{total} {note}` on one line, e.g. `检查店铺 3/12 示例旗舰店`."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.total, self.label, self.done = total, label, 0

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        self.draw(f"{self.label} {self.done}/{self.total} {note}".rstrip())

    def __enter__(self) -> Progress:
        return self


class Countdown(_StatusLine):
    """`{label} {seconds left}s` on one line, e.g. `等待扫码 87s`; redrawn only when the whole second changes."""

    def __init__(self, label: str, seconds: float, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.label, self.seconds = label, seconds

    def tick(self, remaining: float) -> None:
        left = math.ceil(min(max(remaining, 0.0), self.seconds))
        self.draw(f"{self.label} {left}s")

    def __enter__(self) -> Countdown:
        return self
