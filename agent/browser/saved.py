"""Where a shop's saved session (Playwright storage state: cookies and local storage) lives: a private file in the
shop's folder (one machine), or anything else that loads and saves it (several nodes: encrypted in PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from agent.files import write_private


class SavedSession(Protocol):
    """One shop's saved session: `load()` (None when there is none or it is unreadable) and `save()`."""

    where: str  # for messages: the file, or "the cluster database"

    def load(self) -> dict[str, Any] | None: ...

    async def save(self, state: Mapping[str, Any]) -> None: ...


class FileSession:
    """The session file (mode 0600, written atomically)."""

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
