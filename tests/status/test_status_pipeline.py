"""The status stream from a real feed and normalizer on the fake exchange: depth diffs
the exchange never delivered are reported with the update ids around the hole, on both
markets' chain rules."""

from __future__ import annotations

import itertools

import attrs
import pytest
import trio
from kit.daemon import binance_settings
from kit.wait import poll_until

from marketd.config.settings import Settings, Subscription
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex import FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.feed.connection import Feed
from marketd.feed.streams import plan_connections
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.normalizer import Normalizer
from marketd.status import StatusStream
from marketd.v1.market_data_pb2 import MarketEvent
from marketd.v1.status_pb2 import StatusEvent


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
async def test_depth_diffs_never_delivered_are_a_depth_gap_with_their_ids(
    market: Market,
) -> None:
    config = FakeExchangeConfig(symbols=2, seed=5, rate=400)
    subs = (Subscription(market=market, symbols=("BTCUSDT",), channels=("depth@100ms",)),)
    published: list[Record] = []
    status = StatusStream("marketd.status", "test")
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            settings = attrs.evolve(Settings(), binance=binance_settings(fx), subscriptions=subs)
            normalizer = Normalizer(Codecs(settings.kafka.topics))
            normalizer.status = status
            frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
            out_send, out_recv = trio.open_memory_channel[list[Record]](16)

            async def sink() -> None:
                async with out_recv:
                    async for batch in out_recv:
                        published.extend(batch)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sink)
                await nursery.start(normalizer.serve, frames_recv, out_send)
                async with frames_send:
                    for plan in plan_connections(settings.subscriptions, settings.binance):
                        nursery.start_soon(Feed(plan, settings.binance).serve, frames_send.clone())
                await poll_until(lambda: len(published) >= 10, timeout=10, what="diffs")
                fault = Fault(FaultKind.GAP, market, count=3, symbol="BTCUSDT")
                assert fx.inject_fault(fault) == 1
                mark = len(published)
                await poll_until(lambda: len(published) >= mark + 10, timeout=10, what="more")
                nursery.cancel_scope.cancel()
    diffs = [MarketEvent.FromString(r.value).depth_diff for r in published]
    # Where the published chain breaks (the fault's three diffs are missing there).
    if market is Market.SPOT:
        breaks = [(a.final_update_id, b.first_update_id)
                  for a, b in itertools.pairwise(diffs)
                  if b.first_update_id > a.final_update_id + 1]  # fmt: skip
    else:
        breaks = [(a.final_update_id, b.prev_final_update_id + 1)
                  for a, b in itertools.pairwise(diffs)
                  if b.prev_final_update_id != a.final_update_id]  # fmt: skip
    assert len(breaks) == 1
    reported = [StatusEvent.FromString(r.value) for r in status._take()]
    gaps = [e for e in reported if e.WhichOneof("event") == "depth_gap"]
    assert [(e.symbol, e.depth_gap.last_update_id, e.depth_gap.first_missing_below)
            for e in gaps] == [("BTCUSDT", *breaks[0])]  # fmt: skip
    assert gaps[0].market == (1 if market is Market.SPOT else 2)
