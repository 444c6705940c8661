"""Several nodes on one PostgreSQL: the shared shop schedule with fenced leases; the checks shared by procrastinate."""
