"""The fake exchange against a Binance client nobody here wrote: binance-connector (PyPI).

Its WebSocket stream client opens ``/ws`` and SUBSCRIBEs, as many clients do; its REST
client calls the market-data endpoints the fake serves. Both are blocking (threads), so the
test drives them from trio worker threads while the fake runs in the trio loop.
"""

from __future__ import annotations

import itertools
import json
import queue
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio
from binance.spot import Spot
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

from marketd.data.records import Market
from marketd.fakex import FakeExchangeConfig, open_fake_exchange

CONFIG = FakeExchangeConfig(symbols=3, seed=5, rate=2_000)


def collect(inbox: queue.Queue[str], want: Callable[[dict[str, Any]], bool], n: int) -> list:
    """Block (in a worker thread) until ``n`` payloads that ``want`` accepts arrived."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while len(got) < n:
        message = json.loads(inbox.get(timeout=max(0.1, deadline - time.monotonic())))
        if isinstance(message, dict) and "result" in message:
            continue  # a SUBSCRIBE reply
        if want(message):
            got.append(message)
    return got


async def test_binance_connector_streams_every_spot_kind_the_fake_serves() -> None:
    inbox: queue.Queue[str] = queue.Queue()
    errors: list[Exception] = []  # the client's, from its reader thread
    with trio.fail_after(60):
        async with open_fake_exchange(CONFIG) as fx:
            # The client connects in its constructor and blocks: in a worker thread, so the
            # fake in this trio loop can answer the handshake.
            client = await trio.to_thread.run_sync(
                lambda: SpotWebsocketStreamClient(
                    stream_url=fx.spot_ws_url,
                    on_message=lambda _, m: inbox.put(m),
                    on_error=lambda _, e: errors.append(e),
                    timeout=10,
                )
            )
            try:
                subscribe = [
                    lambda: client.trade(symbol="btcusdt"),
                    lambda: client.agg_trade(symbol="ethusdt"),
                    lambda: client.diff_book_depth(symbol="btcusdt", speed=100),
                    lambda: client.book_ticker(symbol="ethusdt"),
                    lambda: client.mini_ticker(symbol="btcusdt"),
                    lambda: client.ticker(symbol="bnbusdt"),
                    lambda: client.mini_ticker(),  # all symbols: !miniTicker@arr
                ]
                for call in subscribe:
                    await trio.to_thread.run_sync(call)
                    await trio.sleep(0.3)  # Binance allows 5 incoming messages/s on spot

                def of(kind: str, symbol: str) -> Callable[[Any], bool]:
                    return lambda m: (
                        isinstance(m, dict)
                        and (m.get("e"), m.get("s"))
                        == (
                            kind,
                            symbol,
                        )
                    )

                trades = await trio.to_thread.run_sync(collect, inbox, of("trade", "BTCUSDT"), 20)
                ids = [t["t"] for t in trades]
                assert ids == list(range(ids[0], ids[0] + 20))  # every trade, in order
                aggs = await trio.to_thread.run_sync(collect, inbox, of("aggTrade", "ETHUSDT"), 5)
                assert all(a["f"] <= a["l"] for a in aggs)
                diffs = await trio.to_thread.run_sync(
                    collect, inbox, of("depthUpdate", "BTCUSDT"), 5
                )
                assert all(d["U"] == p["u"] + 1 for p, d in itertools.pairwise(diffs))
                tickers = await trio.to_thread.run_sync(
                    collect, inbox, lambda m: "u" in m and m.get("s") == "ETHUSDT", 3
                )
                assert all(float(t["b"]) < float(t["a"]) for t in tickers)  # spot bookTicker
                mini = await trio.to_thread.run_sync(
                    collect, inbox, of("24hrMiniTicker", "BTCUSDT"), 1
                )
                assert float(mini[0]["l"]) <= float(mini[0]["c"]) <= float(mini[0]["h"])
                full = await trio.to_thread.run_sync(collect, inbox, of("24hrTicker", "BNBUSDT"), 1)
                assert full[0]["F"] <= full[0]["L"]
                arrays = await trio.to_thread.run_sync(
                    collect, inbox, lambda m: isinstance(m, list), 1
                )
                assert {item["e"] for item in arrays[0]} == {"24hrMiniTicker"}
                assert errors == []
            finally:
                await trio.to_thread.run_sync(client.stop)
                # stop() sends a close frame and joins the reader; the socket itself stays
                # open (binance-connector 3.13) until closed here.
                await trio.to_thread.run_sync(client.socket_manager.ws.shutdown)


def gather(
    inbox: queue.Queue[str], want: dict[str, int], kind: Callable[[Any], str | None]
) -> dict[str, list[Any]]:
    """Block (in a worker thread) until each kind of ``want`` has its count of payloads."""
    got: dict[str, list[Any]] = {k: [] for k in want}
    deadline = time.monotonic() + 20
    while any(len(got[k]) < n for k, n in want.items()):
        message = json.loads(inbox.get(timeout=max(0.1, deadline - time.monotonic())))
        name = kind(message)
        if name in got:
            got[name].append(message)
    return got


def spot_kind(m: Any) -> str | None:
    """What a message of a raw ``/ws`` connection is (partial depth: by its level count)."""
    if not isinstance(m, dict) or "result" in m:
        return None
    if "lastUpdateId" in m:
        return f"depth{len(m['bids'])}"
    if m.get("e") == "kline":
        return f"kline_{m['k']['i']}" + (" closed" if m["k"]["x"] else "")
    return m.get("e")


async def test_binance_connector_streams_the_spot_kinds_pushed_on_a_clock() -> None:
    """Klines, average price, rolling-window tickers and partial depth, through the
    connector's own stream methods (``subscribe`` for avgPrice, which it has none for)."""
    config = attrs.evolve(CONFIG, book_journal=200_000)
    inbox: queue.Queue[str] = queue.Queue()
    errors: list[Exception] = []
    want = {
        "trade": 50,
        "kline_1s": 1,
        "kline_1s closed": 3,
        "avgPrice": 2,
        "1hTicker": 2,
        "4hTicker": 2,
        "1dTicker": 2,
        "depth10": 5,
        "depth5": 2,
    }
    with trio.fail_after(60):
        async with open_fake_exchange(config) as fx:
            client = await trio.to_thread.run_sync(
                lambda: SpotWebsocketStreamClient(
                    stream_url=fx.spot_ws_url,
                    on_message=lambda _, m: inbox.put(m),
                    on_error=lambda _, e: errors.append(e),
                    timeout=10,
                )
            )
            try:
                # Four messages: under the 5 a second Binance allows, with no pacing.
                subscribe = [
                    lambda: client.kline(symbol="btcusdt", interval="1s"),
                    lambda: client.partial_book_depth(symbol="btcusdt", level=10, speed=100),
                    lambda: client.rolling_window_ticker(symbol="btcusdt", windowSize="1h"),
                    lambda: client.subscribe(
                        stream=[
                            "btcusdt@trade",
                            "btcusdt@avgPrice",
                            "btcusdt@ticker_4h",
                            "btcusdt@ticker_1d",
                            "btcusdt@depth5@1000ms",
                        ]
                    ),
                ]
                for call in subscribe:
                    await trio.to_thread.run_sync(call)
                got = await trio.to_thread.run_sync(gather, inbox, want, spot_kind)
                assert errors == []
                for name in ("depth10", "depth5"):
                    n = int(name.removeprefix("depth"))
                    for book in got[name]:
                        _, bids, asks = fx.true_book(Market.SPOT, "BTCUSDT", book["lastUpdateId"])
                        assert book["bids"] == [list(b) for b in bids[:n]]
                        assert book["asks"] == [list(a) for a in asks[:n]]
            finally:
                await trio.to_thread.run_sync(client.stop)
                await trio.to_thread.run_sync(client.socket_manager.ws.shutdown)
    trades = {t["t"]: t for t in got["trade"]}
    covered = 0
    for kline in got["kline_1s"] + got["kline_1s closed"]:
        k = kline["k"]
        assert (k["s"], k["T"] - k["t"]) == ("BTCUSDT", 999)
        if k["x"] and k["n"] and all(i in trades for i in range(k["f"], k["L"] + 1)):
            inside = [trades[i] for i in range(k["f"], k["L"] + 1)]
            assert (k["o"], k["c"]) == (inside[0]["p"], inside[-1]["p"])
            assert k["n"] == len(inside)
            assert all(k["t"] <= t["T"] <= k["T"] for t in inside)
            covered += 1
    for avg in got["avgPrice"]:
        assert (avg["s"], avg["i"]) == ("BTCUSDT", "5m")
        assert avg["T"] <= avg["E"]
        assert float(avg["w"]) > 0
    for kind in ("1hTicker", "4hTicker", "1dTicker"):
        for t in got[kind]:
            assert t["O"] % 60_000 == 0
            assert t["n"] == t["L"] - t["F"] + 1
            assert float(t["l"]) <= float(t["c"]) <= float(t["h"])
    assert covered >= 1  # the later seconds closed after the trades were subscribed: whole


async def test_binance_connector_rest_market_data() -> None:
    with trio.fail_after(60):
        async with open_fake_exchange(CONFIG) as fx:
            api = Spot(base_url=fx.spot_rest_url)
            try:
                await trio.sleep(0.5)  # let some trades happen
                book = await trio.to_thread.run_sync(lambda: api.depth("BTCUSDT", limit=5))
                assert book["lastUpdateId"] > 0
                assert 0 < len(book["bids"]) <= 5
                assert 0 < len(book["asks"]) <= 5
                assert float(book["bids"][0][0]) < float(book["asks"][0][0])
                aggs = await trio.to_thread.run_sync(lambda: api.agg_trades("BTCUSDT", limit=10))
                ids = [a["a"] for a in aggs]
                assert ids == list(range(ids[0], ids[0] + len(ids)))
                again = await trio.to_thread.run_sync(
                    lambda: api.agg_trades("BTCUSDT", fromId=ids[0], limit=3)
                )
                assert [a["a"] for a in again] == ids[:3]
                trades = await trio.to_thread.run_sync(
                    lambda: api.historical_trades("BTCUSDT", limit=5)
                )
                tids = [t["id"] for t in trades]
                assert tids == list(range(tids[0], tids[0] + len(tids)))
                info = await trio.to_thread.run_sync(api.exchange_info)
                assert {s["symbol"] for s in info["symbols"]} >= {"BTCUSDT", "ETHUSDT"}
            finally:
                api.session.close()  # its pooled connections, or they leak as warnings
