"""The long-running service: scheduler jobs, the check → alerts → send pipeline, health snapshot and endpoint."""
