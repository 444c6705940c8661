"""Line numbers of key paths in TOML text (tomllib reports none), for config errors that name the line."""

from __future__ import annotations

import re
import tomllib

KeyPath = tuple[str | int, ...]  # ("shops", 1, "username") is shops[1].username
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def line_map(text: str) -> dict[KeyPath, int]:
    """Line of every key path, [table] header and [[array]] element of valid TOML text (tomllib gives none)."""
    lines: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}  # [[array]] path -> elements so far
    table: KeyPath = ()
    s = _Cursor(text)
    try:
        while s.skip(newlines=True) < len(text):
            line = s.line
            if text[s.i] == "[":
                double = text.startswith("[[", s.i)
                s.i += 2 if double else 1
                parts = s.key()
                s.i += 2 if double else 1
                table = ()
                for part in parts[:-1]:  # [shops.extra] after [[shops]] belongs to the last shop
                    table += (part,)
                    table += (counts[table] - 1,) if table in counts else ()
                table += (parts[-1],)
                if double:
                    lines.setdefault(table, line)
                    counts[table] = counts.get(table, 0) + 1
                    table += (counts[table] - 1,)
                lines.setdefault(table, line)
            else:
                parts = s.key()
                s.i += 1  # "="
                for j in range(1, len(parts) + 1):
                    lines.setdefault(table + parts[:j], line)
                s.value()
    except (IndexError, ValueError):
        pass  # never fail a load over line numbers: problems then name the enclosing key's line
    return lines


class _Cursor:
    """Walks TOML text already known to be valid, counting lines."""

    def __init__(self, text: str) -> None:
        self.t, self.i, self.line = text, 0, 1

    def skip(self, newlines: bool = False) -> int:
        while self.i < len(self.t) and (c := self.t[self.i]) in " \t\r#\n":
            if c == "\n" and not newlines:
                break
            if c == "#":
                end = self.t.find("\n", self.i)
                self.i = end if end >= 0 else len(self.t)
                continue
            self.line += c == "\n"
            self.i += 1
        return self.i

    def key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            start = self.skip()
            if self.t[start] in "\"'":
                self.string()
                parts.append(tomllib.loads("k = " + self.t[start:self.i])["k"])
            elif m := _BARE_KEY.match(self.t, start):
                parts.append(m.group(0))
                self.i = m.end()
            else:
                raise ValueError(f"no key at offset {start}")
            if self.t[self.skip()] != ".":
                return tuple(parts)
            self.i += 1

    def string(self) -> None:
        t, q = self.t, self.t[self.i]
        multi = t.startswith(q * 3, self.i)
        self.i += 3 if multi else 1
        while not (t.startswith(q * 3, self.i) if multi else t[self.i] == q):  # IndexError past the end
            step = 2 if q == '"' and t[self.i] == "\\" else 1 if self.i < len(t) else 0
            if not step:
                raise IndexError("unterminated string")
            self.line += t.count("\n", self.i, self.i + step)
            self.i += step
        self.i += 3 if multi else 1
        while multi and self.i < len(t) and t[self.i] == q:  # """a"""" : up to two quotes end the value
            self.i += 1

    def value(self) -> None:
        depth = 0
        while self.i < len(self.t) and not (self.t[self.i] == "\n" and depth == 0):
            c = self.t[self.i]
            if c in "\"'":
                self.string()
            elif c == "#":
                self.skip()
            else:
                self.line += c == "\n"
                depth += (c in "[{") - (c in "]}")
                self.i += 1
