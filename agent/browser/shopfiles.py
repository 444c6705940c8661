"""A shop's own folder under data_dir: the saved session, the learned request bodies, the hurdle file and the
captures of failed checks."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.files import write_private

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

    from agent.core.models import CheckFailure

READ_CAPTCHA = "read"  # hurdle.json `where` of a 54001 met while reading (not at login)
_UNSAFE = re.compile(r"[\\/:*?\"<>|\s]+")


def shop_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "shops" / (_UNSAFE.sub("_", name).strip("._") or "shop")


def state_path(folder: Path) -> Path:
    """The saved browser session (cookies and storage), mode 0600."""
    return folder / "state.json"


def hurdle_path(folder: Path) -> Path:
    """The login or read stop a shop is waiting on a human for (state, detail, at, since, where)."""
    return folder / "hurdle.json"


def read_hurdle(folder: Path) -> dict[str, Any] | None:
    """The shop's recorded hurdle, whatever its age; None when there is none (or it is unreadable)."""
    try:
        data = json.loads(hurdle_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        data["at"] = float(data.get("at", 0))
    except (TypeError, ValueError):
        return None
    return data


def pending_hurdle(folder: Path, retry_after: float, now: float) -> dict[str, Any] | None:
    """The hurdle still waiting for a human, unless it is older than `retry_after` seconds (then the password
    may be tried again). Checks and `status` both ask this."""
    data = read_hurdle(folder)
    if data is None or now - data["at"] > retry_after:
        return None
    return data


def remember_hurdle(folder: Path, state: str, detail: str, where: str, now: float, since: str) -> None:
    doc = {"state": state, "detail": detail, "at": now, "where": where, "since": since}
    write_private(hurdle_path(folder), json.dumps(doc, ensure_ascii=False))


def clear_hurdle(folder: Path) -> None:
    """A person logged in (or the session turned out valid): checks may try again."""
    hurdle_path(folder).unlink(missing_ok=True)


def plan_bodies(doc: Any, roles: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """The request bodies of a saved plan document, when it has one for every role."""
    bodies = doc.get("bodies") if isinstance(doc, dict) else None
    if isinstance(bodies, dict) and all(isinstance(bodies.get(r), dict) for r in roles):
        return bodies
    return None


def plan_doc(bodies: Mapping[str, Any], learned_at: str) -> dict[str, Any]:
    return {"learned_at": learned_at, "bodies": dict(bodies)}


async def save_capture(folder: Path, at: datetime, page: Page | None, context: BrowserContext | None,
                       exc: CheckFailure) -> None:
    """Screenshot and HTML of a failed check under `folder`/captures, the shop's cookie values scrubbed."""
    base = folder / "captures" / f"{at.strftime('%Y%m%d-%H%M%S')}-{exc.state.value}"
    cookies = await context.cookies() if context is not None else []
    secrets = [c["value"] for c in cookies if len(c.get("value", "")) >= 6]
    text = f"{exc.state.value}: {exc.detail}\n"
    try:
        if page is not None and not page.is_closed():
            base.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            await page.screenshot(path=str(base) + ".png", full_page=True)
            html = await page.content()
            for value in secrets:
                html = html.replace(value, "***")
            write_private(Path(str(base) + ".html"), html)
            text += f"url: {page.url}\n"
    except Exception as err:  # a capture must never hide the original failure
        text += f"capture incomplete: {err}\n"
    write_private(Path(str(base) + ".txt"), text)
