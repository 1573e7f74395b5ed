"""The market feed (marketd.testing.marketfeed): spot and USD-M frames as marketd's Binance
codec decodes them, deterministic books whose REST snapshots agree with the diffs (checked
with marketd's own sync machine), the rates, the REST answers, and the real server read
back with trio-websocket."""

from __future__ import annotations

import itertools
import json
import random
import time
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from marketd.books.sync import SymbolSync
from marketd.config.settings import TopicSettings
from marketd.data.events import DepthDiff
from marketd.data.records import FrameBatch, Market
from marketd.exchanges.binance.codec import Codec
from marketd.testing.marketfeed import (
    DEPTH,
    DEPTH_HZ,
    FrameCounter,
    Ladder,
    MarketFeed,
    MarketFeedProcess,
    MarketTables,
    RatedStream,
    read_market,
    reference_rates,
    stream_rates,
)
from marketd.testing.processes import http_json
from marketd.v1.market_data_pb2 import MarketEvent

SPOT, USDM = Market.SPOT, Market.USDM


def frames(stream: RatedStream, count: int, now_ms: int = 1_700_000_000_000) -> list[str]:
    """``count`` frames of ``stream`` (its next ids), as text without the WebSocket header."""
    out: list[bytes] = []
    stream.take(out, count, now_ms)
    return [payload.decode() for payload in out[1::2]]


def decode(market: Market, texts: list[str]) -> list[tuple[MarketEvent, Any]]:
    """``texts`` through marketd's Binance codec: (event, its DepthDiff or None) each."""
    result = Codec(market, TopicSettings()).decode_batch(
        FrameBatch(market, "test", texts, [time.time_ns()] * len(texts))
    )
    assert (result.malformed, result.unknown) == (0, 0), result.error
    assert len(result.records) == len(texts)
    return [
        (MarketEvent.FromString(r.value), e)
        for r, e in zip(result.records, result.records.events, strict=True)
    ]


def levels(raw: list[list[str]]) -> list[tuple[str, str]]:
    return [(p, q) for p, q in raw]


def synced_book(sync: SymbolSync) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return sync.book.bids.top(10_000), sync.book.asks.top(10_000)


@pytest.fixture
def feed_factory() -> Iterator[Any]:
    feeds: list[MarketFeed] = []

    def make(spot: int = 3, usdm: int = 3, rate: float = 3000, levels: int = 200) -> MarketFeed:
        feed = MarketFeed(spot, usdm, rate, levels)
        feed.start()
        feeds.append(feed)
        return feed

    yield make
    for feed in feeds:
        feed.close()


# -- books -------------------------------------------------------------------------------------


@pytest.mark.parametrize("market", [SPOT, USDM])
@pytest.mark.parametrize("index", [0, 40, 120])  # spans 4, 3 and 1 update ids a message
def test_snapshot_is_an_older_snapshot_plus_the_diffs(market: Market, index: int) -> None:
    ladder = Ladder(MarketTables(index, market), levels=300)
    rng = random.Random(index)
    for _ in range(5):
        older = rng.randrange(0, 400)
        newer = older + rng.randrange(1, 400)
        book = {0: dict(levels(ladder.book(older)[0])), 1: dict(levels(ladder.book(older)[1]))}
        expected_first = ladder.update_id(older) + 1
        for message in range(older + 1, newer + 1):
            first, final, prev, bids, asks = ladder.diff(message)
            assert first == expected_first
            assert final == ladder.update_id(message)
            assert prev == first - 1
            expected_first = final + 1
            for side, diff in ((0, bids), (1, asks)):
                for price, qty in diff:
                    if Decimal(qty) == 0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = qty
        bids, asks = ladder.book(newer)
        assert sorted(book[0].items()) == sorted(levels(bids))
        assert sorted(book[1].items()) == sorted(levels(asks))


def test_books_are_plausible_never_cross_and_lose_levels_now_and_then() -> None:
    ladder = Ladder(MarketTables(0, USDM), levels=1000)
    assert (ladder.symbol, ladder.span) == ("BTCUSDT", 4)
    bids, asks = ladder.book(0)
    assert len(bids) == len(asks) == 1000  # nothing deleted before any update
    zeros = 0
    for n in (1, 10, 1000, 123_456):
        bids, asks = ladder.book(n)
        bid_prices = [Decimal(p) for p, _ in bids]
        ask_prices = [Decimal(p) for p, _ in asks]
        assert bid_prices == sorted(bid_prices, reverse=True)  # best first
        assert ask_prices == sorted(ask_prices)
        assert bid_prices[0] < Decimal(65000) < ask_prices[0]
        assert Decimal(58000) < bid_prices[-1]
        assert ask_prices[-1] < Decimal(72000)
        assert all(Decimal(q) > 0 for _, q in bids + asks)
        zeros += 2000 - len(bids) - len(asks)
    assert zeros > 0  # some levels are gone at any time (deleted by a diff)
    deleted = sum(
        1 for m in range(1, 200) for _, q in ladder.diff(m)[3] + ladder.diff(m)[4] if q == "0.000"
    )
    assert deleted > 0
    first, final, _, bids, asks = ladder.diff(1)
    assert final - first + 1 == 4
    assert 4 <= len(bids) <= 12  # the levels 4 ids touched
    assert 4 <= len(asks) <= 12
    assert len(Ladder(MarketTables(200, SPOT), levels=1000).diff(7)[3]) == 3  # a quiet symbol


def test_ladder_refuses_more_levels_than_fit_below_the_price() -> None:
    with pytest.raises(ValueError, match="levels"):
        Ladder(MarketTables(0, SPOT), levels=10_000)


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_marketd_books_sync_on_a_snapshot_and_agree_with_later_ones(market: Market) -> None:
    """The books' own machine: diffs buffered, a snapshot (ahead of some of them) bridged;
    then the book equals a fresh snapshot at the same id (what an audit checks)."""
    feed = MarketFeed(2, 2, rate=1000, levels=300)
    try:
        stream = feed.market_streams[market][f"ethusdt@{DEPTH}"]
        sync = SymbolSync(chained=market is USDM, depth=1000, snapshot_limit=1000)
        early = decode(market, frames(stream, 5))
        wants = [sync.on_diff(diff) for _, diff in early]
        assert wants[0]  # a snapshot asked for, once
        assert not any(wants[1:])
        status, snapshot = feed.depth(market, {"symbol": "ETHUSDT", "limit": "1000"})
        assert status == 200
        assert ("E" in snapshot) == ("T" in snapshot) == (market is USDM)
        late = decode(market, frames(stream, 20))  # rendered after the snapshot
        assert not sync.on_snapshot(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
        for _, diff in late:
            assert not sync.on_diff(diff)
        assert sync.synced
        assert sync.last_update_id == late[-1][1].final
        status, fresh = feed.depth(market, {"symbol": "ETHUSDT", "limit": "1000"})
        assert fresh["lastUpdateId"] == sync.last_update_id
        assert synced_book(sync) == (levels(fresh["bids"]), levels(fresh["asks"]))
        assert sync.resyncs.total() == 0
    finally:
        feed.close()


# -- frames as marketd decodes them -----------------------------------------------------------


def test_spot_frames_decode_as_marketd_decodes_them() -> None:
    feed = MarketFeed(2, 1, rate=1000, levels=100)
    try:
        streams = feed.market_streams[SPOT]
        texts = frames(streams["btcusdt@trade"], 3) + frames(streams["btcusdt@bookTicker"], 2)
        texts += frames(streams["btcusdt@aggTrade"], 2) + frames(streams[f"btcusdt@{DEPTH}"], 2)
        decoded = decode(SPOT, texts)
        raw = [json.loads(t)["data"] for t in texts]
        ladder = feed.ladders[SPOT]["BTCUSDT"]
        for (event, diff), data in zip(decoded, raw, strict=True):
            assert event.symbol == "BTCUSDT"
            kind = event.WhichOneof("event")
            if kind == "trade":
                assert list(data) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
                assert (event.trade.trade_id, event.trade.price) == (data["t"], data["p"])
                assert event.trade.quantity == data["q"]
            elif kind == "book_ticker":
                assert list(data) == ["u", "s", "b", "B", "a", "A"]
                bt = event.book_ticker
                assert (bt.update_id, bt.bid_price, bt.ask_price) == (
                    data["u"],
                    data["b"],
                    data["a"],
                )
                assert Decimal(bt.bid_price) < Decimal(bt.ask_price)
            elif kind == "agg_trade":
                assert event.agg_trade.agg_trade_id == data["a"]
            else:
                assert kind == "depth_diff"
                assert list(data) == ["e", "E", "s", "U", "u", "b", "a"]
                assert diff.prev is None  # spot: no pu
                assert (diff.first, diff.final) == (data["U"], data["u"])
                first, final, _, bids, asks = ladder.diff((diff.final - ladder.base) // ladder.span)
                assert (diff.first, diff.final) == (first, final)
                assert [list(b) for b in diff.bids] == bids
                assert [list(a) for a in diff.asks] == asks
                assert all(len(p.partition(".")[2]) == 8 for p, _ in bids + asks)
        assert [e.trade.trade_id for e, _ in decoded[:3]] == [1, 2, 3]
        assert [e.depth_diff.final_update_id for e, _ in decoded[-2:]] == [
            ladder.update_id(1),
            ladder.update_id(2),
        ]
    finally:
        feed.close()


def test_usdm_frames_decode_as_marketd_decodes_them() -> None:
    feed = MarketFeed(1, 2, rate=1000, levels=100)
    try:
        streams = feed.market_streams[USDM]
        texts = frames(streams["ethusdt@aggTrade"], 3) + frames(streams["ethusdt@bookTicker"], 2)
        texts += frames(streams[f"ethusdt@{DEPTH}"], 3)
        decoded = decode(USDM, texts)
        raw = [json.loads(t)["data"] for t in texts]
        agg = [
            (e.agg_trade, d) for (e, _), d in zip(decoded, raw, strict=True) if d["e"] == "aggTrade"
        ]
        assert [a.agg_trade_id for a, _ in agg] == [1, 2, 3]
        for a, data in agg:
            assert list(data) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m"]
            assert (a.price, a.quantity, a.buyer_is_maker) == (data["p"], data["q"], data["m"])
            assert (a.first_trade_id, a.last_trade_id) == (data["f"], data["l"])
            assert len(data["p"].partition(".")[2]) == 2  # ETH's precision, not spot's 8
        tickers = [
            (e.book_ticker, d)
            for (e, _), d in zip(decoded, raw, strict=True)
            if d["e"] == "bookTicker"
        ]
        assert len(tickers) == 2
        for bt, data in tickers:
            assert list(data) == ["e", "u", "E", "T", "s", "b", "B", "a", "A"]
            assert bt.transaction_time_ms == data["T"]
            assert (bt.bid_quantity, bt.ask_quantity) == (data["B"], data["A"])
        diffs = [d for _, d in decoded if d is not None]
        assert len(diffs) == 3
        for a, b in itertools.pairwise(diffs):
            assert b.prev == a.final  # pu chains
        ladder = feed.ladders[USDM]["ETHUSDT"]
        assert diffs[0].prev == ladder.update_id(0)
        assert [d.final for d in diffs] == [ladder.update_id(m) for m in (1, 2, 3)]
        assert all(e.depth_diff.transaction_time_ms > 0 for e, d in decoded if d is not None)
    finally:
        feed.close()


# -- rates -------------------------------------------------------------------------------------


def test_rates_follow_the_reference_market() -> None:
    reference = reference_rates(300, 500)
    core = {k: r for k, r in reference.items() if not (k[0] is SPOT and k[1] == "aggTrade")}
    assert sum(core.values()) == pytest.approx(8000 + 3000 + 12000)
    assert reference[(SPOT, DEPTH, 299)] == reference[(USDM, DEPTH, 0)] == DEPTH_HZ
    btc, tail = reference[(USDM, "aggTrade", 0)], reference[(USDM, "aggTrade", 499)]
    assert btc == pytest.approx(1800 / sum(1 / (i + 1) for i in range(500)))  # Zipf: hot
    assert btc / tail == pytest.approx(500)
    assert reference[(USDM, "bookTicker", 7)] == pytest.approx(4 * reference[(USDM, "aggTrade", 7)])
    for total in (2300, 23_000, 60_000):
        rates = stream_rates(300, 500, total)
        assert sum(r for k, (r, _) in rates.items() if k in core) == pytest.approx(total)
        depth = rates[(SPOT, DEPTH, 5)][0]
        assert depth == pytest.approx(min(DEPTH_HZ, DEPTH_HZ * total / 23_000))
        assert all(share == 0 for _, share in rates.values())
    flat = stream_rates(300, 500, 0)
    assert flat[(USDM, DEPTH, 3)] == (DEPTH_HZ, 0.0)  # depth stays at 10/s flat out
    assert flat[(SPOT, "trade", 0)][0] == 0  # trades: flat out, by share
    assert flat[(SPOT, "trade", 0)][1] > 0
    with pytest.raises(ValueError, match="rate"):
        stream_rates(1, 1, -1)


def test_frame_counter_counts_frames_split_anywhere() -> None:
    payloads = [b"x" * n for n in (0, 1, 125, 126, 300, 65535, 65536, 70000, 3)] * 3
    stream = b""
    for p in payloads:
        n = len(p)
        head = (
            bytes((0x81, n)) if n < 126
            else bytes((0x81, 126)) + n.to_bytes(2, "big") if n < 65536
            else bytes((0x81, 127)) + n.to_bytes(8, "big")
        )  # fmt: skip
        stream += head + p
    rng = random.Random(3)
    for _ in range(20):
        counter, pos = FrameCounter(), 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 7, 100, 5000, 80_000])
            counter.feed(stream[pos : pos + step])
            pos += step
        assert counter.frames == len(payloads)
        assert counter.bytes == len(stream)


# -- REST -------------------------------------------------------------------------------------


def test_rest_answers(feed_factory: Any) -> None:
    feed = feed_factory(spot=2, usdm=3, rate=1000)
    urls = feed.urls()
    spot, fut = urls["spot_rest_url"], urls["futures_rest_url"]
    assert urls["spot_symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert urls["usdm_symbols"] == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    assert http_json(spot + "/api/v3/ping") == (200, {})
    assert http_json(fut + "/fapi/v1/ping") == (200, {})
    for base, prefix in ((spot, "/api/v3"), (fut, "/fapi/v1")):
        status, body = http_json(base + prefix + "/time")
        assert status == 200
        assert abs(body["serverTime"] - time.time() * 1000) < 60_000
    status, info = http_json(fut + "/fapi/v1/exchangeInfo")
    assert [s["symbol"] for s in info["symbols"]] == urls["usdm_symbols"]
    status, info = http_json(spot + "/api/v3/exchangeInfo")
    assert [s["symbol"] for s in info["symbols"]] == urls["spot_symbols"]
    # Depth: Binance's shape, the limit honoured, the id where the stream stands.
    status, book = http_json(spot + "/api/v3/depth?symbol=BTCUSDT&limit=5")
    assert status == 200
    assert list(book) == ["lastUpdateId", "bids", "asks"]
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["lastUpdateId"] == feed.ladders[SPOT]["BTCUSDT"].update_id(0)
    status, book = http_json(fut + "/fapi/v1/depth?symbol=BNBUSDT&limit=1000")
    assert list(book) == ["lastUpdateId", "E", "T", "bids", "asks"]
    assert 150 < len(book["bids"]) <= 200  # the ladder's 200 levels, less those deleted
    assert http_json(fut + "/fapi/v1/depth?symbol=NOPE")[0] == 400
    assert http_json(fut + "/fapi/v1/klines?symbol=BTCUSDT")[0] == 404
    assert http_json(fut + "/fapi/v1/depth?symbol=BTCUSDT&limit=x")[0] == 400
    # Trade history: the very trades the streams rendered.
    sent = [json.loads(t)["data"] for t in frames(feed.market_streams[USDM]["ethusdt@aggTrade"], 8)]
    status, rows = http_json(fut + "/fapi/v1/aggTrades?symbol=ETHUSDT&fromId=3&limit=4")
    assert status == 200
    assert [r["a"] for r in rows] == [3, 4, 5, 6]
    for row in rows:
        data = sent[row["a"] - 1]
        assert (row["p"], row["q"], row["m"], row["f"], row["l"]) == (
            data["p"], data["q"], data["m"], data["f"], data["l"]
        )  # fmt: skip
    assert [r["a"] for r in http_json(fut + "/fapi/v1/aggTrades?symbol=ETHUSDT&limit=2")[1]] == [
        7,
        8,
    ]
    trades = [json.loads(t)["data"] for t in frames(feed.market_streams[SPOT]["ethusdt@trade"], 4)]
    status, rows = http_json(spot + "/api/v3/historicalTrades?symbol=ETHUSDT&fromId=2&limit=3")
    assert [(r["id"], r["price"], r["qty"]) for r in rows] == [
        (t["t"], t["p"], t["q"]) for t in trades[1:4]
    ]
    state = http_json(urls["control_url"] + "/state")[1]
    assert state["snapshots"] == {"spot": 1, "usdm": 2 - 1}  # (NOPE and limit=x: refused)
    assert state["frames_sent_by_stream"]["usdm:aggTrade"] == 8


# -- the real server ------------------------------------------------------------------------------


async def read(ws: WebSocketConnection, count: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        message = json.loads(await ws.get_message())
        if "stream" in message:
            out.append(message)
    return out


async def test_server_streams_books_that_sync_and_routes_like_binance(feed_factory: Any) -> None:
    # Depth at 10/s a stream: at least the reference rate of 2 + 2 symbols (15,040 msgs/s).
    feed = feed_factory(spot=2, usdm=2, rate=16_000)
    urls = feed.urls()
    public = urls["futures_ws_url"] + "/public/stream"
    market = urls["futures_ws_url"] + "/market/stream"
    with trio.fail_after(20):
        # A stream asked for on the wrong route is refused, as Binance does.
        async with open_websocket_url(market) as ws:
            await ws.send_message('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":1}')
            reply = json.loads(await ws.get_message())
            assert reply["id"] == 1
            assert reply["error"]["code"] == 2
        async with open_websocket_url(public) as ws:
            params = ["ethusdt@depth@100ms", "ethusdt@bookTicker"]
            await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 7}))
            assert json.loads(await ws.get_message()) == {"result": None, "id": 7}
            sync = SymbolSync(chained=True, depth=1000, snapshot_limit=1000)
            codec = Codec(USDM, TopicSettings())
            seen: set[str] = set()
            snapshot_taken = False
            while not (sync.synced and sync.applied >= 10):
                message = await ws.get_message()
                assert isinstance(message, str)
                seen.add(json.loads(message)["stream"])
                batch = FrameBatch(USDM, "test", [message], [time.time_ns()])
                result = codec.decode_batch(batch)
                assert (result.malformed, result.unknown) == (0, 0), result.error
                diff = result.records.events[0]
                if isinstance(diff, DepthDiff) and sync.on_diff(diff) and not snapshot_taken:
                    snapshot_taken = True
                    url = urls["futures_rest_url"] + "/fapi/v1/depth?symbol=ETHUSDT&limit=1000"
                    _, book = await trio.to_thread.run_sync(http_json, url)
                    sync.on_snapshot(book["lastUpdateId"], book["bids"], book["asks"])
            assert seen == set(params)
        # What an audit does: a fresh snapshot at the book's id agrees with the book.
        stream = feed.market_streams[USDM][f"ethusdt@{DEPTH}"]
        ladder = feed.ladders[USDM]["ETHUSDT"]
        messages = (sync.last_update_id - ladder.base) // ladder.span
        assert stream.next_id - 1 >= messages
        bids, asks = ladder.book(messages, 1000)
        assert synced_book(sync) == (levels(bids), levels(asks))
        assert sync.resyncs.total() == 0
        # Spot: the combined-stream URL, trades with consecutive ids.
        spot_url = urls["spot_ws_url"] + "/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
        async with open_websocket_url(spot_url) as ws:
            got = await read(ws, 30)
            while not any(m["stream"] == "btcusdt@depth@100ms" for m in got):
                got += await read(ws, 10)  # depth: 10/s, trades ~800/s here
        ids = [m["data"]["t"] for m in got if m["stream"] == "btcusdt@trade"]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert {m["stream"] for m in got} == {"btcusdt@trade", "btcusdt@depth@100ms"}
    assert feed.state()["connections_total"] == 3


async def test_rates_are_roughly_respected(feed_factory: Any) -> None:
    feed = feed_factory(spot=4, usdm=1, rate=3000)
    rates = stream_rates(4, 1, 3000)
    names = [
        f"{s.lower()}@{c}" for s in feed.urls()["spot_symbols"] for c in ("trade", "bookTicker")
    ]
    expected = sum(rates[(SPOT, c, i)][0] for i in range(4) for c in ("trade", "bookTicker"))
    url = feed.urls()["spot_ws_url"] + "/stream?streams=" + "/".join(names)
    with trio.fail_after(10):
        async with open_websocket_url(url) as ws:
            await ws.get_message()
            start, count = trio.current_time(), 0
            while trio.current_time() - start < 1.5:
                await ws.get_message()
                count += 1
            elapsed = trio.current_time() - start
            # A new rate reaches the connections already open: flat out now.
            feed.set_rate(0)
            await ws.get_message()
            start, flat = trio.current_time(), 0
            while trio.current_time() - start < 0.5:
                await ws.get_message()
                flat += 1
            flat_elapsed = trio.current_time() - start
    assert 0.6 * expected * elapsed < count < 1.4 * expected * elapsed
    assert flat / flat_elapsed > 3 * expected


def test_raw_reader_connects_as_marketd_plans(feed_factory: Any) -> None:
    feed = feed_factory(spot=3, usdm=3, rate=0, levels=50)  # flat out
    urls = feed.urls()
    subscriptions = [
        ("spot", urls["spot_symbols"], ["trade", DEPTH, "bookTicker"]),
        ("usdm", urls["usdm_symbols"], ["aggTrade", DEPTH, "bookTicker"]),
    ]
    result = read_market(urls, subscriptions, warmup=0.3, duration=1.0)
    assert result["connections"] == {"spot-0": 9, "usdm-public-0": 6, "usdm-market-0": 3}
    assert all(rate > 1000 for rate in result["frames_per_s_by_connection"].values()), result
    assert feed.state()["connections_total"] == 3


def test_process_prints_its_urls_and_serves(tmp_path: Path) -> None:
    with MarketFeedProcess(tmp_path, "--spot", "2", "--usdm", "3", "--rate", "500") as fx:
        assert fx.urls["usdm_symbols"] == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
        parts = urllib.parse.urlsplit(fx.urls["futures_ws_url"])
        assert (parts.scheme, parts.hostname, parts.path) == ("ws", "127.0.0.1", "/usdm")
        status, book = http_json(fx.urls["futures_rest_url"] + "/fapi/v1/depth?symbol=BTCUSDT")
        assert status == 200
        assert len(book["bids"]) == 100  # Binance's default limit
        assert fx.state()["levels"] == 1000
        assert fx.set_rate(0)["rate"] == 0
        assert fx.state()["rate"] == 0
