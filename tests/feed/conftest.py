"""Fixtures for the feed tests: a small Binance-like WebSocket server (see feedserver)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import trio
from feedserver import WsServer


@pytest.fixture
async def ws_server(nursery: trio.Nursery) -> WsServer:
    server = WsServer()
    await nursery.start(server.run)
    return server


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test so an unclosed socket fails it (ResourceWarning → error)."""
    yield
    gc.collect()
