"""Make-before-break handovers against the fake exchange, through codec and normalizer.

Feeds → :class:`Codecs` → :class:`Normalizer` in-process, real time: the feeds rotate every
1.5 s (or get ``serverShutdown``) while the exchange trades a few hundred events/s. Every
trade id must come out exactly once per symbol, consecutive, with nothing backfilled
(make-before-break loses nothing), and depth diffs must chain without a duplicate.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable

import attrs
import trio
from feedserver import ServerConn, WsServer, feed_settings
from kit.daemon import binance_settings
from kit.wait import poll_until
from trio_websocket import ConnectionClosed

from marketd.config.settings import BackoffSettings, ExchangeSettings, Subscription, TopicSettings
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex import FakeExchange, FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.feed import Feed, FeedGroup, plan_connections
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.normalizer import Normalizer
from marketd.v1.market_data_pb2 import MarketEvent

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
SUBSCRIPTIONS = (
    Subscription(Market.SPOT, symbols=SYMBOLS, channels=("trade", "depth@100ms", "bookTicker")),
    Subscription(Market.USDM, symbols=SYMBOLS, channels=("aggTrade", "depth@100ms")),
)


@attrs.define
class Run:
    records: list[Record]
    feeds: FeedGroup
    normalizer: Normalizer
    backfiller: Backfiller
    state: dict[str, object]


async def run_pipeline(
    settings: ExchangeSettings, fx: FakeExchange, during: Callable[[FeedGroup], Awaitable[None]]
) -> Run:
    codec = Codecs(TopicSettings())
    backfiller = Backfiller(
        encoder=codec,
        rest_urls={Market.SPOT: fx.spot_rest_url, Market.USDM: fx.futures_rest_url},
    )
    normalizer = Normalizer(codec, backfiller)
    feeds = FeedGroup(plan_connections(SUBSCRIPTIONS, settings), settings)
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
    records_send, records_recv = trio.open_memory_channel[list[Record]](16)
    records: list[Record] = []

    async def collect() -> None:
        async with records_recv:
            async for batch in records_recv:
                records.extend(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(normalizer.serve, frames_recv, records_send)
        nursery.start_soon(collect)
        await nursery.start(feeds.serve, frames_send)
        await during(feeds)
        fx.pause()
        await trio.sleep(0.5)  # what is on the wire arrives
        state = fx.state()
        nursery.cancel_scope.cancel()
    return Run(records, feeds, normalizer, backfiller, state)


def fx_settings(fx: FakeExchange, **overrides: object) -> ExchangeSettings:
    values: dict[str, object] = {
        "connect_timeout_s": 2.0,
        "stale_after_s": 5.0,
        # Healthy for reset_after_s: a planned replacement starts at once.
        "reconnect": BackoffSettings(initial_s=0.05, max_s=0.2, jitter=0.5, reset_after_s=0.5),
    }
    values.update(overrides)
    return binance_settings(fx, **values)


def check_exactly_once(run: Run) -> None:
    """Consecutive trade ids up to the exchange's last, no backfill, chained depth."""
    markets = run.state["markets"]
    assert isinstance(markets, dict)
    for kind, market, last_key in (
        ("trade", "spot", "last_trade_id"),
        ("aggTrade", "usdm", "last_agg_id"),
    ):
        for symbol in SYMBOLS:
            ids = [r.seq for r in run.records if r.kind == kind and r.symbol == symbol]
            assert ids, (kind, symbol)
            assert ids == list(range(ids[0], ids[0] + len(ids))), (kind, symbol)
            assert ids[-1] == markets[market]["symbols"][symbol][last_key], (kind, symbol)
    # Make-before-break needs no REST backfill: no gap was ever seen.
    assert run.normalizer.sequencer.gaps == 0
    assert run.backfiller.requests == 0
    assert run.backfiller.filled == 0
    # Depth: strictly increasing, and each futures diff continues the previous (`pu`).
    diffs: dict[tuple[Market, str], list[MarketEvent]] = defaultdict(list)
    for r in run.records:
        if r.kind == "depthUpdate":
            diffs[(r.market, r.symbol)].append(MarketEvent.FromString(r.value))
    assert {symbol for _, symbol in diffs} == set(SYMBOLS)
    for (market, symbol), events in diffs.items():
        for a, b in itertools.pairwise(e.depth_diff for e in events):
            assert b.first_update_id > a.final_update_id, (market, symbol)
            if market is Market.USDM:
                assert b.prev_final_update_id == a.final_update_id, (market, symbol)
    tickers: dict[str, list[int]] = defaultdict(list)
    for r in run.records:
        if r.kind == "bookTicker":
            tickers[r.symbol].append(r.seq)
    assert all(u == sorted(set(u)) for u in tickers.values())


async def test_rotation_is_make_before_break_and_loses_nothing() -> None:
    config = FakeExchangeConfig(symbols=4, seed=11, rate=300)

    async def three_rotations(feeds: FeedGroup) -> None:
        # Wait for the handovers (a count), not for a time: on a loaded machine fewer
        # rotations complete in the same seconds.
        await poll_until(
            lambda: all(f.handovers >= 3 for f in feeds.feeds),
            timeout=45,
            what="three handovers of every feed",
            interval=0.02,
        )

    with trio.fail_after(60):
        async with open_fake_exchange(config) as fx:
            settings = fx_settings(fx, rotate_after_s=1.5)
            run = await run_pipeline(settings, fx, three_rotations)
    check_exactly_once(run)
    for feed in run.feeds.feeds:
        stats = feed.statistics()
        assert stats.reconnects["rotation"] >= 3, stats
        assert stats.reconnects_total == stats.reconnects["rotation"], stats
        assert feed.handovers >= 3
        assert stats.connects == feed.handovers + 1
    # The fake exchange sends identical frames to both connections: the overlap was
    # proven and trimmed in the feed, so the sequencer saw (almost) nothing to drop.
    assert sum(f.overlap_frames_dropped for f in run.feeds.feeds) > 0


async def test_server_shutdown_is_make_before_break() -> None:
    config = FakeExchangeConfig(symbols=4, seed=12, rate=300)
    with trio.fail_after(60):
        async with open_fake_exchange(config) as fx:

            def settled(feeds: FeedGroup, handovers: int) -> bool:
                # Every feed done with its handovers: one connection each, old ones closed.
                done = all(f.handovers == handovers for f in feeds.feeds)
                return done and len(fx.connections) == len(feeds.feeds) == 3

            async def shutdowns(feeds: FeedGroup) -> None:
                for i in range(2):
                    # The previous handover finished (however long a loaded machine took),
                    # then some trading on the new connections.
                    await poll_until(
                        lambda i=i: settled(feeds, i),
                        timeout=30,
                        what=f"{i} handovers of every feed done",
                        interval=0.02,
                    )
                    await trio.sleep(1.5)
                    # The exchange closes each announced connection 10 s later; ours are
                    # replaced long before that.
                    assert fx.inject_fault(Fault(FaultKind.SERVER_SHUTDOWN, seconds=10.0)) == 3
                await poll_until(
                    lambda: settled(feeds, 2),
                    timeout=30,
                    what="2 handovers of every feed done",
                    interval=0.02,
                )
                await trio.sleep(1.5)

            run = await run_pipeline(fx_settings(fx), fx, shutdowns)
    check_exactly_once(run)
    for feed in run.feeds.feeds:
        stats = feed.statistics()
        assert stats.reconnects["server_shutdown"] == 2, stats
        assert stats.reconnects_total == 2, stats
        assert feed.handovers == 2


# -- against the small test server: ordering, and the fallback without proof -------------


def trade_frame(trade_id: int, tag: int) -> str:
    # `c` differs per connection (as if the exchange stamped each connection), so the
    # feed cannot prove the overlap by identical frames; the sequencer dedupes instead.
    return json.dumps(
        {
            "stream": "btcusdt@trade",
            "data": {
                "e": "trade", "E": 1, "s": "BTCUSDT", "t": trade_id, "p": "1.0", "q": "1.0",
                "T": 1, "m": False, "c": tag,
            },
        }
    )  # fmt: skip


async def exchange(server: WsServer, interval_s: float = 0.002) -> None:
    """Every trade goes to every subscribed, open connection (like a real exchange)."""
    for trade_id in itertools.count(1):
        for conn in list(server.connections):
            if conn.subscribed.is_set() and not conn.closed.is_set():
                with contextlib.suppress(ConnectionClosed):
                    await conn.send(trade_frame(trade_id, conn.index))
        await trio.sleep(interval_s)


async def idle(server: WsServer, conn: ServerConn) -> None:
    await trio.sleep_forever()


async def test_rotation_without_identical_frames_dedupes_in_sequencer(
    ws_server: WsServer,
) -> None:
    ws_server.behaviour = idle
    settings = feed_settings(
        ws_server,
        rotate_after_s=0.6,
        reconnect=BackoffSettings(initial_s=0.05, max_s=0.2, reset_after_s=0.1),
    )
    (plan,) = plan_connections(
        (Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("trade",)),), settings
    )
    feed = Feed(plan, settings)
    normalizer = Normalizer(Codecs(TopicSettings()))  # no backfiller: a gap would be lost
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
    relay_send, relay_recv = trio.open_memory_channel[FrameBatch](16)
    records_send, records_recv = trio.open_memory_channel[list[Record]](16)
    tags: list[int] = []  # the connection of every frame the feed handed on, in order
    ids: list[int] = []

    async def relay() -> None:
        async with frames_recv, relay_send:
            async for batch in frames_recv:
                tags.extend(json.loads(f)["data"]["c"] for f in batch.frames)
                await relay_send.send(batch)

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay)
            nursery.start_soon(normalizer.serve, relay_recv, records_send)
            await nursery.start(feed.serve, frames_send)
            nursery.start_soon(exchange, ws_server)
            async with records_recv:
                while feed.handovers < 3:
                    ids.extend(r.seq for r in await records_recv.receive())
                nursery.cancel_scope.cancel()
    # Downstream: every trade once, consecutive, though no frame was trimmed in the feed.
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert normalizer.sequencer.gaps == 0
    assert normalizer.sequencer.duplicates_by_kind["trade"] > 0
    assert feed.overlap_frames_dropped == 0
    # Each connection's frames came in one contiguous run, old before new.
    assert tags == sorted(tags)
    assert set(tags) >= {0, 1, 2}
    # Make before break: each successor was accepted before its predecessor closed.
    for old, new in itertools.pairwise(ws_server.connections[:4]):
        assert old.closed_at is not None
        assert new.accepted_at < old.closed_at, (old.index, new.index)
        assert old.close_code == 1000


async def test_server_shutdown_opens_the_successor_before_closing(ws_server: WsServer) -> None:
    async def announce_first(server: WsServer, conn: ServerConn) -> None:
        await conn.subscribed.wait()
        if conn.index == 0:
            await trio.sleep(0.05)
            await conn.send('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}')
        await trio.sleep_forever()

    ws_server.behaviour = announce_first
    # A backoff (at least 30 s with its jitter) would blow the deadline: the successor is
    # opened at once. The deadline is far beyond what one handover takes on a loaded machine.
    settings = feed_settings(
        ws_server, reconnect=BackoffSettings(initial_s=60.0, max_s=60.0, reset_after_s=0.01)
    )
    (plan,) = plan_connections(
        (Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("trade",)),), settings
    )
    feed = Feed(plan, settings)
    send, receive = trio.open_memory_channel[FrameBatch](16)
    seen: list[int] = []
    with trio.fail_after(20):
        async with receive, trio.open_nursery() as nursery:
            await nursery.start(feed.serve, send)
            nursery.start_soon(exchange, ws_server)
            while feed.handovers < 1:
                batch = await receive.receive()
                seen.extend(json.loads(f)["data"]["c"] for f in batch.frames)
            batch = await receive.receive()
            seen.extend(json.loads(f)["data"]["c"] for f in batch.frames)
            stats = feed.statistics()
            nursery.cancel_scope.cancel()
    first, second = ws_server.connections
    assert first.closed_at is not None
    # The old connection kept delivering until the successor (accepted while it was
    # still open) delivered; then it was closed by us, normally.
    assert second.accepted_at < first.closed_at
    assert first.close_code == 1000
    assert seen == sorted(seen)
    assert seen[0] == 0
    assert seen[-1] == 1
    assert stats.reconnects["server_shutdown"] == 1
    assert stats.reconnects_total == 1
    assert stats.connected
    assert stats.subscribed
