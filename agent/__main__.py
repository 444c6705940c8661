"""`python -m agent` runs the pdd-agent command line."""

from __future__ import annotations

from agent.cli.main import main

raise SystemExit(main())
