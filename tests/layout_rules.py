"""The product's import rules, read from the source with `ast` (nothing is imported): who may import whom."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# Each room of the house and the rooms it may import from (besides itself). The order is the flow:
# config and core at the bottom, browser (reading) and outbox (sending) above them, the service above
# both, the command line on top. The sandbox stands beside the product and shares only the HTTP server.
LEAVES = ("agent.clock", "agent.files", "agent.httpserve")
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    "agent.config": frozenset(),
    "agent.core": frozenset(),
    "agent.clock": frozenset(),
    "agent.files": frozenset(),
    "agent.httpserve": frozenset(),
    "notifiers": frozenset(),
    "agent.sandbox": frozenset({"agent.httpserve"}),
    "agent.browser": frozenset({"agent", "agent.config", "agent.core", "agent.clock", "agent.files"}),
    "agent.outbox": frozenset({"agent.config", "agent.core", "agent.clock", "agent.files", "notifiers"}),
    # several nodes: the shared schedule (in the store's PostgreSQL) and procrastinate's jobs; the only importer
    # of procrastinate
    "agent.cluster": frozenset({"agent.config", "agent.core", "agent.clock", "agent.outbox"}),
    "agent.service": frozenset({"agent", "agent.config", "agent.core", "agent.clock", "agent.files",
                                "agent.httpserve", "agent.browser", "agent.outbox", "agent.cluster", "notifiers"}),
    # the team page: reads the store and the service's snapshot, acts through agent.outbox.holds; the service
    # never imports it (it only calls the listeners the page registers)
    "agent.web": frozenset({"agent.config", "agent.core", "agent.clock", "agent.files", "agent.outbox",
                            "agent.service"}),
    "agent.cli": frozenset({"agent", "agent.config", "agent.core", "agent.clock", "agent.files", "agent.httpserve",
                            "agent.browser", "agent.outbox", "agent.cluster", "agent.service", "agent.sandbox",
                            "agent.web", "notifiers"}),
    "agent": frozenset({"agent.cli"}),  # agent/__init__.py and agent/__main__.py (`python -m agent`)
}
PLAYWRIGHT_ROOM = "agent.browser"
# The notifier family: each channel (notifiers/wecom.py, dingtalk.py, feishu.py, wecom_app.py, mail.py,
# apprise_urls.py) builds on the contract alone and never on another channel; only the package's __init__
# (the registry) knows them all.
NOTIFIER_CONTRACT = frozenset({"notifiers.base", "notifiers.webhook"})
# The store's engines: psycopg (PostgreSQL) is imported by the engine module alone; the rest of the store speaks SQL
# through it, so one SQL text serves both engines.
PSYCOPG_MODULE = "agent.outbox.engine"


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` at `line` (a module name; imports inside functions count too)."""

    source: str
    target: str
    line: int
    file: str


def module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, packages: tuple[str, ...] = ("agent", "notifiers")) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in packages:
        for file in sorted((root / pkg).rglob("*.py")):
            out[module_name(root, file)] = file
    return out


def _resolve(name: str, known: Mapping[str, Path]) -> str:
    """The longest known module that `name` (a module or `module.attribute`) lies in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imports(root: Path, known: Mapping[str, Path]) -> Iterator[Edge]:
    """Every import of every known module, as edges to known modules or to outside names (e.g. playwright)."""
    for mod, file in known.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        is_pkg = file.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".")
                    keep = len(parts) - node.level + (1 if is_pkg else 0)
                    base = ".".join([*parts[:keep], *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                inside = _resolve(target, known)
                rel = str(file.relative_to(root))
                yield Edge(mod, inside or target, node.lineno, rel)


def room(mod: str) -> str:
    """The room (stage package or leaf module) a module belongs to."""
    parts = mod.split(".")
    if parts[0] == "notifiers":
        return "notifiers"
    if len(parts) == 1 or mod == "agent.__main__":
        return "agent"
    return ".".join(parts[:2])


def violations(root: Path) -> list[str]:
    """Every broken rule, one line each naming the file, line and the rule."""
    known = modules(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in known}
    for e in imports(root, known):
        where = f"{e.file}:{e.line}: {e.source} imports {e.target}"
        top = e.target.split(".")[0]
        if top == "playwright" and room(e.source) != PLAYWRIGHT_ROOM:
            problems.append(f"{where}: only agent/browser/ may import Playwright")
        if top == "procrastinate" and room(e.source) != "agent.cluster":
            problems.append(f"{where}: only agent/cluster/ may import procrastinate")
        if top in ("psycopg", "psycopg_pool", "sqlite3") and e.source != PSYCOPG_MODULE:
            problems.append(f"{where}: only {PSYCOPG_MODULE} may import a database driver")
        if e.target not in known:
            continue
        graph[e.source].add(e.target)
        if room(e.source) == "notifiers" and e.source not in ("notifiers", *NOTIFIER_CONTRACT) and \
                room(e.target) == "notifiers" and e.target not in NOTIFIER_CONTRACT:
            problems.append(f"{where}: a notifier channel may import only {', '.join(sorted(NOTIFIER_CONTRACT))}")
        src, dst = room(e.source), room(e.target)
        if src == dst:
            continue
        allowed = MAY_IMPORT.get(src)
        if allowed is None:
            problems.append(f"{where}: {src} is not a known room (add it to MAY_IMPORT in tests/layout_rules.py)")
        elif dst not in allowed:
            rule = f"only {', '.join(sorted(allowed))}" if allowed else "nothing else of the product"
            problems.append(f"{where}: {src} may import {rule}")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), each closed on its first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group) + [sorted(group)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
