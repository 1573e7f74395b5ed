"""Minimal real clients for the fake exchange tests: a WebSocket client, an HTTP client and
a local order book kept from a REST snapshot plus WebSocket diffs.

The WebSocket client opens the TCP stream itself and wraps it (``wrap_client_stream``) so
the socket is always closed, even after a server-initiated close (STACK.md pitfall 4).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import attrs
import h11
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream


@contextlib.asynccontextmanager
async def open_ws(url: str, *, queue: int = 1) -> AsyncIterator[WebSocketConnection]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery,
                stream,
                f"{parts.hostname}:{parts.port}",
                resource,
                message_queue_size=queue,
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(1):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()


async def recv_json(ws: WebSocketConnection) -> Any:
    return orjson.loads(await ws.get_message())


async def recv_data(ws: WebSocketConnection) -> dict[str, Any]:
    """The next combined data frame (skipping control replies)."""
    while True:
        msg = await recv_json(ws)
        if isinstance(msg, dict) and "stream" in msg:
            return msg


async def control(ws: WebSocketConnection, method: str, params: list[str], rid: int) -> Any:
    """Send a control request and return its reply (data frames before it are skipped)."""
    await ws.send_message(orjson.dumps({"method": method, "params": params, "id": rid}).decode())
    while True:
        msg = await recv_json(ws)
        if isinstance(msg, dict) and msg.get("id") == rid and "stream" not in msg:
            return msg


async def http(url: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 request; returns (status, headers lower-cased, decoded JSON body)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    data = orjson.dumps(body) if body is not None else b""
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", f"{parts.hostname}:{parts.port}"),
        ("Content-Length", str(len(data))),
        ("Connection", "close"),
    ]
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        await stream.send_all(conn.send(h11.Request(method=method, target=target, headers=headers)))
        if data:
            await stream.send_all(conn.send(h11.Data(data=data)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        response: h11.Response | None = None
        payload = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                payload += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    assert response is not None
    hdrs = {k.decode().lower(): v.decode() for k, v in response.headers}
    return response.status_code, hdrs, orjson.loads(payload) if payload else None


async def read_until_closed(ws: WebSocketConnection) -> ConnectionClosed:
    """Read (and drop) frames until the connection closes; return how it closed."""
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed as exc:
        return exc


@attrs.define
class ClientBook:
    """A local book kept the way Binance tells a client to, from the exchange's strings.

    :meth:`sync` buffers the first diff of a ``<symbol>@depth@100ms`` connection, then
    takes a REST snapshot; :meth:`advance` applies the next diff beyond the book. Every
    applied diff must continue the book (spot: ``U <= id + 1``; USD-M: ``pu == id``), so
    a book that ends up equal to another was built without skipping anything.
    """

    chained: bool  # USD-M's ``pu`` chain
    last_update_id: int = 0
    bids: dict[str, str] = attrs.field(factory=dict)
    asks: dict[str, str] = attrs.field(factory=dict)
    _pending: dict[str, Any] | None = None

    async def sync(self, ws: WebSocketConnection, depth_url: str) -> None:
        self._pending = (await recv_data(ws))["data"]
        status, _, snap = await http(depth_url)
        assert status == 200, snap
        # The snapshot is not older than the first buffered diff (else: fetch another).
        assert self._pending["U"] <= snap["lastUpdateId"] + 1
        self.last_update_id = snap["lastUpdateId"]
        self.bids, self.asks = dict(snap["bids"]), dict(snap["asks"])

    async def advance(self, ws: WebSocketConnection) -> int:
        """Apply the next diff beyond the book (older ones are in the snapshot); its ``u``."""
        while True:
            diff = self._pending or (await recv_data(ws))["data"]
            self._pending = None
            if diff["u"] > self.last_update_id:
                break
        if self.chained:
            assert diff["pu"] == self.last_update_id, (diff["pu"], self.last_update_id)
        else:
            assert diff["U"] <= self.last_update_id + 1 <= diff["u"], diff
        for side, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for price, qty in levels:
                if Decimal(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_update_id = diff["u"]
        return self.last_update_id

    def levels(self) -> tuple[list[list[str]], list[list[str]]]:
        """``(bids, asks)`` best first, as a depth snapshot lists them."""
        bids = sorted(self.bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)
        asks = sorted(self.asks.items(), key=lambda kv: Decimal(kv[0]))
        return [list(b) for b in bids], [list(a) for a in asks]
