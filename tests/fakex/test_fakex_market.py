"""The pure core of the fake exchange: seeded market model, formatting, protocol parsing."""

from __future__ import annotations

import itertools

import orjson
import pytest

from marketd.data.records import Market
from marketd.exchanges.binance import vocabulary
from marketd.fakex.book import OrderBook
from marketd.fakex.frames import SymbolFrames, decimal_formatter
from marketd.fakex.history import TradeHistory
from marketd.fakex.market import MarketModel, SymbolModel, symbol_specs
from marketd.fakex.protocol import (
    BadPath,
    Channel,
    ControlError,
    Route,
    UnknownStream,
    parse_control,
    parse_stream,
    parse_ws_path,
    served,
)


def _contents(model: SymbolModel, steps: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for i in range(steps):
        trade, diff = model.step(1_000 + i)
        if trade is not None:
            out.append(("t", trade.agg_id, trade.first_id, trade.price, tuple(trade.qtys)))
        out.append(("d", diff.first_id, diff.last_id, tuple(diff.bids), tuple(diff.asks)))
    return out


def test_symbol_names_real_then_synthetic() -> None:
    specs = symbol_specs(50, seed=3)
    names = [s.symbol for s in specs]
    assert names[:5] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    assert names[42] == "SYM0042USDT"
    assert len(set(names)) == 50


@pytest.mark.parametrize("market", list(Market))
def test_same_seed_same_contents_regardless_of_schedule(market: Market) -> None:
    specs = symbol_specs(4, seed=9)
    a = MarketModel(market, specs, 9)
    b = MarketModel(market, specs, 9)
    # a: interleaved by the scheduler; b: one symbol at a time, at other times.
    steps = dict.fromkeys(range(4), 0)
    for idx in a.schedule(2_000):
        steps[idx] += 1
    seen_a = {i: _contents(SymbolModel(specs[i], market, 9), steps[i]) for i in steps}
    for i in steps:
        assert _contents(b.symbols[i], steps[i]) == seen_a[i]
    other = MarketModel(market, specs, 10)
    assert _contents(other.symbols[0], 50) != _contents(
        MarketModel(market, specs, 9).symbols[0], 50
    )


@pytest.mark.parametrize("market", list(Market))
def test_ids_consecutive_and_update_ids_chain(market: Market) -> None:
    model = SymbolModel(symbol_specs(1, 1)[0], market, seed=5)
    next_trade, next_agg = None, None
    prev_u = model.book.last_update_id
    for i in range(5_000):
        trade, diff = model.step(i)
        if trade is not None:
            if next_trade is not None:
                assert trade.first_id == next_trade
                assert trade.agg_id == next_agg
            next_trade = trade.first_id + len(trade.qtys)
            next_agg = trade.agg_id + 1
            assert all(q > 0 for q in trade.qtys)
        assert diff.prev_id == prev_u
        if market is Market.SPOT:
            assert diff.first_id == prev_u + 1
        else:
            assert diff.first_id > prev_u
        assert diff.last_id - diff.first_id + 1 == len(diff.bids) + len(diff.asks)
        prev_u = diff.last_id
    assert model.book.last_update_id == prev_u


def test_diffs_rebuild_the_true_book() -> None:
    model = SymbolModel(symbol_specs(3, 1)[2], Market.SPOT, seed=2)
    last, bids, asks = model.book.snapshot(10_000)
    local = OrderBook(last)
    local.apply(bids, asks, last)
    for i in range(3_000):
        _, diff = model.step(i)
        local.apply(diff.bids, diff.asks, diff.last_id)
        bb, ba = local.best_bid()[0], local.best_ask()[0]
        assert bb < ba
    assert local.snapshot(10_000) == model.book.snapshot(10_000)


def test_history_serves_consecutive_trades_and_aggs() -> None:
    model = SymbolModel(symbol_specs(1, 1)[0], Market.USDM, seed=4, history=1_000)
    trades = []
    for i in range(4_000):
        trade, _ = model.step(i)
        if trade is not None:
            trades.append(trade)
    hist = model.history
    assert hist.first_id is not None
    first_agg = hist.first_agg_id
    assert first_agg is not None
    aggs = hist.aggs(first_agg, 1_000)
    assert [a.id for a in aggs] == list(range(first_agg, first_agg + len(aggs)))
    for a, b in itertools.pairwise(aggs):
        assert b.first_id == a.last_id + 1
    by_agg = {t.agg_id: t for t in trades}
    for a in aggs:
        t = by_agg[a.id]
        assert (a.price, a.qty, a.first_id) == (t.price, sum(t.qtys), t.first_id)
    raw = hist.trades(hist.first_id, 1_000)
    assert [r.id for r in raw] == list(range(hist.first_id, hist.first_id + len(raw)))
    assert len(hist.trades(None, 10)) == 10
    assert hist.trades(None, 1)[0].id == hist.next_id - 1


def test_history_trims_to_capacity() -> None:
    hist = TradeHistory(100, 10, capacity=5)
    for i in range(20):
        hist.add(1_000 + i, [1, 2], i, buyer_maker=False)
    assert hist.next_id == 140
    assert hist.first_id is not None
    assert hist.first_id >= 140 - 10
    aggs = hist.aggs(0, 100)
    assert aggs[-1].id == 29
    assert aggs[-1].first_id == 138
    assert aggs[-1].last_id == 139
    assert aggs[-1].qty == 3


def test_decimal_strings_are_exact() -> None:
    fmt = decimal_formatter(2, 8)
    assert fmt(2712345) == "27123.45000000"
    assert fmt(5) == "0.05000000"
    assert fmt(-583) == "-5.83000000"
    assert decimal_formatter(0, 0)(1234) == "1234"
    assert decimal_formatter(0, 8)(7) == "7.00000000"
    assert decimal_formatter(3, 3)(1) == "0.001"


@pytest.mark.parametrize("market", list(Market))
def test_payload_field_sets(market: Market) -> None:
    model = SymbolModel(symbol_specs(1, 1)[0], market, seed=1)
    fr = SymbolFrames(model)
    trade = None
    while trade is None:
        trade, diff = model.step(1)
    agg = orjson.loads(fr.agg_trade(trade, 2))
    depth = orjson.loads(fr.depth(diff, 2))
    book = orjson.loads(fr.book_ticker(diff.last_id, 2))
    mini = orjson.loads(fr.mini_ticker(2))
    assert set(mini) == {"e", "E", "s", "c", "o", "h", "l", "v", "q"}
    assert isinstance(mini["c"], str)
    if market is Market.SPOT:
        raw = orjson.loads(fr.trades(trade, 2)[0])
        assert set(raw) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
        assert raw["p"].endswith("000000")
        assert set(agg) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}
        assert set(depth) == {"e", "E", "s", "U", "u", "b", "a"}
        assert set(book) == {"u", "s", "b", "B", "a", "A"}
    else:
        assert set(agg) == {"e", "E", "s", "a", "p", "q", "nq", "f", "l", "T", "m"}
        assert set(depth) == {"e", "E", "T", "s", "U", "u", "pu", "b", "a"}
        assert set(book) == {"e", "u", "E", "T", "s", "b", "B", "a", "A"}
        mark = orjson.loads(fr.mark_price(2))
        assert set(mark) == {"e", "E", "s", "p", "i", "P", "r", "T"}
    ticker = orjson.loads(fr.ticker(2))
    assert ticker["e"] == "24hrTicker"
    assert ticker["L"] - ticker["F"] + 1 == ticker["n"]


def test_jump_moves_the_last_price() -> None:
    model = SymbolModel(symbol_specs(1, 1)[0], Market.USDM, seed=1)
    before = model.stats.last
    shift, trade, _ = model.jump(5.0, 10)
    assert shift.best_changed
    assert trade.price / before == pytest.approx(1.05, abs=0.001)
    assert model.stats.last == trade.price


def test_parse_stream_and_routes() -> None:
    symbols = {"btcusdt": 0, "ethusdt": 1}
    ref = parse_stream(Market.USDM, "ethusdt@aggTrade", symbols)
    assert (ref.channel, ref.symbol, ref.route) == (Channel.AGG_TRADE, 1, Route.MARKET)
    assert parse_stream(Market.USDM, "btcusdt@depth@100ms", symbols).route is Route.PUBLIC
    assert parse_stream(Market.USDM, "btcusdt@bookTicker", symbols).route is Route.PUBLIC
    assert parse_stream(Market.USDM, "!markPrice@arr", symbols).symbol == -1
    assert parse_stream(Market.SPOT, "btcusdt@trade", symbols).route is Route.SPOT
    for bad in ("btcusdt@markPrice", "BTCUSDT@trade", "nope@trade", "btcusdt", "!ticker@arr"):
        with pytest.raises(UnknownStream):
            parse_stream(Market.SPOT, bad, symbols)
    with pytest.raises(UnknownStream):
        parse_stream(Market.USDM, "btcusdt@trade", symbols)


def test_the_fake_serves_exactly_the_vocabulary() -> None:
    """Every name of the vocabulary table, per market, is accepted and generated (no
    channel is quiet), routed as the table says; nothing else is accepted."""
    symbols = {"btcusdt": 0}
    for market in Market:
        table = vocabulary.channels(market) | vocabulary.all_market_streams(market)
        assert served(market) == table
        for channel in table:
            name = channel if channel.startswith("!") else f"btcusdt@{channel}"
            ref = parse_stream(market, name, symbols)
            assert ref.name == name
            want = vocabulary.route(market, name)
            assert want is not None
            route = {
                vocabulary.Route.NONE: Route.SPOT,
                vocabulary.Route.PUBLIC: Route.PUBLIC,
                vocabulary.Route.MARKET: Route.MARKET,
            }[want if market is Market.USDM else vocabulary.Route.NONE]
            assert ref.route is route, name
            assert ref.symbol == (-1 if channel.startswith("!") else 0)
    cases = [
        (Market.SPOT, "btcusdt@kline_1s", Channel.KLINE, "1s"),
        (Market.USDM, "btcusdt@kline_1M", Channel.KLINE, "1M"),
        (Market.SPOT, "btcusdt@depth20@100ms", Channel.PARTIAL_DEPTH, "depth20@100ms"),
        (Market.USDM, "btcusdt@depth5", Channel.PARTIAL_DEPTH, "depth5"),
        (Market.SPOT, "btcusdt@ticker_4h", Channel.WINDOW_TICKER, "4h"),
        (Market.SPOT, "btcusdt@avgPrice", Channel.AVG_PRICE, ""),
        (Market.USDM, "btcusdt@forceOrder", Channel.LIQUIDATION, ""),
        (Market.USDM, "!forceOrder@arr", Channel.ALL_LIQUIDATIONS, ""),
        (Market.USDM, "btcusdt@markPrice", Channel.MARK_PRICE, ""),
        (Market.USDM, "!markPrice@arr@1s", Channel.ALL_MARK_PRICES_1S, ""),
    ]
    for market, name, channel, variant in cases:
        ref = parse_stream(market, name, symbols)
        assert (ref.channel, ref.variant) == (channel, variant), name
    # Unknown: a retired stream, another market's channel, an unknown symbol, and the
    # spellings Binance does not use (mark prices every 3 s have no suffix).
    for market, bad in (
        (Market.SPOT, "!ticker@arr"),
        (Market.SPOT, "btcusdt@forceOrder"),
        (Market.USDM, "btcusdt@kline_1s"),
        (Market.USDM, "btcusdt@ticker_1h"),
        (Market.USDM, "btcusdt@avgPrice"),
        (Market.SPOT, "dogeusdt@kline_1m"),
        (Market.USDM, "btcusdt@markPrice@3s"),
        (Market.USDM, "!markPrice@arr@3s"),
        (Market.SPOT, "btcusdt@depth5@250ms"),
        (Market.USDM, "btcusdt@depth5@1000ms"),
    ):
        with pytest.raises(UnknownStream):
            parse_stream(market, bad, symbols)


def test_parse_ws_path() -> None:
    p = parse_ws_path("/usdm/market/stream?streams=btcusdt@aggTrade/!miniTicker@arr")
    assert (p.market, p.route, p.combined) == (Market.USDM, Route.MARKET, True)
    assert p.streams == ("btcusdt@aggTrade", "!miniTicker@arr")
    raw = parse_ws_path("/spot/ws/btcusdt@trade")
    assert (raw.combined, raw.streams) == (False, ("btcusdt@trade",))
    assert parse_ws_path("/usdm/ws").route is Route.PUBLIC  # unrouted legacy URL
    assert parse_ws_path("/spot/stream").streams == ()
    assert parse_ws_path("/usdm/private/ws").route is Route.PRIVATE  # user data: no market
    for bad in ("/", "/coinm/ws", "/spot/foo", "/usdm/public"):
        with pytest.raises(BadPath):
            parse_ws_path(bad)


def test_parse_control() -> None:
    req = parse_control('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":7}')
    assert (req.method, req.params, req.id) == ("SUBSCRIBE", ("btcusdt@trade",), 7)
    for text, code in (
        ("{not json", 3),
        ('{"method":"FOO","id":1}', 2),
        ('{"params":[],"id":1}', 2),
        ('{"method":"SUBSCRIBE","params":"x","id":1}', 1),
        ('{"method":"SUBSCRIBE","params":[],"id":-1}', 2),
    ):
        with pytest.raises(ControlError) as info:
            parse_control(text)
        assert info.value.code == code
        assert orjson.loads(info.value.reply())["error"]["code"] == code


def test_the_index_lags_the_mark_so_a_jump_opens_a_premium_that_fades() -> None:
    model = SymbolModel(symbol_specs(1, 1)[0], Market.USDM, seed=1)
    frames = SymbolFrames(model)

    def mark(now_ms: int) -> dict[str, str]:
        return orjson.loads(frames.mark_price(now_ms))

    calm = mark(1_000)
    assert calm["i"] == calm["p"]  # no move yet: no premium
    assert calm["r"] == "0.00010000"
    model.jump(5.0, 2_000)
    first = mark(2_000)  # asked at once: the index has not moved yet
    premium = float(first["p"]) / float(first["i"]) - 1
    assert 0.04 < premium < 0.06
    assert float(first["r"]) == 0.0075  # a third of 5 % is beyond the cap
    # Ten seconds (one time constant) later about 37 % of it is left, however often asked.
    for t in range(2_100, 12_000, 100):
        mark(t)
    later = mark(12_000)
    left = (float(later["p"]) / float(later["i"]) - 1) / premium
    assert 0.3 < left < 0.45
    once = SymbolModel(symbol_specs(1, 1)[0], Market.USDM, seed=1)
    once_frames = SymbolFrames(once)
    once_frames.mark_price(1_000)
    once.jump(5.0, 2_000)
    once_frames.mark_price(2_000)
    assert orjson.loads(once_frames.mark_price(12_000))["i"] == later["i"]
