"""Paced reads: under load a connection's socket is read at most once per interval, so
what arrives meanwhile comes in one read; a quiet connection reads at once; a read that
fills its buffer does not hold the next back. Memory streams and trio's mock clock."""

from __future__ import annotations

import trio
import trio.testing

from marketd.feed.paced import PacedStream

INTERVAL_S = 0.005


async def reads(
    script: list[tuple[float, bytes]], max_bytes: int = 1024
) -> list[tuple[float, bytes]]:
    """Write each chunk at its time (from 0); what each read returned, and when."""
    writer, reader = trio.testing.memory_stream_pair()
    paced = PacedStream(reader, INTERVAL_S)
    got: list[tuple[float, bytes]] = []
    start = trio.current_time()

    async def write() -> None:
        for at, data in script:
            await trio.sleep_until(start + at)
            await writer.send_all(data)
        await writer.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        while data := await paced.receive_some(max_bytes):
            got.append((round(trio.current_time() - start, 6), bytes(data)))
    return got


async def test_reads_under_load_come_once_per_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = [(0.0, b"a"), (0.001, b"b"), (0.002, b"c"), (0.006, b"d"), (0.007, b"e")]
    # The first read at once; b and c wait for the interval's end and come together; so
    # do d and e, an interval after that.
    assert await reads(script) == [(0.0, b"a"), (0.005, b"bc"), (0.010, b"de")]


async def test_a_quiet_connection_reads_at_once(autojump_clock: trio.testing.MockClock) -> None:
    script = [(0.0, b"a"), (0.020, b"b"), (0.040, b"c")]
    assert await reads(script) == [(0.0, b"a"), (0.020, b"b"), (0.040, b"c")]


async def test_a_full_read_does_not_hold_the_next_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = [(0.0, b"abcdef")]
    # Each read fills its 2 bytes: the next is not paced.
    assert await reads(script, max_bytes=2) == [(0.0, b"ab"), (0.0, b"cd"), (0.0, b"ef")]


async def test_sends_and_close_pass_through() -> None:
    left, right = trio.testing.memory_stream_pair()
    paced = PacedStream(left, INTERVAL_S)
    await paced.send_all(b"hello")
    assert await right.receive_some(10) == b"hello"
    await paced.aclose()
    assert await right.receive_some(10) == b""
