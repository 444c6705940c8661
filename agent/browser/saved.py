"""Where a shop's saved session (Playwright storage state: cookies and local storage) and its learned request plan
live: private files in the shop's folder (one machine), or anything else that keeps them (several nodes: in
PostgreSQL, the session encrypted)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from agent.files import write_private


class SavedSession(Protocol):
    """One shop's saved session: `load()` (None when there is none or it is unreadable) and `save()`; and the
    request plan its page-mode read learned: `plan()` and `keep_plan()` (a JSON document)."""

    where: str  # for messages: the file, or "the cluster database"

    def load(self) -> dict[str, Any] | None: ...

    async def save(self, state: Mapping[str, Any]) -> None: ...

    def plan(self) -> Any: ...

    def keep_plan(self, doc: Mapping[str, Any]) -> None: ...


class FileSession:
    """The session file (mode 0600, written atomically), and plan.json beside it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("session file {} unreadable ({}); starting logged out", self.path, exc)
            return None
        return data if isinstance(data, dict) else None

    async def save(self, state: Mapping[str, Any]) -> None:
        data = json.dumps(dict(state), ensure_ascii=False).encode("utf-8")
        await asyncio.to_thread(write_private, self.path, data)

    def plan(self) -> Any:
        try:
            return json.loads((self.path.parent / "plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def keep_plan(self, doc: Mapping[str, Any]) -> None:
        write_private(self.path.parent / "plan.json", json.dumps(dict(doc), ensure_ascii=False, indent=1))
