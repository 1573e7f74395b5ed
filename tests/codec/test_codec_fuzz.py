"""10,000 fuzzed frames among valid ones: every bad frame counted, every valid event intact."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex.faults import fuzz_bases
from marketd.fakex.fuzz import MUTATIONS, fuzz_frames
from marketd.fakex.hub import MarketHub
from marketd.fakex.market import MarketModel, symbol_specs
from marketd.fakex.protocol import parse_stream
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MarketEvent

T0 = 1_700_000_000_000
STREAMS = {
    Market.SPOT: [
        "btcusdt@trade", "ethusdt@aggTrade", "ethusdt@depth@100ms", "bnbusdt@bookTicker",
        "btcusdt@miniTicker", "btcusdt@ticker", "!miniTicker@arr",
    ],
    Market.USDM: [
        "btcusdt@aggTrade", "ethusdt@depth@100ms", "bnbusdt@bookTicker", "btcusdt@ticker",
        "btcusdt@markPrice@1s", "!miniTicker@arr", "!markPrice@arr@1s",
    ],
}  # fmt: skip
# (kind, symbol, seq, price) of one decoded record.
Expected = tuple[str, str, int, str]


def frame(stream: str, data: Any) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def valid(market: Market, i: int) -> tuple[str, list[Expected]]:
    """The ``i``-th valid frame of a cycle of event types, and the records it must give."""
    price = f"{20_000 + i}.{i % 100:02d}"
    kind = i % 4
    if kind == 0 and market is Market.SPOT:
        data = {
            "e": "trade", "E": T0 + i, "s": "BTCUSDT", "t": 10_000 + i, "p": price,
            "q": "0.5", "T": T0 + i, "m": i % 2 == 0, "M": True,
        }  # fmt: skip
        return frame("btcusdt@trade", data), [("trade", "BTCUSDT", 10_000 + i, price)]
    if kind == 0:
        data = {
            "e": "aggTrade", "E": T0 + i, "s": "BTCUSDT", "a": 50_000 + i, "p": price,
            "q": "2", "nq": "2", "f": 7 * i, "l": 7 * i + 3, "T": T0 + i, "m": False,
        }  # fmt: skip
        return frame("btcusdt@aggTrade", data), [("aggTrade", "BTCUSDT", 50_000 + i, price)]
    if kind == 1:
        data = {
            "e": "depthUpdate", "E": T0 + i, "s": "ETHUSDT", "U": 90_000 + 2 * i,
            "u": 90_001 + 2 * i, "b": [[price, "1.25"], ["1.00", "0"]], "a": [],
        }  # fmt: skip
        if market is Market.USDM:
            data |= {"T": T0 + i, "pu": 89_999 + 2 * i}
        return frame("ethusdt@depth@100ms", data), [
            ("depthUpdate", "ETHUSDT", 90_001 + 2 * i, price)
        ]
    if kind == 2:
        data = {"u": 30_000 + i, "s": "BNBUSDT", "b": price, "B": "3", "a": price, "A": "4"}
        if market is Market.USDM:
            data |= {"e": "bookTicker", "E": T0 + i, "T": T0 + i}
        return frame("bnbusdt@bookTicker", data), [("bookTicker", "BNBUSDT", 30_000 + i, price)]
    mini = {"e": "24hrMiniTicker", "E": T0 + i, "c": price, "o": "1.0", "h": price, "l": "1.0"}
    items = [mini | {"s": symbol, "v": "10", "q": "100.5"} for symbol in ("BTCUSDT", "ETHUSDT")]
    return frame("!miniTicker@arr", items), [
        ("24hrMiniTicker", s, 0, price) for s in ("BTCUSDT", "ETHUSDT")
    ]


def price_of(record: Record) -> str:
    event = MarketEvent.FromString(record.value)
    which = event.WhichOneof("event")
    if which == "trade":
        return event.trade.price
    if which == "agg_trade":
        return event.agg_trade.price
    if which == "depth_diff":
        return event.depth_diff.bids[0].price
    if which == "book_ticker":
        return event.book_ticker.bid_price
    assert which == "mini_ticker", which
    return event.mini_ticker.close_price


def fuzzed(market: Market, count: int, seed: int) -> list[str]:
    hub = MarketHub(MarketModel(market, symbol_specs(3, seed), seed))
    refs = [parse_stream(market, name, hub.symbol_index) for name in STREAMS[market]]
    bases = fuzz_bases(hub, refs, T0)
    frames = list(fuzz_frames(count, seed, bases, is_combined=True))
    assert {f.mutation for f in frames} == set(MUTATIONS)
    return [f.text for f in frames]


def test_ten_thousand_fuzzed_frames_among_valid_ones() -> None:
    codec = Codecs(TopicSettings())
    total_fuzzed = 0
    for market in Market:
        for seed in (1, 2, 3, 4):
            bad = fuzzed(market, 1_250, seed)
            good = [valid(market, i + 1_000 * seed) for i in range(250)]
            # Interleave at random, keeping each side's order.
            rng = random.Random(seed)
            slots = [True] * len(bad) + [False] * len(good)
            rng.shuffle(slots)
            bad_it, good_it = iter(bad), iter(good)
            frames: list[str] = []
            for is_bad in slots:
                frames.append(next(bad_it) if is_bad else next(good_it)[0])
            malformed = unknown = 0
            records: list[Record] = []
            for start in range(0, len(frames), 500):
                chunk = frames[start : start + 500]
                result = codec.decode_batch(FrameBatch(market, "fuzz", chunk, [7] * len(chunk)))
                malformed += result.malformed
                unknown += result.unknown
                records += result.records
            assert malformed + unknown == len(bad)
            assert malformed > 0
            assert unknown > 0  # unknown events and streams are told apart
            expected = [e for _, es in good for e in es]
            got = [(r.kind, r.symbol, r.seq, price_of(r)) for r in records]
            assert got == expected
            assert all(r.market is market and r.received_ns == 7 for r in records)
            total_fuzzed += len(bad)
    assert total_fuzzed == 10_000


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["e", "E", "s", "t", "p", "q", "T", "m", "x"]), children, max_size=9
        )
    ),
    max_leaves=20,
)
TEXT = st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace"))
SENTINEL, SENTINEL_RECORDS = valid(Market.SPOT, 0)


@given(st.lists(TEXT | JSON.map(lambda d: frame("btcusdt@trade", d)), min_size=1, max_size=8))
def test_arbitrary_frames_never_raise_nor_spoil_the_batch(frames: list[str]) -> None:
    result = Codecs(TopicSettings()).decode_batch(
        FrameBatch(Market.SPOT, "c", [*frames, SENTINEL], [0] * (len(frames) + 1))
    )
    assert result.malformed + result.unknown + len(result.records) >= len(frames) + 1
    last = result.records[-1]
    assert (last.kind, last.symbol, last.seq, price_of(last)) == SENTINEL_RECORDS[0]
