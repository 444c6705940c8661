"""What every command does first: load the config (or say why not, exit 2) and find the shop it names."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agent.config import Config, ConfigError, ShopConfig, load_config, locators


def load_or_report(config_path: str) -> Config | None:
    """The config, or None after printing every problem (key and line) to stderr: the caller exits 2."""
    try:
        config = load_config(config_path)
        if config.agent.selectors_dir is not None:  # an admin's override must parse and name known keys
            locators.load(config.agent.selectors_dir)
        return config
    except (ConfigError, locators.LocatorError) as exc:
        print(exc, file=sys.stderr)
        print("配置无效 / config invalid", file=sys.stderr)
        return None


def config_and_shop(config_path: str, name: str) -> tuple[Config, ShopConfig] | None:
    """The config and its shop called `name`, or None after saying what is wrong: the caller exits 2."""
    config = load_or_report(config_path)
    shop = None if config is None else shop_or_report(config, name, config_path)
    return None if config is None or shop is None else (config, shop)


def shop_or_report(config: Config, name: str, config_path: str) -> ShopConfig | None:
    """The configured shop called `name`, or None after saying there is none: the caller exits 2."""
    shop = config.shop(name)
    if shop is None:
        print(f"没有这个店铺 / no shop named {name!r} in {config_path}", file=sys.stderr)
    return shop


@contextmanager
def shared_sessions(config: Config) -> Iterator[Callable[[str], Any] | None]:
    """Where the shops' sessions are kept for a command: None (each shop's file) on one machine; with [cluster]
    database_url, the shared encrypted ones (so `login` on any node logs the shop in for every node)."""
    if not config.cluster.database_url:
        yield None
        return
    from agent.cluster.sessions import SharedSessions
    from agent.outbox.engine import open_engine

    db = open_engine(config.cluster.database_url)
    try:
        sessions = SharedSessions(db, config.cluster.session_keys, f"cli:{os.getpid()}")
        sessions.create()
        yield sessions.for_shop
    finally:
        db.close()
