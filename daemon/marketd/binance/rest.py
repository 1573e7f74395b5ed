"""Rows of Binance's REST trade history, used to backfill gaps after a reconnect."""

from __future__ import annotations

import msgspec


class HistoricalTrade(msgspec.Struct, frozen=True, gc=False):
    """A row of ``/api/v3/historicalTrades`` (and ``/fapi/v1/historicalTrades``)."""

    trade_id: int = msgspec.field(name="id")
    price: str
    quantity: str = msgspec.field(name="qty")
    time: int
    buyer_is_maker: bool = msgspec.field(name="isBuyerMaker")


class RestAggTrade(msgspec.Struct, frozen=True, gc=False):
    """A row of ``/api/v3/aggTrades`` (and ``/fapi/v1/aggTrades``, which adds ``nq``)."""

    agg_trade_id: int = msgspec.field(name="a")
    price: str = msgspec.field(name="p")
    quantity: str = msgspec.field(name="q")
    first_trade_id: int = msgspec.field(name="f")
    last_trade_id: int = msgspec.field(name="l")
    trade_time: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")
    normal_quantity: str = msgspec.field(default="", name="nq")
