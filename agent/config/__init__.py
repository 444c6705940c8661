"""Configuration: the TOML schema and loader, selectors/ locators, durations and crontab parsing."""
