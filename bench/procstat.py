"""Process-tree CPU time and memory (PSS) from /proc, for the benchmark (Linux only)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(root: int | None = None) -> list[int]:
    root = os.getpid() if root is None else root
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += tree.get(pid, [])
    return out


def cpu_seconds(root: int | None = None) -> float:
    """utime + stime of every live process in the tree (the browser and the Playwright driver included)."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # incl. reaped children
    return total / _TICK


def pss_mib(root: int | None = None) -> float:
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


def _kind(pid: int) -> str:
    """python / driver (Playwright's node) / chromium, from the process's command name."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"
    if comm.startswith("python"):
        return "python"
    if comm == "node":
        return "driver"
    return "chromium" if "chrom" in comm else comm


def pss_by_kind(root: int | None = None) -> dict[str, float]:
    """PSS in MiB per kind of process in the tree (see `_kind`)."""
    out: dict[str, float] = {}
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kind = _kind(pid)
                    out[kind] = out.get(kind, 0.0) + int(line.split()[1]) / 1024
                    break
        except OSError:
            continue
    return out


class PeakMemory:
    """Samples the tree's PSS every `interval` seconds while running; `.peak` in MiB."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, await asyncio.to_thread(pss_mib))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> PeakMemory:
        self.peak = await asyncio.to_thread(pss_mib)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        self.peak = max(self.peak, await asyncio.to_thread(pss_mib))
