"""Durations as the config writes them ("24h", "30m", "1h30m", "2d") in seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """"24h", "30m", "90s", "1h30m" (also "2d") → seconds; ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or not any(m.groups()):
        raise ValueError(f'invalid duration {text!r}: expected e.g. "24h", "30m", "90s" or "1h30m"')
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def seconds(text: str) -> float:
    """A validated duration key in seconds; "", "0" and "0s" are 0 (off)."""
    return float(parse_duration(text)) if text and text != "0" else 0.0
