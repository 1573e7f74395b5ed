"""The typed batch: the codec puts each record's decoded event beside it (a depth diff, a
watched price), the batch keeps the two aligned, and the detector reads the ticks instead of
parsing the Protobuf back."""

from __future__ import annotations

import msgspec
import pytest
from binance_examples import (
    SPOT_AGG_TRADE,
    SPOT_AVG_PRICE,
    SPOT_BOOK_TICKER,
    SPOT_DEPTH_UPDATE,
    SPOT_KLINE,
    SPOT_TICKER,
    SPOT_TRADE,
    USDM_DEPTH_UPDATE,
    USDM_FORCE_ORDER,
    USDM_KLINE,
    USDM_MARK_PRICE,
    USDM_MINI_TICKER,
    frame,
)

from marketd.alerts.encoding import TickReader
from marketd.config.settings import TopicSettings
from marketd.data.events import DepthDiff, Tick
from marketd.data.records import FrameBatch, Market, Record, RecordBatch, events_of
from marketd.pipeline.codecs import Codecs

PRICED = ["trade", "aggTrade", "24hrMiniTicker", "24hrTicker", "markPriceUpdate", "kline",
          "avgPrice", "forceOrder"]  # fmt: skip

SPOT_FRAMES = [
    frame("bnbbtc@trade", SPOT_TRADE),
    frame("bnbbtc@depth", SPOT_DEPTH_UPDATE),
    frame("bnbusdt@bookTicker", SPOT_BOOK_TICKER),
    frame("bnbbtc@aggTrade", SPOT_AGG_TRADE),
    frame("bnbbtc@ticker", SPOT_TICKER),
    frame("bnbbtc@kline_1m", SPOT_KLINE),
    frame("btcusdt@avgPrice", SPOT_AVG_PRICE),
]
USDM_FRAMES = [
    frame("btcusdt@markPrice", USDM_MARK_PRICE),
    frame("!miniTicker@arr", f"[{USDM_MINI_TICKER},{USDM_MINI_TICKER.replace('BTC', 'ETH')}]"),
    frame("btcusdt@depth@100ms", USDM_DEPTH_UPDATE),
    frame("btcusdt@forceOrder", USDM_FORCE_ORDER),
    frame("btcusdt@kline_5m", USDM_KLINE),
]


def decode(codec: Codecs, market: Market, frames: list[str]) -> RecordBatch:
    result = codec.decode_batch(FrameBatch(market, "t", frames, [7] * len(frames)))
    assert (result.malformed, result.unknown) == (0, 0), result.error
    assert len(result.records.events) == len(result.records)
    return result.records


def test_watched_prices_get_a_tick_beside_their_record_and_diffs_always_do() -> None:
    codec = Codecs(TopicSettings())
    codec.watch_prices(PRICED, [Market.SPOT, Market.USDM])
    spot = decode(codec, Market.SPOT, SPOT_FRAMES)
    assert [r.kind for r in spot] == ["trade", "depthUpdate", "bookTicker", "aggTrade",
                                      "24hrTicker", "kline", "avgPrice"]  # fmt: skip
    trade, diff, book, agg, ticker, kline, avg = spot.events
    # trades carry their quantity (volume rules)
    assert trade == Tick("spot", "BNBBTC", 1672515782136, "0.001", "", "100")
    assert isinstance(diff, DepthDiff)
    assert (diff.first, diff.final, diff.prev, diff.bids, diff.asks) == (
        157,
        160,
        None,
        [("0.0024", "10")],
        [("0.0026", "100")],
    )
    assert (diff.event_time_ms, diff.received_ns) == (1672515782136, 7)
    assert book is None  # no price column: never a tick
    assert agg == Tick("spot", "BNBBTC", 1672515782136, "0.001", "", "100")
    # the last price, and the 24 h quote volume (q) for min_quote_volume_24h
    assert ticker == Tick("spot", "BNBBTC", 1672515782136, "0.0025", "18")
    assert kline == Tick("spot", "BNBBTC", 1672515782136, "0.0020")  # the close
    assert avg == Tick("spot", "BTCUSDT", 1693907033000, "25776.86000000")

    usdm = decode(codec, Market.USDM, USDM_FRAMES)
    assert [r.kind for r in usdm] == ["markPriceUpdate", "24hrMiniTicker", "24hrMiniTicker",
                                      "depthUpdate", "forceOrder", "kline"]  # fmt: skip
    mark, btc, eth, diff, liquidation, kline = usdm.events
    # the index price and the funding rate (premium and funding rules)
    assert mark == Tick("usdm", "BTCUSDT", 1562305380000, "11794.15000000", "", "",
                        "11784.62659091", "0.00038167")  # fmt: skip
    assert btc == Tick("usdm", "BTCUSDT", 123456789, "0.0025", "18")
    assert eth == Tick("usdm", "ETHUSDT", 123456789, "0.0025", "18")
    assert isinstance(diff, DepthDiff)
    assert (diff.first, diff.final, diff.prev) == (157, 160, 149)
    # a liquidation: average price, filled quantity, side
    assert liquidation == Tick("usdm", "BTCUSDT", 1568014460893, "9910", "", "0.014", "", "",
                               "SELL")  # fmt: skip
    assert kline == Tick("usdm", "BTCUSDT", 1638747660000, "0.0020")


def test_unwatched_kinds_and_markets_get_no_tick() -> None:
    codec = Codecs(TopicSettings())
    codec.watch_prices(["24hrMiniTicker"], [Market.USDM])
    spot = decode(codec, Market.SPOT, SPOT_FRAMES)
    assert [type(e).__name__ for e in spot.events] == [
        "NoneType", "DepthDiff", "NoneType", "NoneType", "NoneType", "NoneType", "NoneType"
    ]  # fmt: skip
    usdm = decode(codec, Market.USDM, USDM_FRAMES)
    assert [type(e).__name__ for e in usdm.events] == [
        "NoneType", "Tick", "Tick", "DepthDiff", "NoneType", "NoneType"
    ]  # fmt: skip


def test_a_kind_without_a_price_cannot_be_watched() -> None:
    with pytest.raises(
        ValueError, match=r"no price in event kinds \['bookTicker', 'depthUpdate'\]"
    ):
        Codecs(TopicSettings()).watch_prices(["trade", "depthUpdate", "bookTicker"], [Market.SPOT])


def test_a_malformed_frame_between_events_keeps_them_aligned() -> None:
    codec = Codecs(TopicSettings())
    codec.watch_prices(["trade"], [Market.SPOT])
    frames = [
        frame("bnbbtc@trade", SPOT_TRADE),
        frame("bnbbtc@trade", SPOT_TRADE.replace('"p":"0.001"', '"p":7')),  # malformed
        frame("bnbusdt@bookTicker", SPOT_BOOK_TICKER),
        frame("bnbbtc@depth", SPOT_DEPTH_UPDATE),
    ]
    result = codec.decode_batch(FrameBatch(Market.SPOT, "t", frames, [1, 2, 3, 4]))
    assert result.malformed == 1
    records = result.records
    assert [r.kind for r in records] == ["trade", "bookTicker", "depthUpdate"]
    assert [type(e).__name__ for e in records.events] == ["Tick", "NoneType", "DepthDiff"]


def test_the_tick_reader_takes_the_ticks_beside_the_records() -> None:
    codec = Codecs(TopicSettings())
    codec.watch_prices(["trade", "avgPrice"], [Market.SPOT])
    records = decode(codec, Market.SPOT, SPOT_FRAMES)
    # Unreadable values: only the ticks beside them can give prices.
    spoiled = RecordBatch()
    for r, event in zip(records, records.events, strict=True):
        spoiled.add(msgspec.structs.replace(r, value=b"\xff not protobuf"), event)
    reader = TickReader(["trade", "avgPrice"], ["spot"])
    assert reader.ticks(spoiled) == [
        Tick("spot", "BNBBTC", 1672515782136, "0.001", "", "100"),
        Tick("spot", "BTCUSDT", 1693907033000, "25776.86000000"),
    ]
    assert reader.malformed == 0
    # A plain list (records from elsewhere) is parsed: the same ticks from real values.
    assert reader.ticks(list(records)) == reader.ticks(records)
    assert reader.ticks(list(spoiled)) == []
    assert reader.malformed == 2


def test_the_tick_reader_reads_the_same_ticks_from_the_values_for_every_priced_kind() -> None:
    codec = Codecs(TopicSettings())
    codec.watch_prices(PRICED, [Market.SPOT, Market.USDM])
    records = [*decode(codec, Market.SPOT, SPOT_FRAMES), *decode(codec, Market.USDM, USDM_FRAMES)]
    batch_events = [*decode(codec, Market.SPOT, SPOT_FRAMES).events,
                    *decode(codec, Market.USDM, USDM_FRAMES).events]  # fmt: skip
    expected = [e for e in batch_events if isinstance(e, Tick)]
    parsed = TickReader(PRICED, ["spot", "usdm"]).ticks(records)  # from the Protobuf values
    assert parsed == expected
    assert {t.side for t in parsed} == {"", "SELL"}
    assert [t.index_price for t in parsed if t.index_price] == ["11784.62659091"]


def test_the_tick_reader_reads_the_24h_quote_volume_from_the_values_too() -> None:
    codec = Codecs(TopicSettings())
    kinds = ["24hrTicker", "24hrMiniTicker", "trade"]
    codec.watch_prices(kinds, [Market.SPOT, Market.USDM])
    records = [*decode(codec, Market.SPOT, SPOT_FRAMES), *decode(codec, Market.USDM, USDM_FRAMES)]
    ticks = TickReader(kinds, ["spot", "usdm"]).ticks(records)  # parsed from Protobuf
    assert [(t.symbol, t.price, t.quote_volume) for t in ticks] == [
        ("BNBBTC", "0.001", ""),  # a trade carries no volume
        ("BNBBTC", "0.0025", "18"),
        ("BTCUSDT", "0.0025", "18"),
        ("ETHUSDT", "0.0025", "18"),
    ]


def test_batch_alignment_helpers() -> None:
    def rec(kind: str, market: Market = Market.SPOT) -> Record:
        return Record("t", b"k", b"v", (), 1, market, kind, "X")

    tick = Tick("spot", "X", 1, "1")
    diff = DepthDiff(1, 2, None, [], [])
    batch = RecordBatch()
    batch.append(rec("trade"))
    batch.append(rec("depthUpdate"))
    batch.attach(diff)  # belongs to the last record; the first gets its None
    batch.extend([rec("trade"), rec("trade", Market.USDM)])
    batch.attach_last([tick, None])
    batch.append(rec("bookTicker"))
    batch.pad()
    assert batch.events == [None, diff, tick, None, None]
    chosen = batch.select({"trade", "depthUpdate"}, {Market.SPOT})
    assert [r.kind for r in chosen] == ["trade", "depthUpdate", "trade"]
    assert chosen.events == [None, diff, tick]
    assert RecordBatch([rec("trade")]).events == [None]
    assert events_of(chosen) is chosen.events
    assert events_of(list(chosen)) is None
