"""Recorded frames → ticks: the backtest's decoding gives exactly the ticks (and the
malformed / unknown counts) of the live path — codec, sequencer, tap, TickReader — for
every price kind, single and array streams, both markets, and damaged or odd frames."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence

import pytest
from conftest import DELAY_MS, SPOT, T0_MS, USDM, Scenario, frame

from marketd.backtest.ticks import FrameTicks
from marketd.config.alerts import PRICE_KINDS
from marketd.config.settings import TopicSettings
from marketd.data.events import Tick
from marketd.data.records import FrameBatch, Market
from marketd.exchanges import adapter
from marketd.recorder import Entry, read, read_blocks
from marketd.recorder.format import closed_marker, connected_marker

TicksOf = Callable[..., list[Tick]]


def mini(symbol: str, close: str, at_ms: int) -> dict[str, object]:
    return {"e": "24hrMiniTicker", "E": T0_MS + at_ms, "s": symbol, "c": close, "o": "1.0",
            "h": "9.0", "l": "0.5", "v": "100", "q": "12345.6"}  # fmt: skip


def mark(symbol: str, price: str, at_ms: int) -> dict[str, object]:
    return {"e": "markPriceUpdate", "E": T0_MS + at_ms, "s": symbol, "p": price,
            "i": "2.0", "P": price, "r": "-0.00010000", "T": T0_MS + 3_600_000}  # fmt: skip


def trade(symbol: str, trade_id: int, price: str, at_ms: int) -> dict[str, object]:
    return {"e": "trade", "E": T0_MS + at_ms, "s": symbol, "t": trade_id, "p": price,
            "q": "0.5", "T": T0_MS + at_ms, "m": True, "M": True}  # fmt: skip


def futures_ticker(symbol: str, last: str, at_ms: int) -> dict[str, object]:
    return {"e": "24hrTicker", "E": T0_MS + at_ms, "s": symbol, "p": "0.1", "P": "1.0",
            "w": "2.0", "c": last, "Q": "1", "o": "1.9", "h": "2.2", "l": "1.8", "v": "10",
            "q": "20000", "O": T0_MS - 86_400_000, "C": T0_MS + at_ms, "F": 1, "L": 9,
            "n": 9}  # fmt: skip


def kline(symbol: str, close: str, at_ms: int) -> dict[str, object]:
    return {"e": "kline", "E": T0_MS + at_ms, "s": symbol, "k": {
        "t": T0_MS, "T": T0_MS + 59_999, "s": symbol, "i": "1m", "f": 1, "L": 5, "o": "2.0",
        "c": close, "h": "2.5", "l": "1.5", "v": "3", "n": 5, "x": False, "q": "6", "V": "1",
        "Q": "2", "B": "0"}}  # fmt: skip


def force_order(symbol: str, side: str, average: str, at_ms: int) -> dict[str, object]:
    return {"e": "forceOrder", "E": T0_MS + at_ms, "o": {
        "s": symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": "3", "p": "1.9", "ap": average,
        "X": "FILLED", "l": "3", "z": "3", "T": T0_MS + at_ms}}  # fmt: skip


def varied(s: Scenario) -> list[Entry]:
    """Every price kind on its streams, with duplicates, a gap, damage and odd frames."""
    ms = 0

    def add(stream: str, data: object, connection: str = USDM) -> None:
        nonlocal ms
        ms += 10
        s.raw(ms, json.dumps({"stream": stream, "data": data}), stream=stream,
              connection=connection)  # fmt: skip

    for i in range(3):
        s.agg_trade("BTCUSDT", f"100.{i}0", ms + i)
        s.agg_trade("BTCUSDT", f"100.{i}0", ms + i, agg_id=1001 + i, connection="usdm-market-1")
        s.agg_trade("ETHUSDT", f"2000.{i}", ms + i, connection=SPOT)
    s.agg_trade("BTCUSDT", "101.00", 900, agg_id=1010)  # a gap: 1004..1009
    add("btcusdt@miniTicker", mini("BTCUSDT", "101.5", ms))
    add("!miniTicker@arr", [mini("BTCUSDT", "101.6", ms), mini("ETHUSDT", "2001", ms)])
    add("!miniTicker@arr", [mini("BTCUSDT", "101.6", ms)], SPOT)
    add("btcusdt@markPrice", mark("BTCUSDT", "101.7", ms))
    add("btcusdt@markPrice@1s", mark("BTCUSDT", "101.8", ms))
    add("!markPrice@arr@1s", [mark("BTCUSDT", "101.9", ms), mark("ETHUSDT", "2002", ms)])
    add("btcusdt@trade", trade("BTCUSDT", 7, "102", ms), SPOT)
    add("btcusdt@trade", trade("BTCUSDT", 7, "102", ms), SPOT)  # a duplicate
    add("btcusdt@ticker", futures_ticker("BTCUSDT", "102.1", ms))
    add("btcusdt@kline_1m", kline("BTCUSDT", "102.2", ms))
    add("btcusdt@forceOrder", force_order("BTCUSDT", "SELL", "102.3", ms))
    add("!forceOrder@arr", force_order("ETHUSDT", "BUY", "2003", ms))
    add("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 1,
                                "u": 2, "pu": 0, "b": [], "a": []})  # fmt: skip
    # Damage: a bad price, a wrong event type, a missing field, an unknown event, a bad
    # array item, not JSON, the stream name unreadable, and the connection's own entries.
    add("btcusdt@aggTrade", {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 9, "p": "1e5",
                             "q": "1", "f": 1, "l": 1, "T": 1, "m": True})  # fmt: skip
    add("btcusdt@aggTrade", mini("BTCUSDT", "1", ms))
    add("btcusdt@markPrice", {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT"})
    add("btcusdt@markPrice", {"e": "fancyNewEvent", "E": 1})
    add("!markPrice@arr", [mark("BTCUSDT", "101.9", ms), {"e": "markPriceUpdate"}])
    s.raw(ms + 1, '{"stream":"btcusdt@aggTrade","data":{"e":', stream="btcusdt@aggTrade")
    s.raw(ms + 2, "[1,2,3]", stream="")
    s.raw(ms + 3, connected_marker("wss://fstream.binance.com/market/stream"), stream="")
    s.raw(ms + 4, '{"result":null,"id":1}', stream="")
    s.raw(ms + 5, closed_marker(1001, "going away", "exchange"), stream="")
    s.entries.append(Entry((T0_MS + ms) * 1_000_000, "rest", "https://fapi.binance.com",
                           "/fapi/v1/aggTrades?symbol=BTCUSDT", b"[]"))  # fmt: skip
    s.raw(ms + 6, frame("btcusdt@aggTrade", {}), stream="btcusdt@aggTrade", connection="odd-0")
    return s.entries


def decoded(
    entries: Sequence[Entry], kinds: Sequence[str], markets: Sequence[str]
) -> tuple[FrameTicks, list[Tick], list[int]]:
    decoder = FrameTicks(kinds, [Market(m) for m in markets])
    ticks: list[Tick] = []
    times: list[int] = []
    # In two calls, as the driver hands over chunks.
    decoder.decode(entries[:7], ticks, times)
    decoder.decode(entries[7:], ticks, times)
    return decoder, ticks, times


def codec_counts(entries: Sequence[Entry], kinds: Sequence[str]) -> tuple[int, int]:
    """Malformed and unknown frames, as the live codecs count those of ``kinds``."""
    codecs = {m: adapter(m).codec(TopicSettings()) for m in Market}
    malformed = unknown = 0
    for e in entries:
        if e.kind != "ws" or e.connection.startswith("odd"):
            continue
        market = Market(e.connection.partition("-")[0])
        wanted = adapter(market).vocabulary.kind_of(e.stream) in kinds or not e.stream
        text = e.payload.decode()
        if not wanted or text.startswith('{"marketd"') or adapter(market).parse_control(text):
            continue
        result = codecs[market].decode_batch(FrameBatch(market, e.connection, [text], [0]))
        malformed += result.malformed
        unknown += result.unknown
    return malformed, unknown


@pytest.mark.parametrize(
    ("kinds", "markets"),
    [
        (PRICE_KINDS, ("usdm", "spot")),
        (("aggTrade",), ("usdm",)),
        (("24hrMiniTicker", "markPriceUpdate"), ("usdm", "spot")),
        (("trade", "24hrTicker", "kline", "forceOrder"), ("spot", "usdm")),
    ],
)
def test_the_ticks_are_the_live_paths(
    scenario: Scenario, ticks_of: TicksOf, kinds: Sequence[str], markets: Sequence[str]
) -> None:
    entries = varied(scenario)
    live = [e for e in entries if e.kind == "ws" and not e.connection.startswith("odd")]
    decoder, ticks, times = decoded(entries, kinds, markets)
    assert ticks == ticks_of(live, kinds, markets)
    assert len(times) == len(ticks)
    st = decoder.statistics()
    assert (st.rest, st.unknown_connections, st.ticks) == (1, 1, len(ticks))
    if len(kinds) == len(PRICE_KINDS):
        assert (st.malformed, st.unknown) == codec_counts(entries, kinds)
        assert (st.malformed, st.unknown) == (6, 1)  # the damage above, not the markers
        assert st.control == 3  # the markers and the subscription reply
        assert (st.duplicates, st.gaps) == (4, 1)
        # The fast path took the well-formed frames of its kinds; the codec the rest:
        # 24hrTicker, kline, 2 forceOrder, the 7 damaged frames.
        assert st.by_codec == 11


def test_each_tick_carries_the_receive_time_of_its_frame(scenario: Scenario) -> None:
    scenario.raw(
        10, frame("!miniTicker@arr", [mini("AUSDT", "1", 10), mini("BUSDT", "2", 10)]),
        stream="!miniTicker@arr",
    )  # fmt: skip
    scenario.agg_trade("AUSDT", "1.5", 20)
    _, ticks, times = decoded(scenario.entries, PRICE_KINDS, ("usdm",))
    assert [(t.symbol, t.price) for t in ticks] == [("AUSDT", "1"), ("BUSDT", "2"),
                                                    ("AUSDT", "1.5")]  # fmt: skip
    assert times == [e.received_ns for e in scenario.entries for _ in range(2)][:3]


def shuffled(s: Scenario, seed: int) -> list[Entry]:
    """Long runs of the kinds with a lane, on several connections of both markets, with
    duplicate, late and missing trade ids, a symbol beyond ASCII, damage anywhere in a
    run, frames named for another stream, and other kinds and control frames between."""
    rng = random.Random(seed)
    symbols = ["AUSDT", "BUSDT", "币安人生USDT"]
    ids = dict.fromkeys(symbols, 100)
    for ms in range(400):
        symbol = rng.choice(symbols)
        stream = f"{symbol.lower()}@aggTrade"
        pick = rng.random()
        if pick < 0.5:
            ids[symbol] += rng.choice((1, 1, 1, 1, 0, -2, 3))  # mostly the next one
            data: object = {"e": "aggTrade", "E": T0_MS + ms, "s": symbol, "a": ids[symbol],
                            "p": f"{rng.randint(1, 9)}.5", "q": "1", "f": 1, "l": 1,
                            "T": T0_MS + ms, "m": False}  # fmt: skip
            connection = rng.choice((USDM, "usdm-market-1", SPOT))
        elif pick < 0.6:
            stream, data = "!miniTicker@arr", [mini(s, f"{ms}.5", ms) for s in symbols[:2]]
            connection = rng.choice((USDM, SPOT))
        elif pick < 0.7:
            stream, data = f"{symbol.lower()}@markPrice", mark(symbol, f"{ms}.25", ms)
            connection = USDM
        elif pick < 0.75:
            stream, data = f"{symbol.lower()}@miniTicker", mini(symbol, "1.5", ms)
            connection = rng.choice((USDM, SPOT))
        elif pick < 0.8:
            stream, data = f"{symbol.lower()}@ticker", futures_ticker(symbol, "2.5", ms)
            connection = USDM
        else:
            damage = rng.randrange(6)
            connection = USDM
            data = mini(symbol, "1", ms) | {"e": "aggTrade"}  # a missing field
            if damage == 1:
                data = {"e": "aggTrade", "E": 1, "s": symbol, "a": 1, "p": "1.2.3", "q": "1",
                        "f": 1, "l": 1, "T": 1, "m": False}  # fmt: skip
            elif damage == 2:
                stream, data = "!miniTicker@arr", [mini("AUSDT", "1", ms), mini("B", "", ms)]
            elif damage == 3:  # named for another symbol's stream
                other = f"{rng.choice(symbols).lower()}@aggTrade"
                ids[symbol] += 1
                data = {"e": "aggTrade", "E": T0_MS + ms, "s": symbol, "a": ids[symbol],
                        "p": "3.5", "q": "1", "f": 1, "l": 1, "T": T0_MS + ms,
                        "m": False}  # fmt: skip
                s.raw(ms, frame(other, data), stream=stream, connection=connection)
                continue
            elif damage == 4:
                s.raw(ms, '{"result":null,"id":7}', stream="", connection=connection)
                continue
            elif damage == 5:
                s.raw(ms, f'{{"stream":"{stream}","data":{{', stream=stream)
                continue
        s.raw(ms, frame(stream, data), stream=stream, connection=connection)
    return s.entries


@pytest.mark.parametrize("seed", range(6))
def test_runs_with_damage_anywhere_give_the_live_paths_ticks(
    scenario: Scenario, ticks_of: TicksOf, seed: int
) -> None:
    entries = shuffled(scenario, seed)
    decoder = FrameTicks(PRICE_KINDS, [Market.USDM, Market.SPOT])
    ticks: list[Tick] = []
    times: list[int] = []
    for start in range(0, len(entries), 37):  # chunks that cut runs
        decoder.decode(entries[start : start + 37], ticks, times)
    assert ticks == ticks_of(entries, PRICE_KINDS, ("usdm", "spot"))
    # Every frame here is received DELAY_MS after its event time.
    assert times == [(t.time_ms + DELAY_MS) * 1_000_000 for t in ticks]
    st = decoder.statistics()
    assert (st.malformed, st.unknown) == codec_counts(entries, PRICE_KINDS)
    assert st.by_codec < st.frames / 2  # the lanes did most of it


@pytest.mark.parametrize("seed", range(3))
def test_blocks_as_columns_give_what_entries_give(scenario: Scenario, seed: int) -> None:
    """decode_columns over a recording's blocks (whole groups to one lane where every
    stream of the group has it) = decode over its entries: ticks, times, counts."""
    rng = random.Random(seed)
    shuffled(scenario, seed)  # mixed groups: entry by entry
    for ms in range(400, 3_000):  # one connection, one lane: whole groups
        symbol = rng.choice(("AUSDT", "BUSDT", "CUSDT"))
        if rng.random() < 0.01:  # damage inside the run: through the codec in its place
            stream = f"{symbol.lower()}@aggTrade"
            scenario.raw(ms, frame(stream, {"e": "aggTrade", "s": symbol}), stream=stream)
        else:
            agg_id = None if rng.random() < 0.97 else 1_000  # now and then a duplicate
            scenario.agg_trade(symbol, f"{rng.randint(100, 200)}.5", ms, agg_id=agg_id)
    directory = scenario.write()
    by_entry, by_block = (FrameTicks(PRICE_KINDS, [Market.USDM, Market.SPOT]) for _ in "ab")
    expected: tuple[list[Tick], list[int]] = ([], [])
    by_entry.decode(list(read(directory)), *expected)
    got: tuple[list[Tick], list[int]] = ([], [])
    one_by_one: list[int] = []  # entries decode_columns left to decode
    decode = by_block.decode

    def spy(entries: Sequence[Entry], ticks: list[Tick], received: list[int]) -> None:
        one_by_one.append(len(entries))
        decode(entries, ticks, received)

    by_block.decode = spy  # type: ignore[method-assign]
    for block in read_blocks(directory):
        by_block.decode_columns(block, *got)
    assert got == expected
    assert len(expected[0]) > 2_000
    assert by_block.statistics() == by_entry.statistics()
    st = by_block.statistics()
    assert st.malformed > 10
    assert st.duplicates > 10
    assert sum(one_by_one) < 800  # the shuffled part's; the long run's went as runs
