"""REST trade history rows → backfilled Trade / AggTrade records."""

from __future__ import annotations

import pytest
from binance_examples import (
    REST_AGG_TRADES,
    REST_HISTORICAL_TRADES,
    SPOT_TRADE,
    USDM_AGG_TRADE,
    USDM_REST_AGG_TRADES,
    frame,
)

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.errors import RestError
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent

RECEIVED_NS = 1_700_000_000_000_000_001


def test_historical_trades() -> None:
    records = Codecs(TopicSettings(raw="t.raw")).encode_rest_trades(
        Market.SPOT, "bnbbtc", "trade", REST_HISTORICAL_TRADES, RECEIVED_NS
    )
    assert [(r.topic, r.key, r.kind, r.symbol, r.seq) for r in records] == [
        ("t.raw", b"BNBBTC", "trade", "BNBBTC", 28457),
        ("t.raw", b"BNBBTC", "trade", "BNBBTC", 28458),
    ]
    assert {r.market for r in records} == {Market.SPOT}
    assert {r.received_ns for r in records} == {RECEIVED_NS}
    assert {r.headers for r in records} == {(("type", b"trade"), ("market", b"spot"))}
    first, second = (MarketEvent.FromString(r.value) for r in records)
    assert first.WhichOneof("event") == "trade"
    assert (first.market, first.symbol) == (MARKET_SPOT, "BNBBTC")
    assert first.event_time_ms == 1499865549590  # the trade time: REST has no event time
    assert first.received_ns == RECEIVED_NS
    t = first.trade
    assert (t.trade_id, t.price, t.quantity) == (28457, "4.00000100", "12.00000000")
    assert (t.trade_time_ms, t.buyer_is_maker, t.backfilled) == (1499865549590, True, True)
    assert (second.trade.trade_id, second.trade.buyer_is_maker) == (28458, False)


def test_backfilled_trade_matches_the_stream_record_except_the_flag() -> None:
    row = (
        b'[{"id":12345,"price":"0.001","qty":"100","quoteQty":"0.1","time":1672515782136,'
        b'"isBuyerMaker":true,"isBestMatch":true}]'
    )
    codec = Codecs(TopicSettings())
    [rest] = codec.encode_rest_trades(Market.SPOT, "BNBBTC", "trade", row, 5)
    [live] = codec.decode_batch(
        FrameBatch(Market.SPOT, "c", [frame("bnbbtc@trade", SPOT_TRADE)], [5])
    ).records
    rest_event = MarketEvent.FromString(rest.value)
    assert rest_event.trade.backfilled
    rest_event.trade.backfilled = False
    assert rest_event == MarketEvent.FromString(live.value)
    assert (rest.topic, rest.key, rest.kind, rest.symbol, rest.seq, rest.headers) == (
        live.topic,
        live.key,
        live.kind,
        live.symbol,
        live.seq,
        live.headers,
    )


@pytest.mark.parametrize(
    ("market", "body", "pb_market", "normal_quantity"),
    [
        (Market.SPOT, REST_AGG_TRADES, MARKET_SPOT, ""),
        (Market.USDM, USDM_REST_AGG_TRADES, MARKET_USDM, "4.70000000"),
    ],
)
def test_agg_trades(market: Market, body: bytes, pb_market: int, normal_quantity: str) -> None:
    records = Codecs(TopicSettings()).encode_rest_trades(
        market, "BTCUSDT", "aggTrade", body, RECEIVED_NS
    )
    assert records[0].seq == 26129
    assert {(r.kind, r.symbol, r.market, r.topic) for r in records} == {
        ("aggTrade", "BTCUSDT", market, "marketdata.raw")
    }
    event = MarketEvent.FromString(records[0].value)
    assert event.market == pb_market
    assert event.event_time_ms == 1498793709153
    a = event.agg_trade
    assert (a.agg_trade_id, a.price, a.quantity) == (26129, "0.01633102", "4.70443515")
    assert (a.first_trade_id, a.last_trade_id, a.trade_time_ms) == (27781, 27781, 1498793709153)
    assert (a.buyer_is_maker, a.backfilled, a.normal_quantity) == (True, True, normal_quantity)


def test_empty_history() -> None:
    assert Codecs(TopicSettings()).encode_rest_trades(Market.SPOT, "X", "trade", b"[]", 0) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"code":-1121,"msg":"Invalid symbol."}',
        b'[{"id":1}]',
        b'[{"id":"1","price":"1","qty":"1","time":1,"isBuyerMaker":true}]',
        b'[{"id":9223372036854775808,"price":"1","qty":"1","time":1,"isBuyerMaker":true}]',
    ],
)
def test_malformed_history_raises_rest_error(body: bytes) -> None:
    with pytest.raises(RestError, match=r"malformed trade history for spot BTCUSDT"):
        Codecs(TopicSettings()).encode_rest_trades(Market.SPOT, "BTCUSDT", "trade", body, 0)


def test_unsupported_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="depthUpdate"):
        Codecs(TopicSettings()).encode_rest_trades(Market.SPOT, "X", "depthUpdate", b"[]", 0)


def test_backfilled_agg_trade_matches_the_stream_record_except_the_flag() -> None:
    # REST has no event time: the stream event's E is set to its trade time to compare.
    row = b'[{"a":5933014,"p":"0.001","q":"100","nq":"100","f":100,"l":105,"T":123456785,"m":true}]'
    codec = Codecs(TopicSettings(raw="t.raw"))
    [rest] = codec.encode_rest_trades(Market.USDM, "btcusdt", "aggTrade", row, RECEIVED_NS)
    live_data = USDM_AGG_TRADE.replace('"E":123456789', '"E":123456785')
    [live] = codec.decode_batch(
        FrameBatch(Market.USDM, "c", [frame("btcusdt@aggTrade", live_data)], [RECEIVED_NS])
    ).records
    rest_event = MarketEvent.FromString(rest.value)
    assert (rest_event.symbol, rest_event.received_ns) == ("BTCUSDT", RECEIVED_NS)
    assert rest_event.agg_trade.backfilled
    rest_event.agg_trade.backfilled = False
    assert rest_event == MarketEvent.FromString(live.value)
    fields = ("topic", "key", "headers", "received_ns", "market", "kind", "symbol", "seq")
    assert [getattr(rest, f) for f in fields] == [getattr(live, f) for f in fields]
    assert (rest.topic, rest.key, rest.headers) == (
        "t.raw",
        b"BTCUSDT",
        (("type", b"aggTrade"), ("market", b"usdm")),
    )


@pytest.mark.parametrize("kind", ["trade", "aggTrade"])
def test_rest_error_quotes_the_first_100_bytes_of_the_body(kind: str) -> None:
    body = b"[" + b"x" * 200
    with pytest.raises(RestError) as info:
        Codecs(TopicSettings()).encode_rest_trades(Market.USDM, "ethusdt", kind, body, 0)
    text = str(info.value)
    assert text.startswith(f"malformed {kind} history for usdm ETHUSDT from Binance REST: ")
    assert text.endswith(f"; body starts {body[:100]!r}")
