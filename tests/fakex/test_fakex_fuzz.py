"""The ``fuzz`` fault: deterministic mutated frames, none of them usable, paced into connections."""

from __future__ import annotations

from collections import Counter

import attrs
import orjson
import pytest
import trio
from fxclient import http, open_ws
from kit.wait import poll_until

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.fakex import FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.fakex.control import BadControl, parse_fault
from marketd.fakex.faults import fuzz_bases
from marketd.fakex.fuzz import BAD_DECIMALS, MUTATIONS, FuzzBase, fuzz_frames
from marketd.fakex.hub import MarketHub
from marketd.fakex.market import MarketModel, symbol_specs
from marketd.fakex.protocol import parse_stream
from marketd.pipeline.codecs import Codecs

CODEC = Codecs(TopicSettings())
CONFIG = FakeExchangeConfig(symbols=2, seed=3, rate=1_000)
SPOT_STREAMS = ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@bookTicker", "!miniTicker@arr"]
USDM_STREAMS = ["btcusdt@aggTrade", "ethusdt@depth", "btcusdt@markPrice@1s", "btcusdt@ticker"]


def bases(market: Market, names: list[str]) -> list[FuzzBase]:
    hub = MarketHub(MarketModel(market, symbol_specs(2, 3), 3))
    refs = [parse_stream(market, n, hub.symbol_index) for n in names]
    return fuzz_bases(hub, refs, 1_700_000_000_000)


def is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def test_bases_are_the_fakes_valid_frames() -> None:
    spot = bases(Market.SPOT, SPOT_STREAMS)
    assert [b.stream for b in spot] == SPOT_STREAMS
    trade, depth, book_ticker, minis = (orjson.loads(b.payload) for b in spot)
    assert (trade["e"], trade["s"], trade["t"], trade["m"]) == ("trade", "BTCUSDT", 70, True)
    assert depth["e"] == "depthUpdate"
    assert (depth["U"], depth["u"], len(depth["b"]), len(depth["a"])) == (100, 102, 2, 1)
    assert set(book_ticker) == {"u", "s", "b", "B", "a", "A"}
    assert [m["s"] for m in minis] == ["BTCUSDT", "ETHUSDT"]
    mark = orjson.loads(bases(Market.USDM, ["btcusdt@markPrice@1s"])[0].payload)
    assert (mark["e"], mark["s"]) == ("markPriceUpdate", "BTCUSDT")


def test_deterministic_for_a_seed_and_exact_count() -> None:
    b = bases(Market.SPOT, SPOT_STREAMS)
    one = list(fuzz_frames(500, 7, b, is_combined=True))
    assert len(one) == 500
    assert one == list(fuzz_frames(500, 7, b, is_combined=True))
    other = list(fuzz_frames(500, 8, b, is_combined=True))
    assert [f.text for f in other] != [f.text for f in one]
    assert list(fuzz_frames(0, 7, b, is_combined=True)) == []
    with pytest.raises(ValueError, match="at least one base"):
        list(fuzz_frames(1, 7, [], is_combined=True))


def test_every_round_covers_every_mutation_class() -> None:
    b = bases(Market.USDM, USDM_STREAMS)
    n = len(MUTATIONS)
    frames = list(fuzz_frames(3 * n, 1, b, is_combined=True))
    for r in range(3):
        assert sorted(f.mutation for f in frames[r * n : (r + 1) * n]) == sorted(MUTATIONS)


@pytest.mark.parametrize("is_combined", [True, False])
def test_each_class_is_broken_the_way_it_says(is_combined: bool) -> None:
    b = bases(Market.SPOT, SPOT_STREAMS)
    frames = list(fuzz_frames(40 * len(MUTATIONS), 11, b, is_combined=is_combined))
    by_class: dict[str, list[str]] = {}
    for f in frames:
        by_class.setdefault(f.mutation, []).append(f.text)
    valid_payloads = {x.payload for x in b}
    syntax = ("truncated", "broken_syntax", "trailing_garbage", "control_char", "bad_escape")
    for mutation in (*syntax, "empty", "not_json"):
        assert not any(is_json(t) for t in by_class[mutation]), mutation
    assert any(any(ord(c) < 0x20 for c in t) for t in by_class["control_char"])
    assert all(t.strip() == "" for t in by_class["empty"])
    for t in by_class["long_string"]:
        assert len(t) > 1_000
    for t in by_class["int64_overflow"]:
        numbers = [int(n) for n in _ints(t)]
        assert any(n >= 2**63 or n < -(2**63) for n in numbers)
    for t in by_class["negative_id"]:
        assert any(int(n) < -1 for n in _ints(t))
    for t in by_class["deep_nesting"]:
        assert "[[[[[[[[" in t or '{"a":{"a":{"a":' in t
    for t in by_class["bad_decimal"]:
        assert _has_bad_decimal(orjson.loads(t)), t
    for t in by_class["unknown_event"]:
        data = orjson.loads(t)
        payload = data["data"] if is_combined else data
        assert payload["e"] not in {"trade", "depthUpdate", "bookTicker", "24hrMiniTicker"}
    for mutation in ("missing_key", "wrong_type", "data_shape", "not_envelope"):
        for t in by_class[mutation]:
            assert is_json(t), mutation
            assert t not in valid_payloads or is_combined, mutation
    if is_combined:
        for t in by_class["unknown_stream"]:
            assert "@fuzz" in orjson.loads(t)["stream"] or "!fuzz" in orjson.loads(t)["stream"]
    for t in frames:
        t.text.encode("utf-8")  # no lone surrogates: a valid text frame
        assert "serverShutdown" not in t.text


def _ints(text: str) -> list[str]:
    out, cur = [], ""
    for c in text + " ":
        if c.isdigit() or (c == "-" and not cur):
            cur += c
        else:
            if cur.lstrip("-"):
                out.append(cur)
            cur = ""
    return out


def _has_bad_decimal(obj: object) -> bool:
    if isinstance(obj, dict):
        return any(_has_bad_decimal(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_bad_decimal(v) for v in obj)
    return isinstance(obj, str) and (obj in BAD_DECIMALS or obj == "")


def test_control_api_parses_fuzz() -> None:
    fault = parse_fault({"kind": "fuzz", "market": "spot", "count": 10_000, "seed": 42})
    assert (fault.kind, fault.market, fault.count, fault.seed) == (
        FaultKind.FUZZ,
        Market.SPOT,
        10_000,
        42,
    )
    with pytest.raises(BadControl, match="seed"):
        parse_fault({"kind": "malformed", "seed": 1})
    with pytest.raises(BadControl, match="seed"):
        parse_fault({"kind": "fuzz", "seed": "1"})


def unusable(market: Market, frames: list[str]) -> int:
    """How many of ``frames`` the daemon's codec counts as malformed or unknown."""
    result = CODEC.decode_batch(FrameBatch(market, "t", frames, [0] * len(frames)))
    return result.malformed + result.unknown


async def test_fuzz_reaches_a_connection_and_is_counted() -> None:
    config = attrs.evolve(CONFIG, paused=True)  # no market data: every frame is fuzz
    body = {"kind": "fuzz", "market": "spot", "count": 300, "seed": 5}
    url = "/stream?streams=btcusdt@trade/ethusdt@depth@100ms"
    with trio.fail_after(10):
        async with open_fake_exchange(config) as fx, open_ws(fx.spot_ws_url + url, queue=400) as ws:
            await poll_until(lambda: len(fx.connections) >= 1, timeout=20, what="a connection")
            status, _, reply = await http(fx.control_url + "/fault", "POST", body)
            assert status == 200
            assert reply == {"kind": "fuzz", "connections": 1, "frames": 300}
            got = [await ws.get_message() for _ in range(300)]
            with trio.move_on_after(0.2) as idle:
                await ws.get_message()
            assert idle.cancelled_caught  # exactly 300
            status, _, state = await http(fx.control_url + "/state")
    assert state["faults_injected"]["fuzz"] == 1
    spot, usdm = state["markets"]["spot"], state["markets"]["usdm"]
    assert (spot["fuzz_frames"], spot["fuzz_pending"], usdm["fuzz_frames"]) == (300, 0, 0)
    texts = [t if isinstance(t, str) else t.decode() for t in got]
    assert unusable(Market.SPOT, texts) == 300
    streams: Counter[str] = Counter()
    for text in texts:
        if is_json(text) and isinstance(obj := orjson.loads(text), dict):
            streams[str(obj.get("stream"))] += 1
    assert streams["btcusdt@trade"] > 0
    assert streams["ethusdt@depth@100ms"] > 0


async def test_ten_thousand_frames_do_not_cut_a_reader() -> None:
    # A queue limit below the fault's size: only pacing keeps the client connected.
    config = attrs.evolve(CONFIG, max_queue=5_000)
    with trio.fail_after(30):
        async with (
            open_fake_exchange(config) as fx,
            open_ws(fx.futures_ws_url + "/market/stream?streams=btcusdt@aggTrade") as ws,
        ):
            await poll_until(lambda: len(fx.connections) >= 1, timeout=20, what="a connection")
            assert fx.inject_fault(Fault(FaultKind.FUZZ, Market.USDM, count=10_000)) == 1
            bad = valid = 0
            while bad < 10_000:
                batch = [await ws.get_message() for _ in range(100)]
                texts = [t if isinstance(t, str) else t.decode() for t in batch]
                n = unusable(Market.USDM, texts)
                bad, valid = bad + n, valid + len(texts) - n
            usdm = fx.state()["markets"]["usdm"]
    assert bad == 10_000
    assert valid > 0  # real trades kept flowing between the fuzzed frames
    assert (usdm["fuzz_frames"], usdm["fuzz_pending"]) == (10_000, 0)
    assert (usdm["slow_disconnects"], usdm["connections_open"]) == (0, 1)


TIMED_STREAMS = {
    Market.SPOT: [
        "btcusdt@kline_1s", "ethusdt@kline_1M", "btcusdt@avgPrice", "btcusdt@ticker_1h",
        "ethusdt@ticker_1d", "btcusdt@depth5", "ethusdt@depth20@100ms",
    ],
    Market.USDM: [
        "btcusdt@kline_1m", "btcusdt@depth10@500ms", "btcusdt@forceOrder", "!forceOrder@arr",
        "btcusdt@markPrice", "!markPrice@arr",
    ],
}  # fmt: skip


@pytest.mark.parametrize("market", list(Market))
def test_fuzzing_the_timed_kinds_spoils_every_frame(market: Market) -> None:
    """Nested objects (a kline's candle, a liquidation's order) and payloads without a
    string value (spot partial depth) are fuzzed too, and none of the results is usable."""
    b = bases(market, TIMED_STREAMS[market])
    assert unusable(market, [f'{{"stream":"{x.stream}","data":{x.payload}}}' for x in b]) == 0
    frames = list(fuzz_frames(60 * len(MUTATIONS), 21, b, is_combined=True))
    assert {f.mutation for f in frames} == set(MUTATIONS)
    for start in range(0, len(frames), 200):
        chunk = [f.text for f in frames[start : start + 200]]
        assert unusable(market, chunk) == len(chunk)
    # Some mutations hit inside the nested objects.
    required = {
        "k": set("tTifLochlvnxqVQ"),
        "o": {"s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"},
    }
    inside = 0
    for f in frames:
        if f.mutation != "missing_key" or not is_json(f.text):
            continue
        data = orjson.loads(f.text).get("data")
        for key, keys in required.items():
            if isinstance(data, dict) and isinstance(data.get(key), dict):
                inside += not keys <= data[key].keys()
    assert inside > 0
