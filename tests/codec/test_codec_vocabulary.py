"""Walk the vocabulary table: every channel the configuration accepts either decodes a
real-format payload into its row's MarketEvent field, topic, kind and header, or is one of
the streams marketd does not decode (counted as unknown, never silently lost; none today)."""

from __future__ import annotations

import json

import pytest
from binance_examples import (
    SPOT_1D_TICKER,
    SPOT_1H_TICKER,
    SPOT_4H_TICKER,
    SPOT_AGG_TRADE,
    SPOT_AVG_PRICE,
    SPOT_BOOK_TICKER,
    SPOT_DEPTH_UPDATE,
    SPOT_KLINE,
    SPOT_MINI_TICKER,
    SPOT_PARTIAL_DEPTH,
    SPOT_TICKER,
    SPOT_TRADE,
    USDM_AGG_TRADE,
    USDM_BOOK_TICKER,
    USDM_DEPTH_UPDATE,
    USDM_FORCE_ORDER,
    USDM_KLINE,
    USDM_MARK_PRICE,
    USDM_MINI_TICKER,
    USDM_PARTIAL_DEPTH,
    USDM_TICKER,
    frame,
)

from marketd.config.settings import Subscription, TopicSettings
from marketd.config.validators import InvalidValue
from marketd.data.records import FrameBatch, Market
from marketd.exchanges.binance import vocabulary
from marketd.exchanges.binance.handlers import PB_MARKET
from marketd.exchanges.binance.vocabulary import StreamKind
from marketd.exchanges.seam import Sequencing
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MarketEvent

# One payload per decoded (market, kind), in Binance's documented format.
PAYLOADS = {
    (Market.SPOT, "trade"): SPOT_TRADE,
    (Market.SPOT, "aggTrade"): SPOT_AGG_TRADE,
    (Market.SPOT, "depthUpdate"): SPOT_DEPTH_UPDATE,
    (Market.SPOT, "bookTicker"): SPOT_BOOK_TICKER,
    (Market.SPOT, "24hrMiniTicker"): SPOT_MINI_TICKER,
    (Market.SPOT, "24hrTicker"): SPOT_TICKER,
    (Market.SPOT, "depthPartial"): SPOT_PARTIAL_DEPTH,
    (Market.SPOT, "kline"): SPOT_KLINE,
    (Market.SPOT, "avgPrice"): SPOT_AVG_PRICE,
    (Market.SPOT, "1hTicker"): SPOT_1H_TICKER,
    (Market.SPOT, "4hTicker"): SPOT_4H_TICKER,
    (Market.SPOT, "1dTicker"): SPOT_1D_TICKER,
    (Market.USDM, "aggTrade"): USDM_AGG_TRADE,
    (Market.USDM, "depthUpdate"): USDM_DEPTH_UPDATE,
    (Market.USDM, "bookTicker"): USDM_BOOK_TICKER,
    (Market.USDM, "24hrMiniTicker"): USDM_MINI_TICKER,
    (Market.USDM, "24hrTicker"): USDM_TICKER,
    (Market.USDM, "markPriceUpdate"): USDM_MARK_PRICE,
    (Market.USDM, "depthPartial"): USDM_PARTIAL_DEPTH,
    (Market.USDM, "kline"): USDM_KLINE,
    (Market.USDM, "forceOrder"): USDM_FORCE_ORDER,
}
# What the configuration accepts and marketd does not decode (issue 11, item 2): nothing.
NOT_DECODED: set[str] = set()
TOPICS = TopicSettings()


def expected_symbol(payload: str, stream: str) -> str:
    """The symbol a record of ``payload`` on ``stream`` carries: the payload's ``s``, a
    liquidation's ``o.s``, or (spot partial depth has none) the stream name's, upper-cased."""
    data = json.loads(payload)
    return str(data.get("s") or data.get("o", {}).get("s") or stream.partition("@")[0].upper())


def streams(market: Market) -> list[tuple[str, StreamKind]]:
    """Every stream name the configuration accepts on ``market``, with its row."""
    named = [(f"btcusdt@{c}", row) for c, row in vocabulary.BY_CHANNEL[market].items()]
    named += list(vocabulary.BY_ALL_MARKET[market].items())
    return sorted(named, key=lambda item: item[0])


def accepted(market: Market, stream: str) -> bool:
    """The configuration takes ``stream`` (it raises InvalidValue otherwise)."""
    if stream.startswith("!"):
        Subscription(market, streams=(stream,))
    else:
        Subscription(market, symbols=("BTCUSDT",), channels=(stream.partition("@")[2],))
    return True


@pytest.mark.parametrize("market", list(Market))
def test_every_accepted_stream_is_decoded_as_its_row_says_or_counted_unknown(
    market: Market,
) -> None:
    codec = Codecs(TOPICS)
    for stream, row in streams(market):
        assert accepted(market, stream), stream
        if not row.decoded:
            assert row.kind in NOT_DECODED, stream
            result = codec.decode_batch(FrameBatch(market, "c", [frame(stream, "{}")], [1]))
            assert (len(result.records), result.unknown, result.malformed) == (0, 1, 0), stream
            continue
        payload = PAYLOADS[(market, row.kind)]
        data = f"[{payload},{payload}]" if stream in row.arrays else payload
        result = codec.decode_batch(FrameBatch(market, "c", [frame(stream, data)], [7]))
        assert (result.unknown, result.malformed) == (0, 0), (stream, result.error)
        assert len(result.records) == (2 if stream in row.arrays else 1), stream
        symbol = expected_symbol(payload, stream)
        for record in result.records:
            event = MarketEvent.FromString(record.value)
            assert event.WhichOneof("event") == row.message, stream
            assert (event.market, event.symbol) == (PB_MARKET[market], record.symbol), stream
            assert (record.topic, record.kind, record.market) == (
                getattr(TOPICS, str(row.topic)),
                row.kind,
                market,
            ), stream
            assert record.headers == (
                ("type", row.kind.encode()),
                ("market", market.value.encode()),
            ), stream
            assert (record.symbol, record.key, record.received_ns) == (
                symbol,
                symbol.encode(),
                7,
            ), stream
            assert (record.seq > 0) == (row.sequencing is not Sequencing.NONE), stream


@pytest.mark.parametrize("market", list(Market))
def test_a_channel_the_table_lacks_is_refused_with_the_valid_ones(market: Market) -> None:
    for channel in ("kline_2s", "depth@1ms", "trades", "markPrice@3s"):
        if channel in vocabulary.channels(market):
            continue
        with pytest.raises(InvalidValue, match=r"unknown channel .* \(.*known: "):
            Subscription(market, symbols=("BTCUSDT",), channels=(channel,))
    with pytest.raises(InvalidValue, match="unknown all-market stream"):
        Subscription(market, streams=("!kline@arr",))
    other = {Market.SPOT: Market.USDM, Market.USDM: Market.SPOT}[market]
    foreign = vocabulary.channels(other) - vocabulary.channels(market)
    assert foreign  # each market has channels the other lacks
    for channel in sorted(foreign):
        with pytest.raises(InvalidValue):
            Subscription(market, symbols=("BTCUSDT",), channels=(channel,))


def test_every_decoded_kind_has_a_payload_here() -> None:
    decoded = {
        (m, row.kind) for m in Market for row in vocabulary.ROWS if row.decoded and (
            row.channels.get(m) or row.all_market.get(m))
    }  # fmt: skip
    assert decoded == set(PAYLOADS)
    assert {r.kind for r in vocabulary.ROWS if not r.decoded} == NOT_DECODED
