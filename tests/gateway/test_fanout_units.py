"""The fan-out's pure parts: frames, the messages built from a client's queue, and the
direct socket write (on a socket pair). The queue itself: test_livelog.py."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import ConnectionState
from wsproto.frame_protocol import FrameProtocol, Opcode

import marketd.gateway
import marketd.gateway.hub
from marketd.gateway.fanout import DirectSocket
from marketd.gateway.frames import text_frame_header, text_frames
from marketd.gateway.hub import MAX_BATCH, alerts_message, encode_alert, live_messages
from marketd.gateway.livelog import Notice, Queued

from .support import make_alert

# -- frames ---------------------------------------------------------------------------------


def parsed(data: bytes) -> list[str]:
    """The text messages in ``data`` as a WebSocket client reads them (wsproto), each one
    checked to be a single final, unmasked text frame."""
    protocol = FrameProtocol(client=True, extensions=[])
    protocol.receive_bytes(data)
    texts = []
    for frame in protocol.received_frames():
        assert frame.opcode is Opcode.TEXT
        assert frame.frame_finished
        assert frame.message_finished
        assert isinstance(frame.payload, str)
        texts.append(frame.payload)
    return texts


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65_535, b"\x81\x7e\xff\xff"),
        (65_536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_text_frame_header_lengths(size: int, header: bytes) -> None:
    assert text_frame_header(size) == header


def test_text_frame_header_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError, match="negative"):
        text_frame_header(-1)


def test_text_frames_are_read_back_by_a_websocket_client() -> None:
    texts = ["", "a", "é" * 63, "é" * 64, "x" * 65_535, "€" * 30_000, '{"type":"alert"}']
    data = text_frames(texts)
    assert data[0] == 0x81  # FIN, no reserved bit, text; a server's frames are not masked
    assert parsed(data) == texts


@given(st.lists(st.text(max_size=300), max_size=8))
def test_text_frames_round_trip(texts: list[str]) -> None:
    assert parsed(text_frames(texts)) == texts


def test_the_frames_module_imports_without_the_rest_of_the_gateway() -> None:
    # The fake exchange frames its messages with it, and is not to load Quart for that.
    code = (
        "import sys, marketd.gateway.frames, marketd.fakex.wsconn; "
        "loaded = sorted(m for m in sys.modules if m.startswith(('quart', 'hypercorn', "
        "'marketd.gateway.'))); print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['marketd.gateway.frames']"
    assert marketd.gateway.AlertHub is marketd.gateway.hub.AlertHub  # on first use
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = marketd.gateway.Nothing  # type: ignore[attr-defined]


# -- the messages of a client's queue -------------------------------------------------------


def legacy_messages(items: list[Queued]) -> list[str]:
    """How the connection's task batched its queue before the writer: up to MAX_BATCH
    items at a time, ending at the first notice."""
    messages, queue = [], list(items)
    while queue:
        pending = [queue.pop(0)]
        while queue and len(pending) < MAX_BATCH and not isinstance(pending[-1], Notice):
            pending.append(queue.pop(0))
        alerts = [m for m in pending if isinstance(m, str)]
        if alerts:
            messages.append(alerts_message(alerts))
        if isinstance(pending[-1], Notice):
            messages.append(pending[-1].text)
    return messages


ALERTS = [encode_alert(make_alert(f"S{i}USDT")) for i in range(5)]
NOTICE = Notice('{"type":"suppressed","count":3,"since_ms":1,"limit_per_s":20}')


def test_live_messages_batch_alerts_and_keep_notices_in_place() -> None:
    assert live_messages([]) == ([], 0)
    assert live_messages(ALERTS[:1]) == ([alerts_message(ALERTS[:1])], 1)
    assert live_messages(ALERTS[:3]) == ([alerts_message(ALERTS[:3])], 3)
    items: list[Queued] = [ALERTS[0], NOTICE, ALERTS[1], ALERTS[2], NOTICE]
    messages, alerts = live_messages(items)
    assert alerts == 3
    assert [json.loads(m)["type"] for m in messages] == [
        "alert",
        "suppressed",
        "alerts",
        "suppressed",
    ]
    many = [ALERTS[i % 5] for i in range(2 * MAX_BATCH + 7)]
    messages, alerts = live_messages(many)
    assert alerts == len(many)
    assert [len(json.loads(m)["alerts"]) for m in messages] == [MAX_BATCH, MAX_BATCH, 7]


@given(st.lists(st.sampled_from([*ALERTS, NOTICE]), max_size=3 * MAX_BATCH))
def test_live_messages_are_the_messages_the_connection_task_sent(items: list[Queued]) -> None:
    messages, alerts = live_messages(items)
    assert messages == legacy_messages(items)
    assert alerts == sum(isinstance(item, str) for item in items)


# -- the direct write -----------------------------------------------------------------------


class FakeWSStream:
    """What DirectSocket reads of Hypercorn's WSStream."""

    def __init__(self) -> None:
        self.closed = False
        self.connection = types.SimpleNamespace(state=ConnectionState.OPEN)


@contextlib.contextmanager
def direct_pair(sndbuf: int | None = None) -> Iterator[types.SimpleNamespace]:
    ours, theirs = trio.socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    stream = trio.SocketStream(ours)
    ws = FakeWSStream()
    direct = DirectSocket(stream, trio.Semaphore(1, max_value=1), ws)
    try:
        yield types.SimpleNamespace(direct=direct, ws=ws, stream=stream, peer=theirs)
    finally:
        ours.close()
        theirs.close()


async def read_exactly(peer: trio.socket.SocketType, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await peer.recv(65536)
        assert chunk
        data += chunk
    return bytes(data)


async def test_a_write_the_socket_takes_whole_leaves_the_lock_free() -> None:
    with direct_pair() as pair:
        frame = text_frames(["hello"])
        assert pair.direct.try_write(frame) == len(frame)
        assert pair.direct.lock.value == 1
        assert await read_exactly(pair.peer, len(frame)) == frame


async def test_nothing_is_written_while_another_write_holds_the_lock_or_the_socket_closes() -> None:
    with direct_pair() as pair:
        frame = text_frames(["x"])
        pair.direct.lock.acquire_nowait()  # Hypercorn writing (a pong, say)
        assert pair.direct.try_write(frame) is None
        pair.direct.lock.release()
        pair.ws.connection.state = ConnectionState.LOCAL_CLOSING
        assert pair.direct.try_write(frame) is None
        pair.ws.connection.state = ConnectionState.OPEN
        pair.ws.closed = True
        assert pair.direct.try_write(frame) is None
        pair.ws.closed = False
        await pair.stream.aclose()  # its descriptor is gone (and could be reused)
        assert pair.direct.try_write(frame) is None
        assert pair.direct.lock.value == 1


async def test_a_write_to_a_peer_that_is_gone_fails_without_raising() -> None:
    with direct_pair() as pair:
        pair.peer.close()
        assert pair.direct.try_write(text_frames(["x"])) is None
        assert pair.direct.lock.value == 1


async def test_a_partial_write_holds_the_lock_until_the_rest_is_written() -> None:
    with trio.fail_after(10), direct_pair(sndbuf=4096) as pair:
        frame = text_frames(["y" * 1_000_000])
        written = pair.direct.try_write(frame)
        assert written is not None
        assert 0 < written < len(frame)
        assert pair.direct.lock.value == 0  # nobody else may write before the rest
        received = b""
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                nonlocal received
                received = await read_exactly(pair.peer, len(frame))

            nursery.start_soon(read)
            await pair.direct.write_rest(memoryview(frame)[written:])
        assert received == frame
        assert pair.direct.lock.value == 1


async def test_a_full_socket_takes_nothing_and_the_lock_stays_free() -> None:
    with direct_pair(sndbuf=4096) as pair:
        fd = pair.stream.socket.fileno()
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(fd, b"z" * 4096)
        assert pair.direct.try_write(text_frames(["x"])) == 0
        assert pair.direct.lock.value == 1
