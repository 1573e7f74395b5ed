"""The timed kinds' pure core, on an explicit clock: candles, windows, liquidations, feeds.

Real interval lengths (a minute, a week, a month) are checked here without waiting: the
feeds run on ``now_ms`` values the test chooses.
"""

from __future__ import annotations

import datetime
import itertools
from decimal import Decimal
from typing import Any

import orjson
import pytest

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.fakex.candles import KlineBuilder, candle_span
from marketd.fakex.history import RawTrade
from marketd.fakex.hub import MarketHub
from marketd.fakex.liquidations import LiquidationMaker
from marketd.fakex.market import MarketModel, symbol_specs
from marketd.fakex.protocol import parse_stream
from marketd.fakex.timed import NEVER
from marketd.fakex.windows import TradeWindow, window_start
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MarketEvent

CODEC = Codecs(TopicSettings())
T0 = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC, a Monday


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    moment = datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC)
    return int(moment.timestamp()) * 1000


class Sink:
    """A subscriber that keeps what it is sent."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def push(self, frame: str) -> None:
        self.frames.append(frame)

    def push_seq(self, frame: str) -> None:
        self.frames.append(frame)

    def take(self) -> list[dict[str, Any]]:
        out = [orjson.loads(f) for f in self.frames]
        self.frames.clear()
        return out


def decode(market: Market, stream: str, payload: dict[str, Any]) -> MarketEvent:
    frame = orjson.dumps({"stream": stream, "data": payload}).decode()
    result = CODEC.decode_batch(FrameBatch(market, "t", [frame], [0]))
    assert (result.malformed, result.unknown, len(result.records)) == (0, 0, 1), result.error
    return MarketEvent.FromString(result.records[0].value)


# -- candles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "t", "start", "end"),
    [
        ("1s", T0 + 1_234, T0 + 1_000, T0 + 1_999),
        ("1m", T0 + 61_000, T0 + 60_000, T0 + 119_999),
        ("15m", ms(2024, 1, 1, 0, 29), ms(2024, 1, 1, 0, 15), ms(2024, 1, 1, 0, 30) - 1),
        ("4h", ms(2024, 1, 1, 5), ms(2024, 1, 1, 4), ms(2024, 1, 1, 8) - 1),
        ("1d", ms(2024, 1, 1, 23), T0, ms(2024, 1, 2) - 1),
        ("1w", ms(2024, 1, 3, 12), ms(2024, 1, 1), ms(2024, 1, 8) - 1),  # Wed → Monday
        ("1w", ms(2024, 1, 7, 23), ms(2024, 1, 1), ms(2024, 1, 8) - 1),  # Sunday: same week
        ("1M", ms(2024, 2, 29, 12), ms(2024, 2, 1), ms(2024, 3, 1) - 1),  # leap February
        ("1M", ms(2023, 12, 31, 23), ms(2023, 12, 1), ms(2024, 1, 1) - 1),  # December
    ],
)
def test_candle_spans_are_binances(interval: str, t: int, start: int, end: int) -> None:
    assert candle_span(interval, t) == (start, end)


def test_a_short_length_replaces_every_interval() -> None:
    assert candle_span("1M", T0 + 1_700, length_ms=500) == (T0 + 1_500, T0 + 1_999)


def trade(tid: int, price: int, qty: int, t: int, maker: bool = False) -> RawTrade:
    return RawTrade(tid, price, qty, t, maker)


def test_kline_builder_folds_closes_and_opens_at_the_previous_close() -> None:
    b = KlineBuilder("1m", T0 + 5_000, price=100)
    assert (b.candle.open_time, b.candle.first_id, b.candle.count) == (T0, -1, 0)
    closed = b.fold(
        [
            trade(7, 101, 2, T0 + 6_000),
            trade(8, 99, 1, T0 + 7_000, True),
            trade(9, 103, 3, T0 + 59_999),
        ]
    )
    assert closed == []
    c = b.candle
    assert (c.open, c.high, c.low, c.close) == (101, 103, 99, 103)
    assert (c.first_id, c.last_id, c.count, c.volume) == (7, 9, 3, 6)
    assert (c.quote, c.taker_volume, c.taker_quote) == (
        101 * 2 + 99 + 103 * 3,
        5,
        101 * 2 + 103 * 3,
    )
    # A trade of the next minute closes this candle; then an empty minute passes.
    (done,) = b.fold([trade(10, 104, 1, T0 + 60_000)])
    assert (done.close_time, done.last_id) == (T0 + 59_999, 9)
    assert b.roll(T0 + 119_999) is None
    rolled = b.roll(T0 + 125_000)
    assert rolled is not None
    assert rolled.last_id == 10
    empty = b.candle
    assert (empty.open_time, empty.count, empty.first_id, empty.last_id) == (
        T0 + 120_000,
        0,
        -1,
        -1,
    )
    assert (empty.open, empty.high, empty.low, empty.close) == (104, 104, 104, 104)


# -- windows -------------------------------------------------------------------------------


def test_window_drops_whole_buckets_only() -> None:
    w = TradeWindow(window_ms=3_000, bucket_ms=1_000)
    for i, t in enumerate((T0 + 100, T0 + 900, T0 + 1_500, T0 + 3_200)):
        w.add(trade(i, 100 + i, 1, t))
    st = w.stats(T0 + 3_500)  # window start: T0 + 500 → rounded down to T0
    assert st is not None
    assert (st.open_time, st.first_id, st.count, st.open, st.close) == (T0, 0, 4, 100, 103)
    st = w.stats(T0 + 4_000)  # start T0 + 1000: the first bucket goes
    assert st is not None
    assert (st.first_id, st.last_id, st.count, st.low, st.high) == (2, 3, 2, 102, 103)
    assert (st.volume, st.quote, st.last_time) == (2, 205, T0 + 3_200)
    assert w.stats(T0 + 10_000) is None
    assert window_start(T0 + 61_234, 60_000, 60_000) == T0


# -- liquidations --------------------------------------------------------------------------


def test_liquidations_are_seeded_and_plausible() -> None:
    a = LiquidationMaker(3, "usdm", "BTCUSDT")
    b = LiquidationMaker(3, "usdm", "BTCUSDT")
    seq_a = [a.next(1_000, 1_001, 50, T0 + i) for i in range(200)]
    assert seq_a == [b.next(1_000, 1_001, 50, T0 + i) for i in range(200)]
    made = [liq for liq in seq_a if liq is not None]
    assert 50 < len(made) < 150
    assert {liq.side for liq in made} == {"BUY", "SELL"}
    for liq in made:
        assert 1 <= liq.quantity <= 50
        if liq.side == "SELL":
            assert liq.average_price == 1_000
            assert liq.price < 1_000
        else:
            assert liq.average_price == 1_001
            assert liq.price > 1_001


# -- feeds on an explicit clock -------------------------------------------------------------


def hub_with(
    market: Market, *names: str, kline_ms: int = 0, journal: int = 0
) -> tuple[MarketHub, Sink]:
    model = MarketModel(market, symbol_specs(2, 4), 4, journal=journal)
    hub = MarketHub(model, kline_ms=kline_ms)
    sink = Sink()
    for name in names:
        subscribe(hub, sink, name)
    return hub, sink


def subscribe(hub: MarketHub, sink: Sink, name: str) -> None:
    hub.add(sink, parse_stream(hub.market, name, hub.symbol_index), combined=True)


def run(hub: MarketHub, start: int, end: int, step: int = 10, events: int = 3) -> None:
    """The fake's drive loop on a chosen clock: tick, then events, every ``step`` ms."""
    for now in range(start, end, step):
        hub.tick(now)
        hub.run_steps(events, now)


@pytest.mark.parametrize("market", list(Market))
def test_one_minute_candles_close_at_the_boundary_with_every_trade(market: Market) -> None:
    trades = "btcusdt@trade" if market is Market.SPOT else "btcusdt@aggTrade"
    hub, sink = hub_with(market, trades)
    run(hub, T0, T0 + 30_000)
    subscribe(hub, sink, "btcusdt@kline_1m")  # mid-minute: its candle is read from history
    run(hub, T0 + 30_000, T0 + 180_010)
    klines = [f["data"] for f in sink.take() if f["stream"] == "btcusdt@kline_1m"]
    closed = [k for k in klines if k["k"]["x"]]
    assert [(k["k"]["t"], k["E"]) for k in closed] == [
        (T0, T0 + 60_000),
        (T0 + 60_000, T0 + 120_000),
        (T0 + 120_000, T0 + 180_000),
    ]
    # Open candles: pushed at the market's cadence at most (2 s spot, 250 ms USD-M).
    cadence = 2_000 if market is Market.SPOT else 250
    opened = [k["E"] for k in klines if not k["k"]["x"]]
    assert all(b - a >= cadence for a, b in itertools.pairwise(opened))
    assert len(opened) >= 150_000 // cadence - 3
    # Every trade of a closed minute is in its candle, and nothing else.
    history = hub.model.symbols[0].history
    assert history.first_id is not None
    all_trades = history.trades(history.first_id, history.next_id)
    fr = hub.frames[0]
    for k in closed:
        bar = k["k"]
        inside = [t for t in all_trades if bar["t"] <= t.time <= bar["T"]]
        assert (bar["f"], bar["L"], bar["n"]) == (inside[0].id, inside[-1].id, len(inside))
        assert bar["o"] == fr.fmt_p(inside[0].price)
        assert bar["c"] == fr.fmt_p(inside[-1].price)
        assert bar["h"] == fr.fmt_p(max(t.price for t in inside))
        assert bar["l"] == fr.fmt_p(min(t.price for t in inside))
        assert bar["v"] == fr.fmt_q(sum(t.qty for t in inside))
        assert bar["V"] == fr.fmt_q(sum(t.qty for t in inside if not t.buyer_maker))
        event = decode(market, "btcusdt@kline_1m", k)
        assert event.kline.closed
        assert event.kline.close_price == bar["c"]
    assert closed[0]["k"]["f"] == history.first_id  # the trades before the subscription


def test_a_short_kline_length_closes_on_its_own_boundaries() -> None:
    hub, sink = hub_with(Market.USDM, "btcusdt@kline_1M", kline_ms=500)
    run(hub, T0 + 100, T0 + 2_100)
    closed = [f["data"]["k"] for f in sink.take() if f["data"]["k"]["x"]]
    assert [(k["t"], k["T"], k["i"]) for k in closed] == [
        (T0 + s, T0 + s + 499, "1M") for s in (0, 500, 1_000, 1_500)
    ]


def test_partial_depth_is_the_true_top_and_chains_with_the_diffs() -> None:
    hub, sink = hub_with(
        Market.USDM, "btcusdt@depth", "btcusdt@depth5@100ms", "btcusdt@depth20", journal=10_000
    )
    run(hub, T0, T0 + 1_000)
    frames = sink.take()
    diffs = [f["data"] for f in frames if f["stream"] == "btcusdt@depth"]
    by_pu = {d["pu"]: d for d in diffs}
    by_u = {d["u"]: d for d in diffs}
    journal = hub.model.symbols[0].journal
    assert journal is not None
    fr = hub.frames[0]
    for stream, levels, speed in (("btcusdt@depth5@100ms", 5, 100), ("btcusdt@depth20", 20, 250)):
        partials = [f["data"] for f in frames if f["stream"] == stream]
        assert len(partials) >= 1_000 // speed - 2
        for prev, p in itertools.pairwise(partials):
            assert p["pu"] == prev["u"]
            assert p["E"] - prev["E"] >= speed
        for p in partials:
            assert (by_pu[p["pu"]]["U"], by_u[p["u"]]["T"]) == (p["U"], p["T"])
            book = journal.book_at(p["u"])
            assert p["b"] == [[fr.fmt_p(x), fr.fmt_q(q)] for x, q in book.bids.top(levels)]
            assert p["a"] == [[fr.fmt_p(x), fr.fmt_q(q)] for x, q in book.asks.top(levels)]
            assert decode(Market.USDM, stream, p).partial_book.levels == levels


def test_timed_kinds_cost_nothing_once_unsubscribed() -> None:
    names = ("btcusdt@kline_1m", "btcusdt@depth5", "btcusdt@forceOrder", "!forceOrder@arr")
    hub, sink = hub_with(Market.USDM, *names)
    assert hub.timed.next_due == 0
    run(hub, T0, T0 + 3_000)
    assert sink.take()
    for name in names:
        hub.remove(sink, parse_stream(Market.USDM, name, hub.symbol_index), combined=True)
    hub.tick(T0 + 10_000)
    assert (hub.timed.feeds, hub.timed.depth_watchers, hub.subscribers()) == ({}, [None, None], 0)
    assert hub.timed.next_due == NEVER
    run(hub, T0 + 10_000, T0 + 13_000)
    assert sink.frames == []


def test_liquidations_do_not_change_the_market() -> None:
    quiet, _ = hub_with(Market.USDM)
    busy, sink = hub_with(Market.USDM, "!forceOrder@arr", "btcusdt@forceOrder")
    run(quiet, T0, T0 + 5_000)
    run(busy, T0, T0 + 5_000)
    frames = sink.take()
    assert frames
    assert all(isinstance(f["data"], dict) for f in frames)  # one liquidation per frame
    for q, b in zip(quiet.model.symbols, busy.model.symbols, strict=True):
        assert q.book.snapshot(1_000) == b.book.snapshot(1_000)
        assert q.history.next_id == b.history.next_id
    per_symbol: dict[tuple[str, str], list[int]] = {}
    for f in frames:
        per_symbol.setdefault((f["stream"], f["data"]["o"]["s"]), []).append(f["data"]["E"])
    for times in per_symbol.values():
        assert all(b - a >= 1_000 for a, b in itertools.pairwise(times))


def test_avg_price_and_window_tickers_on_a_clock() -> None:
    hub, sink = hub_with(Market.SPOT, "btcusdt@avgPrice", "btcusdt@ticker_1h")
    run(hub, T0, T0 + 400_000, step=100, events=2)
    history = hub.model.symbols[0].history
    assert history.first_id is not None
    trades = history.trades(history.first_id, history.next_id)
    fr = hub.frames[0]
    frames = sink.take()
    avgs = [f["data"] for f in frames if f["stream"] == "btcusdt@avgPrice"]
    tickers = [f["data"] for f in frames if f["stream"] == "btcusdt@ticker_1h"]
    assert len(avgs) > 300
    for a in avgs[-3:]:  # the window has slid: five minutes of a longer history
        start = window_start(a["E"], 300_000, 1_000)
        inside = [t for t in trades if start <= t.time < a["E"]]
        assert inside[0].id > history.first_id
        quote = sum(
            (Decimal(fr.fmt_p(t.price)) * Decimal(fr.fmt_q(t.qty)) for t in inside), Decimal(0)
        )
        volume = sum((Decimal(fr.fmt_q(t.qty)) for t in inside), Decimal(0))
        want = (quote / volume).quantize(Decimal("0.00000001"), rounding="ROUND_DOWN")
        assert (Decimal(a["w"]), a["T"], a["i"]) == (want, inside[-1].time, "5m")
        assert decode(Market.SPOT, "btcusdt@avgPrice", a).avg_price.average_price == a["w"]
    last = tickers[-1]
    inside = [t for t in trades if t.time < last["E"]]  # the whole history is in the hour
    assert last["O"] == window_start(last["E"], 3_600_000, 60_000)
    assert (last["F"], last["L"], last["n"]) == (trades[0].id, inside[-1].id, len(inside))
    assert (last["o"], last["c"]) == (fr.fmt_p(trades[0].price), fr.fmt_p(inside[-1].price))
    assert decode(Market.SPOT, "btcusdt@ticker_1h", last).ticker.window == "1h"
