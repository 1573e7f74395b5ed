"""Exchange adapters behind one seam (:mod:`marketd.exchanges.seam`), and their registry.

Each adapter is a sibling package (``binance``). The stages ask :func:`exchange` for the
adapter they serve and name none; this is the one place that does.
"""

from __future__ import annotations

from marketd.exchanges.seam import Exchange


def exchange(name: str = "binance") -> Exchange:
    """The adapter called ``name`` (imported on first use)."""
    if name == "binance":
        from marketd.exchanges.binance.adapter import BINANCE

        return BINANCE
    raise ValueError(f"unknown exchange {name!r}: marketd has an adapter for 'binance'")
