"""Simulated merchant backend."""
