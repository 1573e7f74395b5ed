"""Control frames and connection markers handed on for the recorder (``record_control``):
in their place among the data frames, through the buffer, a reconnect and a stop; and
nothing of them without it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from feedserver import ServerConn, WsServer, feed_settings

from marketd.config.settings import Subscription
from marketd.data.records import ControlFrame, FrameBatch, Market
from marketd.feed import Feed, plan_connections
from marketd.feed.buffer import FrameBuffer, chunks, drop_prefix
from marketd.recorder.format import payload_marker

TRADES = (Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("trade",)),)


def flatten(batches: list[FrameBatch]) -> list[str]:
    """Every frame and control frame, in the order the batches place them."""
    out: list[str] = []
    for batch in batches:
        assert len(batch.frames) == len(batch.received_ns)
        pending = list(batch.control)
        assert [c.at for c in pending] == sorted(c.at for c in pending)
        for i, frame in enumerate(batch.frames):
            while pending and pending[0].at <= i:
                out.append(pending.pop(0).text)
            out.append(frame)
        assert all(c.at == len(batch.frames) for c in pending)
        out.extend(c.text for c in pending)
    return out


def describe(text: str) -> Any:
    """A frame as the assertions compare it: its counter, or the control frame parsed."""
    marker = payload_marker(text.encode())
    if marker is not None:
        return marker
    parsed = json.loads(text)
    return parsed["data"]["n"] if "data" in parsed else parsed


async def test_control_frames_and_markers_travel_in_their_place(ws_server: WsServer) -> None:
    async def behaviour(server: WsServer, conn: ServerConn) -> None:
        await conn.subscribed.wait()
        for _ in range(2):
            await server.send_counted(conn)
        await conn.send('{"result":null,"id":99}')  # a reply to nothing: still control
        for _ in range(2):
            await server.send_counted(conn)
        if conn.index == 0:
            await conn.ws.aclose(code=4000, reason="bye")
        await trio.sleep_forever()

    ws_server.behaviour = behaviour
    settings = feed_settings(ws_server)
    (plan,) = plan_connections(TRADES, settings, max_url_length=0)  # SUBSCRIBE: an ack
    feed = Feed(plan, settings, record_control=True)
    send, receive = trio.open_memory_channel[FrameBatch](64)
    batches: list[FrameBatch] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(feed.serve, send)
            while sum(len(b.frames) for b in batches) < 8:
                batches.append(await receive.receive())
            nursery.cancel_scope.cancel()
        # What the stop hands on: the closed marker of the second connection.
        async with receive:
            batches.extend([batch async for batch in receive])
    assert {b.connection for b in batches} == {"spot-0"}
    url = f"{ws_server.url}/stream"
    connected = {"marketd": "connected", "url": url}
    ack = {"result": None, "id": 1}
    stray = {"result": None, "id": 99}
    assert [describe(text) for text in flatten(batches)] == [
        connected, ack, 0, 1, stray, 2, 3,
        {"marketd": "closed", "code": 4000, "reason": "bye", "by": "exchange"},
        connected, ack, 4, 5, stray, 6, 7,
        {"marketd": "closed", "code": 1000, "reason": None, "by": "marketd"},
    ]  # fmt: skip
    # Each control frame has its own receive time, in order with the frames'.
    times = [c.received_ns for b in batches for c in b.control]
    assert times == sorted(times)
    assert feed.statistics().control_frames == 4


async def test_without_recording_no_control_frame_travels(ws_server: WsServer) -> None:
    settings = feed_settings(ws_server)
    (plan,) = plan_connections(TRADES, settings, max_url_length=0)
    feed = Feed(plan, settings)
    send, receive = trio.open_memory_channel[FrameBatch](64)
    batches: list[FrameBatch] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(feed.serve, send)
            while sum(len(b.frames) for b in batches) < 5:
                batches.append(await receive.receive())
            nursery.cancel_scope.cancel()
        async with receive:
            batches.extend([batch async for batch in receive])
    assert all(b.control == () and b.frames for b in batches)
    assert feed.statistics().control_frames == 1  # the ack, handled as before


# -- the buffer -------------------------------------------------------------------------


async def test_the_buffer_places_control_frames_between_the_frames_taken() -> None:
    buffer = FrameBuffer(capacity=3)
    buffer.append_control_nowait("c0", 1)
    buffer.append_nowait("f0", 2)
    buffer.append_nowait("f1", 3)
    buffer.append_control_nowait("c1", 4)
    buffer.append_nowait("f2", 5)
    assert buffer.full  # control frames take no room
    buffer.append_control_nowait("c2", 6)
    assert len(buffer) == 6
    # Two frames: the control frame after the second comes with them, at their end.
    assert await buffer.take(2) == (
        ["f0", "f1"], [2, 3], (ControlFrame(0, 1, "c0"), ControlFrame(2, 4, "c1"))
    )  # fmt: skip
    assert await buffer.take(2) == (["f2"], [5], (ControlFrame(1, 6, "c2"),))
    buffer.append_control_nowait("c3", 7)  # alone: taken alone
    assert await buffer.take(2) == ([], [], (ControlFrame(0, 7, "c3"),))
    buffer.append_nowait("f3", 8)
    assert await buffer.take(2) == (["f3"], [8], ())


async def test_take_waits_for_a_control_frame_too() -> None:
    buffer = FrameBuffer(capacity=3)
    async with trio.open_nursery() as nursery:
        got: list[object] = []

        async def take() -> None:
            got.append(await buffer.take(5))

        nursery.start_soon(take)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        buffer.append_control_nowait("closed", 9)
    assert got == [([], [], (ControlFrame(0, 9, "closed"),))]


@pytest.mark.parametrize("limit", [1, 2, 3, 10])
def test_chunks_keep_each_control_frame_in_its_place(limit: int) -> None:
    frames = ["a", "b", "c", "d", "e"]
    control = (ControlFrame(0, 0, "x"), ControlFrame(2, 0, "y"), ControlFrame(5, 0, "z"))
    parts = [
        FrameBatch(Market.SPOT, "c", f, n, c)
        for f, n, c in chunks(frames, list(range(5)), control, limit)
    ]
    assert flatten(parts) == ["x", "a", "b", "y", "c", "d", "e", "z"]
    assert all(0 < len(p.frames) <= limit for p in parts)
    assert list(chunks([], [], control[:1], limit)) == [([], [], control[:1])]
    assert list(chunks([], [], (), limit)) == []


def test_dropping_a_prefix_keeps_the_control_frames_before_what_stays() -> None:
    control = (ControlFrame(0, 1, "connected"), ControlFrame(1, 2, "ack"), ControlFrame(4, 3, "x"))
    assert drop_prefix(control, 2) == (
        ControlFrame(0, 1, "connected"), ControlFrame(0, 2, "ack"), ControlFrame(2, 3, "x")
    )  # fmt: skip
    assert drop_prefix(control, 0) == control
