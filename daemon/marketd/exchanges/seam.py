"""The exchange seam: what an exchange adapter hands the exchange-agnostic stages (pure).

An adapter (one package under ``exchanges/``) owns its stream vocabulary table, its codec,
its WebSocket routing, its REST endpoints with their request weights, and the rule by which
its depth diffs chain. The stages (feed, normalizer, sequencer, books, spool, Kafka,
gateway) read those through :class:`Exchange` and never import an adapter: the registry
(:func:`marketd.exchanges.exchange`) is the one place that names them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from marketd.data.events import DepthSnapshot
from marketd.data.records import Market


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
    """The stream kinds of one exchange, as its table says (an adapter's vocabulary
    module satisfies this)."""

    @property
    def RETIRED_STREAMS(self) -> Mapping[Market, Mapping[str, str]]: ...

    def channels(self, market: Market) -> frozenset[str]: ...
    def all_market_streams(self, market: Market) -> frozenset[str]: ...
    def kinds(self, sequencing: Sequencing) -> frozenset[str]: ...
    def diff_depth_channels(self, market: Market) -> frozenset[str]: ...
    def price_fields(self) -> dict[str, tuple[str, str]]: ...
    def channel_help(self, market: Market) -> str: ...
    def kind_of(self, market: Market, stream: str) -> str | None: ...
    def spellings(self, market: Market, kind: str) -> list[str]: ...


@attrs.frozen
class Endpoint:
    """One REST GET: its path, the request weight the exchange charges, and (for paged
    history) the rows per page."""

    path: str
    weight: int
    page: int = 0


class Exchange(Protocol):
    """One exchange adapter, as the stages see it."""

    @property
    def name(self) -> str: ...
    @property
    def vocabulary(self) -> Vocabulary: ...
    @property
    def used_weight_header(self) -> str:
        """The response header reporting the request weight used this minute (lower case)."""
        ...

    def depth_snapshot(self, market: Market, limit: int) -> Endpoint:
        """The order-book snapshot of ``limit`` levels (clamped to what the market serves)
        and its weight; ``Endpoint.page`` is the limit actually asked for."""
        ...

    def decode_depth_snapshot(self, body: bytes) -> DepthSnapshot:
        """The snapshot in a 200 response of :meth:`depth_snapshot`; ValueError when the
        body is not one."""
        ...

    def trade_history(self, market: Market, kind: str) -> Endpoint | None:
        """The trade history that fills a gap of ``kind`` (``fromId`` paging), or None
        when the exchange keeps none for that kind."""
        ...

    def stream_url(self, base_url: str, route: str, streams: Sequence[str]) -> str:
        """The WebSocket URL of a connection on ``route`` that carries ``streams`` from the
        start (none: the streams are subscribed with :meth:`subscribe_message`)."""
        ...

    def ws_route(self, market: Market, stream: str) -> str:
        """The path segment of the market's WebSocket base that serves ``stream`` ("" when
        the market has one route); streams of one route share connections."""
        ...

    def parse_control(self, frame: str) -> Control | None:
        """The control meaning of ``frame``, or None: data (possibly malformed, for the
        codec to count). Called on every frame: it must be cheap for data."""
        ...

    def subscribe_message(self, request_id: int, streams: Sequence[str]) -> str:
        """The text frame that subscribes ``streams`` on an open connection."""
        ...

    def chained_diffs(self, market: Market) -> bool:
        """True when each depth diff names the final update id of the one before it
        (USD-M ``pu``): the book follows that chain instead of consecutive ids."""
        ...
