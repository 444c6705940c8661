"""What a reload may change in place (pure): the keys only a restart changes, and the names added, removed and
changed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agent.config import Config
from agent.config.schema import AgentConfig, BrowserConfig, WebConfig
from agent.service.reload import changes, restart_only


def test_what_only_a_restart_changes_is_named_and_kept() -> None:
    old = Config(agent=AgentConfig(data_dir=Path("/a"), max_requests_per_second=10), web=WebConfig(listen=""))
    new = Config(agent=AgentConfig(data_dir=Path("/b"), max_requests_per_second=20),
                 web=WebConfig(listen="0.0.0.0:9000", public_url="https://x.example"),
                 browser=BrowserConfig(max_pages=4))
    applied, kept = restart_only(old, new)
    assert kept == ["agent.data_dir", "web.listen", "browser"]
    assert applied.agent.data_dir == Path("/a") and applied.web.listen == "" and applied.browser == old.browser
    assert applied.agent.max_requests_per_second == 20 and applied.web.public_url == "https://x.example"
    assert restart_only(old, replace(old))[1] == []


def test_changes_are_added_removed_and_changed_by_name() -> None:
    assert changes({"a": 1, "b": 2, "c": 3}, {"b": 2, "c": 4, "d": 5}) == (["d"], ["a"], ["c"])
