"""The team page: an aiohttp application inside the service's event loop (待办, claims, notes, shops, channels,
history, the JSON API, /healthz and /metrics)."""
