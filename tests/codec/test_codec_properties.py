"""Property tests: whatever valid trade Binance sends comes out exactly the same."""

from __future__ import annotations

import json
import re

from binance_examples import frame
from hypothesis import given
from hypothesis import strategies as st

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MarketEvent

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
IDS = st.integers(min_value=0, max_value=2**63 - 1)
TIMES = st.integers(min_value=0, max_value=2**53)
DECIMALS = st.from_regex(r"\A(0|[1-9][0-9]{0,15})(\.[0-9]{1,18})?\Z")
# Anything else in a price or quantity is damage, not a price: rejected as malformed.
NOT_DECIMALS = st.text(st.characters(codec="utf-8"), max_size=40).filter(
    lambda s: re.fullmatch(r"[0-9]+(\.[0-9]+)?", s) is None
)
SYMBOLS = st.from_regex(r"\A[A-Z0-9]{2,20}\Z")

CODEC = Codecs(TopicSettings())


@given(
    symbol=SYMBOLS,
    trade_id=IDS,
    price=DECIMALS,
    quantity=DECIMALS,
    event_time=TIMES,
    trade_time=TIMES,
    maker=st.booleans(),
    received_ns=INT64,
)
def test_trade_round_trips(
    symbol: str,
    trade_id: int,
    price: str,
    quantity: str,
    event_time: int,
    trade_time: int,
    maker: bool,
    received_ns: int,
) -> None:
    data = {
        "e": "trade", "E": event_time, "s": symbol, "t": trade_id, "p": price, "q": quantity,
        "T": trade_time, "m": maker, "M": True,
    }  # fmt: skip
    stream = symbol.lower() + "@trade"
    result = CODEC.decode_batch(
        FrameBatch(Market.SPOT, "c", [frame(stream, json.dumps(data))], [received_ns])
    )
    assert (result.malformed, result.unknown) == (0, 0)
    [record] = result.records
    assert (record.symbol, record.key, record.seq) == (symbol, symbol.encode(), trade_id)
    event = MarketEvent.FromString(record.value)
    assert (event.symbol, event.event_time_ms, event.received_ns) == (
        symbol,
        event_time,
        received_ns,
    )
    t = event.trade
    assert (t.trade_id, t.price, t.quantity) == (trade_id, price, quantity)
    assert (t.trade_time_ms, t.buyer_is_maker, t.backfilled) == (trade_time, maker, False)


@given(
    agg_id=IDS,
    first=IDS,
    last=IDS,
    price=DECIMALS,
    quantity=DECIMALS,
    nq=st.none() | DECIMALS,
)
def test_agg_trade_round_trips(
    agg_id: int, first: int, last: int, price: str, quantity: str, nq: str | None
) -> None:
    data: dict[str, object] = {
        "e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": agg_id, "p": price, "q": quantity,
        "f": first, "l": last, "T": 2, "m": False,
    }  # fmt: skip
    if nq is not None:
        data["nq"] = nq
    result = CODEC.decode_batch(
        FrameBatch(Market.USDM, "c", [frame("btcusdt@aggTrade", json.dumps(data))], [0])
    )
    [record] = result.records
    a = MarketEvent.FromString(record.value).agg_trade
    assert (a.agg_trade_id, a.first_trade_id, a.last_trade_id) == (agg_id, first, last)
    assert (a.price, a.quantity, a.normal_quantity) == (price, quantity, nq or "")


@given(price=NOT_DECIMALS, in_quantity=st.booleans())
def test_trade_with_a_non_decimal_price_is_malformed(price: str, in_quantity: bool) -> None:
    data = {
        "e": "trade", "E": 1, "s": "BTCUSDT", "t": 7, "p": "1.5" if in_quantity else price,
        "q": price if in_quantity else "2", "T": 1, "m": False,
    }  # fmt: skip
    result = CODEC.decode_batch(
        FrameBatch(Market.SPOT, "c", [frame("btcusdt@trade", json.dumps(data))], [0])
    )
    assert (result.records, result.malformed, result.unknown) == ([], 1, 0)


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_frames_never_raise(text: str) -> None:
    result = CODEC.decode_batch(FrameBatch(Market.USDM, "c", [text], [0]))
    assert result.malformed + result.unknown + len(result.records) >= 1


@given(
    st.lists(
        st.tuples(DECIMALS, DECIMALS),
        max_size=30,
    ),
    st.lists(st.tuples(DECIMALS, DECIMALS), max_size=30),
)
def test_depth_levels_round_trip(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
    data = {
        "e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 1, "u": 2, "pu": 0,
        "b": bids, "a": asks,
    }  # fmt: skip
    result = CODEC.decode_batch(
        FrameBatch(Market.USDM, "c", [frame("btcusdt@depth@100ms", json.dumps(data))], [0])
    )
    d = MarketEvent.FromString(result.records[0].value).depth_diff
    assert [(lv.price, lv.quantity) for lv in d.bids] == bids
    assert [(lv.price, lv.quantity) for lv in d.asks] == asks
