"""The trio-websocket pong-after-close race (marketd.feed.ws_compat) against a raw peer.

The peer answers our Close frame with a Ping first and its own Close after: exactly the
interleaving that made trio-websocket 0.12.2's reader raise ``LocalProtocolError``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

from marketd.feed import ws_compat

RAW_PING = b"\x89\x04ping"  # FIN + opcode 9, unmasked (server to client), 4-byte payload


async def _raw_peer(
    stream: trio.SocketStream,
    greeting: Callable[[WSConnection], bytes],
    before_close_reply: Callable[[trio.SocketStream], Awaitable[None]] | None = None,
) -> None:
    """A wsproto server: accepts and sends ``greeting(ws)``; answers our Close (after
    ``before_close_reply``, if given)."""
    ws = WSConnection(ConnectionType.SERVER)
    async with stream:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    await stream.send_all(ws.send(AcceptConnection()) + greeting(ws))
                elif isinstance(event, CloseConnection):
                    if before_close_reply is not None:
                        await before_close_reply(stream)
                    await stream.send_all(ws.send(event.response()))
                    return


async def _peer(stream: trio.SocketStream, saw_close: trio.Event) -> None:
    """Answers our Close with a Ping first and its own Close after."""

    async def ping_first(stream: trio.SocketStream) -> None:
        saw_close.set()
        await stream.send_all(RAW_PING)
        await trio.sleep(0.05)  # the client's reader handles the ping first

    await _raw_peer(stream, lambda ws: b"", ping_first)


@contextlib.asynccontextmanager
async def _client_of(
    peer: Callable[[trio.SocketStream], Awaitable[None]], **options: Any
) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client connected to ``peer`` served on a loopback port."""
    async with trio.open_nursery() as servers:
        listeners = await servers.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), peer, 0
        )
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream, trio.open_nursery() as nursery:
            yield await wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", "/", **options)
        servers.cancel_scope.cancel()


async def test_ping_racing_our_close_is_not_answered_and_close_is_clean() -> None:
    ws_compat.install()
    ws_compat.install()  # idempotent
    saw_close = trio.Event()
    with trio.fail_after(5):
        async with _client_of(lambda s: _peer(s, saw_close)) as ws:
            await ws.aclose()
            assert saw_close.is_set()
            assert ws.closed is not None
            assert ws.closed.code == 1000


async def _burst(stream: trio.SocketStream, messages: list[str]) -> None:
    """Accept, then send every message in one write (and a fragmented one at the end)."""

    def greeting(ws: WSConnection) -> bytes:
        out = b"".join(ws.send(Message(data=m)) for m in messages)
        out += ws.send(Message(data="frag-", message_finished=False))
        return out + ws.send(Message(data="ment"))

    await _raw_peer(stream, greeting)


async def test_message_burst_beyond_the_queue_arrives_whole_and_in_order() -> None:
    """More messages in one socket read than the reader's queue holds: the queue fills,
    the reader waits for room (no loss), and a fragmented message still goes through the
    original path."""
    ws_compat.install()
    messages = [f'{{"n":{i},"pad":"{"x" * (i % 50)}"}}' for i in range(2000)]
    with trio.fail_after(10):
        async with _client_of(lambda s: _burst(s, messages), message_queue_size=16) as ws:
            await trio.sleep(0.2)  # the whole burst is read; the queue is full
            got = [await ws.get_message() for _ in range(len(messages) + 1)]
            await ws.aclose()
    assert got[:-1] == messages
    assert got[-1] == "frag-ment"
