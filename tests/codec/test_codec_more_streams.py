"""The stream kinds decoded since the vocabulary table was completed: klines, the spot average
price, spot rolling-window tickers, liquidations and partial book depth, spot and USD-M, from
Binance's documented payloads; and their malformed and unknown variants."""

from __future__ import annotations

import pytest
from binance_examples import (
    SPOT_1D_TICKER,
    SPOT_1H_TICKER,
    SPOT_4H_TICKER,
    SPOT_AVG_PRICE,
    SPOT_KLINE,
    SPOT_PARTIAL_DEPTH,
    SPOT_TICKER,
    USDM_FORCE_ORDER,
    USDM_KLINE,
    USDM_PARTIAL_DEPTH,
    frame,
)

from marketd.alerts.encoding import TickReader
from marketd.config.alerts import PRICE_KINDS
from marketd.config.settings import TopicSettings
from marketd.data.events import Tick
from marketd.data.records import FrameBatch, Market, Record, RecordBatch
from marketd.exchanges.binance import vocabulary
from marketd.exchanges.binance.codec import KNOWN_EVENT_TYPES
from marketd.exchanges.seam import DecodeResult
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent

RECEIVED_NS = 1_672_515_782_136_123_456
TOPICS = TopicSettings(raw="t.raw", depth="t.depth")


def decode(market: Market, frames: list[str]) -> DecodeResult:
    return Codecs(TOPICS).decode_batch(FrameBatch(market, "c", frames, [RECEIVED_NS] * len(frames)))


def decode_one(market: Market, stream: str, data: str, kind: str) -> tuple[Record, MarketEvent]:
    """The one record of a good frame, checked for what every record of ``kind`` shares:
    the raw topic, the header naming the kind, the symbol key, seq 0 (nothing sequenced)."""
    result = decode(market, [frame(stream, data)])
    assert (result.malformed, result.unknown, result.error) == (0, 0, "")
    [record] = result.records
    event = MarketEvent.FromString(record.value)
    assert (record.topic, record.kind, record.market, record.seq) == ("t.raw", kind, market, 0)
    assert record.headers == (("type", kind.encode()), ("market", record.market.value.encode()))
    assert (record.key, event.symbol) == (record.symbol.encode(), record.symbol)
    assert record.received_ns == event.received_ns == RECEIVED_NS
    assert event.market == (MARKET_SPOT if market is Market.SPOT else MARKET_USDM)
    return record, event


# -- klines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("market", "stream", "data", "symbol", "event_time", "open_time", "close_time"),
    [
        (Market.SPOT, "bnbbtc@kline_1m", SPOT_KLINE, "BNBBTC", 1672515782136, 1672515780000,
         1672515839999),
        (Market.SPOT, "bnbbtc@kline_1s", SPOT_KLINE, "BNBBTC", 1672515782136, 1672515780000,
         1672515839999),
        (Market.USDM, "btcusdt@kline_1m", USDM_KLINE, "BTCUSDT", 1638747660000, 1638747660000,
         1638747719999),
        (Market.USDM, "btcusdt@kline_1M", USDM_KLINE, "BTCUSDT", 1638747660000, 1638747660000,
         1638747719999),
    ],
)  # fmt: skip
def test_kline(
    market: Market,
    stream: str,
    data: str,
    symbol: str,
    event_time: int,
    open_time: int,
    close_time: int,
) -> None:
    record, event = decode_one(market, stream, data, "kline")
    assert record.symbol == symbol
    assert event.event_time_ms == event_time
    assert event.WhichOneof("event") == "kline"
    k = event.kline
    assert (k.open_time_ms, k.close_time_ms, k.interval) == (open_time, close_time, "1m")
    assert (k.first_trade_id, k.last_trade_id, k.trade_count) == (100, 200, 100)
    assert (k.open_price, k.close_price, k.high_price, k.low_price) == (
        "0.0010",
        "0.0020",
        "0.0025",
        "0.0015",
    )
    assert (k.base_volume, k.quote_volume) == ("1000", "1.0000")
    assert (k.taker_buy_base_volume, k.taker_buy_quote_volume) == ("500", "0.500")
    assert k.closed is False


def test_closed_kline_without_trades() -> None:
    data = (
        SPOT_KLINE.replace('"f":100', '"f":-1')
        .replace('"L":200', '"L":-1')
        .replace('"x":false', '"x":true')
        .replace('"n":100', '"n":0')
        .replace('"i":"1m"', '"i":"15m"')
    )
    _, event = decode_one(Market.SPOT, "bnbbtc@kline_15m", data, "kline")
    k = event.kline
    assert (k.first_trade_id, k.last_trade_id, k.trade_count, k.closed) == (-1, -1, 0, True)
    assert k.interval == "15m"


# -- spot average price ----------------------------------------------------------------


def test_spot_avg_price() -> None:
    record, event = decode_one(Market.SPOT, "btcusdt@avgPrice", SPOT_AVG_PRICE, "avgPrice")
    assert record.symbol == "BTCUSDT"
    assert event.event_time_ms == 1693907033000
    assert event.WhichOneof("event") == "avg_price"
    a = event.avg_price
    assert (a.interval, a.average_price, a.last_trade_time_ms) == (
        "5m",
        "25776.86000000",
        1693907032213,
    )


# -- spot rolling-window tickers -------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "data", "kind", "window"),
    [
        ("bnbbtc@ticker_1h", SPOT_1H_TICKER, "1hTicker", "1h"),
        ("bnbbtc@ticker_4h", SPOT_4H_TICKER, "4hTicker", "4h"),
        ("bnbbtc@ticker_1d", SPOT_1D_TICKER, "1dTicker", "1d"),
    ],
)
def test_spot_rolling_window_ticker(stream: str, data: str, kind: str, window: str) -> None:
    record, event = decode_one(Market.SPOT, stream, data, kind)
    assert record.symbol == "BNBBTC"
    assert event.event_time_ms == 1672515782136
    assert event.WhichOneof("event") == "ticker"
    t = event.ticker
    assert t.window == window
    assert (t.price_change, t.price_change_percent, t.weighted_avg_price) == (
        "0.0015",
        "250.00",
        "0.0018",
    )
    assert (t.open_price, t.high_price, t.low_price, t.last_price) == (
        "0.0010",
        "0.0025",
        "0.0010",
        "0.0025",
    )
    assert (t.base_volume, t.quote_volume) == ("10000", "18")
    assert (t.open_time_ms, t.close_time_ms) == (0, 1675216573749)
    assert (t.first_trade_id, t.last_trade_id, t.trade_count) == (0, 18150, 18151)
    # Not sent by the rolling-window tickers: empty.
    assert (t.last_quantity, t.first_trade_price) == ("", "")
    assert (t.best_bid_price, t.best_bid_quantity, t.best_ask_price, t.best_ask_quantity) == (
        "",
        "",
        "",
        "",
    )


def test_windows_do_not_leak_into_each_other_or_the_24h_ticker() -> None:
    empty_window = SPOT_1D_TICKER.replace('"F":0,"L":18150,"n":18151', '"F":-1,"L":-1,"n":0')
    result = decode(
        Market.SPOT,
        [
            frame("bnbbtc@ticker_1h", SPOT_1H_TICKER),
            frame("bnbbtc@ticker", SPOT_TICKER),
            frame("bnbbtc@ticker_1d", empty_window),
        ],
    )
    assert [r.kind for r in result.records] == ["1hTicker", "24hrTicker", "1dTicker"]
    hour, day24, day = (MarketEvent.FromString(r.value).ticker for r in result.records)
    assert (hour.window, day24.window, day.window) == ("1h", "", "1d")
    assert (day24.last_quantity, day24.best_bid_price) == ("10", "0.0024")
    assert (day.first_trade_id, day.last_trade_id, day.trade_count) == (-1, -1, 0)


# -- USD-M liquidations ----------------------------------------------------------------


@pytest.mark.parametrize("stream", ["btcusdt@forceOrder", "!forceOrder@arr"])
def test_usdm_liquidation(stream: str) -> None:
    # One liquidation per message on the all-market stream too: an object, not an array.
    record, event = decode_one(Market.USDM, stream, USDM_FORCE_ORDER, "forceOrder")
    assert record.symbol == "BTCUSDT"  # the order's `s`
    assert event.event_time_ms == 1568014460893
    assert event.WhichOneof("event") == "liquidation"
    q = event.liquidation
    assert (q.side, q.order_type, q.time_in_force, q.status) == ("SELL", "LIMIT", "IOC", "FILLED")
    assert (q.quantity, q.price, q.average_price) == ("0.014", "9910", "9910")
    assert (q.last_filled_quantity, q.filled_quantity) == ("0.014", "0.014")
    assert q.trade_time_ms == 1568014460893


# -- partial book depth ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "levels"),
    [("bnbbtc@depth5", 5), ("bnbbtc@depth10@100ms", 10), ("bnbbtc@depth20@1000ms", 20)],
)
def test_spot_partial_depth(stream: str, levels: int) -> None:
    record, event = decode_one(Market.SPOT, stream, SPOT_PARTIAL_DEPTH, "depthPartial")
    assert record.symbol == "BNBBTC"  # the stream name's, upper-cased: the payload has none
    assert event.event_time_ms == 0  # no E either
    assert event.WhichOneof("event") == "partial_book"
    p = event.partial_book
    assert (p.last_update_id, p.levels) == (160, levels)
    assert [(lv.price, lv.quantity) for lv in p.bids] == [("0.0024", "10")]
    assert [(lv.price, lv.quantity) for lv in p.asks] == [("0.0026", "100")]
    assert (p.first_update_id, p.transaction_time_ms) == (0, 0)
    assert not p.HasField("prev_final_update_id")


@pytest.mark.parametrize(
    ("stream", "levels"),
    [("btcusdt@depth5", 5), ("btcusdt@depth10@250ms", 10), ("btcusdt@depth20@500ms", 20)],
)
def test_usdm_partial_depth(stream: str, levels: int) -> None:
    record, event = decode_one(Market.USDM, stream, USDM_PARTIAL_DEPTH, "depthPartial")
    assert record.symbol == "BTCUSDT"
    assert event.event_time_ms == 1571889248277
    p = event.partial_book
    assert (p.last_update_id, p.first_update_id, p.levels) == (390497878, 390497796, levels)
    assert p.HasField("prev_final_update_id")
    assert p.prev_final_update_id == 390497794
    assert p.transaction_time_ms == 1571889248276
    assert [(lv.price, lv.quantity) for lv in p.bids] == [
        ("7403.89", "0.002"),
        ("7403.90", "3.906"),
    ]
    assert [(lv.price, lv.quantity) for lv in p.asks] == [
        ("7405.96", "3.340"),
        ("7406.63", "4.525"),
    ]


@pytest.mark.parametrize(
    ("market", "stream", "data"),
    [
        (Market.SPOT, "bnbbtc@depth20@100ms", SPOT_PARTIAL_DEPTH),
        (Market.USDM, "btcusdt@depth20@100ms", USDM_PARTIAL_DEPTH),
    ],
)
def test_partial_depth_is_neither_a_diff_nor_fed_to_the_books(
    market: Market, stream: str, data: str
) -> None:
    result = decode(market, [frame(stream, data)])
    assert type(result.records) is RecordBatch
    [record] = result.records
    assert record.topic == "t.raw"  # never the depth topic: a consumer applies those in order
    assert result.records.events == [None]  # no diff for the books, no price watched
    assert stream.partition("@")[2] not in vocabulary.diff_depth_channels(market)


def test_spot_partial_depth_symbols_are_bound_per_stream() -> None:
    # One reused message serves every spot partial-depth stream; each record keeps its own
    # stream's symbol and levels, and a smaller book after a bigger one holds only its own.
    bigger = SPOT_PARTIAL_DEPTH.replace(
        '"bids":[["0.0024","10"]]', '"bids":[["0.0024","10"],["0.0023","5"],["0.0022","1"]]'
    )
    empty = '{"lastUpdateId":7,"bids":[],"asks":[]}'
    frames = [
        frame("bnbbtc@depth20", bigger),
        frame("ethusdt@depth5@100ms", empty),
        frame("bnbbtc@depth20", SPOT_PARTIAL_DEPTH),
    ]
    result = decode(Market.SPOT, frames)
    assert [(r.symbol, r.key) for r in result.records] == [
        ("BNBBTC", b"BNBBTC"),
        ("ETHUSDT", b"ETHUSDT"),
        ("BNBBTC", b"BNBBTC"),
    ]
    first, second, third = (MarketEvent.FromString(r.value) for r in result.records)
    assert [lv.price for lv in first.partial_book.bids] == ["0.0024", "0.0023", "0.0022"]
    assert (second.symbol, second.partial_book.levels, second.partial_book.last_update_id) == (
        "ETHUSDT",
        5,
        7,
    )
    assert (list(second.partial_book.bids), list(second.partial_book.asks)) == ([], [])
    assert [lv.price for lv in third.partial_book.bids] == ["0.0024"]
    # The bytes are exactly those of a freshly built message.
    fresh = MarketEvent(market=MARKET_SPOT, symbol="BNBBTC", received_ns=RECEIVED_NS)
    fresh.partial_book.last_update_id = 160
    fresh.partial_book.levels = 20
    fresh.partial_book.bids.add(price="0.0024", quantity="10")
    fresh.partial_book.asks.add(price="0.0026", quantity="100")
    assert result.records[2].value == fresh.SerializeToString()


@pytest.mark.parametrize(
    "stream",
    [
        "bnb btc@depth5",  # a space: no Binance symbol
        "bnb\nbtc@depth5",
        "x" * 41 + "@depth5",  # longer than any symbol
        "@depth5",  # no symbol at all
    ],
)
def test_spot_partial_depth_on_a_stream_without_a_valid_symbol_is_unknown(stream: str) -> None:
    result = decode(Market.SPOT, [frame(stream, SPOT_PARTIAL_DEPTH)])
    assert (len(result.records), result.malformed, result.unknown) == (0, 0, 1)
    assert result.error.startswith("unknown stream")


def test_spot_partial_depth_takes_a_symbol_as_long_as_binance_allows() -> None:
    longest = "x" * 40  # MAX_SYMBOL_CHARS
    result = decode(Market.SPOT, [frame(f"{longest}@depth5", SPOT_PARTIAL_DEPTH)])
    assert (result.malformed, result.unknown) == (0, 0)
    assert [r.symbol for r in result.records] == [longest.upper()]


# -- the detector reads klines and the average price -----------------------------------


def test_klines_and_average_prices_feed_the_detector_rolling_tickers_do_not() -> None:
    assert {"kline", "avgPrice"} <= set(PRICE_KINDS)
    # Rolling tickers share the Ticker message with 24hrTicker: a price read from it could
    # not tell which kind it was, so they carry none.
    assert not {"1hTicker", "4hTicker", "1dTicker"} & set(PRICE_KINDS)
    result = decode(
        Market.SPOT,
        [frame("bnbbtc@kline_1m", SPOT_KLINE), frame("btcusdt@avgPrice", SPOT_AVG_PRICE)],
    )
    reader = TickReader(["kline", "avgPrice"], ["spot"])
    assert reader.ticks(result.records) == [
        Tick("spot", "BNBBTC", 1672515782136, "0.0020"),
        Tick("spot", "BTCUSDT", 1693907033000, "25776.86000000"),
    ]


# -- malformed and unknown -------------------------------------------------------------


def _kline(old: str, new: str, market: Market = Market.SPOT) -> tuple[Market, str, str]:
    data = SPOT_KLINE if market is Market.SPOT else USDM_KLINE
    assert old in data
    stream = "bnbbtc@kline_1m" if market is Market.SPOT else "btcusdt@kline_1m"
    return market, stream, data.replace(old, new)


def _replace(market: Market, stream: str, data: str, old: str, new: str) -> tuple[Market, str, str]:
    assert old in data
    return market, stream, data.replace(old, new)


_S, _U = Market.SPOT, Market.USDM
MALFORMED = {
    "kline close not a decimal": _kline('"c":"0.0020"', '"c":"1.2.3"'),
    "kline taker volume not a decimal": _kline('"Q":"0.500"', '"Q":"1e5"', _U),
    "kline closed flag missing": _kline('"x":false,', ""),
    "kline candle missing": (_S, "bnbbtc@kline_1m", '{"e":"kline","E":1,"s":"X"}'),
    "kline first trade id below -1": _kline('"f":100', '"f":-2'),
    "kline trade count negative": _kline('"n":100', '"n":-1', _U),
    "kline interval not an interval": _kline('"i":"1m"', '"i":"1m\\n"'),
    "kline symbol with a space": _kline('"s":"BNBBTC","k"', '"s":"BNB BTC","k"'),
    "avgPrice price not a decimal": _replace(
        _S, "btcusdt@avgPrice", SPOT_AVG_PRICE, '"w":"25776.86000000"', '"w":"abc"'
    ),
    "avgPrice last trade time missing": _replace(
        _S, "btcusdt@avgPrice", SPOT_AVG_PRICE, ',"T":1693907032213', ""
    ),
    "avgPrice negative time": _replace(
        _S, "btcusdt@avgPrice", SPOT_AVG_PRICE, '"T":1693907032213', '"T":-5'
    ),
    "1hTicker on the 4h stream": (_S, "bnbbtc@ticker_4h", SPOT_1H_TICKER),
    "1hTicker last price not a decimal": _replace(
        _S, "bnbbtc@ticker_1h", SPOT_1H_TICKER, '"c":"0.0025"', '"c":"NaN"'
    ),
    "1dTicker trade count missing": _replace(
        _S, "bnbbtc@ticker_1d", SPOT_1D_TICKER, ',"n":18151', ""
    ),
    "4hTicker first trade id below -1": _replace(
        _S, "bnbbtc@ticker_4h", SPOT_4H_TICKER, '"F":0', '"F":-2'
    ),
    "forceOrder side not a side": _replace(
        _U, "btcusdt@forceOrder", USDM_FORCE_ORDER, '"S":"SELL"', '"S":"HOLD"'
    ),
    "forceOrder status not a word": _replace(
        _U, "btcusdt@forceOrder", USDM_FORCE_ORDER, '"X":"FILLED"', '"X":"filled"'
    ),
    "forceOrder price not a decimal": _replace(
        _U, "!forceOrder@arr", USDM_FORCE_ORDER, '"ap":"9910"', '"ap":".5"'
    ),
    "forceOrder order missing": (_U, "btcusdt@forceOrder", '{"e":"forceOrder","E":1}'),
    "forceOrder negative trade time": _replace(
        _U, "btcusdt@forceOrder", USDM_FORCE_ORDER, '"T":1568014460893}', '"T":-1}'
    ),
    "forceOrder as an array": (_U, "!forceOrder@arr", f"[{USDM_FORCE_ORDER}]"),
    "spot partial depth level not a decimal": _replace(
        _S, "bnbbtc@depth5", SPOT_PARTIAL_DEPTH, '["0.0026","100"]', '["0.0026","1,0"]'
    ),
    "spot partial depth negative update id": _replace(
        _S, "bnbbtc@depth10", SPOT_PARTIAL_DEPTH, '"lastUpdateId":160', '"lastUpdateId":-1'
    ),
    "spot partial depth asks missing": _replace(
        _S, "bnbbtc@depth20@100ms", SPOT_PARTIAL_DEPTH, ',"asks":[["0.0026","100"]]', ""
    ),
    "spot partial depth with a known other e": _replace(
        _S, "bnbbtc@depth5", SPOT_PARTIAL_DEPTH, "{", '{"e":"depthUpdate",'
    ),
    "usdm partial depth without pu": _replace(
        _U, "btcusdt@depth5", USDM_PARTIAL_DEPTH, '"pu":390497794,', ""
    ),
    "usdm partial depth spot-shaped": (_U, "btcusdt@depth5", SPOT_PARTIAL_DEPTH),
    "usdm partial depth quantity not a decimal": _replace(
        _U, "btcusdt@depth10@500ms", USDM_PARTIAL_DEPTH, '"3.340"', '"-3.340"'
    ),
}  # fmt: skip


@pytest.mark.parametrize(("market", "stream", "data"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_payloads_are_counted(market: Market, stream: str, data: str) -> None:
    result = decode(market, [frame(stream, data)])
    assert (len(result.records), result.malformed, result.unknown) == (0, 1, 0), result.error
    assert result.error.startswith(f"malformed {stream!r} payload: ")


UNKNOWN_EVENTS = {
    "kline": (_S, "bnbbtc@kline_1m", SPOT_KLINE.replace('"e":"kline"', '"e":"klineV2"')),
    "avgPrice": (_S, "btcusdt@avgPrice", '{"e":"avgPriceV2","E":1}'),
    "1hTicker": (_S, "bnbbtc@ticker_1h", '{"e":"2hTicker","E":1}'),
    "forceOrder": (_U, "!forceOrder@arr", '{"e":"forceOrderV2","E":1,"o":{}}'),
    "spot depthPartial": (_S, "bnbbtc@depth5", '{"e":"depthSnapshot","lastUpdateId":1}'),
    "usdm depthPartial": (_U, "btcusdt@depth5", '{"e":"depthSnapshot","E":1}'),
}


@pytest.mark.parametrize(
    ("market", "stream", "data"), UNKNOWN_EVENTS.values(), ids=UNKNOWN_EVENTS.keys()
)
def test_an_unknown_event_on_a_new_stream_is_unknown(
    market: Market, stream: str, data: str
) -> None:
    result = decode(market, [frame(stream, data)])
    assert (len(result.records), result.malformed, result.unknown) == (0, 0, 1)
    assert result.error.startswith("unknown event ")


def test_every_row_kind_is_a_known_event_type() -> None:
    # A stream's own event type that fails to decode is damage (malformed), never news.
    assert {row.kind for row in vocabulary.ROWS} <= KNOWN_EVENT_TYPES
    assert {"kline", "avgPrice", "1hTicker", "4hTicker", "1dTicker", "forceOrder"} <= (
        KNOWN_EVENT_TYPES
    )
