"""The fake's USD-M streams against Binance's own client (PyPI's
binance-sdk-derivatives-trading-usds-futures).

The SDK routes each stream itself (``/market``, ``/public``; it also opens ``/private``,
which the fake accepts and leaves empty) and parses every payload into its pydantic
models, so a field the fake misspells or leaves out fails here. It paces its own
SUBSCRIBE messages (one per 0.5 s), well under Binance's 10 per second. The SDK is asyncio:
it runs in a worker thread with its own event loop while the fake runs in this trio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from marketd.fakex import FakeExchangeConfig, open_fake_exchange

pytest.importorskip("binance_sdk_derivatives_trading_usds_futures")

from binance_common.configuration import ConfigurationWebSocketStreams
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures,
)

# Candles close every 500 ms (a test length), so a closed one arrives quickly.
CONFIG = FakeExchangeConfig(symbols=3, seed=5, rate=2_000, kline_ms=500)
WANT = {
    "aggTrade": 5,
    "kline": 3,
    "kline closed": 1,
    "depth": 5,
    "depth5": 3,
    "bookTicker": 3,
    "!bookTicker": 3,
    "miniTicker": 1,
    "!miniTicker@arr": 1,
    "ticker": 1,
    "!ticker@arr": 1,
    "markPrice": 1,
    "markPrice@1s": 2,
    "!markPrice@arr": 1,
    "!markPrice@arr@1s": 1,
    "forceOrder": 1,
    "!forceOrder@arr": 2,
}


def run_client(url: str, timeout: float) -> dict[str, list[Any]]:
    """In a worker thread: subscribe to every USD-M kind through the SDK and keep what it
    parses, until each kind has what ``WANT`` asks (or ``timeout``)."""

    async def main() -> dict[str, list[Any]]:
        got: dict[str, list[Any]] = defaultdict(list)
        enough = asyncio.Event()

        def keep(name: str) -> Callable[[Any], None]:
            def on_message(message: Any) -> None:
                got[name].append(message)
                if name == "kline" and message.k.x:
                    got["kline closed"].append(message)
                if all(len(got[k]) >= n for k, n in WANT.items()):
                    enough.set()

            return on_message

        client = DerivativesTradingUsdsFutures(
            config_ws_streams=ConfigurationWebSocketStreams(stream_url=url)
        )
        conn = await client.websocket_streams.create_connection()
        subscriptions: dict[str, Callable[[], Awaitable[Any]]] = {
            "aggTrade": lambda: conn.aggregate_trade_streams(symbol="btcusdt"),
            "kline": lambda: conn.kline_candlestick_streams(symbol="btcusdt", interval="1m"),
            "depth": lambda: conn.diff_book_depth_streams(symbol="btcusdt", update_speed="100ms"),
            "depth5": lambda: conn.partial_book_depth_streams(
                symbol="btcusdt", levels=5, update_speed="100ms"
            ),
            "bookTicker": lambda: conn.individual_symbol_book_ticker_streams(symbol="ethusdt"),
            "!bookTicker": lambda: conn.all_book_tickers_stream(),
            "miniTicker": lambda: conn.individual_symbol_mini_ticker_stream(symbol="btcusdt"),
            "!miniTicker@arr": lambda: conn.all_market_mini_tickers_stream(),
            "ticker": lambda: conn.individual_symbol_ticker_streams(symbol="btcusdt"),
            "!ticker@arr": lambda: conn.all_market_tickers_streams(),
            "markPrice": lambda: conn.mark_price_stream(symbol="btcusdt"),
            "markPrice@1s": lambda: conn.mark_price_stream(symbol="btcusdt", update_speed="1s"),
            "!markPrice@arr": lambda: conn.mark_price_stream_for_all_market(),
            "!markPrice@arr@1s": lambda: conn.mark_price_stream_for_all_market(update_speed="1s"),
            "forceOrder": lambda: conn.liquidation_order_streams(symbol="btcusdt"),
            "!forceOrder@arr": lambda: conn.all_market_liquidation_order_streams(),
        }
        try:
            for name, subscribe in subscriptions.items():
                stream = await subscribe()
                stream.on("message", keep(name))
            with contextlib.suppress(TimeoutError):  # the assertions say what is missing
                await asyncio.wait_for(enough.wait(), timeout)
        finally:
            await conn.close_connection(close_session=True)
        return dict(got)

    return asyncio.run(main())


async def test_binance_usdm_sdk_streams_every_usdm_kind_the_fake_serves() -> None:
    with trio.fail_after(60):
        async with open_fake_exchange(CONFIG) as fx:
            got = await trio.to_thread.run_sync(run_client, fx.futures_ws_url, 30.0)
            state = fx.state()["markets"]["usdm"]
    missing = {k: (len(got.get(k, [])), n) for k, n in WANT.items() if len(got.get(k, [])) < n}
    assert missing == {}
    assert (state["rate_limit_disconnects"], state["wrong_route_subscriptions"]) == (0, 0)

    aggs = got["aggTrade"]
    assert {(a.e, a.s) for a in aggs} == {("aggTrade", "BTCUSDT")}
    for a, b in itertools.pairwise(aggs):
        assert (b.a, b.f) == (a.a + 1, a.l + 1)  # every aggregate, every raw id
    for k in (m.k for m in got["kline"]):
        assert (k.i, k.s, k.T - k.t) == ("1m", "BTCUSDT", 499)
        assert k.n == (k.L - k.f + 1 if k.n else 0)
        assert float(k.l) <= float(k.c) <= float(k.h)
    diffs = got["depth"]
    for a, b in itertools.pairwise(diffs):
        assert b.pu == a.u
    for a, b in itertools.pairwise(got["depth5"]):
        assert b.pu == a.u
    for p in got["depth5"]:
        assert len(p.b) == len(p.a) == 5
        assert float(p.b[0][0]) < float(p.a[0][0])
    for t in got["bookTicker"] + got["!bookTicker"]:
        assert float(t.b) < float(t.a)
    assert {t.s for t in got["bookTicker"]} == {"ETHUSDT"}
    arrays = ("!miniTicker@arr", "!ticker@arr", "!markPrice@arr", "!markPrice@arr@1s")
    for name in arrays:
        for items in got[name]:
            assert isinstance(items, list)
            assert items
            assert {i.s for i in items} <= {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    for m in got["markPrice"] + got["markPrice@1s"]:
        assert (m.e, m.s) == ("markPriceUpdate", "BTCUSDT")
    assert {t.e for t in got["ticker"]} == {"24hrTicker"}
    for liq in got["forceOrder"] + got["!forceOrder@arr"]:
        o = liq.o
        assert (liq.e, o.o, o.f, o.X) == ("forceOrder", "LIMIT", "IOC", "FILLED")
        assert o.q == o.l == o.z
        assert float(o.p) <= float(o.ap) if o.S == "SELL" else float(o.p) >= float(o.ap)
    assert {liq.o.s for liq in got["forceOrder"]} == {"BTCUSDT"}
