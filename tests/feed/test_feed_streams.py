"""Stream naming, futures routing, connection splitting, URLs and SUBSCRIBE pacing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketd.config.settings import ExchangeSettings, Subscription
from marketd.data.records import Market
from marketd.exchanges import adapter
from marketd.exchanges.binance.vocabulary import Route
from marketd.feed.streams import (
    MAX_URL_LENGTH,
    ConnectionPlan,
    SubscribeMessage,
    plan_connections,
    plan_subscribe_messages,
    route_for,
    stream_names,
)

SPOT = "ws://spot.test:9443"
FUTURES = "ws://127.0.0.1:5555/usdm"
SETTINGS = ExchangeSettings(spot_ws_url=SPOT, futures_ws_url=FUTURES)


def max_in_window(messages: tuple[SubscribeMessage, ...], window_s: float = 1.0) -> int:
    """The most messages due inside any half-open window ``[t, t + window_s)``."""
    times = sorted(m.at_s for m in messages)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_stream_names_symbols_times_channels_then_raw_streams() -> None:
    subs = (
        Subscription(
            Market.SPOT, symbols=("BTCUSDT", "ethusdt"), channels=("trade", "depth@100ms")
        ),
        Subscription(Market.USDM, streams=("!miniTicker@arr",)),
        Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("aggTrade",)),
    )
    assert stream_names(subs) == {
        Market.SPOT: (
            "btcusdt@trade",
            "btcusdt@depth@100ms",
            "ethusdt@trade",
            "ethusdt@depth@100ms",
            "btcusdt@aggTrade",
        ),
        Market.USDM: ("!miniTicker@arr",),
    }


def test_stream_names_dedupes_keeping_first_position() -> None:
    subs = (
        Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("trade",)),
        Subscription(Market.SPOT, symbols=("btcusdt", "ETHUSDT"), channels=("trade",)),
        Subscription(Market.SPOT, streams=("BTCUSDT@trade", "!miniTicker@arr")),
    )
    assert stream_names(subs) == {
        Market.SPOT: ("btcusdt@trade", "ethusdt@trade", "!miniTicker@arr")
    }


@pytest.mark.parametrize(
    "stream",
    [
        "btcusdt@depth",
        "btcusdt@depth@100ms",
        "btcusdt@depth@500ms",
        "btcusdt@depth5",
        "btcusdt@depth20@100ms",
        "btcusdt@bookTicker",
        "!bookTicker",
    ],
)
def test_futures_depth_and_book_ticker_go_to_public(stream: str) -> None:
    assert route_for(Market.USDM, stream) is Route.PUBLIC


@pytest.mark.parametrize(
    "stream",
    [
        "btcusdt@aggTrade",
        "btcusdt@markPrice",
        "btcusdt@markPrice@1s",
        "!markPrice@arr",
        "!markPrice@arr@1s",
        "btcusdt@kline_1m",
        "btcusdt_perpetual@continuousKline_1m",
        "btcusdt@ticker",
        "btcusdt@miniTicker",
        "!ticker@arr",
        "!miniTicker@arr",
        "btcusdt@forceOrder",
        "!forceOrder@arr",
    ],
)
def test_futures_other_public_streams_go_to_market(stream: str) -> None:
    assert route_for(Market.USDM, stream) is Route.MARKET


def test_futures_plans_are_routed_and_spot_is_not() -> None:
    subs = (
        Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("trade", "depth@100ms")),
        Subscription(
            Market.USDM,
            symbols=("BTCUSDT",),
            channels=("aggTrade", "depth@100ms", "bookTicker", "markPrice@1s"),
            streams=("!miniTicker@arr",),
        ),
    )
    plans = plan_connections(subs, SETTINGS)
    assert [(p.connection_id, p.route, p.streams) for p in plans] == [
        ("spot-0", Route.NONE, ("btcusdt@trade", "btcusdt@depth@100ms")),
        (
            "usdm-market-0",
            Route.MARKET,
            ("btcusdt@aggTrade", "btcusdt@markPrice@1s", "!miniTicker@arr"),
        ),
        ("usdm-public-0", Route.PUBLIC, ("btcusdt@depth@100ms", "btcusdt@bookTicker")),
    ]
    assert plans[0].url == f"{SPOT}/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
    assert plans[1].url == (
        f"{FUTURES}/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s/!miniTicker@arr"
    )
    assert plans[2].url == f"{FUTURES}/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"


def test_2049_streams_need_three_connections() -> None:
    symbols = tuple(f"S{i:04d}USDT" for i in range(2049))
    subs = (Subscription(Market.SPOT, symbols=symbols, channels=("trade",)),)
    plans = plan_connections(subs, SETTINGS)
    assert [p.connection_id for p in plans] == ["spot-0", "spot-1", "spot-2"]
    assert [len(p.streams) for p in plans] == [1024, 1024, 1]
    joined = [s for p in plans for s in p.streams]
    assert joined == [f"s{i:04d}usdt@trade" for i in range(2049)]


def test_split_limit_comes_from_settings() -> None:
    subs = (Subscription(Market.USDM, symbols=("A", "B", "C"), channels=("aggTrade",)),)
    settings = ExchangeSettings(futures_ws_url=FUTURES, max_streams_per_connection=2)
    plans = plan_connections(subs, settings)
    assert [(p.connection_id, p.streams) for p in plans] == [
        ("usdm-market-0", ("a@aggTrade", "b@aggTrade")),
        ("usdm-market-1", ("c@aggTrade",)),
    ]


def test_zero_streams_per_connection_is_rejected() -> None:
    subs = (Subscription(Market.SPOT, streams=("!miniTicker@arr",)),)
    with pytest.raises(ValueError, match="max_streams_per_connection"):
        plan_connections(subs, ExchangeSettings(max_streams_per_connection=0))


def test_base_url_trailing_slash_and_prefix() -> None:
    plan = ConnectionPlan("usdm-market-0", Market.USDM, Route.MARKET, FUTURES + "/", ("a@ticker",))
    assert plan.url == "ws://127.0.0.1:5555/usdm/market/stream?streams=a@ticker"
    assert plan.subscribe_in_url
    assert plan.subscribe_messages(8.0) == ()


def test_long_url_falls_back_to_subscribe_messages() -> None:
    symbols = tuple(f"SYM{i}USDT" for i in range(300))
    subs = (Subscription(Market.SPOT, symbols=symbols, channels=("trade",)),)
    (plan,) = plan_connections(subs, SETTINGS)
    assert len(plan.combined_url) > MAX_URL_LENGTH
    assert not plan.subscribe_in_url
    assert plan.url == f"{SPOT}/stream"
    messages = plan.subscribe_messages(4.0)
    assert [m.id for m in messages] == [1, 2]
    assert [s for m in messages for s in m.params] == list(plan.streams)


def test_short_url_limit_is_configurable() -> None:
    subs = (Subscription(Market.SPOT, symbols=("BTCUSDT",), channels=("trade",)),)
    (plan,) = plan_connections(subs, SETTINGS, max_url_length=10)
    assert plan.url == f"{SPOT}/stream"
    assert [m.params for m in plan.subscribe_messages(4.0)] == [("btcusdt@trade",)]


def test_subscribe_message_json() -> None:
    message = SubscribeMessage(id=7, params=("btcusdt@trade", "!miniTicker@arr"), at_s=0.0)
    assert json.loads(adapter(Market.SPOT).subscribe_message(message.id, message.params)) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@trade", "!miniTicker@arr"],
        "id": 7,
    }


def test_subscribe_plan_chunks_and_ids() -> None:
    streams = [f"s{i}@trade" for i in range(1024)]
    messages = plan_subscribe_messages(streams, 4.0, first_id=10)
    assert [m.id for m in messages] == list(range(10, 16))
    assert all(len(m.params) <= 200 for m in messages)
    assert [s for m in messages for s in m.params] == streams
    assert messages[0].at_s == 0.0


@pytest.mark.parametrize(("rate", "per_second"), [(4.0, 3), (5.0, 4), (8.0, 7), (10.0, 9)])
def test_subscribe_plan_leaves_room_for_pongs(rate: float, per_second: int) -> None:
    messages = plan_subscribe_messages(
        [f"s{i}" for i in range(50)], rate, max_streams_per_message=1
    )
    assert max_in_window(messages) == per_second
    assert max_in_window(messages) + 1 <= rate


@given(
    rate=st.floats(min_value=2.0, max_value=50.0),
    count=st.integers(min_value=1, max_value=400),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_subscribe_plan_never_exceeds_budget_with_a_pong(
    rate: float, count: int, chunk: int
) -> None:
    streams = [f"s{i}@trade" for i in range(count)]
    messages = plan_subscribe_messages(streams, rate, max_streams_per_message=chunk)
    assert max_in_window(messages) + 1 <= rate
    assert [s for m in messages for s in m.params] == streams
    times = [m.at_s for m in messages]
    assert times == sorted(times)


def test_subscribe_plan_slow_budget_still_progresses() -> None:
    messages = plan_subscribe_messages(["a", "b"], 0.5, max_streams_per_message=1)
    assert [m.at_s for m in messages] == [0.0, 1.0]
