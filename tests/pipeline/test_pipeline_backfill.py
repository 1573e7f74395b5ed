"""The normalizer's trade-gap handling: a gap parks only its own symbol while the backfill
runs in the background; every other symbol keeps flowing; the parked symbol comes out
filled and in order. No I/O: a scripted decoder and a backfiller the test controls."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from kit.scripted import Decoder, batch, trade

from marketd.data.records import FrameBatch, Market, Record
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.sequence import Gap


class Backfiller:
    """Fills any gap with REST-looking trades, once the test releases that symbol."""

    def __init__(self) -> None:
        self.release: dict[str, trio.Event] = {}
        self.asked: list[Gap] = []
        self.filled = self.unfilled = 0

    async def fill(self, gap: Gap) -> list[Record]:
        self.asked.append(gap)
        await self.release.setdefault(gap.symbol, trio.Event()).wait()
        self.filled += gap.size
        return [trade(gap.symbol, i, source="rest") for i in range(gap.first, gap.last + 1)]


async def test_a_gap_parks_only_its_symbol_and_comes_out_filled_in_order() -> None:
    backfiller = Backfiller()
    normalizer = Normalizer(Decoder(), backfiller)  # type: ignore[arg-type]
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](10)
    out_send, out_recv = trio.open_memory_channel[list[Record]](100)
    got: list[tuple[str, int, str]] = []

    async def collect(n: int) -> None:
        while len(got) < n:
            for r in await out_recv.receive():
                got.append((r.symbol, r.seq, r.value.decode()))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(normalizer.serve, frames_recv, out_send)
            # BTC jumps from 2 to 6 (3..5 missing); ETH keeps going.
            await frames_send.send(batch("BTC 1", "ETH 10", "BTC 2", "BTC 6", "ETH 11"))
            await frames_send.send(batch("BTC 7", "ETH 12", "BTC 7", "BTC 10", "ETH 13"))
            await trio.testing.wait_all_tasks_blocked()
            await collect(6)
            # Everything of ETH is out; BTC only up to the gap: 6.. wait behind the backfill.
            assert got == [
                ("BTC", 1, "live"), ("ETH", 10, "live"), ("BTC", 2, "live"),
                ("ETH", 11, "live"), ("ETH", 12, "live"), ("ETH", 13, "live"),
            ]  # fmt: skip
            stats = normalizer.statistics()
            assert stats.backfills_running == 1
            assert stats.parked_records == 3  # BTC 6, 7, 10 (the second 7 is a duplicate)
            assert backfiller.asked == [Gap(Market.SPOT, "trade", "BTC", 3, 5)]
            backfiller.release["BTC"].set()
            await collect(14)
            await frames_send.aclose()
    btc = [(seq, src) for symbol, seq, src in got if symbol == "BTC"]
    assert btc == [
        (1, "live"), (2, "live"), (3, "rest"), (4, "rest"), (5, "rest"),
        (6, "live"), (7, "live"), (8, "rest"), (9, "rest"), (10, "live"),
    ]  # fmt: skip
    assert [seq for symbol, seq, _ in got if symbol == "ETH"] == [10, 11, 12, 13]
    # The second gap (8..9) was found behind the first and filled after it.
    assert backfiller.asked[1] == Gap(Market.SPOT, "trade", "BTC", 8, 9)
    stats = normalizer.statistics()
    assert (stats.gaps, stats.gaps_closed, stats.backfills_running, stats.parked_records) == (
        2, 2, 0, 0,
    )  # fmt: skip
    assert stats.duplicates == 1


async def test_after_the_backfill_the_symbol_flows_directly_again() -> None:
    backfiller = Backfiller()
    backfiller.release["BTC"] = trio.Event()
    backfiller.release["BTC"].set()
    normalizer = Normalizer(Decoder(), backfiller)  # type: ignore[arg-type]
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](10)
    out_send, out_recv = trio.open_memory_channel[list[Record]](100)
    seqs: list[int] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(normalizer.serve, frames_recv, out_send)
            await frames_send.send(batch("BTC 1", "BTC 4"))
            while len(seqs) < 4:
                seqs.extend(r.seq for r in await out_recv.receive())
            await trio.testing.wait_all_tasks_blocked()
            assert normalizer.statistics().backfills_running == 0
            await frames_send.send(batch("BTC 5", "BTC 6"))
            while len(seqs) < 6:
                seqs.extend(r.seq for r in await out_recv.receive())
            await frames_send.aclose()
    assert seqs == [1, 2, 3, 4, 5, 6]


async def test_intake_end_waits_for_running_backfills_before_closing_the_output() -> None:
    backfiller = Backfiller()
    normalizer = Normalizer(Decoder(), backfiller)  # type: ignore[arg-type]
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](10)
    out_send, out_recv = trio.open_memory_channel[list[Record]](100)
    seqs: list[Any] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(normalizer.serve, frames_recv, out_send)
            await frames_send.send(batch("BTC 1", "BTC 3"))
            await frames_send.aclose()
            await trio.sleep(0.05)
            backfiller.release.setdefault("BTC", trio.Event()).set()
            async for records in out_recv:  # ends when the normalizer closes its output
                seqs.extend(r.seq for r in records)
    assert seqs == [1, 2, 3]
