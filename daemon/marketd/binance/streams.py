"""Binance WebSocket market-data payloads, spot and USD-M futures.

Event structs are tagged with Binance's event type (``e``): a payload whose ``e`` names a
different event fails validation; a payload without ``e`` (spot ``bookTicker``) is accepted.
All structs are frozen and untracked by the GC (they hold only scalars and lists of str).
"""

from __future__ import annotations

import msgspec

# A price level in a depth update: ``[price, quantity]``, both decimal strings.
Level = tuple[str, str]


class StreamFrame(msgspec.Struct, frozen=True, gc=False):
    """A combined-stream frame ``{"stream": "btcusdt@trade", "data": {...}}``.

    ``data`` is kept raw: the stream name decides which typed decoder reads it.
    """

    stream: str
    data: msgspec.Raw


class Trade(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="trade"):
    """Spot ``<symbol>@trade``."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    trade_id: int = msgspec.field(name="t")
    price: str = msgspec.field(name="p")
    quantity: str = msgspec.field(name="q")
    trade_time: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")


class AggTrade(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="aggTrade"):
    """Spot and USD-M ``<symbol>@aggTrade``; USD-M adds ``nq`` (quantity without RPI orders)."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    agg_trade_id: int = msgspec.field(name="a")
    price: str = msgspec.field(name="p")
    quantity: str = msgspec.field(name="q")
    first_trade_id: int = msgspec.field(name="f")
    last_trade_id: int = msgspec.field(name="l")
    trade_time: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")
    normal_quantity: str = msgspec.field(default="", name="nq")


class DepthUpdate(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="depthUpdate"):
    """Spot ``<symbol>@depth[@100ms]`` diff (no ``pu``, no ``T``)."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    first_update_id: int = msgspec.field(name="U")
    final_update_id: int = msgspec.field(name="u")
    bids: list[Level] = msgspec.field(name="b")
    asks: list[Level] = msgspec.field(name="a")


class FuturesDepthUpdate(DepthUpdate, frozen=True, gc=False, tag="depthUpdate"):
    """USD-M ``<symbol>@depth[@100ms|@250ms|@500ms]`` diff: adds ``T`` and ``pu``."""

    transaction_time: int = msgspec.field(name="T")
    prev_final_update_id: int = msgspec.field(name="pu")


class BookTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="bookTicker"):
    """Spot ``<symbol>@bookTicker``: no ``e``, ``E`` or ``T``."""

    update_id: int = msgspec.field(name="u")
    symbol: str = msgspec.field(name="s")
    bid_price: str = msgspec.field(name="b")
    bid_quantity: str = msgspec.field(name="B")
    ask_price: str = msgspec.field(name="a")
    ask_quantity: str = msgspec.field(name="A")


class FuturesBookTicker(BookTicker, frozen=True, gc=False, tag="bookTicker"):
    """USD-M ``<symbol>@bookTicker`` and ``!bookTicker``: adds event and transaction time."""

    event_time: int = msgspec.field(name="E")
    transaction_time: int = msgspec.field(name="T")


class MiniTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="24hrMiniTicker"):
    """``<symbol>@miniTicker`` and items of ``!miniTicker@arr`` (spot and USD-M)."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    close_price: str = msgspec.field(name="c")
    open_price: str = msgspec.field(name="o")
    high_price: str = msgspec.field(name="h")
    low_price: str = msgspec.field(name="l")
    base_volume: str = msgspec.field(name="v")
    quote_volume: str = msgspec.field(name="q")


class FuturesTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="24hrTicker"):
    """USD-M ``<symbol>@ticker`` and items of ``!ticker@arr``."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    price_change: str = msgspec.field(name="p")
    price_change_percent: str = msgspec.field(name="P")
    weighted_avg_price: str = msgspec.field(name="w")
    last_price: str = msgspec.field(name="c")
    last_quantity: str = msgspec.field(name="Q")
    open_price: str = msgspec.field(name="o")
    high_price: str = msgspec.field(name="h")
    low_price: str = msgspec.field(name="l")
    base_volume: str = msgspec.field(name="v")
    quote_volume: str = msgspec.field(name="q")
    open_time: int = msgspec.field(name="O")
    close_time: int = msgspec.field(name="C")
    first_trade_id: int = msgspec.field(name="F")
    last_trade_id: int = msgspec.field(name="L")
    trade_count: int = msgspec.field(name="n")


class SpotTicker(FuturesTicker, frozen=True, gc=False, tag="24hrTicker"):
    """Spot ``<symbol>@ticker``: adds the previous-window price and the best bid/ask."""

    first_trade_price: str = msgspec.field(name="x")
    best_bid_price: str = msgspec.field(name="b")
    best_bid_quantity: str = msgspec.field(name="B")
    best_ask_price: str = msgspec.field(name="a")
    best_ask_quantity: str = msgspec.field(name="A")


class MarkPriceUpdate(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="markPriceUpdate"):
    """USD-M ``<symbol>@markPrice[@1s]`` and items of ``!markPrice@arr[@1s]``."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    mark_price: str = msgspec.field(name="p")
    index_price: str = msgspec.field(name="i")
    estimated_settle_price: str = msgspec.field(name="P")
    funding_rate: str = msgspec.field(name="r")
    next_funding_time: int = msgspec.field(name="T")
