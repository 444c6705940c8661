"""The one atomic writer: a file the agent keeps is whole (old or new) after a crash, and 0600 from its creation."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.files import write_private


def test_write_private_is_atomic_and_0600_from_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "new" / "state.json"
    write_private(target, b"old")
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    seen: list[int] = []
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_private(target, b"new")
    assert seen == [0o600]
    assert target.read_bytes() == b"old"  # the crash left the previous file whole
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]
    monkeypatch.setattr(os, "replace", real_replace)
    write_private(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_write_private_takes_text_as_utf8(tmp_path: Path) -> None:
    target = tmp_path / "hurdle.json"
    write_private(target, '{"detail": "短信验证"}')
    assert target.read_text(encoding="utf-8") == '{"detail": "短信验证"}'
