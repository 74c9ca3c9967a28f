"""Shared test helpers (integration gating, clocks, servers)."""
