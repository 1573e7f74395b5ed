"""The Binance tick lanes (``exchanges/binance/ticks.py``): the value checks they run over
a whole run agree with the payload structs' own, and a lane stops at the first frame the
codec must judge. (That their ticks are the codec's is ``tests/backtest``'s business.)"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketd.data.events import Tick
from marketd.data.records import Market
from marketd.exchanges import adapter, adapters
from marketd.exchanges.binance import AggTrade, MarkPriceUpdate, MiniTicker, Trade
from marketd.exchanges.binance.ticks import KINDS, unchecked
from marketd.exchanges.binance.values import columns_check, values_check
from marketd.exchanges.seam import Sequencing

# Characters that make or break a value: digits, points, signs, spaces, controls, digits
# and letters beyond ASCII, and the JSON specials.
TEXT = st.text(
    alphabet=st.sampled_from(list('0123456789.-+eE ,_\n\t\x00\x7f\xa0\u2028\u0661\uff11币AZ"\\')),
    max_size=6,
)
GOOD = st.sampled_from(["0", "1", "0.5", "123.456", "-1.5", "-0", ""])
VALUE = st.one_of(TEXT, GOOD)


def agrees(signature: str, rows: list[list[str]]) -> bool:
    """``columns_check`` of the rows' columns says what ``values_check`` says of each row."""
    one_by_one = values_check(signature)
    expected = all(one_by_one(" ".join(row)) is not None for row in rows)
    columns = [list(column) for column in zip(*rows, strict=True)]
    return columns_check(signature)(columns) is expected


@given(signature=st.text(alphabet="yusoe", min_size=1, max_size=5), data=st.data())
def test_the_column_check_is_the_regex_check(signature: str, data: Any) -> None:
    rows = data.draw(
        st.lists(st.lists(VALUE, min_size=len(signature), max_size=len(signature)),
                 min_size=1, max_size=4)
    )  # fmt: skip
    assert agrees(signature, rows)


@pytest.mark.parametrize(
    ("signature", "rows"),
    [
        ("o", [["-"], [""]]),  # a lone sign is neither empty nor a number
        ("s", [["-"]]),
        ("e", [[""], ["1."]]),
        ("u", [["1"], ["1 2"]]),  # a space in a value cannot pass for a separator
        ("yu", [["BTCUSDT", "1"], ["币安人生USDT", "2"]]),
        ("yu", [["币安 USDT", "1"]]),
        ("u", [["\u0661"]]),  # a digit beyond ASCII
    ],
)
def test_the_column_check_on_the_edges(signature: str, rows: list[list[str]]) -> None:
    assert agrees(signature, rows)


STRUCTS: dict[str, type[msgspec.Struct]] = {
    "trade": Trade,
    "aggTrade": AggTrade,
    "24hrMiniTicker": MiniTicker,
    "markPriceUpdate": MarkPriceUpdate,
}
VALID: dict[str, dict[str, Any]] = {
    "trade": {"event_time": 1, "symbol": "BTCUSDT", "trade_id": 5, "price": "1.5",
              "quantity": "2", "trade_time": 1, "buyer_is_maker": True},
    "aggTrade": {"event_time": 1, "symbol": "BTCUSDT", "agg_trade_id": 5, "price": "1.5",
                 "quantity": "2", "first_trade_id": 1, "last_trade_id": 2, "trade_time": 1,
                 "buyer_is_maker": True, "normal_quantity": "2"},
    "24hrMiniTicker": {"event_time": 1, "symbol": "BTCUSDT", "close_price": "1",
                       "open_price": "1", "high_price": "1", "low_price": "1",
                       "base_volume": "1", "quote_volume": "1"},
    "markPriceUpdate": {"event_time": 1, "symbol": "BTCUSDT", "mark_price": "1",
                        "index_price": "1", "estimated_settle_price": "",
                        "funding_rate": "-0.0001", "next_funding_time": 1},
}  # fmt: skip


def test_the_lanes_cover_the_kinds_the_structs_name() -> None:
    assert set(KINDS) == set(STRUCTS)
    # Ids are reported for the kinds whose ids the sequencer checks, and only those.
    ordered = {
        kind
        for a in adapters()
        for sequencing in (Sequencing.CONSECUTIVE, Sequencing.INCREASING)
        for kind in a.vocabulary.kinds(sequencing)
    }
    for kind, spec in KINDS.items():
        assert spec.struct is STRUCTS[kind]
        assert (spec.ids is not None) is (kind in ordered)


@pytest.mark.parametrize("kind", sorted(STRUCTS))
def test_the_twin_is_the_struct_without_its_value_check(kind: str) -> None:
    struct = STRUCTS[kind]
    twin = unchecked(struct)
    assert msgspec.structs.fields(twin) == msgspec.structs.fields(struct)
    config, twin_config = struct.__struct_config__, twin.__struct_config__
    assert (twin_config.tag_field, twin_config.tag) == (config.tag_field, config.tag)
    assert (twin_config.frozen, twin_config.gc) == (config.frozen, config.gc)
    assert twin_config.forbid_unknown_fields == config.forbid_unknown_fields
    assert not hasattr(twin, "__post_init__")
    bad = VALID[kind] | {"symbol": "BTC USDT"}
    assert twin(**bad).symbol == "BTC USDT"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="not well-formed"):
        struct(**bad)


@pytest.mark.parametrize("kind", sorted(STRUCTS))
@given(data=st.data())
def test_the_lane_checks_what_the_struct_checks(kind: str, data: Any) -> None:
    spec = KINDS[kind]
    twin = unchecked(spec.struct)
    strings = [name for name, value in VALID[kind].items() if isinstance(value, str)]
    rows = data.draw(
        st.lists(st.fixed_dictionaries(dict.fromkeys(strings, VALUE)), min_size=1, max_size=3)
    )
    events = [twin(**(VALID[kind] | row)) for row in rows]
    accepted = True
    for row in rows:
        try:
            spec.struct(**(VALID[kind] | row))
        except ValueError:
            accepted = False
    assert spec.check(spec.values(events)) is accepted


def frame(stream: str, data: object) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


def agg(symbol: str, agg_id: int, price: str = "1.5") -> dict[str, Any]:
    return {"e": "aggTrade", "E": 5, "s": symbol, "a": agg_id, "p": price, "q": "2",
            "f": 1, "l": 2, "T": 4, "m": True}  # fmt: skip


def mini(symbol: str, close: str = "1.5") -> dict[str, Any]:
    return {"e": "24hrMiniTicker", "E": 5, "s": symbol, "c": close, "o": "1", "h": "2",
            "l": "1", "v": "3", "q": "4"}  # fmt: skip


def test_a_lane_per_kind_and_shape() -> None:
    usdm = adapter(Market.USDM).tick_decoder()
    a = usdm.lane("btcusdt@aggTrade")
    assert a is not None
    assert usdm.lane("ethusdt@aggTrade") is a
    assert usdm.lane("!miniTicker@arr") is not usdm.lane("btcusdt@miniTicker")
    assert usdm.lane("!markPrice@arr@1s") is usdm.lane("!markPrice@arr")
    assert usdm.lane("btcusdt@markPrice@1s") is usdm.lane("btcusdt@markPrice")
    for stream in ("btcusdt@depth", "btcusdt@kline_1m", "!forceOrder@arr", "@aggTrade",
                   "btcusdt@trade", "btcusdt@nonsense", "!nonsense", ""):  # fmt: skip
        assert usdm.lane(stream) is None, stream
    assert adapter(Market.SPOT).tick_decoder().lane("btcusdt@trade") is not None


def test_a_lane_stops_at_the_first_frame_the_codec_must_judge() -> None:
    lane = adapter(Market.USDM).tick_decoder().lane("btcusdt@aggTrade")
    assert lane is not None
    good = [frame(f"s{i}@aggTrade", agg(f"S{i}", 10 + i)) for i in range(4)]
    whole = lane.decode(good)
    assert whole.frames == 4
    assert whole.ticks == [Tick("usdm", f"S{i}", 5, "1.5", "", "2") for i in range(4)]
    assert (whole.ids, whole.counts) == ([10, 11, 12, 13], [])
    damaged = [
        b'{"stream":"s2@aggTrade","data":{"e":',  # not JSON
        frame("s2@aggTrade", agg("S2", 12, price="1e5")),  # a value the struct refuses
        frame("s2@aggTrade", agg("S2", -1)),  # a value the twin refuses too
        frame("s2@aggTrade", mini("S2")),  # another kind
        frame("s2@markPrice", agg("S2", 12)),  # names a stream of another kind
        frame("s2@trade", agg("S2", 12)),  # names a stream USD-M does not serve
    ]
    for bad in damaged:
        run = lane.decode([*good[:2], bad, good[3]])
        assert (run.frames, run.ticks, run.ids) == (2, whole.ticks[:2], [10, 11]), bad
        assert lane.decode([bad]).frames == 0
    # Another stream of the lane: the codec decodes it alike (by the stream it names).
    assert lane.decode([frame("other@aggTrade", agg("S2", 12))]).ticks == whole.ticks[2:3]
    # A symbol beyond ASCII is fine (checked the slow way).
    run = lane.decode([frame("x@aggTrade", agg("币安人生USDT", 1))])
    assert [t.symbol for t in run.ticks] == ["币安人生USDT"]


def test_an_array_lane_counts_the_ticks_of_each_frame() -> None:
    lane = adapter(Market.SPOT).tick_decoder().lane("!miniTicker@arr")
    assert lane is not None
    frames = [
        frame("!miniTicker@arr", [mini("A", "1"), mini("B", "2")]),
        frame("!miniTicker@arr", []),
        frame("!miniTicker@arr", [mini("C", "3")]),
        frame("!miniTicker@arr", [mini("D", "4"), mini("E", "x")]),
    ]
    run = lane.decode(frames)
    assert run.frames == 3
    assert [(t.symbol, t.price, t.quote_volume) for t in run.ticks] == [
        ("A", "1", "4"), ("B", "2", "4"), ("C", "3", "4")
    ]  # fmt: skip
    assert (run.counts, run.ids) == ([2, 0, 1], [])
