"""Which subscriptions get books; the books stage takes a depth diff from the event the
normalizer decoded (no Protobuf decode) or, for any other batch, from the record's Protobuf
value: the same books."""

from __future__ import annotations

import json

import attrs
import msgspec

from marketd.books.service import Books, book_symbols
from marketd.config.settings import Settings, Subscription
from marketd.data.events import DepthDiff, DepthSnapshot, Tick
from marketd.data.records import FrameBatch, Market, RecordBatch
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.normalizer import Normalizer
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent

SNAPSHOT = DepthSnapshot(
    last_update_id=100,
    bids=[("100.00", "1.0"), ("99.50", "2.0"), ("99.00", "3.0")],
    asks=[("100.50", "1.5"), ("101.00", "2.5"), ("101.50", "3.5")],
)


def _frame(market: Market, first: int, final: int, bids: list, asks: list) -> str:
    data = {"e": "depthUpdate", "E": 1_700_000_000_000 + final, "s": "BTCUSDT",
            "U": first, "u": final, "b": bids, "a": asks}  # fmt: skip
    if market is Market.USDM:
        data |= {"T": data["E"], "pu": first - 1}
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data})


def _decoded(market: Market) -> RecordBatch:
    frames = [
        _frame(market, 101, 103, [["100.00", "0"], ["99.75", "4.25"]], [["100.50", "0.5"]]),
        _frame(market, 104, 106, [["99.50", "2.125"]], [["100.25", "0.75"], ["101.50", "0"]]),
        _frame(market, 107, 107, [["100.10", "1"]], []),
    ]
    batch = FrameBatch(market, "test", frames, [1, 2, 3])
    result = Codecs(Settings().kafka.topics).decode_batch(batch)
    assert (result.malformed, result.unknown) == (0, 0), result.error
    return result.records


def _books(market: Market) -> Books:
    books = Books(Settings())
    books._add((market, "BTCUSDT"))
    books._deliver(market, "BTCUSDT", SNAPSHOT)
    return books


def test_decoded_events_and_protobuf_give_the_same_book() -> None:
    for market in (Market.SPOT, Market.USDM):
        records = _decoded(market)
        assert type(records) is RecordBatch
        assert [type(e) for e in records.events] == [DepthDiff] * 3  # one per depth record
        via_events, via_protobuf = _books(market), _books(market)
        via_events.take(records)
        via_protobuf.take(list(records))  # a plain list: decoded from the Protobuf values
        a = via_events.syncs[(market, "BTCUSDT")]
        b = via_protobuf.syncs[(market, "BTCUSDT")]
        assert a.synced, market
        assert b.synced, market
        assert a.last_update_id == b.last_update_id == 107
        top = a.book.top(10)
        assert top == b.book.top(10)
        assert top == (
            [("100.10", "1"), ("99.75", "4.25"), ("99.50", "2.125"), ("99.00", "3.0")],
            [("100.25", "0.75"), ("100.50", "0.5"), ("101.00", "2.5")],
        )


def test_the_decoded_event_is_used_instead_of_the_protobuf_value() -> None:
    records = _decoded(Market.USDM)
    # The same records with unreadable values: only the decoded events can build the book.
    spoiled = RecordBatch()
    for r, event in zip(records, records.events, strict=True):
        spoiled.add(msgspec.structs.replace(r, value=b"not protobuf"), event)
    books = _books(Market.USDM)
    books.take(spoiled)
    assert books.invalid == 0
    assert books.syncs[(Market.USDM, "BTCUSDT")].last_update_id == 107
    fallback = _books(Market.USDM)
    fallback.take(list(spoiled))  # no events: the values are decoded, and are not Protobuf
    assert fallback.invalid == 3


def test_the_normalizer_keeps_each_event_beside_its_record() -> None:
    # Trades (no event unless watched), diffs, a duplicate diff the sequencer drops and
    # watched mini tickers: what comes out pairs every record with its own event.
    trade = {"e": "trade", "E": 5, "s": "BTCUSDT", "t": 7, "p": "1.5", "q": "2", "T": 5, "m": True}
    mini = {"e": "24hrMiniTicker", "E": 6, "s": "BTCUSDT", "c": "101.5", "o": "100", "h": "102",
            "l": "99", "v": "10", "q": "1000"}  # fmt: skip
    frames = [
        _frame(Market.SPOT, 101, 103, [["100.00", "1"]], []),
        json.dumps({"stream": "btcusdt@trade", "data": trade}),
        _frame(Market.SPOT, 101, 103, [["100.00", "1"]], []),  # a duplicate: dropped
        json.dumps({"stream": "btcusdt@miniTicker", "data": mini}),
        _frame(Market.SPOT, 104, 105, [], [["100.50", "2"]]),
    ]
    codec = Codecs(Settings().kafka.topics)
    codec.watch_prices(["24hrMiniTicker"], [Market.SPOT])
    out, parked = Normalizer(codec)._normalize(FrameBatch(Market.SPOT, "t", frames, [1] * 5))
    assert parked == []
    assert [r.kind for r in out] == ["depthUpdate", "trade", "24hrMiniTicker", "depthUpdate"]
    d1, none, tick, d2 = out.events
    assert isinstance(d1, DepthDiff)
    assert isinstance(d2, DepthDiff)
    assert (d1.first, d1.final, d1.bids) == (101, 103, [("100.00", "1")])
    assert (d2.first, d2.final, d2.asks) == (104, 105, [("100.50", "2")])
    assert none is None
    assert tick == Tick("spot", "BTCUSDT", 6, "101.5", "1000")  # with its 24 h quote volume


def test_every_diff_depth_channel_gets_a_book_and_partial_depth_does_not() -> None:
    subs = (
        Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("depth@1000ms",)),
        Subscription(Market.SPOT, symbols=("ETHUSDT",), channels=("depth20@100ms", "trade")),
        Subscription(Market.USDM, symbols=("BTCUSDT",), channels=("depth@500ms",)),
        Subscription(Market.USDM, symbols=("ETHUSDT",), channels=("depth5",)),
    )
    settings = attrs.evolve(Settings(), subscriptions=subs)
    assert book_symbols(settings) == [(Market.SPOT, "BTCUSDT"), (Market.USDM, "BTCUSDT")]


def test_a_depth_stream_named_in_streams_gets_a_book_too() -> None:
    subs = (
        Subscription(Market.USDM, streams=("ethusdt@depth@100ms", "!miniTicker@arr")),
        Subscription(Market.SPOT, streams=("bnbusdt@depth10", "xrpusdt@depth")),
        Subscription(Market.SPOT, symbols=("XRPUSDT",), channels=("depth@100ms",)),
    )
    settings = attrs.evolve(Settings(), subscriptions=subs)
    assert book_symbols(settings) == [(Market.USDM, "ETHUSDT"), (Market.SPOT, "XRPUSDT")]


def test_each_published_snapshot_holds_its_own_book_and_nothing_of_the_last() -> None:
    """Snapshots of several books, one batch after another: each record decodes to its
    own market, symbol, times and levels (none left over from a record before it)."""
    books = _books(Market.SPOT)
    books._add((Market.USDM, "ETHUSDT"))
    books._deliver(Market.USDM, "ETHUSDT", SNAPSHOT)
    for market, symbol in books.syncs:
        first = DepthDiff(101, 101, 100 if market is Market.USDM else None,
                          [], [("100.50", "0")], 1_700_000_000_101, 42)  # fmt: skip
        books.syncs[(market, symbol)].on_diff(first)
    first_round = [MarketEvent.FromString(r.value) for r in books.snapshot_records()]
    spot = books.syncs[(Market.SPOT, "BTCUSDT")]
    spot.on_diff(DepthDiff(102, 102, None, [("100.00", "0"), ("99.50", "0")], [], 7, 8))
    second_round = [MarketEvent.FromString(r.value) for r in books.snapshot_records()]
    got = [
        (ev.market, ev.symbol, ev.event_time_ms, ev.received_ns, ev.book_snapshot.last_update_id,
         [(lv.price, lv.quantity) for lv in ev.book_snapshot.bids],
         [(lv.price, lv.quantity) for lv in ev.book_snapshot.asks])
        for ev in first_round + second_round
    ]  # fmt: skip
    asks = [("101.00", "2.5"), ("101.50", "3.5")]
    assert got == [
        (MARKET_SPOT, "BTCUSDT", 1_700_000_000_101, 42, 101, SNAPSHOT.bids, asks),
        (MARKET_USDM, "ETHUSDT", 1_700_000_000_101, 42, 101, SNAPSHOT.bids, asks),
        (MARKET_SPOT, "BTCUSDT", 7, 8, 102, [("99.00", "3.0")], asks),  # only what changed
    ]
