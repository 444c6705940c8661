"""The durable outbox: the SQLite store, queueing a check's alerts, and dispatch to the channels."""
