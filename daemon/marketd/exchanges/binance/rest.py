"""Binance's REST payloads: trade history rows (gap backfill) and book snapshots.

Ids, times and decimals are checked like the stream payloads
(:mod:`marketd.exchanges.binance.values`).
"""

from __future__ import annotations

import msgspec

from marketd.exchanges.binance.values import (
    BAD_VALUE,
    DecimalText,
    Id,
    OptionalDecimalText,
    values_check,
)

_U = values_check("u")
_UU = values_check("uu")


class HistoricalTrade(msgspec.Struct, frozen=True, gc=False):
    """A row of ``/api/v3/historicalTrades`` (and ``/fapi/v1/historicalTrades``)."""

    trade_id: Id = msgspec.field(name="id")
    price: DecimalText
    quantity: DecimalText = msgspec.field(name="qty")
    time: Id
    buyer_is_maker: bool = msgspec.field(name="isBuyerMaker")

    def __post_init__(self) -> None:
        if _UU(f"{self.price} {self.quantity}") is None:
            raise ValueError(BAD_VALUE)


class RestAggTrade(msgspec.Struct, frozen=True, gc=False):
    """A row of ``/api/v3/aggTrades`` (and ``/fapi/v1/aggTrades``, which adds ``nq``)."""

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
        if _UU(f"{self.price} {self.quantity}") is None or (nq and _U(nq) is None):
            raise ValueError(BAD_VALUE)


class BookSnapshot(msgspec.Struct, frozen=True, gc=False):
    """``GET /api/v3/depth`` / ``/fapi/v1/depth``: levels ``[price, quantity]``, best first."""

    last_update_id: int = msgspec.field(name="lastUpdateId")
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
