"""The normalizer's batch interval: under load it hands on one record batch per interval,
made of every frame batch that came in meanwhile (from any connection, in arrival order,
within the frame limit); light traffic never waits. No I/O: a scripted decoder, trio's
mock clock."""

from __future__ import annotations

import trio
import trio.testing
from kit.scripted import Decoder, batch

from marketd.data.records import FrameBatch, Market, Record
from marketd.pipeline.normalizer import Normalizer

INTERVAL_S = 0.010


def on(connection: str, *frames: str) -> FrameBatch:
    return FrameBatch(Market.SPOT, connection, list(frames), [0] * len(frames))


def ids(records: list[Record]) -> list[tuple[str, int]]:
    return [(r.symbol, r.seq) for r in records]


async def run(
    normalizer: Normalizer, script: list[tuple[float, FrameBatch]]
) -> list[tuple[float, list[tuple[str, int]]]]:
    """Send each batch at its time (mock clock, from 0); the record batches handed on, with
    the time each was."""
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
    out_send, out_recv = trio.open_memory_channel[list[Record]](16)
    seen: list[tuple[float, list[tuple[str, int]]]] = []

    async def feed() -> None:
        async with frames_send:
            start = trio.current_time()
            for at, frames in script:
                await trio.sleep_until(start + at)
                await frames_send.send(frames)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(normalizer.serve, frames_recv, out_send)
        nursery.start_soon(feed)
        start = trio.current_time()
        async for records in out_recv:
            seen.append((round(trio.current_time() - start, 6), ids(records)))
    return seen


def normalizer(interval_s: float = INTERVAL_S, frames: int = 500) -> Normalizer:
    n = Normalizer(Decoder())  # type: ignore[arg-type]
    n.batch_interval_s = interval_s
    n.batch_frames = frames
    return n


async def test_batches_faster_than_the_interval_go_on_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = [
        (0.0, on("spot-0", "A 1")),
        (0.002, on("spot-1", "B 1", "B 2")),
        (0.004, on("spot-0", "A 2")),
        (0.009, on("spot-2", "C 1")),
        (0.013, on("spot-1", "B 3")),
    ]
    seen = await run(normalizer(), script)
    # The first goes at once; the three that come within its interval go together when
    # it ends, in arrival order; the last waits for the next interval's end.
    assert seen == [
        (0.0, [("A", 1)]),
        (0.010, [("B", 1), ("B", 2), ("A", 2), ("C", 1)]),
        (0.020, [("B", 3)]),
    ]


async def test_light_traffic_never_waits(autojump_clock: trio.testing.MockClock) -> None:
    script = [(0.0, batch("A 1")), (0.050, batch("A 2")), (0.061, batch("A 3", "A 4"))]
    seen = await run(normalizer(), script)
    assert seen == [
        (0.0, [("A", 1)]),
        (0.050, [("A", 2)]),
        (0.061, [("A", 3), ("A", 4)]),
    ]


async def test_a_lot_keeps_within_the_frame_limit(autojump_clock: trio.testing.MockClock) -> None:
    script = [
        (0.0, batch("A 1")),
        (0.001, batch("A 2", "A 3")),
        (0.002, batch("A 4", "A 5", "A 6")),  # would make 5 frames, past the limit of 4
        (0.003, batch("A 7")),
    ]
    seen = await run(normalizer(frames=4), script)
    # The one that would pass the limit starts the next lot, handed on without a further
    # wait (the normalizer is behind), with what is queued behind it.
    assert seen == [
        (0.0, [("A", 1)]),
        (0.010, [("A", 2), ("A", 3)]),
        (0.010, [("A", 4), ("A", 5), ("A", 6), ("A", 7)]),
    ]


async def test_interval_zero_hands_each_batch_on_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = [(0.0, batch("A 1")), (0.001, batch("A 2")), (0.002, batch("A 3"))]
    seen = await run(normalizer(interval_s=0.0), script)
    assert seen == [(0.0, [("A", 1)]), (0.001, [("A", 2)]), (0.002, [("A", 3)])]
