"""Probe kinds: one package per channel, all with the same entry points (see monitor.kinds)."""
