"""Everything that drives Chromium: discovery, the pool, shop sessions and logins, readers, the per-shop check."""
