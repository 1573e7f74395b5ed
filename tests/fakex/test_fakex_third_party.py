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

import trio
from binance.spot import Spot
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

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
