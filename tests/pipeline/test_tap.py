"""The detector's branch: every batch goes on to the main channel, the wanted records to
the detector's; a full detector channel holds the sender (counted), drops nothing."""

from __future__ import annotations

import trio
import trio.testing

from marketd.data.events import Tick
from marketd.data.records import Market, Record, RecordBatch
from marketd.pipeline.tap import Tap, TeeSendChannel


def record(kind: str, symbol: str, seq: int = 0, market: Market = Market.USDM) -> Record:
    return Record("marketdata.raw", symbol.encode(), f"{symbol}:{seq}".encode(), (), 0,
                  market, kind, symbol, seq)  # fmt: skip


def channel(
    capacity: int,
) -> tuple[trio.MemorySendChannel[list[Record]], trio.MemoryReceiveChannel[list[Record]]]:
    return trio.open_memory_channel[list[Record]](capacity)


async def test_every_batch_goes_on_and_the_detector_gets_what_it_wants() -> None:
    tap = Tap(["24hrMiniTicker"], [Market.USDM])
    main_send, main_recv = channel(4)
    branch_send, branch_recv = channel(4)
    tee = tap.tee(main_send, branch_send)
    batch = [
        record("24hrMiniTicker", "BTCUSDT"),
        record("trade", "BTCUSDT"),
        record("24hrMiniTicker", "ETHUSDT", market=Market.SPOT),
        record("24hrMiniTicker", "ETHUSDT"),
    ]
    await tee.send(batch)
    await tee.send([record("trade", "ETHUSDT")])  # nothing for the detector
    await tee.aclose()
    assert [b async for b in main_recv] == [batch, [record("trade", "ETHUSDT")]]
    assert [b async for b in branch_recv] == [[batch[0], batch[3]]]
    assert tap.statistics().records == 2
    assert tap.statistics().waits == 0


async def test_a_slow_detector_holds_the_sender_and_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tap = Tap(["24hrMiniTicker"], [Market.USDM])
    main_send, main_recv = channel(10)
    branch_send, branch_recv = channel(1)
    tee = tap.tee(main_send, branch_send)
    sent = 0
    ticks: list[int] = []

    async def send_all() -> None:
        nonlocal sent
        async with tee:
            for seq in range(5):
                await tee.send([record("24hrMiniTicker", "BTCUSDT", seq)])
                sent += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all)
        await trio.sleep(1)
        # One in the detector's channel, one held at the sender: the rest wait upstream.
        assert sent == 1
        assert main_recv.statistics().current_buffer_used == 2
        async for batch in branch_recv:
            ticks.extend(r.seq for r in batch)
            await trio.sleep(1)
    assert ticks == [0, 1, 2, 3, 4]
    assert tap.statistics().waits == 4
    assert len([b async for b in main_recv]) == 5


async def test_clones_close_the_branch_and_keep_its_order_across_senders() -> None:
    tap = Tap(["trade"], [Market.SPOT])
    main_send, main_recv = channel(0)
    branch_send, branch_recv = channel(0)
    tee = tap.tee(main_send, branch_send)

    async def sender(symbol: str, clone: TeeSendChannel[list[Record]]) -> None:
        async with clone:
            for seq in range(20):
                await clone.send([record("trade", symbol, seq, Market.SPOT)])

    main: list[str] = []
    branch: list[str] = []

    async def drain(recv: trio.MemoryReceiveChannel[list[Record]], into: list[str]) -> None:
        async for batch in recv:
            into.extend(f"{r.symbol}:{r.seq}" for r in batch)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, main_recv, main)
        nursery.start_soon(drain, branch_recv, branch)
        async with tee:
            nursery.start_soon(sender, "A", tee.clone())
            nursery.start_soon(sender, "B", tee.clone())
    # Both channels ended once every clone and the original were closed.
    assert len(main) == 40
    assert branch == main


def test_a_typed_batch_reaches_the_detector_with_its_ticks() -> None:
    tap = Tap(["24hrMiniTicker"], [Market.USDM])
    tick = Tick("usdm", "ETHUSDT", 5, "101.5")
    batch = RecordBatch(
        [record("trade", "BTCUSDT"), record("24hrMiniTicker", "ETHUSDT")], events=[None, tick]
    )
    wanted = tap.select(batch)
    assert type(wanted) is RecordBatch
    assert list(wanted) == [batch[1]]
    assert wanted.events == [tick]
    assert tap.select(RecordBatch([record("trade", "BTCUSDT")])) is None
