"""The long-running service: scheduler jobs, the check/dispatch cycle, health snapshot and endpoint."""
