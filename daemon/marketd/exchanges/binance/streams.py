"""Binance WebSocket market-data payloads, spot and USD-M futures.

Event structs are tagged with Binance's event type (``e``): a payload whose ``e`` names a
different event fails validation; a payload without ``e`` (spot ``bookTicker``) is accepted.
Ids, times, symbols and decimals are checked as :mod:`marketd.exchanges.binance.values` describes.
All structs are frozen and untracked by the GC (they hold only scalars, lists of str and
other such structs: no cycles). Events Binance nests (a kline's candle ``k``, a liquidation's
order ``o``) are checked in the outer struct's ``__post_init__``, which runs after the inner
one is decoded, so each payload still costs one regex call.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from marketd.exchanges.binance.values import (
    BAD_VALUE,
    DecimalText,
    Id,
    Interval,
    OptionalDecimalText,
    OrderWord,
    Symbol,
    TradeIdOrNone,
    levels_ok,
    values_check,
)

# A price level in a depth update: ``[price, quantity]``, both decimal strings.
Level = tuple[DecimalText, DecimalText]

_U = values_check("u")
_Y = values_check("y")
_Y1U = values_check("yu")
_Y5U = values_check("yuuuuu")
_Y8U = values_check("yuuuuuuuu")
_Y2U = values_check("yuu")
_Y4U = values_check("yuuuu")
_Y6U = values_check("yuuuuuu")
_MARK = values_check("yuuoo")
_TICKER = values_check("yssuuuuuuuu")
_SPOT_TICKER = values_check("yssuuuuuuuuuuuuu")
_WINDOW_TICKER = values_check("yssuuuuuuu")


class StreamFrame(msgspec.Struct, frozen=True, gc=False):
    """A combined-stream frame ``{"stream": "btcusdt@trade", "data": {...}}``.

    ``data`` is kept raw: the stream name decides which typed decoder reads it.
    """

    stream: str
    data: msgspec.Raw


class Trade(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="trade"):
    """Spot ``<symbol>@trade``."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    trade_id: Id = msgspec.field(name="t")
    price: DecimalText = msgspec.field(name="p")
    quantity: DecimalText = msgspec.field(name="q")
    trade_time: Id = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")

    def __post_init__(self) -> None:
        if _Y2U(f"{self.symbol} {self.price} {self.quantity}") is None:
            raise ValueError(BAD_VALUE)


class AggTrade(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="aggTrade"):
    """Spot and USD-M ``<symbol>@aggTrade``; USD-M adds ``nq`` (quantity without RPI orders)."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    agg_trade_id: Id = msgspec.field(name="a")
    price: DecimalText = msgspec.field(name="p")
    quantity: DecimalText = msgspec.field(name="q")
    first_trade_id: Id = msgspec.field(name="f")
    last_trade_id: Id = msgspec.field(name="l")
    trade_time: Id = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")
    normal_quantity: OptionalDecimalText = msgspec.field(default="", name="nq")

    def __post_init__(self) -> None:
        nq = self.normal_quantity
        if _Y2U(f"{self.symbol} {self.price} {self.quantity}") is None or (nq and _U(nq) is None):
            raise ValueError(BAD_VALUE)


class DepthUpdate(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="depthUpdate"):
    """Spot ``<symbol>@depth[@100ms]`` diff (no ``pu``, no ``T``)."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    first_update_id: Id = msgspec.field(name="U")
    final_update_id: Id = msgspec.field(name="u")
    bids: list[Level] = msgspec.field(name="b")
    asks: list[Level] = msgspec.field(name="a")

    def __post_init__(self) -> None:
        if _Y(self.symbol) is None or not levels_ok(self.bids, self.asks):
            raise ValueError(BAD_VALUE)


class FuturesDepthUpdate(DepthUpdate, frozen=True, gc=False, tag="depthUpdate"):
    """USD-M ``<symbol>@depth[@100ms|@250ms|@500ms]`` diff: adds ``T`` and ``pu``."""

    transaction_time: Id = msgspec.field(name="T")
    prev_final_update_id: Id = msgspec.field(name="pu")


class BookTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="bookTicker"):
    """Spot ``<symbol>@bookTicker``: no ``e``, ``E`` or ``T``."""

    update_id: Id = msgspec.field(name="u")
    symbol: Symbol = msgspec.field(name="s")
    bid_price: DecimalText = msgspec.field(name="b")
    bid_quantity: DecimalText = msgspec.field(name="B")
    ask_price: DecimalText = msgspec.field(name="a")
    ask_quantity: DecimalText = msgspec.field(name="A")

    def __post_init__(self) -> None:
        check = (
            f"{self.symbol} {self.bid_price} {self.bid_quantity} {self.ask_price} "
            f"{self.ask_quantity}"
        )
        if _Y4U(check) is None:
            raise ValueError(BAD_VALUE)


class FuturesBookTicker(BookTicker, frozen=True, gc=False, tag="bookTicker"):
    """USD-M ``<symbol>@bookTicker`` and ``!bookTicker``: adds event and transaction time."""

    event_time: Id = msgspec.field(name="E")
    transaction_time: Id = msgspec.field(name="T")


class MiniTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="24hrMiniTicker"):
    """``<symbol>@miniTicker`` and items of ``!miniTicker@arr`` (spot and USD-M)."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    close_price: DecimalText = msgspec.field(name="c")
    open_price: DecimalText = msgspec.field(name="o")
    high_price: DecimalText = msgspec.field(name="h")
    low_price: DecimalText = msgspec.field(name="l")
    base_volume: DecimalText = msgspec.field(name="v")
    quote_volume: DecimalText = msgspec.field(name="q")

    def __post_init__(self) -> None:
        check = (
            f"{self.symbol} {self.close_price} {self.open_price} {self.high_price} "
            f"{self.low_price} {self.base_volume} {self.quote_volume}"
        )
        if _Y6U(check) is None:
            raise ValueError(BAD_VALUE)


class FuturesTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="24hrTicker"):
    """USD-M ``<symbol>@ticker`` and items of ``!ticker@arr``.

    ``F`` and ``L`` are -1 when the window holds no trade; ``p`` and ``P`` may be negative.
    """

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    price_change: DecimalText = msgspec.field(name="p")
    price_change_percent: DecimalText = msgspec.field(name="P")
    weighted_avg_price: DecimalText = msgspec.field(name="w")
    last_price: DecimalText = msgspec.field(name="c")
    last_quantity: DecimalText = msgspec.field(name="Q")
    open_price: DecimalText = msgspec.field(name="o")
    high_price: DecimalText = msgspec.field(name="h")
    low_price: DecimalText = msgspec.field(name="l")
    base_volume: DecimalText = msgspec.field(name="v")
    quote_volume: DecimalText = msgspec.field(name="q")
    open_time: Id = msgspec.field(name="O")
    close_time: Id = msgspec.field(name="C")
    first_trade_id: TradeIdOrNone = msgspec.field(name="F")
    last_trade_id: TradeIdOrNone = msgspec.field(name="L")
    trade_count: Id = msgspec.field(name="n")

    def __post_init__(self) -> None:
        if _TICKER(self._decimals()) is None:
            raise ValueError(BAD_VALUE)

    def _decimals(self) -> str:
        return (
            f"{self.symbol} {self.price_change} {self.price_change_percent} "
            f"{self.weighted_avg_price} {self.last_price} {self.last_quantity} "
            f"{self.open_price} {self.high_price} {self.low_price} {self.base_volume} "
            f"{self.quote_volume}"
        )


class SpotTicker(FuturesTicker, frozen=True, gc=False, tag="24hrTicker"):
    """Spot ``<symbol>@ticker``: adds the previous-window price and the best bid/ask."""

    first_trade_price: DecimalText = msgspec.field(name="x")
    best_bid_price: DecimalText = msgspec.field(name="b")
    best_bid_quantity: DecimalText = msgspec.field(name="B")
    best_ask_price: DecimalText = msgspec.field(name="a")
    best_ask_quantity: DecimalText = msgspec.field(name="A")

    def __post_init__(self) -> None:
        check = (
            f"{self._decimals()} {self.first_trade_price} {self.best_bid_price} "
            f"{self.best_bid_quantity} {self.best_ask_price} {self.best_ask_quantity}"
        )
        if _SPOT_TICKER(check) is None:
            raise ValueError(BAD_VALUE)


class MarkPriceUpdate(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="markPriceUpdate"):
    """USD-M ``<symbol>@markPrice[@1s]`` and items of ``!markPrice@arr[@1s]``.

    ``P`` (estimated settle price) and ``r`` (funding rate) may be empty (contracts without
    funding); ``r`` may be negative.
    """

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    mark_price: DecimalText = msgspec.field(name="p")
    index_price: DecimalText = msgspec.field(name="i")
    estimated_settle_price: OptionalDecimalText = msgspec.field(name="P")
    funding_rate: OptionalDecimalText = msgspec.field(name="r")
    next_funding_time: Id = msgspec.field(name="T")

    def __post_init__(self) -> None:
        check = (
            f"{self.symbol} {self.mark_price} {self.index_price} "
            f"{self.estimated_settle_price} {self.funding_rate}"
        )
        if _MARK(check) is None:
            raise ValueError(BAD_VALUE)


class PartialDepth(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="depthPartial"):
    """Spot ``<symbol>@depth5|10|20[@100ms|@1000ms]``: the top levels, not a diff.

    No ``e``, ``E`` or symbol: the symbol is the stream name's. The tag only serves to tell
    a payload naming some other event (unknown, or malformed when it is a known one) from
    this one, as for the spot ``bookTicker``. (USD-M partial depth is diff-shaped: it
    decodes as :class:`FuturesDepthUpdate`.)
    """

    last_update_id: Id = msgspec.field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]

    def __post_init__(self) -> None:
        if not levels_ok(self.bids, self.asks):
            raise ValueError(BAD_VALUE)


class KlineBar(msgspec.Struct, frozen=True, gc=False):
    """The candle ``k`` of a kline event (its own ``s`` repeats the event's, and ``B`` is
    documented as "ignore": both left out). Decimals are checked by :class:`Kline`."""

    open_time: Id = msgspec.field(name="t")
    close_time: Id = msgspec.field(name="T")
    interval: Interval = msgspec.field(name="i")
    # -1 while the candle holds no trade yet.
    first_trade_id: TradeIdOrNone = msgspec.field(name="f")
    last_trade_id: TradeIdOrNone = msgspec.field(name="L")
    open_price: DecimalText = msgspec.field(name="o")
    close_price: DecimalText = msgspec.field(name="c")
    high_price: DecimalText = msgspec.field(name="h")
    low_price: DecimalText = msgspec.field(name="l")
    base_volume: DecimalText = msgspec.field(name="v")
    trade_count: Id = msgspec.field(name="n")
    closed: bool = msgspec.field(name="x")
    quote_volume: DecimalText = msgspec.field(name="q")
    taker_buy_base_volume: DecimalText = msgspec.field(name="V")
    taker_buy_quote_volume: DecimalText = msgspec.field(name="Q")


class Kline(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="kline"):
    """Spot and USD-M ``<symbol>@kline_<interval>``: the current candle, pushed on change."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    bar: KlineBar = msgspec.field(name="k")

    def __post_init__(self) -> None:
        k = self.bar
        check = (
            f"{self.symbol} {k.open_price} {k.close_price} {k.high_price} {k.low_price} "
            f"{k.base_volume} {k.quote_volume} {k.taker_buy_base_volume} "
            f"{k.taker_buy_quote_volume}"
        )
        if _Y8U(check) is None:
            raise ValueError(BAD_VALUE)


class AvgPrice(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="avgPrice"):
    """Spot ``<symbol>@avgPrice``: the average price over the interval ``i``."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    interval: Interval = msgspec.field(name="i")
    average_price: DecimalText = msgspec.field(name="w")
    last_trade_time: Id = msgspec.field(name="T")

    def __post_init__(self) -> None:
        if _Y1U(f"{self.symbol} {self.average_price}") is None:
            raise ValueError(BAD_VALUE)


class WindowTicker(msgspec.Struct, frozen=True, gc=False, tag_field="e"):
    """Spot rolling-window ticker ``<symbol>@ticker_1h|4h|1d``: the 24 h ticker's statistics
    without ``Q``, ``x`` and the best bid/ask. One subclass per window, tagged with its
    event type (a payload naming another window on this stream is malformed)."""

    event_time: Id = msgspec.field(name="E")
    symbol: Symbol = msgspec.field(name="s")
    price_change: DecimalText = msgspec.field(name="p")
    price_change_percent: DecimalText = msgspec.field(name="P")
    open_price: DecimalText = msgspec.field(name="o")
    high_price: DecimalText = msgspec.field(name="h")
    low_price: DecimalText = msgspec.field(name="l")
    last_price: DecimalText = msgspec.field(name="c")
    weighted_avg_price: DecimalText = msgspec.field(name="w")
    base_volume: DecimalText = msgspec.field(name="v")
    quote_volume: DecimalText = msgspec.field(name="q")
    open_time: Id = msgspec.field(name="O")
    close_time: Id = msgspec.field(name="C")
    first_trade_id: TradeIdOrNone = msgspec.field(name="F")
    last_trade_id: TradeIdOrNone = msgspec.field(name="L")
    trade_count: Id = msgspec.field(name="n")

    def __post_init__(self) -> None:
        check = (
            f"{self.symbol} {self.price_change} {self.price_change_percent} "
            f"{self.open_price} {self.high_price} {self.low_price} {self.last_price} "
            f"{self.weighted_avg_price} {self.base_volume} {self.quote_volume}"
        )
        if _WINDOW_TICKER(check) is None:
            raise ValueError(BAD_VALUE)


class HourTicker(WindowTicker, frozen=True, gc=False, tag="1hTicker"):
    """Spot ``<symbol>@ticker_1h``."""


class FourHourTicker(WindowTicker, frozen=True, gc=False, tag="4hTicker"):
    """Spot ``<symbol>@ticker_4h``."""


class DayTicker(WindowTicker, frozen=True, gc=False, tag="1dTicker"):
    """Spot ``<symbol>@ticker_1d``."""


class LiquidationOrder(msgspec.Struct, frozen=True, gc=False):
    """The order ``o`` of a liquidation event. Decimals are checked by :class:`ForceOrder`."""

    symbol: Symbol = msgspec.field(name="s")
    side: Literal["BUY", "SELL"] = msgspec.field(name="S")
    order_type: OrderWord = msgspec.field(name="o")
    time_in_force: OrderWord = msgspec.field(name="f")
    quantity: DecimalText = msgspec.field(name="q")
    price: DecimalText = msgspec.field(name="p")
    average_price: DecimalText = msgspec.field(name="ap")
    status: OrderWord = msgspec.field(name="X")
    last_filled_quantity: DecimalText = msgspec.field(name="l")
    filled_quantity: DecimalText = msgspec.field(name="z")
    trade_time: Id = msgspec.field(name="T")


class ForceOrder(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="forceOrder"):
    """USD-M ``<symbol>@forceOrder`` and ``!forceOrder@arr``: one liquidation per message,
    on the all-market stream too (not an array)."""

    event_time: Id = msgspec.field(name="E")
    order: LiquidationOrder = msgspec.field(name="o")

    def __post_init__(self) -> None:
        o = self.order
        check = (
            f"{o.symbol} {o.quantity} {o.price} {o.average_price} {o.last_filled_quantity} "
            f"{o.filled_quantity}"
        )
        if _Y5U(check) is None:
            raise ValueError(BAD_VALUE)
