"""Values that cross channels on the hot path: frame batches in, Kafka records out.

They are msgspec Structs (frozen, no GC tracking) because thousands are made per second.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Collection, Iterable

import msgspec

from marketd.data.events import DepthDiff, Tick


class Market(enum.Enum):
    """What one exchange adapter serves, and its identity (records, headers, settings and
    metrics say it): Binance spot and Binance USD-M futures."""

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


class ControlFrame(msgspec.Struct, frozen=True, gc=False):
    """A frame of a connection that is not data, kept for the recorder (only while it
    records): a control frame the connection handled itself (an ack, an error reply,
    ``serverShutdown``), or one of marketd's connection markers (connected, closed; see
    :mod:`marketd.recorder.format`)."""

    at: int  # its place in the batch: before frames[at] (at == len(frames): after the last)
    received_ns: int
    text: str


class FrameBatch(msgspec.Struct, frozen=True, gc=False):
    """Text frames read from one WebSocket connection, in arrival order.

    ``received_ns[i]`` is the wall-clock time (``time.time_ns()``) frame ``i`` was read.
    Only data frames of combined streams (``{"stream":..,"data":..}``) are ``frames``;
    control frames (acks, pings, ``serverShutdown``) are handled by the connection. While
    the recorder records, they travel beside the data in ``control`` (in order, placed
    among the frames), with the connection's markers: the normalizer ignores them, and a
    batch may then hold no frames at all.
    """

    market: Market
    connection: str
    frames: list[str]
    received_ns: list[int]
    control: tuple[ControlFrame, ...] = ()


Event = DepthDiff | Tick | None
_KIND = operator.attrgetter("kind")


class RecordBatch(list["Record"]):
    """A typed batch: records, and beside them the events they were decoded from.

    ``events[i]`` belongs to ``self[i]``: the :class:`DepthDiff` of a depth-diff record, the
    :class:`Tick` of a price event the detector watches, or None. The books stage and the
    detector read them instead of parsing the Protobuf value back; a record without one
    (backfilled trades, records from elsewhere) is decoded by its reader. Whoever builds or
    filters a batch keeps the two lists aligned (:meth:`add`, :meth:`attach`, :meth:`pad`,
    :meth:`select`).
    """

    __slots__ = ("events",)

    def __init__(self, records: Iterable[Record] = (), events: list[Event] | None = None):
        super().__init__(records)
        self.events: list[Event] = [None] * len(self) if events is None else events

    def add(self, record: Record, event: Event) -> None:
        self.append(record)
        self.events.append(event)

    def attach(self, event: Event) -> None:
        """``event`` belongs to the record appended last. The codec's handlers append
        records alone and attach the few events there are, so a record without one costs
        nothing until :meth:`pad` (or the next attach) fills its None."""
        events = self.events
        if (missing := len(self) - 1 - len(events)) > 0:
            events.extend([None] * missing)
        events.append(event)

    def attach_last(self, events: list[Event]) -> None:
        """``events`` belong, in order, to the last ``len(events)`` records appended."""
        mine = self.events
        if (missing := len(self) - len(events) - len(mine)) > 0:
            mine.extend([None] * missing)
        mine.extend(events)

    def pad(self) -> RecordBatch:
        """Give every record without an event its None; returns the batch."""
        events = self.events
        if (missing := len(self) - len(events)) > 0:
            events.extend([None] * missing)
        return self

    def select(self, kinds: Collection[str], markets: Collection[Market]) -> RecordBatch:
        """The records of ``kinds`` on ``markets``, with their events."""
        out = RecordBatch()
        if isinstance(kinds, frozenset | set) and kinds.isdisjoint(map(_KIND, self)):
            return out  # none of the kinds (a C-level pass, no Python step per record)
        records, events = out, out.events
        for record, event in zip(self, self.events, strict=True):
            if record.kind in kinds and record.market in markets:
                records.append(record)
                events.append(event)
        return out


def events_of(batch: list[Record]) -> list[Event] | None:
    """The events beside ``batch`` (None when it is a plain list of records)."""
    return batch.events if type(batch) is RecordBatch else None


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
