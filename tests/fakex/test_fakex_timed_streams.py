"""Every stream kind of the vocabulary from the fake over a real loopback WebSocket, decoded
by marketd's own codec, and checked against the fake's trades and true book.

Tests that compare with trades start the fake paused, subscribe, then resume it: the trade
stream then carries every trade the fake ever made, so a candle or a window can be summed
from the frames alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

import attrs
import orjson
import trio
from fxclient import open_ws
from kit.wait import poll_until
from trio_websocket import WebSocketConnection

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.exchanges.binance import vocabulary
from marketd.fakex import FakeExchange, FakeExchangeConfig, open_fake_exchange
from marketd.fakex.windows import window_start
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MarketEvent

CONFIG = FakeExchangeConfig(symbols=3, seed=11, rate=2_000, book_journal=200_000)
PAUSED = attrs.evolve(CONFIG, paused=True)
EIGHT = Decimal("0.00000001")
WINDOW_MS = {"1h": 3_600_000, "4h": 4 * 3_600_000, "1d": 24 * 3_600_000}


@attrs.define
class Got:
    stream: str
    data: Any  # the payload as JSON
    events: list[MarketEvent]  # as marketd decodes it
    kinds: list[str]


# Whether what was read so far is enough.
Done = Callable[[list[Got]], bool]


class Reader:
    """Reads combined frames and decodes each with marketd's codec: none may be malformed
    or unknown."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.codec = Codecs(TopicSettings())
        self.got: list[Got] = []

    async def read(self, ws: WebSocketConnection, done: Done) -> None:
        while not done(self.got):
            text = await ws.get_message()
            text = text if isinstance(text, str) else text.decode()
            frame = orjson.loads(text)
            if "stream" not in frame:
                continue  # a control reply
            result = self.codec.decode_batch(FrameBatch(self.market, "t", [text], [0]))
            assert (result.malformed, result.unknown) == (0, 0), result.error
            events = [MarketEvent.FromString(r.value) for r in result.records]
            kinds = [r.kind for r in result.records]
            self.got.append(Got(frame["stream"], frame["data"], events, kinds))

    def of(self, stream: str) -> list[Got]:
        return [g for g in self.got if g.stream == stream]


def count(stream: str, n: int, where: Callable[[Got], bool] = lambda g: True) -> Done:
    return lambda got: sum(1 for g in got if g.stream == stream and where(g)) >= n


def all_of(*conditions: Done) -> Done:
    return lambda got: all(c(got) for c in conditions)


async def started(fx: FakeExchange, market: Market, streams: int) -> None:
    """Resume a paused fake once ``streams`` subscriptions are registered."""
    await poll_until(
        lambda: fx.hubs[market].subscribers() >= streams, timeout=20, what="every stream subscribed"
    )
    fx.resume()


def dec(text: str) -> Decimal:
    return Decimal(text)


# -- every name of the table ---------------------------------------------------------------


def names(market: Market, symbol: str = "btcusdt") -> list[str]:
    return sorted(
        [f"{symbol}@{c}" for c in vocabulary.channels(market)]
        + list(vocabulary.all_market_streams(market))
    )


async def test_every_spot_stream_of_the_table_is_generated_and_decodes() -> None:
    want = names(Market.SPOT)
    reader = Reader(Market.SPOT)
    with trio.fail_after(30):
        async with open_fake_exchange(CONFIG) as fx:
            url = fx.spot_ws_url + "/stream?streams=" + "/".join(want)
            async with open_ws(url, queue=1_000) as ws:
                await reader.read(ws, lambda got: {g.stream for g in got} >= set(want))
    for name in want:
        row = vocabulary.BY_ALL_MARKET[Market.SPOT].get(name) or vocabulary.BY_CHANNEL[
            Market.SPOT
        ].get(name.partition("@")[2])
        assert row is not None
        for g in reader.of(name):
            assert set(g.kinds) == {row.kind}, name
            assert {e.WhichOneof("event") for e in g.events} == {row.message}, name


async def test_every_usdm_stream_of_the_table_is_generated_and_decodes() -> None:
    want = names(Market.USDM)
    by_route: dict[vocabulary.Route, list[str]] = {}
    for name in want:
        route = vocabulary.route(Market.USDM, name)
        assert route is not None
        by_route.setdefault(route, []).append(name)
    readers = {route: Reader(Market.USDM) for route in by_route}
    with trio.fail_after(30):
        async with open_fake_exchange(CONFIG) as fx, trio.open_nursery() as nursery:
            for route, streams in by_route.items():

                async def one(
                    route: vocabulary.Route = route, streams: list[str] = streams
                ) -> None:
                    url = f"{fx.futures_ws_url}{route.value}/stream?streams=" + "/".join(streams)
                    async with open_ws(url, queue=1_000) as ws:
                        await readers[route].read(
                            ws, lambda got: {g.stream for g in got} >= set(streams)
                        )

                nursery.start_soon(one)
    for route, streams in by_route.items():
        for name in streams:
            gots = readers[route].of(name)
            assert gots, name
            if name == "!forceOrder@arr":  # one liquidation per frame, not an array
                assert all(isinstance(g.data, dict) for g in gots)
            row = vocabulary.BY_ALL_MARKET[Market.USDM].get(name) or vocabulary.BY_CHANNEL[
                Market.USDM
            ].get(name.partition("@")[2])
            assert row is not None
            assert {k for g in gots for k in g.kinds} == {row.kind}, name


# -- klines --------------------------------------------------------------------------------


def check_candle(bar: MarketEvent, trades: list[dict[str, Any]], *, agg: bool) -> None:
    """``bar`` (a decoded kline) against the trades (trade or aggTrade payloads) it holds."""
    k = bar.kline
    first = "f" if agg else "t"
    last = "l" if agg else "t"
    assert k.first_trade_id == trades[0][first]
    assert k.last_trade_id == trades[-1][last]
    n = sum(t["l"] - t["f"] + 1 for t in trades) if agg else len(trades)
    assert k.trade_count == n
    ids = [i for t in trades for i in (range(t["f"], t["l"] + 1) if agg else [t["t"]])]
    assert ids == list(range(k.first_trade_id, k.last_trade_id + 1))  # no trade missing
    prices = [dec(t["p"]) for t in trades]
    assert dec(k.open_price) == prices[0]
    assert dec(k.close_price) == prices[-1]
    assert dec(k.high_price) == max(prices)
    assert dec(k.low_price) == min(prices)
    assert dec(k.base_volume) == sum(dec(t["q"]) for t in trades)
    assert dec(k.quote_volume) == sum(dec(t["p"]) * dec(t["q"]) for t in trades)
    takers = [t for t in trades if not t["m"]]  # the buyer took
    assert dec(k.taker_buy_base_volume) == sum((dec(t["q"]) for t in takers), Decimal(0))
    taker_quote = sum((dec(t["p"]) * dec(t["q"]) for t in takers), Decimal(0))
    assert dec(k.taker_buy_quote_volume) == taker_quote


async def test_spot_klines_are_the_candles_of_the_trades() -> None:
    """``kline_1s`` closes every real second: each closed candle holds exactly the trades
    the trade stream sent in its second, and each open one the trades so far."""
    streams = ["btcusdt@trade", "btcusdt@kline_1s", "btcusdt@kline_1m"]
    reader = Reader(Market.SPOT)
    closed = count("btcusdt@kline_1s", 3, lambda g: g.events[0].kline.closed)
    with trio.fail_after(20):
        async with open_fake_exchange(PAUSED) as fx:
            url = fx.spot_ws_url + "/stream?streams=" + "/".join(streams)
            async with open_ws(url, queue=1_000) as ws:
                await started(fx, Market.SPOT, len(streams))
                await reader.read(ws, all_of(closed, count("btcusdt@kline_1m", 2)))
    trades = [g.data for g in reader.of("btcusdt@trade")]
    assert trades
    for name in ("btcusdt@kline_1s", "btcusdt@kline_1m"):
        for g in reader.of(name):
            k = g.events[0].kline
            assert g.events[0].symbol == "BTCUSDT"
            assert k.interval == name.rpartition("_")[2]
            if k.trade_count == 0:
                assert (k.first_trade_id, k.last_trade_id) == (-1, -1)
                continue
            inside = [t for t in trades if k.first_trade_id <= t["t"] <= k.last_trade_id]
            check_candle(g.events[0], inside, agg=False)
            assert all(k.open_time_ms <= t["T"] <= k.close_time_ms for t in inside)
            if k.closed:  # and no trade of its second is missing
                times = [t for t in trades if k.open_time_ms <= t["T"] <= k.close_time_ms]
                assert times == inside
    seconds = [g.events[0].kline for g in reader.of("btcusdt@kline_1s")]
    assert sum(1 for k in seconds if k.closed and k.trade_count) >= 2  # checked above
    for k in seconds:
        assert k.open_time_ms % 1_000 == 0
        assert k.close_time_ms == k.open_time_ms + 999


async def test_usdm_klines_with_a_short_interval_are_the_candles_of_the_agg_trades() -> None:
    """A test length (``kline_ms``) makes ``kline_1m`` close every 400 ms."""
    config = attrs.evolve(PAUSED, kline_ms=400)
    streams = ["btcusdt@aggTrade", "btcusdt@kline_1m", "ethusdt@kline_1d"]
    reader = Reader(Market.USDM)
    closed = count("btcusdt@kline_1m", 4, lambda g: g.events[0].kline.closed)
    with trio.fail_after(20):
        async with open_fake_exchange(config) as fx:
            url = fx.futures_ws_url + "/market/stream?streams=" + "/".join(streams)
            async with open_ws(url, queue=1_000) as ws:
                await started(fx, Market.USDM, len(streams))
                await reader.read(ws, all_of(closed, count("ethusdt@kline_1d", 2)))
    aggs = [g.data for g in reader.of("btcusdt@aggTrade")]
    bars = [g.events[0] for g in reader.of("btcusdt@kline_1m")]
    done = [b for b in bars if b.kline.closed]
    for bar in done:
        k = bar.kline
        assert (k.interval, k.close_time_ms - k.open_time_ms) == ("1m", 399)
        inside = [a for a in aggs if k.open_time_ms <= a["T"] <= k.close_time_ms]
        if inside:
            check_candle(bar, inside, agg=True)
        else:
            assert k.trade_count == 0
    assert sum(1 for b in done if b.kline.trade_count) >= 2  # checked above
    # Consecutive closed candles follow one another (no trade can fall between them).
    for a, b in itertools.pairwise(done):
        assert b.kline.open_time_ms >= a.kline.close_time_ms + 1
        if a.kline.trade_count and b.kline.trade_count:
            assert b.kline.first_trade_id > a.kline.last_trade_id
    eth = [g.events[0] for g in reader.of("ethusdt@kline_1d")]
    assert {e.symbol for e in eth} == {"ETHUSDT"}
    assert {e.kline.interval for e in eth} == {"1d"}  # the test length holds for every interval
    assert {e.kline.close_time_ms - e.kline.open_time_ms for e in eth} == {399}


# -- average price and rolling windows (spot) -----------------------------------------------


def vwap(trades: list[dict[str, Any]]) -> Decimal:
    quote = sum((dec(t["p"]) * dec(t["q"]) for t in trades), Decimal(0))
    volume = sum((dec(t["q"]) for t in trades), Decimal(0))
    return (quote / volume).quantize(EIGHT, rounding=ROUND_DOWN)


async def test_spot_avg_price_and_rolling_tickers_sum_the_trades() -> None:
    """avgPrice is the volume-weighted price of the last 5 minutes of trades, the rolling
    tickers the statistics of theirs: each pushed value is the trades sent before it."""
    windows = ("1h", "4h", "1d")
    streams = ["btcusdt@trade", "btcusdt@avgPrice"] + [f"btcusdt@ticker_{w}" for w in windows]
    reader = Reader(Market.SPOT)
    with trio.fail_after(20):
        async with open_fake_exchange(PAUSED) as fx:
            url = fx.spot_ws_url + "/stream?streams=" + "/".join(streams)
            async with open_ws(url, queue=1_000) as ws:
                await started(fx, Market.SPOT, len(streams))
                await reader.read(ws, all_of(*(count(s, 2) for s in streams[1:])))
    trades = [g.data for g in reader.of("btcusdt@trade")]
    for g in reader.of("btcusdt@avgPrice"):
        avg = g.events[0].avg_price
        now = g.events[0].event_time_ms
        start = window_start(now, 300_000, 1_000)
        # A push runs before that round's events: the trades before it, all of them here.
        inside = [t for t in trades if start <= t["T"] < now]
        assert (avg.interval, dec(avg.average_price)) == ("5m", vwap(inside))
        assert avg.last_trade_time_ms == inside[-1]["T"]
    for w in windows:
        for g in reader.of(f"btcusdt@ticker_{w}"):
            t = g.events[0].ticker
            now = g.events[0].event_time_ms
            assert (t.window, g.kinds) == (w, [f"{w}Ticker"])
            inside = [x for x in trades if x["T"] < now]
            prices = [dec(x["p"]) for x in inside]
            start = window_start(now, WINDOW_MS[w], 60_000)
            assert (t.open_time_ms, t.close_time_ms) == (start, now)
            assert (t.first_trade_id, t.last_trade_id) == (inside[0]["t"], inside[-1]["t"])
            assert t.trade_count == len(inside)
            assert (dec(t.open_price), dec(t.last_price)) == (prices[0], prices[-1])
            assert (dec(t.high_price), dec(t.low_price)) == (max(prices), min(prices))
            assert dec(t.base_volume) == sum(dec(x["q"]) for x in inside)
            assert dec(t.weighted_avg_price) == vwap(inside)
            assert dec(t.price_change) == prices[-1] - prices[0]
            pct = (prices[-1] - prices[0]) * 100 / prices[0]
            assert abs(dec(t.price_change_percent) - pct) <= Decimal("0.0005")


# -- partial depth -------------------------------------------------------------------------


Levels = list[list[str]]


def top(fx: FakeExchange, market: Market, update_id: int, levels: int) -> tuple[Levels, Levels]:
    _, bids, asks = fx.true_book(market, "BTCUSDT", update_id)
    return [list(x) for x in bids[:levels]], [list(x) for x in asks[:levels]]


def levels_of(side: Any) -> list[list[str]]:
    return [[level.price, level.quantity] for level in side]


async def test_spot_partial_depth_is_the_top_of_the_true_book() -> None:
    streams = ["btcusdt@depth5", "btcusdt@depth10@100ms", "btcusdt@depth20@1000ms"]
    reader = Reader(Market.SPOT)
    with trio.fail_after(20):
        async with open_fake_exchange(CONFIG) as fx:
            url = fx.spot_ws_url + "/stream?streams=" + "/".join(streams)
            async with open_ws(url, queue=1_000) as ws:
                await reader.read(ws, all_of(*(count(s, 2) for s in streams)))
            for name in streams:
                n = int(name.partition("@depth")[2].partition("@")[0])
                ids = []
                for g in reader.of(name):
                    assert set(g.data) == {"lastUpdateId", "bids", "asks"}
                    p = g.events[0].partial_book
                    assert (g.events[0].symbol, p.levels) == ("BTCUSDT", n)
                    bids, asks = top(fx, Market.SPOT, p.last_update_id, n)
                    assert (levels_of(p.bids), levels_of(p.asks)) == (bids, asks)
                    assert len(bids) == len(asks) == n
                    ids.append(p.last_update_id)
                assert ids == sorted(set(ids))  # pushed when the book changed


async def test_usdm_partial_depth_is_the_top_and_chains_with_the_diff_stream() -> None:
    streams = [
        "btcusdt@depth@100ms",
        "btcusdt@depth5@100ms",
        "btcusdt@depth10",
        "btcusdt@depth20@500ms",
    ]
    reader = Reader(Market.USDM)
    with trio.fail_after(20):
        async with open_fake_exchange(CONFIG) as fx:
            url = fx.futures_ws_url + "/public/stream?streams=" + "/".join(streams)
            async with open_ws(url, queue=1_000) as ws:
                await reader.read(ws, all_of(*(count(s, 3) for s in streams[1:])))
            diffs = [g.data for g in reader.of("btcusdt@depth@100ms")]
            by_pu = {d["pu"]: d for d in diffs}
            by_u = {d["u"]: d for d in diffs}
            for name in streams[1:]:
                n = int(name.partition("@depth")[2].partition("@")[0])
                partials = reader.of(name)
                for prev, g in itertools.pairwise(partials):
                    assert g.data["pu"] == prev.data["u"]
                for g in partials:
                    d = g.data
                    assert d["e"] == "depthUpdate"
                    p = g.events[0].partial_book
                    assert (p.levels, p.last_update_id, p.first_update_id) == (n, d["u"], d["U"])
                    assert p.prev_final_update_id == d["pu"]
                    # U..u are the diff stream's ids since the previous push, T its time.
                    assert by_pu[d["pu"]]["U"] == d["U"]
                    assert by_u[d["u"]]["T"] == p.transaction_time_ms
                    bids, asks = top(fx, Market.USDM, d["u"], n)
                    assert (levels_of(p.bids), levels_of(p.asks)) == (bids, asks)


# -- liquidations and mark prices (USD-M) ---------------------------------------------------


async def test_usdm_liquidations_are_plausible_and_one_per_symbol_per_second() -> None:
    streams = ["btcusdt@aggTrade", "btcusdt@forceOrder", "!forceOrder@arr", "btcusdt@markPrice"]
    reader = Reader(Market.USDM)

    def symbols(got: list[Got]) -> int:
        return len({g.data["o"]["s"] for g in got if g.stream == "!forceOrder@arr"})

    with trio.fail_after(30):
        async with open_fake_exchange(CONFIG) as fx:
            url = fx.futures_ws_url + "/market/stream?streams=" + "/".join(streams)
            async with open_ws(url, queue=1_000) as ws:
                await reader.read(
                    ws,
                    all_of(
                        count("btcusdt@forceOrder", 2),
                        count("btcusdt@markPrice", 1),
                        lambda got: symbols(got) >= 2,
                    ),
                )
    last_price = None
    own: list[Got] = []
    everyone: list[Got] = []
    for g in reader.got:
        if g.stream == "btcusdt@aggTrade":
            last_price = dec(g.data["p"])
            continue
        if g.stream == "btcusdt@markPrice":
            mark = g.events[0].mark_price
            assert mark.mark_price == g.data["p"]
            continue
        assert isinstance(g.data, dict)  # one liquidation a frame on both streams
        event = g.events[0]
        q = event.liquidation
        assert (q.order_type, q.time_in_force, q.status) == ("LIMIT", "IOC", "FILLED")
        assert q.quantity == q.filled_quantity == q.last_filled_quantity
        assert dec(q.quantity) > 0
        price, average = dec(q.price), dec(q.average_price)
        assert price <= average if q.side == "SELL" else price >= average
        if event.symbol == "BTCUSDT" and last_price is not None:
            assert abs(average - last_price) / last_price < Decimal("0.01")
        (own if g.stream == "btcusdt@forceOrder" else everyone).append(g)
    for gots in (own, everyone):
        times: dict[str, list[int]] = {}
        for g in gots:
            times.setdefault(g.events[0].symbol, []).append(g.events[0].event_time_ms)
        for ts in times.values():
            assert all(b - a >= 1_000 for a, b in itertools.pairwise(ts))
    # Both streams carry the same liquidations of a symbol.
    btc_all = [g.data for g in everyone if g.data["o"]["s"] == "BTCUSDT"]
    btc_own = [g.data for g in own]
    common = min(len(btc_all), len(btc_own))
    assert btc_own[:common] == btc_all[:common]
