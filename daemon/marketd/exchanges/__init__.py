"""Exchange adapters behind one seam (:mod:`marketd.exchanges.seam`), and their registry.

An adapter serves one market; the market is its identity. Each exchange is a sibling
package (``binance``: the spot and the USD-M adapter). The stages ask :func:`adapter` for
the one they serve and name none; this is the one place that does.
"""

from __future__ import annotations

from marketd.data.records import Market
from marketd.exchanges.seam import Exchange


def adapter(market: Market) -> Exchange:
    """The adapter serving ``market`` (imported on first use)."""
    return _adapters()[market]


def adapters() -> tuple[Exchange, ...]:
    """Every adapter, in the order of :class:`~marketd.data.records.Market`."""
    return tuple(_adapters().values())


def _adapters() -> dict[Market, Exchange]:
    from marketd.exchanges.binance.adapter import ADAPTERS

    return ADAPTERS
