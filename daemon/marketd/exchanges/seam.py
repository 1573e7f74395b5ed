"""The exchange seam: what an exchange adapter hands the exchange-agnostic stages (pure).

One adapter serves one market (:class:`~marketd.data.records.Market` is its identity:
Binance spot and Binance USD-M are two adapters). It owns its view of the stream vocabulary
table, its codec (and a faster way from frames to the detector's ticks alone, for
recordings), its WebSocket routing and subscribe protocol with their message-rate
limit, its control frames, its REST endpoints with their request weights, and the rule by
which its depth diffs chain. The stages (feed, normalizer, sequencer, books, spool, Kafka,
gateway, backtest) read those through :class:`Exchange` and never import an adapter: the registry
(:func:`marketd.exchanges.adapter`) is the one place that names them.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

import attrs
import msgspec

from marketd.data.events import DepthSnapshot, Tick
from marketd.data.records import FrameBatch, Market, Record, RecordBatch


class Sequencing(enum.Enum):
    """What a kind's ids promise."""

    NONE = "none"  # no id order to keep (tickers, mark price)
    CONSECUTIVE = "consecutive"  # trade ids: duplicates dropped, gaps reported and backfilled
    INCREASING = "increasing"  # update ids: duplicates dropped, jumps allowed


class Depth(enum.Enum):
    """What a kind says about an order book."""

    NONE = "none"
    DIFF = "diff"  # changes since the previous event: the books apply them
    PARTIAL = "partial"  # the top levels as they are: never a diff


# -- control frames: what a WebSocket frame that is not data means ------------------------


@attrs.frozen
class Ack:
    """Request ``id`` succeeded."""

    id: int
    result: object = None


@attrs.frozen
class ErrorReply:
    """A request was refused (``id`` None when the reply names none)."""

    id: int | None
    message: str


@attrs.frozen
class Shutdown:
    """The server is going away: reconnect now."""


Control = Ack | ErrorReply | Shutdown
SHUTDOWN = Shutdown()


class Vocabulary(Protocol):
    """The stream kinds of one adapter's market, as its exchange's table says."""

    @property
    def retired_streams(self) -> Mapping[str, str]:
        """All-market streams that do not exist (any more) here, with the reason."""
        ...

    def channels(self) -> frozenset[str]: ...
    def all_market_streams(self) -> frozenset[str]: ...
    def kinds(self, sequencing: Sequencing) -> frozenset[str]: ...
    def diff_depth_channels(self) -> frozenset[str]: ...
    def price_fields(self) -> dict[str, tuple[str, str]]: ...
    def channel_help(self) -> str: ...
    def kind_of(self, stream: str) -> str | None: ...
    def spellings(self, kind: str) -> list[str]: ...


class Topics(Protocol):
    """The topics a codec writes to (``TopicSettings`` is one)."""

    @property
    def raw(self) -> str: ...
    @property
    def depth(self) -> str: ...


class DecodeResult(msgspec.Struct, frozen=True, gc=False):
    """What one frame batch decoded to.

    ``records`` are in frame order (array streams: one per item, in item order).
    ``error`` is the text of the last malformed or unknown frame ("" when none), for the
    caller to log at a bounded rate.
    """

    records: RecordBatch
    malformed: int = 0
    unknown: int = 0
    error: str = ""


class Codec(Protocol):
    """An adapter's frames (and REST trade history) → Kafka records, on the hot path: it
    never raises for bad input, it counts it."""

    def decode_batch(self, batch: FrameBatch) -> DecodeResult: ...

    def encode_rest_trades(
        self, symbol: str, kind: str, body: bytes, received_ns: int
    ) -> list[Record]:
        """Records for a :meth:`Exchange.trade_history` response body, marked backfilled;
        :class:`~marketd.errors.RestError` when the body is not one."""
        ...

    def watch_prices(self, kinds: Collection[str]) -> None:
        """Put a :class:`~marketd.data.events.Tick` beside each record of ``kinds`` (price
        kinds of the vocabulary) from now on; none when empty."""
        ...

    def newest_event_times(self) -> Mapping[str, int]:
        """Kind → the exchange event time (epoch ms) of the newest event decoded, 0 when
        none yet or the kind carries none. Read once per batch, never per frame."""
        ...


# -- frames → detector ticks, without records (replaying recordings) ---------------------


class TickRun(msgspec.Struct, frozen=True, gc=False):
    """What a :class:`TickLane` made of a run of frames, from the first frame on.

    ``frames`` of them were decoded; when that is fewer than it was given, the next frame
    is refused: the codec must judge it (it counts it as malformed or unknown, or decodes
    it after all, e.g. a frame that names a stream of another kind).
    ``ticks`` are theirs in frame order (an array frame's in item order). ``ids`` holds,
    beside each tick, the id of its event when the kind's ids are ordered
    (:class:`Sequencing` other than NONE: what the sequencer checks), else it is empty.
    ``counts`` holds the ticks of each frame for array streams; empty: one tick per frame.
    """

    frames: int
    ticks: list[Tick]
    ids: list[int]
    counts: list[int]


class TickLane(Protocol):
    """The frames of the streams of one kind and shape (single events, or arrays of them)
    → the ticks the adapter's codec puts beside its records (:meth:`Codec.watch_prices`),
    field for field, without making the records."""

    def decode(self, frames: Sequence[bytes]) -> TickRun:
        """Decode ``frames`` (each the text of one data frame of one of the lane's
        streams, as received) in order until one is refused: a frame the codec would
        refuse (the same validation), or one that names a stream of another lane (the
        codec decodes a frame by the stream it names). Never raises for bad input."""
        ...


class TickDecoder(Protocol):
    """An adapter's fast way from data frames to detector ticks (pure; it keeps caches:
    one per thread). For replaying recorded frames, where no Kafka record is wanted."""

    def lane(self, stream: str) -> TickLane | None:
        """The lane that decodes the frames of ``stream``, the same object for every stream
        of its kind and shape; None when only the codec can (a kind without a fast path,
        a name the adapter does not serve)."""
        ...


@attrs.frozen
class Endpoint:
    """One REST GET: its path, the request weight the exchange charges, and (for paged
    history) the rows per page."""

    path: str
    weight: int
    page: int = 0


class Exchange(Protocol):
    """One exchange adapter (one market of one exchange), as the stages see it."""

    @property
    def market(self) -> Market:
        """What the adapter serves: its identity (records, settings and metrics say it)."""
        ...

    @property
    def name(self) -> str:
        """For people: ``binance-spot``."""
        ...

    @property
    def vocabulary(self) -> Vocabulary: ...
    @property
    def max_messages_per_second(self) -> float:
        """The most messages a client may send per second on one connection."""
        ...

    @property
    def used_weight_header(self) -> str:
        """The response header reporting the request weight used this minute (lower case)."""
        ...

    @property
    def chained_diffs(self) -> bool:
        """True when each depth diff names the final update id of the one before it
        (USD-M ``pu``): the book follows that chain instead of consecutive ids."""
        ...

    def codec(self, topics: Topics) -> Codec:
        """A new codec (it keeps caches and reused messages: one per thread)."""
        ...

    def tick_decoder(self) -> TickDecoder:
        """A new tick decoder (it keeps caches: one per thread)."""
        ...

    def depth_snapshot(self, limit: int) -> Endpoint:
        """The order-book snapshot of ``limit`` levels (clamped to what the market serves)
        and its weight; ``Endpoint.page`` is the limit actually asked for."""
        ...

    def decode_depth_snapshot(self, body: bytes) -> DepthSnapshot:
        """The snapshot in a 200 response of :meth:`depth_snapshot`; ValueError when the
        body is not one."""
        ...

    def trade_history(self, kind: str) -> Endpoint | None:
        """The trade history that fills a gap of ``kind`` (``fromId`` paging), or None
        when the exchange keeps none for that kind."""
        ...

    def stream_url(self, base_url: str, route: str, streams: Sequence[str]) -> str:
        """The WebSocket URL of a connection on ``route`` that carries ``streams`` from the
        start (none: the streams are subscribed with :meth:`subscribe_message`)."""
        ...

    def ws_route(self, stream: str) -> str:
        """The path segment of the WebSocket base that serves ``stream`` ("" when the
        market has one route); streams of one route share connections."""
        ...

    def parse_control(self, frame: str) -> Control | None:
        """The control meaning of ``frame``, or None: data (possibly malformed, for the
        codec to count). Called on every frame: it must be cheap for data."""
        ...

    def subscribe_message(self, request_id: int, streams: Sequence[str]) -> str:
        """The text frame that subscribes ``streams`` on an open connection."""
        ...
