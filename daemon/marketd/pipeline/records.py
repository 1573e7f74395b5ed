"""Values that cross channels on the hot path: frame batches in, Kafka records out.

They are msgspec Structs (frozen, no GC tracking) because thousands are made per second.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import msgspec


class Market(enum.Enum):
    SPOT = "spot"
    USDM = "usdm"

    # Members are singletons compared by identity: hash them by identity too, in C, not
    # with Enum's Python-level __hash__ (markets key the per-symbol dicts on the hot path).
    __hash__ = object.__hash__


Headers = tuple[tuple[str, bytes], ...]


def record_headers(market: Market, kind: str) -> Headers:
    """The Kafka headers of a market-data record: ``type`` (its kind: the Binance event type,
    or marketd's name for a kind without one, like ``bookSnapshot``) and ``market`` (``spot``
    or ``usdm``), so consumers can filter and route without decoding the value."""
    return (("type", kind.encode()), ("market", market.value.encode()))


class FrameBatch(msgspec.Struct, frozen=True, gc=False):
    """Text frames read from one WebSocket connection, in arrival order.

    ``received_ns[i]`` is the wall-clock time (``time.time_ns()``) frame ``i`` was read.
    Only data frames of combined streams (``{"stream":..,"data":..}``) travel here;
    control frames (acks, pings, ``serverShutdown``) are handled by the connection.
    """

    market: Market
    connection: str
    frames: list[str]
    received_ns: list[int]


class RecordBatch(list["Record"]):
    """The normalizer's output batch: records, plus the decoded depth events they came
    from (``depth``: ``id(record)`` →
    :class:`~marketd.exchanges.binance.streams.DepthUpdate`), so the books stage does not
    decode its own Protobuf back. Valid while the batch lives (its
    records are alive, so the ids are theirs); a reader checks the event against the
    record (symbol, final update id) and decodes the record when it does not match."""

    __slots__ = ("depth",)

    def __init__(self, records: Iterable[Record] = (), depth: dict[int, Any] | None = None):
        super().__init__(records)
        self.depth: dict[int, Any] = {} if depth is None else depth


class Record(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One Kafka message ready to publish, plus what the pipeline needs to route it.

    ``kind`` is the event type (``trade``, ``aggTrade``, ``depthUpdate``, ...);
    ``seq`` is the exchange's sequence id used for gap detection (trade id ``t``,
    aggregate trade id ``a``, depth final update id ``u``) or 0 where there is none.

    ``array_like``: serialized as an array of its fields in order (the spool's entry
    payload, see :mod:`marketd.spool.format`), encoded and decoded by msgspec in C.
    """

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    received_ns: int
    market: Market
    kind: str
    symbol: str
    seq: int = 0
