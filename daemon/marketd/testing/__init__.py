"""Helpers that run marketd's real peers as processes (tests, benchmarks, by hand)."""
