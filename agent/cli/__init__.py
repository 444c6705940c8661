"""The command line: the only code that parses argv or prints to a terminal (commands, logging, demo)."""
