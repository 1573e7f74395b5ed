"""What every kind's handler shares: the handler signature, the per-market constants, the
level filler and the base class that owns a kind's reused message."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from marketd.data.records import Headers, Market, RecordBatch, record_headers
from marketd.exchanges.binance import vocabulary
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent, PriceLevel
from marketd.v1.market_data_pb2 import Market as PbMarket

# Appends the records made from one frame's ``data`` (raw JSON) to the batch and attaches
# their events where they have one (the codec pads the rest with None); raises ValueError
# (msgspec.DecodeError, or a Protobuf range/UTF-8 error) for a bad payload.
Handler = Callable[[msgspec.Raw, int, RecordBatch], None]

PB_MARKET: dict[Market, PbMarket] = {Market.SPOT: MARKET_SPOT, Market.USDM: MARKET_USDM}

# Per market, per decoded kind: built once, shared by every record.
HEADERS: dict[Market, dict[str, Headers]] = {
    m: {row.kind: record_headers(m, row.kind) for row in vocabulary.ROWS if row.decoded}
    for m in Market
}


def fill(side: RepeatedCompositeFieldContainer[PriceLevel], levels: list[tuple[str, str]]) -> None:
    """Replace the levels of a repeated ``PriceLevel`` field (reused message) by ``levels``."""
    del side[:]
    add = side.add
    for price, quantity in levels:
        level = add()
        level.price = price
        level.quantity = quantity


class KindHandler:
    """One decoded kind on one market: its topic, its headers and its reused message.

    Slots, because the codec calls a subclass's bound method per frame and that reads
    these on every call. The reused message is replaced now and then (:meth:`renew`):
    with upb every string and level set on a message stays in its arena until the
    message is freed — ``del side[:]`` frees nothing — so one message reused for ever
    grows without bound (56 MiB per 20,000 book snapshots of 40 levels).
    """

    __slots__ = ("event", "headers", "kind", "market", "tick", "topic")

    def __init__(self, market: Market, kind: str, topic: str) -> None:
        self.market = market
        self.kind = kind
        self.topic = topic
        self.headers = HEADERS[market][kind]
        self.event = MarketEvent(market=PB_MARKET[market])
        # Whether the detector watches this kind's price (set by watch_prices): then a
        # Tick goes beside each record.
        self.tick = False

    def renew(self) -> None:
        """A fresh reused message (the old one's arena is freed with it), keeping the
        newest event's time that :meth:`Codec.newest_event_times` reads."""
        event = MarketEvent(market=PB_MARKET[self.market])
        event.event_time_ms = self.event.event_time_ms
        self.event = event


class EventHandler(KindHandler):
    """A kind whose payload is one event on every stream that carries it."""

    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        raise NotImplementedError


class ArrayHandler(EventHandler):
    """A kind that all-market streams (``!...@arr``) also send as a JSON array of events."""

    __slots__ = ()

    def handle_array(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        raise NotImplementedError
