"""Every supported stream event, spot and USD-M, from Binance's documented payloads."""

from __future__ import annotations

import pytest
from binance_examples import (
    SPOT_AGG_TRADE,
    SPOT_BOOK_TICKER,
    SPOT_DEPTH_UPDATE,
    SPOT_MINI_TICKER,
    SPOT_TICKER,
    SPOT_TRADE,
    USDM_AGG_TRADE,
    USDM_BOOK_TICKER,
    USDM_DEPTH_UPDATE,
    USDM_MARK_PRICE,
    USDM_MINI_TICKER,
    USDM_TICKER,
    frame,
)

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market, Record
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent, PriceLevel

RECEIVED_NS = 1_672_515_782_136_123_456
TOPICS = TopicSettings(raw="t.raw", depth="t.depth")


def decode_one(market: Market, stream: str, data: str) -> tuple[Record, MarketEvent]:
    result = Codecs(TOPICS).decode_batch(
        FrameBatch(market, "conn-1", [frame(stream, data)], [RECEIVED_NS])
    )
    assert (result.malformed, result.unknown, result.error) == (0, 0, "")
    [record] = result.records
    event = MarketEvent.FromString(record.value)
    assert event.received_ns == RECEIVED_NS
    assert record.received_ns == RECEIVED_NS
    assert record.market is market
    assert record.key == record.symbol.encode()
    assert event.symbol == record.symbol
    assert record.headers == (
        ("type", record.kind.encode()),
        ("market", record.market.value.encode()),
    )
    return record, event


def test_spot_trade() -> None:
    record, event = decode_one(Market.SPOT, "bnbbtc@trade", SPOT_TRADE)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "trade",
        "BNBBTC",
        12345,
    )
    assert record.key == b"BNBBTC"
    assert record.headers == (("type", b"trade"), ("market", b"spot"))
    assert event.WhichOneof("event") == "trade"
    assert event.market == MARKET_SPOT
    assert event.event_time_ms == 1672515782136
    t = event.trade
    assert t.trade_id == 12345
    assert t.price == "0.001"
    assert t.quantity == "100"
    assert t.trade_time_ms == 1672515782136
    assert t.buyer_is_maker is True
    assert t.backfilled is False


@pytest.mark.parametrize(
    ("market", "data", "pb_market", "normal_quantity"),
    [
        (Market.SPOT, SPOT_AGG_TRADE, MARKET_SPOT, ""),
        (Market.USDM, USDM_AGG_TRADE, MARKET_USDM, "100"),
    ],
)
def test_agg_trade(market: Market, data: str, pb_market: int, normal_quantity: str) -> None:
    spot = market is Market.SPOT
    record, event = decode_one(market, "bnbbtc@aggTrade" if spot else "btcusdt@aggTrade", data)
    assert (record.topic, record.kind) == ("t.raw", "aggTrade")
    assert record.symbol == ("BNBBTC" if spot else "BTCUSDT")
    assert record.seq == (12345 if spot else 5933014)
    assert event.market == pb_market
    assert event.WhichOneof("event") == "agg_trade"
    assert event.event_time_ms == (1672515782136 if spot else 123456789)
    a = event.agg_trade
    assert a.agg_trade_id == record.seq
    assert (a.price, a.quantity, a.normal_quantity) == ("0.001", "100", normal_quantity)
    assert (a.first_trade_id, a.last_trade_id) == (100, 105)
    assert a.trade_time_ms == (1672515782136 if spot else 123456785)
    assert a.buyer_is_maker is True
    assert a.backfilled is False


@pytest.mark.parametrize("stream", ["bnbbtc@depth", "bnbbtc@depth@100ms", "bnbbtc@depth@1000ms"])
def test_spot_depth_update(stream: str) -> None:
    record, event = decode_one(Market.SPOT, stream, SPOT_DEPTH_UPDATE)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.depth",
        "depthUpdate",
        "BNBBTC",
        160,
    )
    assert event.market == MARKET_SPOT
    assert event.event_time_ms == 1672515782136
    d = event.depth_diff
    assert (d.first_update_id, d.final_update_id) == (157, 160)
    assert not d.HasField("prev_final_update_id")
    assert d.transaction_time_ms == 0
    assert list(d.bids) == [PriceLevel(price="0.0024", quantity="10")]
    assert list(d.asks) == [PriceLevel(price="0.0026", quantity="100")]


@pytest.mark.parametrize(
    "stream", ["btcusdt@depth", "btcusdt@depth@100ms", "btcusdt@depth@250ms", "btcusdt@depth@500ms"]
)
def test_usdm_depth_update(stream: str) -> None:
    record, event = decode_one(Market.USDM, stream, USDM_DEPTH_UPDATE)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.depth",
        "depthUpdate",
        "BTCUSDT",
        160,
    )
    assert event.market == MARKET_USDM
    assert event.event_time_ms == 123456789
    d = event.depth_diff
    assert (d.first_update_id, d.final_update_id) == (157, 160)
    assert d.HasField("prev_final_update_id")
    assert d.prev_final_update_id == 149
    assert d.transaction_time_ms == 123456788
    assert [(lv.price, lv.quantity) for lv in d.bids] == [("0.0024", "10")]
    assert [(lv.price, lv.quantity) for lv in d.asks] == [("0.0026", "100")]


def test_usdm_depth_pu_zero_is_present() -> None:
    data = USDM_DEPTH_UPDATE.replace('"pu":149', '"pu":0')
    _, event = decode_one(Market.USDM, "btcusdt@depth", data)
    assert event.depth_diff.HasField("prev_final_update_id")
    assert event.depth_diff.prev_final_update_id == 0


def test_spot_book_ticker() -> None:
    record, event = decode_one(Market.SPOT, "bnbusdt@bookTicker", SPOT_BOOK_TICKER)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "bookTicker",
        "BNBUSDT",
        400900217,
    )
    assert event.market == MARKET_SPOT
    assert event.event_time_ms == 0  # spot sends no E
    b = event.book_ticker
    assert b.update_id == 400900217
    assert (b.bid_price, b.bid_quantity) == ("25.35190000", "31.21000000")
    assert (b.ask_price, b.ask_quantity) == ("25.36520000", "40.66000000")
    assert b.transaction_time_ms == 0


@pytest.mark.parametrize("stream", ["bnbusdt@bookTicker", "!bookTicker"])
def test_usdm_book_ticker(stream: str) -> None:
    record, event = decode_one(Market.USDM, stream, USDM_BOOK_TICKER)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "bookTicker",
        "BNBUSDT",
        400900217,
    )
    assert event.market == MARKET_USDM
    assert event.event_time_ms == 1568014460893
    b = event.book_ticker
    assert b.update_id == 400900217
    assert (b.bid_price, b.bid_quantity) == ("25.35190000", "31.21000000")
    assert (b.ask_price, b.ask_quantity) == ("25.36520000", "40.66000000")
    assert b.transaction_time_ms == 1568014460891


@pytest.mark.parametrize(
    ("market", "stream", "data", "symbol", "event_time"),
    [
        (Market.SPOT, "bnbbtc@miniTicker", SPOT_MINI_TICKER, "BNBBTC", 1672515782136),
        (Market.USDM, "btcusdt@miniTicker", USDM_MINI_TICKER, "BTCUSDT", 123456789),
    ],
)
def test_mini_ticker(market: Market, stream: str, data: str, symbol: str, event_time: int) -> None:
    record, event = decode_one(market, stream, data)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "24hrMiniTicker",
        symbol,
        0,
    )
    assert event.event_time_ms == event_time
    m = event.mini_ticker
    assert (m.close_price, m.open_price, m.high_price, m.low_price) == (
        "0.0025",
        "0.0010",
        "0.0025",
        "0.0010",
    )
    assert (m.base_volume, m.quote_volume) == ("10000", "18")


def test_spot_ticker() -> None:
    record, event = decode_one(Market.SPOT, "bnbbtc@ticker", SPOT_TICKER)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "24hrTicker",
        "BNBBTC",
        0,
    )
    assert event.event_time_ms == 1672515782136
    t = event.ticker
    assert (t.price_change, t.price_change_percent, t.weighted_avg_price) == (
        "0.0015",
        "250.00",
        "0.0018",
    )
    assert t.first_trade_price == "0.0009"
    assert (t.last_price, t.last_quantity) == ("0.0025", "10")
    assert (t.best_bid_price, t.best_bid_quantity) == ("0.0024", "10")
    assert (t.best_ask_price, t.best_ask_quantity) == ("0.0026", "100")
    assert (t.open_price, t.high_price, t.low_price) == ("0.0010", "0.0025", "0.0010")
    assert (t.base_volume, t.quote_volume) == ("10000", "18")
    assert (t.open_time_ms, t.close_time_ms) == (0, 1675216573749)
    assert (t.first_trade_id, t.last_trade_id, t.trade_count) == (0, 18150, 18151)


def test_usdm_ticker() -> None:
    record, event = decode_one(Market.USDM, "btcusdt@ticker", USDM_TICKER)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "24hrTicker",
        "BTCUSDT",
        0,
    )
    assert event.market == MARKET_USDM
    assert event.event_time_ms == 123456789
    t = event.ticker
    assert (t.price_change, t.price_change_percent, t.weighted_avg_price) == (
        "0.0015",
        "250.00",
        "0.0018",
    )
    assert (t.last_price, t.last_quantity) == ("0.0025", "10")
    # Spot-only fields stay empty.
    assert (t.first_trade_price, t.best_bid_price, t.best_ask_price) == ("", "", "")
    assert (t.open_price, t.high_price, t.low_price) == ("0.0010", "0.0025", "0.0010")
    assert (t.base_volume, t.quote_volume) == ("10000", "18")
    assert (t.open_time_ms, t.close_time_ms) == (0, 86400000)
    assert (t.first_trade_id, t.last_trade_id, t.trade_count) == (0, 18150, 18151)


@pytest.mark.parametrize("stream", ["btcusdt@markPrice", "btcusdt@markPrice@1s"])
def test_usdm_mark_price(stream: str) -> None:
    record, event = decode_one(Market.USDM, stream, USDM_MARK_PRICE)
    assert (record.topic, record.kind, record.symbol, record.seq) == (
        "t.raw",
        "markPriceUpdate",
        "BTCUSDT",
        0,
    )
    assert event.event_time_ms == 1562305380000
    m = event.mark_price
    assert m.mark_price == "11794.15000000"
    assert m.index_price == "11784.62659091"
    assert m.estimated_settle_price == "11784.25641265"
    assert m.funding_rate == "0.00038167"
    assert m.next_funding_time_ms == 1562306400000


def _symbols(records: list[Record]) -> list[str]:
    return [r.symbol for r in records]


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_mini_ticker_array_yields_one_record_per_item(market: Market) -> None:
    items = [
        USDM_MINI_TICKER,
        USDM_MINI_TICKER.replace('"BTCUSDT"', '"ETHUSDT"').replace('"0.0025"', '"3000.5"', 1),
        USDM_MINI_TICKER.replace('"BTCUSDT"', '"SOLUSDT"'),
    ]
    frames = [
        frame("!miniTicker@arr", "[" + ",".join(items) + "]"),
        frame("!miniTicker@arr", "[]"),
    ]
    result = Codecs(TOPICS).decode_batch(FrameBatch(market, "c", frames, [1, 2]))
    assert (result.malformed, result.unknown) == (0, 0)
    assert _symbols(result.records) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert {r.kind for r in result.records} == {"24hrMiniTicker"}
    events = [MarketEvent.FromString(r.value) for r in result.records]
    assert [e.mini_ticker.close_price for e in events] == ["0.0025", "3000.5", "0.0025"]
    assert {e.received_ns for e in events} == {1}


def test_usdm_ticker_and_mark_price_arrays() -> None:
    tickers = "[" + USDM_TICKER + "," + USDM_TICKER.replace("BTCUSDT", "ETHUSDT") + "]"
    marks = "[" + USDM_MARK_PRICE + "," + USDM_MARK_PRICE.replace("BTCUSDT", "ETHUSDT") + "]"
    frames = [
        frame("!ticker@arr", tickers),
        frame("!markPrice@arr", marks),
        frame("!markPrice@arr@1s", marks),
    ]
    result = Codecs(TOPICS).decode_batch(FrameBatch(Market.USDM, "c", frames, [1, 2, 3]))
    assert (result.malformed, result.unknown) == (0, 0)
    assert [(r.kind, r.symbol, r.received_ns) for r in result.records] == [
        ("24hrTicker", "BTCUSDT", 1),
        ("24hrTicker", "ETHUSDT", 1),
        ("markPriceUpdate", "BTCUSDT", 2),
        ("markPriceUpdate", "ETHUSDT", 2),
        ("markPriceUpdate", "BTCUSDT", 3),
        ("markPriceUpdate", "ETHUSDT", 3),
    ]
    last = MarketEvent.FromString(result.records[-1].value)
    assert last.mark_price.mark_price == "11794.15000000"


def test_records_keep_frame_order_across_event_types() -> None:
    frames = [
        frame("bnbbtc@trade", SPOT_TRADE),
        frame("bnbbtc@depth@100ms", SPOT_DEPTH_UPDATE),
        frame("bnbusdt@bookTicker", SPOT_BOOK_TICKER),
        frame("bnbbtc@aggTrade", SPOT_AGG_TRADE),
        frame("bnbbtc@trade", SPOT_TRADE.replace('"t":12345', '"t":12346')),
    ]
    result = Codecs(TOPICS).decode_batch(FrameBatch(Market.SPOT, "c", frames, [1, 2, 3, 4, 5]))
    assert [(r.kind, r.seq, r.received_ns, r.topic) for r in result.records] == [
        ("trade", 12345, 1, "t.raw"),
        ("depthUpdate", 160, 2, "t.depth"),
        ("bookTicker", 400900217, 3, "t.raw"),
        ("aggTrade", 12345, 4, "t.raw"),
        ("trade", 12346, 5, "t.raw"),
    ]


def test_unknown_fields_are_ignored() -> None:
    data = SPOT_TRADE[:-1] + ',"zz":{"nested":[1,2,{"x":null}]},"X":"MARKET","st":7}'
    record, event = decode_one(Market.SPOT, "bnbbtc@trade", data)
    assert record.seq == 12345
    assert event.trade.price == "0.001"


def test_reused_messages_do_not_leak_between_frames() -> None:
    """A depth diff with fewer levels after a bigger one holds only its own levels."""
    big = USDM_DEPTH_UPDATE.replace(
        '"b":[["0.0024","10"]]', '"b":[["0.0024","10"],["0.0023","5"],["0.0022","0"]]'
    )
    small = USDM_DEPTH_UPDATE.replace('"b":[["0.0024","10"]]', '"b":[]').replace(
        '"a":[["0.0026","100"]]', '"a":[["0.0027","1"]]'
    )
    frames = [frame("btcusdt@depth", big), frame("btcusdt@depth", small)]
    codec = Codecs(TOPICS)
    result = codec.decode_batch(FrameBatch(Market.USDM, "c", frames, [1, 2]))
    first, second = (MarketEvent.FromString(r.value) for r in result.records)
    assert [lv.price for lv in first.depth_diff.bids] == ["0.0024", "0.0023", "0.0022"]
    assert list(second.depth_diff.bids) == []
    assert [(lv.price, lv.quantity) for lv in second.depth_diff.asks] == [("0.0027", "1")]
    # The bytes are exactly those of a freshly built message.
    fresh = MarketEvent(
        market=MARKET_USDM, symbol="BTCUSDT", event_time_ms=123456789, received_ns=2
    )
    fresh.depth_diff.first_update_id = 157
    fresh.depth_diff.final_update_id = 160
    fresh.depth_diff.prev_final_update_id = 149
    fresh.depth_diff.transaction_time_ms = 123456788
    fresh.depth_diff.asks.add(price="0.0027", quantity="1")
    assert result.records[1].value == fresh.SerializeToString()
