"""Which subscriptions get books; the books stage takes a depth diff from the event the
normalizer decoded (no Protobuf decode) or, for any other batch, from the record's Protobuf
value: the same books."""

from __future__ import annotations

import json

import attrs
import msgspec

from marketd.books.scheduler import DepthSnapshot
from marketd.books.service import Books, book_symbols
from marketd.config.settings import Settings, Subscription
from marketd.exchanges.binance.codec import Codec
from marketd.pipeline.records import FrameBatch, Market, Record, RecordBatch

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


def _decoded(market: Market) -> list[Record]:
    frames = [
        _frame(market, 101, 103, [["100.00", "0"], ["99.75", "4.25"]], [["100.50", "0.5"]]),
        _frame(market, 104, 106, [["99.50", "2.125"]], [["100.25", "0.75"], ["101.50", "0"]]),
        _frame(market, 107, 107, [["100.10", "1"]], []),
    ]
    batch = FrameBatch(market, "test", frames, [1, 2, 3])
    result = Codec(Settings().kafka.topics).decode_batch(batch)
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
        assert len(records.depth) == 3  # one decoded event per depth record
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
    for r in records:
        bad = msgspec.structs.replace(r, value=b"not protobuf")
        spoiled.append(bad)
        spoiled.depth[id(bad)] = records.depth[id(r)]
    books = _books(Market.USDM)
    books.take(spoiled)
    assert books.invalid == 0
    assert books.syncs[(Market.USDM, "BTCUSDT")].last_update_id == 107
    fallback = _books(Market.USDM)
    fallback.take(list(spoiled))  # no events: the values are decoded, and are not Protobuf
    assert fallback.invalid == 3


def test_an_event_that_does_not_match_its_record_is_not_used() -> None:
    records = _decoded(Market.SPOT)
    # Swap two events: each record's final update id now disagrees with its event's.
    first, second = (id(r) for r in records[:2])
    records.depth[first], records.depth[second] = records.depth[second], records.depth[first]
    books = _books(Market.SPOT)
    books.take(records)
    sync = books.syncs[(Market.SPOT, "BTCUSDT")]
    assert sync.synced
    assert sync.last_update_id == 107
    assert sync.book.top(1) == ([("100.10", "1")], [("100.25", "0.75")])


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
