"""Loopback ports for servers a test starts (or for a port where nothing listens)."""

from __future__ import annotations

# One definition for tests and the product's own test harness alike: ``Daemon`` (in
# marketd.testing.processes) picks its HTTP port with it too, so the tests use the same
# function rather than a copy of it.
from marketd.testing.processes import free_port

__all__ = ["free_port"]
