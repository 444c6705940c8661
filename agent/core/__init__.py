"""The pure core: item and result models, parsers, alert rules and rendering (no I/O, no clock)."""
