"""A slow sink slows the whole pipeline instead of growing memory or dropping data.

The daemon runs in-process against the in-process fake exchange; its sink is a channel
the test reads deliberately slowly, standing in for a slow Kafka.
"""

from __future__ import annotations

from collections import defaultdict

import prometheus_client
import trio
from kit.daemon import binance_settings
from kit.sinks import ChannelSink

from marketd.app import Daemon
from marketd.config.settings import (
    HttpSettings,
    PipelineSettings,
    Settings,
    Subscription,
    TopicSettings,
)
from marketd.data.records import Market
from marketd.fakex import FakeExchange, FakeExchangeConfig, open_fake_exchange
from marketd.v1.market_data_pb2 import MarketEvent

STATUS_TOPIC = TopicSettings().status

SYMBOLS = ("BTCUSDT", "ETHUSDT")
BATCH = 20
CAPACITY = 2


def settings_for(fx: FakeExchange) -> Settings:
    return Settings(
        binance=binance_settings(fx, max_frames_per_batch=BATCH),
        subscriptions=(Subscription(market=Market.SPOT, symbols=SYMBOLS, channels=("trade",)),),
        pipeline=PipelineSettings(channel_capacity=CAPACITY),
        http=HttpSettings(listen="127.0.0.1:0"),
    )


async def test_slow_sink_bounds_memory_and_loses_nothing() -> None:
    config = FakeExchangeConfig(symbols=2, seed=5, rate=3000)
    async with open_fake_exchange(config) as fx:
        sink = ChannelSink(CAPACITY)
        registry = prometheus_client.CollectorRegistry()
        daemon = Daemon(settings_for(fx), registry=registry, sink=sink)
        subscription = sink.batches
        ids: dict[str, list[int]] = defaultdict(list)
        consumed = 0
        slow = True
        worst_in_flight = 0
        stop = trio.Event()
        last: dict[str, int] = {}
        caught_up = trio.Event()

        def in_flight() -> int:
            received = sum(f.statistics().frames_received for f in daemon.feeds)
            return received - consumed

        def check_caught_up() -> None:
            if last and all(ids[s] and ids[s][-1] >= last[s] for s in SYMBOLS):
                caught_up.set()

        async def consume() -> None:
            nonlocal consumed, worst_in_flight
            async for batch in subscription:
                for record in batch:
                    if record.topic == STATUS_TOPIC:  # not from a frame: what could not be seen
                        continue
                    event = MarketEvent.FromString(record.value)
                    ids[event.symbol].append(event.trade.trade_id)
                    consumed += 1
                worst_in_flight = max(worst_in_flight, in_flight())
                check_caught_up()
                if slow:
                    await trio.sleep(0.05)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await nursery.start(daemon.run, stop)
                await trio.sleep(3)
                # Slow phase: the exchange offers far more than the sink takes, yet what
                # the daemon holds stays within its channel and buffer bounds.
                bound = (4 + 2 * (CAPACITY + 1) + 2 * (CAPACITY + 1)) * BATCH + 100
                offered = sum(f.statistics().frames_received for f in daemon.feeds)
                model = fx.model(Market.SPOT)
                generated = sum(model.by_name[s].history.next_id - ids[s][0] for s in SYMBOLS)
                assert worst_in_flight <= bound, (worst_in_flight, bound)
                assert offered < 0.6 * generated, ("the sink did not slow the feed", offered)
                slow = False
                await trio.sleep(0.5)
                fx.pause()
                last.update({s: model.by_name[s].history.next_id - 1 for s in SYMBOLS})
                check_caught_up()
                await caught_up.wait()
                stop.set()
        daemon.close()
    for symbol in SYMBOLS:
        got = ids[symbol]
        assert got == list(range(got[0], last[symbol] + 1)), f"{symbol}: lost or duplicated"
    # Everything was accounted for: no parse errors, nothing left in flight.
    stats = daemon.normalizer.statistics()
    assert stats.malformed == {}
    assert stats.unknown == {}
    assert in_flight() == 0
