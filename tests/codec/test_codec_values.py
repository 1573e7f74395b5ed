"""Values Binance never sends are malformed: ids, times, decimals and symbols are checked."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from binance_examples import frame
from hypothesis import given
from hypothesis import strategies as st

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.errors import RestError
from marketd.exchanges.binance.values import values_check
from marketd.pipeline.codecs import Codecs
from marketd.v1.market_data_pb2 import MarketEvent

CODEC = Codecs(TopicSettings())
TRADE = {
    "e": "trade", "E": 1, "s": "BTCUSDT", "t": 5, "p": "27123.45", "q": "0.00100000", "T": 1,
    "m": True,
}  # fmt: skip
DEPTH = {
    "e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 1, "u": 2, "pu": 0,
    "b": [["27000.1", "1.5"]], "a": [["27000.2", "0"]],
}  # fmt: skip
TICKER = {
    "e": "24hrTicker", "E": 1, "s": "BTCUSDT", "p": "-94.99", "P": "-0.95", "w": "1.5",
    "c": "1.5", "Q": "1", "o": "1.5", "h": "1.5", "l": "1.5", "v": "1", "q": "1", "O": 0,
    "C": 1, "F": -1, "L": -1, "n": 0,
}  # fmt: skip
MARK = {
    "e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "11794.15", "i": "11784.6",
    "P": "11784.2", "r": "-0.00038167", "T": 0,
}  # fmt: skip
BAD_DECIMALS = [
    "abc", "1.2.3", "", "NaN", "Infinity", "1e5", ".5", "5.", ".", "-", "+1", " 1", "1 ",
    "1,5", "0x1F", "1_000", "\u0661", "\uff11", "1\n", "9" * 65,
]  # fmt: skip


def decode(market: Market, stream: str, data: Any) -> tuple[int, int, list[MarketEvent]]:
    result = CODEC.decode_batch(FrameBatch(market, "c", [frame(stream, json.dumps(data))], [0]))
    events = [MarketEvent.FromString(r.value) for r in result.records]
    return result.malformed, result.unknown, events


@pytest.mark.parametrize("bad", BAD_DECIMALS)
@pytest.mark.parametrize("key", ["p", "q"])
def test_a_trade_with_a_non_decimal_is_malformed(key: str, bad: str) -> None:
    assert decode(Market.SPOT, "btcusdt@trade", TRADE | {key: bad}) == (1, 0, [])


@pytest.mark.parametrize("bad", ["abc", "1.2.3", "", "1e5", "-1"])
@pytest.mark.parametrize(("side", "index"), [("b", 0), ("b", 1), ("a", 0), ("a", 1)])
def test_a_depth_level_with_a_non_decimal_is_malformed(side: str, index: int, bad: str) -> None:
    level = list(DEPTH[side][0])
    level[index] = bad
    assert decode(Market.USDM, "btcusdt@depth", DEPTH | {side: [level]}) == (1, 0, [])


def test_a_depth_diff_may_have_empty_sides() -> None:
    malformed, _, [event] = decode(Market.USDM, "btcusdt@depth", DEPTH | {"b": [], "a": []})
    assert malformed == 0
    assert (len(event.depth_diff.bids), len(event.depth_diff.asks)) == (0, 0)


@pytest.mark.parametrize("key", ["E", "t", "T"])
@pytest.mark.parametrize("value", [-1, -(2**63), 2**63, 2**64, 10**30])
def test_ids_and_times_outside_0_to_int64_are_malformed(key: str, value: int) -> None:
    assert decode(Market.SPOT, "btcusdt@trade", TRADE | {key: value}) == (1, 0, [])


def test_the_largest_int64_id_is_fine() -> None:
    _, _, [event] = decode(Market.SPOT, "btcusdt@trade", TRADE | {"t": 2**63 - 1, "E": 0})
    assert (event.trade.trade_id, event.event_time_ms) == (2**63 - 1, 0)


@pytest.mark.parametrize("symbol", ["", "X" * 41, "BTC\u0001USDT", "BTC USDT", "BTC\x7f"])
def test_bad_symbols_are_malformed(symbol: str) -> None:
    assert decode(Market.SPOT, "btcusdt@trade", TRADE | {"s": symbol}) == (1, 0, [])
    assert decode(Market.USDM, "btcusdt@depth", DEPTH | {"s": symbol}) == (1, 0, [])


def test_unusual_symbols_binance_lists_are_fine() -> None:
    for symbol in ["BTCUSDT_250627", "1000SHIBUSDT", "\u5e01\u5b89\u4eba\u751fUSDT"]:
        _, _, [event] = decode(Market.SPOT, "x@trade", TRADE | {"s": symbol})
        assert event.symbol == symbol


def test_ticker_signs_and_no_trade_ids() -> None:
    _, _, [event] = decode(Market.USDM, "btcusdt@ticker", TICKER)
    t = event.ticker
    assert (t.price_change, t.price_change_percent) == ("-94.99", "-0.95")
    assert (t.first_trade_id, t.last_trade_id, t.trade_count) == (-1, -1, 0)
    assert decode(Market.USDM, "btcusdt@ticker", TICKER | {"F": -2}) == (1, 0, [])
    assert decode(Market.USDM, "btcusdt@ticker", TICKER | {"w": "-1.5"}) == (1, 0, [])
    assert decode(Market.USDM, "btcusdt@ticker", TICKER | {"P": "--1"}) == (1, 0, [])


def test_mark_price_funding_may_be_negative_or_empty() -> None:
    _, _, [event] = decode(Market.USDM, "btcusdt@markPrice", MARK)
    assert event.mark_price.funding_rate == "-0.00038167"
    _, _, [event] = decode(Market.USDM, "btcusdt@markPrice", MARK | {"r": "", "P": ""})
    assert (event.mark_price.funding_rate, event.mark_price.estimated_settle_price) == ("", "")
    assert decode(Market.USDM, "btcusdt@markPrice", MARK | {"p": "-1"}) == (1, 0, [])
    assert decode(Market.USDM, "btcusdt@markPrice", MARK | {"r": "abc"}) == (1, 0, [])


def test_agg_trade_normal_quantity_is_optional_but_decimal() -> None:
    agg = {
        "e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 1, "p": "1.5", "q": "2", "f": 1, "l": 1,
        "T": 1, "m": False,
    }  # fmt: skip
    assert decode(Market.USDM, "btcusdt@aggTrade", agg)[0] == 0
    assert decode(Market.USDM, "btcusdt@aggTrade", agg | {"nq": "2"})[0] == 0
    assert decode(Market.USDM, "btcusdt@aggTrade", agg | {"nq": "x"}) == (1, 0, [])


@pytest.mark.parametrize("depth", [2_000, 100_000])  # beyond the recursion limit (1000)
def test_deep_nesting_is_malformed_not_a_crash(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    frames = [
        frame("btcusdt@trade", nested),
        frame("btcusdt@trade", json.dumps(TRADE)[:-1] + f',"zz":{nested}}}'),
        frame("btcusdt@trade", f'{{"e":"kline","zz":{nested}}}'),
        frame("btcusdt@trade", json.dumps(TRADE)),
    ]
    result = CODEC.decode_batch(FrameBatch(Market.SPOT, "c", frames, [0] * 4))
    assert result.malformed + result.unknown == 3
    assert [r.seq for r in result.records] == [5]


@pytest.mark.parametrize(
    "row",
    [
        {"id": 1, "price": "abc", "qty": "1", "time": 1, "isBuyerMaker": True},
        {"id": 1, "price": "1.0", "qty": "1e5", "time": 1, "isBuyerMaker": True},
        {"id": -1, "price": "1.0", "qty": "1", "time": 1, "isBuyerMaker": True},
    ],
)
def test_rest_history_with_bad_values_is_rejected(row: dict[str, Any]) -> None:
    with pytest.raises(RestError, match="malformed trade history"):
        CODEC.encode_rest_trades(Market.SPOT, "BTCUSDT", "trade", json.dumps([row]).encode(), 0)


# --- the value matchers themselves, against a plain-Python reference -------------------
# The payload structs build their matchers at import time, so these call values_check()
# directly: every rule of every token, and how tokens join.


def ref_unsigned(s: str) -> bool:
    parts = s.split(".")
    return len(parts) <= 2 and all(p and all(c in "0123456789" for c in p) for p in parts)


def ref_signed(s: str) -> bool:
    return ref_unsigned(s[1:] if s.startswith("-") else s)


def ref_symbol(s: str) -> bool:
    # Unicode's own idea of a control, space or separator (Cc, Zs, Zl, Zp), plus the
    # zero-width space and the byte-order mark.
    return s != "" and not any(
        unicodedata.category(c) in ("Cc", "Zs", "Zl", "Zp") or c in "\u200b\ufeff" for c in s
    )


def ref_optional(s: str) -> bool:
    return s == "" or ref_signed(s)


REFERENCE: dict[str, Callable[[str], bool]] = {
    "y": ref_symbol,
    "u": ref_unsigned,
    "s": ref_signed,
    "o": ref_optional,
}


# The bad decimals above but the 65-digit one: length is msgspec's check, not the shape's.
SHAPES = BAD_DECIMALS[:-1]


@pytest.mark.parametrize(
    ("signature", "good", "bad"),
    [
        ("u", ["0", "100", "0.001", "27123.45000000", "9" * 64], [*SHAPES, "-1"]),
        ("s", ["-94.99", "-0", "0.5", "12"], [*SHAPES, "+1", "--1", "-.5", "- 1"]),
        ("o", ["", "-0.00038167", "1"], ["+1", "-", " ", "1e5", "abc", "1.", "-1 "]),
        (
            "y",
            ["BTCUSDT", "BTCUSDT_250627", "\u5e01\u5b89USDT", "a", "\u00e9"],
            ["", "A B", "A\x00", "\x7f", "BTC\x85USDT", "BTC\u00a0USDT", "BTC\u2028USDT"],
        ),
    ],
)
def test_each_token_accepts_its_shape_only(signature: str, good: list[str], bad: list[str]) -> None:
    check = values_check(signature)
    assert [s for s in good if check(s) is None] == []
    assert [s for s in bad if check(s) is not None] == []


def test_values_are_joined_by_exactly_one_space() -> None:
    check = values_check("ysuo")
    assert check("BTCUSDT -1.5 2 ") is not None  # the optional last value is empty
    assert check("BTCUSDT -1.5 2 -0.1") is not None
    assert check("BTCUSDT -1.5  2 -0.1") is None  # two spaces
    assert check("BTCUSDT -1.5 2") is None  # one value short
    assert check("BTCUSDT -1.5 2 -0.1 3") is None  # one value too many
    assert check("BTCUSDT\t-1.5 2 -0.1") is None


VALUE_TEXT = st.text(
    st.sampled_from("0123456789.-+ eE,_x\t\n\x00\x7f\x85\xa0\u0661\u00e9\u2028\u3000\u5e01"),
    max_size=6,
)


@given(
    signature=st.text(st.sampled_from("yuso"), min_size=1, max_size=4),
    data=st.data(),
)
def test_values_check_matches_the_reference(signature: str, data: st.DataObject) -> None:
    values = [data.draw(VALUE_TEXT | st.sampled_from(["1.5", "-2", "", "BTC"])) for _ in signature]
    # No value may hold a space, so the joined text splits back in exactly one way.
    expected = all(" " not in v and REFERENCE[c](v) for c, v in zip(signature, values, strict=True))
    assert (values_check(signature)(" ".join(values)) is not None) == expected
