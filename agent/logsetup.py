"""Logging setup: loguru to stderr, never printing local variables (secrets) in tracebacks."""

from __future__ import annotations

import sys

from loguru import logger


def setup(level: str = "INFO") -> None:
    """One human-readable stderr sink; `diagnose=False` keeps variable values (cookies, passwords) out of logs."""
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), diagnose=False, backtrace=False,
               format="<green>{time:HH:mm:ss}</green> <level>{level:<7}</level> {message}")
