"""The manual stays whole: every key the config schema accepts is in docs/configuration.md and config.example.toml,
every relative link in the README and docs/ resolves, and the README stays short."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from agent.config.schema import Config, MemberConfig, NotifierConfig, ShopConfig, TeamConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def schema_keys() -> set[tuple[str, str]]:
    """(section, key) of every key a config file may set: [agent] timezone is ("agent", "timezone")."""
    out: set[tuple[str, str]] = set()
    nested = {"shops": ShopConfig, "notifiers": NotifierConfig}
    for f in dataclasses.fields(Config):
        if f.metadata.get("internal"):
            continue
        kind = nested.get(f.name) or f.default_factory()  # type: ignore[misc]
        for g in dataclasses.fields(kind):
            out.add((f.name, g.metadata.get("toml", g.name)))
    out.discard(("team", "members"))
    out |= {("team.members", g.name) for g in dataclasses.fields(MemberConfig)}
    assert ("team", "claim_ttl") in out and TeamConfig
    return out


def documented() -> set[tuple[str, str]]:
    """(section, key) named in the reference table of docs/configuration.md (a row's first cell)."""
    out: set[tuple[str, str]] = set()
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        tokens = re.findall(r"`([^`]+)`", cell)
        section = re.sub(r"\[\]|\.NAME", "", tokens[0].rsplit(".", 1)[0]) if "." in tokens[0] else ""
        for token in tokens:
            out.add((section, token.rsplit(".", 1)[-1]))
        for bare in re.findall(r",\s*([a-z_]+)", cell):  # `team.members[].name`, mobile, …
            out.add((section, bare))
    return out


def test_every_key_is_in_the_reference_and_the_example() -> None:
    missing = sorted(k for k in schema_keys() - documented())
    assert not missing, f"keys missing from docs/configuration.md: {missing}"
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    absent = sorted((s, k) for s, k in schema_keys() if not re.search(rf"^\s*#?\s*{re.escape(k)}\s*=", example, re.M))
    assert not absent, f"keys missing from config.example.toml: {absent}"


def test_every_relative_link_resolves() -> None:
    broken = []
    for doc in [ROOT / "README.md", *DOCS.glob("*.md")]:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_readme_fits_its_readers() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, len(lines)
    for doc in ("configuration", "operations", "alerts", "live-site", "sandbox", "development"):
        assert f"(docs/{doc}.md)" in "\n".join(lines), doc  # each reader finds their guide
