"""Decoded events that travel beside their records: what books and the detector read.

An exchange adapter decodes each frame once; the events it made on the way (a depth diff,
a watched price) ride in the record batch beside their records
(:class:`~marketd.data.records.RecordBatch`), so the stages downstream need not parse
the Protobuf back. They name no exchange.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

Level = tuple[str, str]  # (price, quantity) as the exchange's decimal strings


class DepthDiff:
    """One depth diff as the machine sees it (``prev`` is ``pu``; None on spot)."""

    __slots__ = ("asks", "bids", "event_time_ms", "final", "first", "prev", "received_ns")

    def __init__(
        self,
        first: int,
        final: int,
        prev: int | None,
        bids: Sequence[Level],
        asks: Sequence[Level],
        event_time_ms: int = 0,
        received_ns: int = 0,
    ) -> None:
        self.first = first
        self.final = final
        self.prev = prev
        self.bids = bids
        self.asks = asks
        self.event_time_ms = event_time_ms
        self.received_ns = received_ns


class Tick(msgspec.Struct, frozen=True, gc=False):
    """One price observation of one instrument (exchange event time, decimal string).

    A msgspec Struct: the codec makes one per watched price event on the hot path. The
    optional fields are empty unless the event carries them:

    * ``quote_volume`` — the 24 h quote volume (24 h tickers): ``min_quote_volume_24h``;
    * ``quantity`` — the traded quantity (trade, aggTrade): volume rules;
    * ``index_price``, ``funding_rate`` — from a mark price update: premium and funding rules;
    * ``side`` — set only on a liquidation (forceOrder: ``price`` is its average price,
      ``quantity`` its filled quantity): liquidation rules read it, price rules do not.
    """

    market: str
    symbol: str
    time_ms: int
    price: str
    quote_volume: str = ""
    quantity: str = ""
    index_price: str = ""
    funding_rate: str = ""
    side: str = ""


class DepthSnapshot(msgspec.Struct, frozen=True, gc=False):
    """An order-book snapshot from the exchange's REST API: the update id it stands at and
    its levels ``(price, quantity)``, best first."""

    last_update_id: int
    bids: list[Level]
    asks: list[Level]
