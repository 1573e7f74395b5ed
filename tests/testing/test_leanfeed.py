"""The lean feed (marketd.testing.leanfeed): Binance combined-stream frames over a hand-made
WebSocket server, on loopback, read back with trio-websocket and decoded."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from marketd.testing.leanfeed import LeanFeed, LeanFeedProcess
from marketd.testing.processes import http_json

TRADE_KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]  # Binance's order
AGG_KEYS = ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
BOOK_KEYS = ["u", "s", "b", "B", "a", "A"]


@pytest.fixture
def feed_factory() -> Iterator[Any]:
    feeds: list[LeanFeed] = []

    def make(symbols: int, rate: float, channels: tuple[str, ...] = ("trade",)) -> LeanFeed:
        feed = LeanFeed(symbols, rate, channels)
        feed.start()
        feeds.append(feed)
        return feed

    yield make
    for feed in feeds:
        feed.close()


def combined(feed: LeanFeed, channel: str = "trade") -> str:
    names = [f"{s.lower()}@{channel}" for s in feed.urls()["symbols"]]
    return f"{feed.urls()['spot_ws_url']}/stream?streams={'/'.join(names)}"


async def read(ws: WebSocketConnection, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        message = await ws.get_message()
        assert isinstance(message, str)
        assert message.startswith('{"stream":"')  # what marketd's hot path looks for
        out.append(json.loads(message))
    return out


def is_spot_decimal(text: str) -> bool:
    whole, _, frac = text.partition(".")
    return whole.isdigit() and len(frac) == 8 and frac.isdigit() and Decimal(text) > 0


async def test_trade_frames_are_binance_trades_with_consecutive_ids(feed_factory: Any) -> None:
    feed = feed_factory(symbols=3, rate=6000)
    symbols = feed.urls()["symbols"]
    assert symbols == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    with trio.fail_after(10):
        async with open_websocket_url(combined(feed)) as ws:
            frames = await read(ws, 600)
    last: dict[str, int] = {}
    prices: dict[str, list[Decimal]] = {s: [] for s in symbols}
    for frame in frames:
        assert list(frame) == ["stream", "data"]
        data = frame["data"]
        assert list(data) == TRADE_KEYS
        assert data["e"] == "trade"
        assert data["s"] in symbols
        assert frame["stream"] == f"{data['s'].lower()}@trade"
        assert data["t"] == last.get(data["s"], 0) + 1, "consecutive trade ids per symbol"
        last[data["s"]] = data["t"]
        assert is_spot_decimal(data["p"])
        assert is_spot_decimal(data["q"])
        assert isinstance(data["E"], int)
        assert data["T"] == data["E"]
        assert abs(data["E"] - time.time() * 1000) < 60_000
        assert isinstance(data["m"], bool)
        assert data["M"] is True
        prices[data["s"]].append(Decimal(data["p"]))
    # Every symbol served, about equally (in runs of a block's share: ~20 frames here).
    assert set(last) == set(symbols)
    assert min(last.values()) > 150
    # Plausible prices: near a realistic level, small steps.
    assert all(Decimal(64000) < p < Decimal(66000) for p in prices["BTCUSDT"])
    assert all(Decimal(3300) < p < Decimal(3500) for p in prices["ETHUSDT"])
    for series in prices.values():
        steps = [abs(b - a) / a for a, b in itertools.pairwise(series)]
        assert max(steps) < Decimal("0.001")


async def test_rate_is_roughly_respected(feed_factory: Any) -> None:
    feed = feed_factory(symbols=4, rate=2000)
    with trio.fail_after(10):
        async with open_websocket_url(combined(feed)) as ws:
            await ws.get_message()
            start, count = trio.current_time(), 0
            while trio.current_time() - start < 1.5:
                await ws.get_message()
                count += 1
            elapsed = trio.current_time() - start
    assert 0.6 * 2000 * elapsed < count < 1.4 * 2000 * elapsed


async def test_flat_out_delivers_as_fast_as_read(feed_factory: Any) -> None:
    feed = feed_factory(symbols=2, rate=0)
    with trio.fail_after(10):
        async with open_websocket_url(combined(feed)) as ws:
            start = trio.current_time()
            frames = await read(ws, 5000)
            elapsed = trio.current_time() - start
    by_symbol: dict[str, list[int]] = {}
    for frame in frames:
        by_symbol.setdefault(frame["data"]["s"], []).append(frame["data"]["t"])
    for ids in by_symbol.values():
        assert ids == list(range(1, len(ids) + 1))
    assert 5000 / elapsed > 2000  # far more than that in practice; just not paced


async def test_ping_is_answered_while_streaming(feed_factory: Any) -> None:
    feed = feed_factory(symbols=2, rate=1000)
    with trio.fail_after(10):
        async with open_websocket_url(combined(feed)) as ws:
            await read(ws, 10)
            await ws.ping(b"lean?")  # returns when the matching pong has arrived
            frames = await read(ws, 10)  # the stream goes on
    assert feed.state()["pings"] == 1
    assert all(f["data"]["e"] == "trade" for f in frames)


async def test_subscribe_other_channels_and_acks(feed_factory: Any) -> None:
    feed = feed_factory(symbols=2, rate=2000, channels=("aggTrade", "bookTicker"))
    url = feed.urls()["spot_ws_url"] + "/stream"
    with trio.fail_after(10):
        async with open_websocket_url(url) as ws:
            params = ["btcusdt@aggTrade", "ethusdt@bookTicker"]
            await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 7}))
            assert json.loads(await ws.get_message()) == {"result": None, "id": 7}
            frames = await read(ws, 200)
            await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": ["x@y"], "id": 8}))
            await ws.send_message('{"method":"LIST_SUBSCRIPTIONS","id":9}')
            replies = []
            while len(replies) < 2:
                message = json.loads(await ws.get_message())
                if "id" in message:
                    replies.append(message)
    assert replies[0]["id"] == 8
    assert replies[0]["error"]["code"] == 2
    assert replies[1] == {"result": params, "id": 9}
    agg = [f["data"] for f in frames if f["stream"] == "btcusdt@aggTrade"]
    book = [f["data"] for f in frames if f["stream"] == "ethusdt@bookTicker"]
    assert len(agg) + len(book) == len(frames)
    assert all(list(a) == AGG_KEYS and a["e"] == "aggTrade" and a["s"] == "BTCUSDT" for a in agg)
    assert [a["a"] for a in agg] == list(range(1, len(agg) + 1))
    assert all(a["f"] == a["l"] == a["a"] for a in agg)
    assert all(list(b) == BOOK_KEYS and b["s"] == "ETHUSDT" for b in book)
    assert [b["u"] for b in book] == list(range(1, len(book) + 1))
    assert all(Decimal(b["b"]) < Decimal(b["a"]) for b in book)


async def test_historical_trades_repeat_what_the_stream_sent(feed_factory: Any) -> None:
    feed = feed_factory(symbols=1, rate=1000)
    with trio.fail_after(10):
        async with open_websocket_url(combined(feed)) as ws:
            frames = [f["data"] for f in await read(ws, 20)]
        url = feed.urls()["spot_rest_url"] + "/api/v3/historicalTrades?symbol=BTCUSDT"
        status, rows = await trio.to_thread.run_sync(http_json, url + "&fromId=3&limit=5")
    assert status == 200
    assert [r["id"] for r in rows] == [3, 4, 5, 6, 7]
    for row in rows:
        sent = frames[row["id"] - 1]
        assert (row["price"], row["qty"], row["isBuyerMaker"]) == (sent["p"], sent["q"], sent["m"])


def test_process_prints_its_urls_and_serves(tmp_path: Path) -> None:
    with LeanFeedProcess(tmp_path, "--symbols", "2", "--rate", "500") as lean:
        assert lean.urls["symbols"] == ["BTCUSDT", "ETHUSDT"]
        assert lean.urls["spot_ws_url"].startswith("ws://127.0.0.1:")

        url = lean.urls["spot_ws_url"] + "/stream?streams=ethusdt@trade"

        async def first_frames() -> list[dict[str, Any]]:
            with trio.fail_after(10):
                async with open_websocket_url(url) as ws:
                    return await read(ws, 5)

        frames = trio.run(first_frames)
        assert [f["data"]["t"] for f in frames] == [1, 2, 3, 4, 5]
        assert all(f["stream"] == "ethusdt@trade" for f in frames)
        state = lean.state()
        assert state["frames_sent"] >= 5
        assert state["next_ids"]["ethusdt@trade"] > 5
        status, body = http_json(lean.urls["spot_rest_url"] + "/api/v3/depth?symbol=BTCUSDT")
        assert status == 404
        assert "lean feed" in body["msg"]
