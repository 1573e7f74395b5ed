"""A small Binance-like WebSocket server on 127.0.0.1 (port 0) for the feed tests.

It accepts combined-stream connections (``/stream?streams=...`` or bare ``/stream``),
answers ``SUBSCRIBE`` with acks (or errors), and runs a per-test ``behaviour`` for each
connection: the default streams frames ``{"stream":..,"data":{"n":<counter>}}`` with a
counter shared by all connections, so tests can check order and loss.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Literal

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    serve_websocket,
)

from marketd.config.settings import BackoffSettings, ExchangeSettings

AckMode = Literal["ok", "error", "silent"]


@attrs.define(eq=False)
class ServerConn:
    """One accepted client connection, as the server sees it."""

    ws: WebSocketConnection
    index: int
    path: str
    streams: list[str]
    accepted_at: float = attrs.field(factory=trio.current_time)
    subscribed: trio.Event = attrs.field(factory=trio.Event)
    closed: trio.Event = attrs.field(factory=trio.Event)
    # (trio time, parsed JSON) of every text message the client sent.
    requests: list[tuple[float, dict[str, object]]] = attrs.field(factory=list)
    close_code: int | None = None
    closed_at: float | None = None

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)


Behaviour = Callable[["WsServer", ServerConn], Awaitable[None]]


async def stream_counter(server: WsServer, conn: ServerConn) -> None:
    """Default behaviour: once subscribed, send a counted frame every ``interval_s``."""
    await conn.subscribed.wait()
    while True:
        await server.send_counted(conn)
        await trio.sleep(server.interval_s)


class WsServer:
    def __init__(self) -> None:
        self.port = 0
        self.behaviour: Behaviour = stream_counter
        self.ack_mode: Callable[[ServerConn], AckMode] = lambda conn: "ok"
        self.interval_s = 0.005
        self.connections: list[ServerConn] = []
        self.counter = itertools.count()
        self._changed = trio.lowlevel.ParkingLot()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server: WebSocketServer = await nursery.start(
                lambda task_status: serve_websocket(
                    self._handle,
                    "127.0.0.1",
                    0,
                    None,
                    handler_nursery=nursery,
                    connect_timeout=2,
                    disconnect_timeout=1,
                    task_status=task_status,
                )
            )
            self.port = server.port
            task_status.started()

    async def wait_connections(self, count: int) -> list[ServerConn]:
        while len(self.connections) < count:
            await self._changed.park()
        return self.connections

    async def send_counted(self, conn: ServerConn, stream: str | None = None) -> int:
        n = next(self.counter)
        name = stream or conn.streams[0]
        await conn.send(json.dumps({"stream": name, "data": {"e": "test", "n": n}}))
        return n

    async def _handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        parts = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(parts.query)
        streams = [s for value in query.get("streams", []) for s in value.split("/") if s]
        conn = ServerConn(ws=ws, index=len(self.connections), path=request.path, streams=streams)
        if streams:
            conn.subscribed.set()
        self.connections.append(conn)
        self._changed.unpark_all()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, conn)
                await self.behaviour(self, conn)
                nursery.cancel_scope.cancel()
        except* ConnectionClosed:
            pass
        finally:
            conn.closed_at = trio.current_time()
            conn.closed.set()
            self._changed.unpark_all()

    async def _receive(self, conn: ServerConn) -> None:
        try:
            while True:
                message = await conn.ws.get_message()
                if isinstance(message, bytes):
                    continue
                request = json.loads(message)
                conn.requests.append((trio.current_time(), request))
                if request.get("method") != "SUBSCRIBE":
                    continue
                mode = self.ack_mode(conn)
                if mode == "ok":
                    conn.streams.extend(request["params"])
                    conn.subscribed.set()
                    await conn.send(json.dumps({"result": None, "id": request["id"]}))
                elif mode == "error":
                    error = {"code": 2, "msg": "Invalid request: unknown stream"}
                    await conn.send(json.dumps({"error": error, "id": request["id"]}))
        except ConnectionClosed as exc:
            conn.close_code = exc.reason.code if exc.reason else None
            raise


def feed_settings(server: WsServer, **overrides: object) -> ExchangeSettings:
    """Settings pointing at the test server, with short timeouts and fast backoff."""
    values: dict[str, object] = {
        "spot_ws_url": server.url,
        "futures_ws_url": server.url + "/usdm",
        "connect_timeout_s": 2.0,
        "stale_after_s": 5.0,
        "reconnect": BackoffSettings(initial_s=0.05, max_s=0.2, jitter=0.5, reset_after_s=60.0),
    }
    values.update(overrides)
    return ExchangeSettings(**values)  # type: ignore[arg-type]
