"""Configuration: the TOML schema and loader, selectors/ locators, durations and crontab parsing.

`from agent.config import Config, load_config` is the public face; the modules below own the parts.
"""

from agent.config.loader import load_config, masked
from agent.config.schema import (
    AgentConfig,
    AlertsConfig,
    BrowserConfig,
    Config,
    ConfigError,
    NotifierConfig,
    ScheduleConfig,
    ShopConfig,
    WatchConfig,
)

__all__ = [
    "AgentConfig",
    "AlertsConfig",
    "BrowserConfig",
    "Config",
    "ConfigError",
    "NotifierConfig",
    "ScheduleConfig",
    "ShopConfig",
    "WatchConfig",
    "load_config",
    "masked",
]
