"""Binance's REST market-data endpoints that marketd calls: paths, page sizes, weights (pure).

Book snapshots (``depth``) and trade history for gap backfill (``historicalTrades``,
``aggTrades``), per market, with the request weight Binance charges for each; and the
response header in which Binance reports the weight used this minute.
"""

from __future__ import annotations

from marketd.data.records import Market

# The weight used in the current minute, per IP (lower case: HTTP header names are
# case-insensitive and the client keeps them lower-cased).
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"

DEPTH_PATHS = {Market.SPOT: "/api/v3/depth", Market.USDM: "/fapi/v1/depth"}
MAX_DEPTH_LIMIT = {Market.SPOT: 5000, Market.USDM: 1000}


def depth_weight(market: Market, limit: int) -> int:
    """The request weight of ``GET depth?limit=`` (spot 5/25/50/250, USD-M 2/5/10/20)."""
    if market is Market.SPOT:
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


# Trade history for gap backfill, per page: (market, record kind) → weight.
# Binance: spot aggTrades 4, spot historicalTrades 25, USD-M aggTrades and historicalTrades 20.
_TRADES_WEIGHT: dict[tuple[Market, str], int] = {
    (Market.SPOT, "aggTrade"): 4,
    (Market.SPOT, "trade"): 25,
    (Market.USDM, "aggTrade"): 20,
    (Market.USDM, "trade"): 20,
}


def trades_weight(market: Market, kind: str) -> int:
    """The request weight of ``GET aggTrades`` (``kind`` "aggTrade") or ``historicalTrades``
    ("trade"): spot 4 / 25, USD-M 20 / 20 (any ``limit``)."""
    return _TRADES_WEIGHT[(market, kind)]


# (path, page size) per (market, kind); USD-M historicalTrades serves at most 500 rows.
TRADE_HISTORY: dict[tuple[Market, str], tuple[str, int]] = {
    (Market.SPOT, "trade"): ("/api/v3/historicalTrades", 1000),
    (Market.SPOT, "aggTrade"): ("/api/v3/aggTrades", 1000),
    (Market.USDM, "trade"): ("/fapi/v1/historicalTrades", 500),
    (Market.USDM, "aggTrade"): ("/fapi/v1/aggTrades", 1000),
}
