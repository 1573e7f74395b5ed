"""A stream whose reads, under load, come at most once per interval.

An exchange writes each WebSocket message on its own, so a busy connection wakes its
reader for a few messages at a time: a socket read, a wsproto parse, trio-websocket's
handler, our reader and the scheduler's round for each. Reading at most once per
``interval_s`` (``binance.min_read_interval_ms``) lets what arrives meanwhile wait in the
kernel's receive buffer and come in one read: the per-read work is paid for many messages.

Only reads that follow another within the interval wait: a connection that is quiet for
longer reads its next message as it arrives. A read that fills the buffer it was given
does not make the next one wait (more is pending: the interval must not cap throughput).
Sends and closing pass straight through.
"""

from __future__ import annotations

import trio


class PacedStream(trio.abc.Stream):
    """``inner``, with reads at most once per ``interval_s`` (see the module doc)."""

    def __init__(self, inner: trio.abc.Stream, interval_s: float) -> None:
        self.inner = inner
        self.interval_s = interval_s
        self._next_read = -float("inf")

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if trio.current_time() < self._next_read:
            await trio.sleep_until(self._next_read)
        data = await self.inner.receive_some(max_bytes)
        if max_bytes is None or len(data) < max_bytes:
            self._next_read = trio.current_time() + self.interval_s
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()
