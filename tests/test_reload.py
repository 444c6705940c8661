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


def test_a_reload_changes_the_signing_bounds_of_the_next_checks(tmp_path: Path) -> None:
    from agent.browser.check import Checker
    from agent.browser.pool import BrowserPool
    from agent.config import load_config, locators

    def cfg(extra: str) -> Config:
        path = tmp_path / "c.toml"
        path.write_text(f'[[shops]]\nname = "店"\nusername = "店:客服"\n{extra}', encoding="utf-8")
        return load_config(path)

    sel = locators.load()
    checker = Checker(cfg(""), BrowserPool(), sel)  # nothing started: the pool opens on first use
    assert checker.signers is not None and checker.signers.limit == 2 and checker.signing.seconds == 86400
    checker.reconfigure(cfg("[api]\nmax_signers = 0\nsigning_memory = \"1h\"\n"), sel)
    assert checker.signers is None and checker.signing.seconds == 3600
    checker.reconfigure(cfg("[api]\nmax_signers = 3\nsigner_tokens_per_second = 10\n"), sel)
    assert checker.signers is not None and (checker.signers.limit, checker.signers.per_second) == (3, 10.0)
