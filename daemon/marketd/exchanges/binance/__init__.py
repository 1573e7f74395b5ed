"""Typed Binance payloads (msgspec Structs): WebSocket stream events and REST history rows.

Field names are descriptive; each maps to Binance's key with ``msgspec.field(name=...)``.
Unknown keys are ignored (Binance adds fields without notice). Prices and quantities stay
the exchange's decimal strings; ids and times are integers (ms). Values Binance never sends
(a price that is not a decimal, a negative id, an id beyond int64, an absurd symbol) fail
decoding like a wrong type does: see :mod:`marketd.exchanges.binance.values`.
"""

from marketd.exchanges.binance.rest import HistoricalTrade, RestAggTrade
from marketd.exchanges.binance.streams import (
    AggTrade,
    AvgPrice,
    BookTicker,
    DayTicker,
    DepthUpdate,
    ForceOrder,
    FourHourTicker,
    FuturesBookTicker,
    FuturesDepthUpdate,
    FuturesTicker,
    HourTicker,
    Kline,
    MarkPriceUpdate,
    MiniTicker,
    PartialDepth,
    SpotTicker,
    StreamFrame,
    Trade,
    WindowTicker,
)

__all__ = [
    "AggTrade",
    "AvgPrice",
    "BookTicker",
    "DayTicker",
    "DepthUpdate",
    "ForceOrder",
    "FourHourTicker",
    "FuturesBookTicker",
    "FuturesDepthUpdate",
    "FuturesTicker",
    "HistoricalTrade",
    "HourTicker",
    "Kline",
    "MarkPriceUpdate",
    "MiniTicker",
    "PartialDepth",
    "RestAggTrade",
    "SpotTicker",
    "StreamFrame",
    "Trade",
    "WindowTicker",
]
