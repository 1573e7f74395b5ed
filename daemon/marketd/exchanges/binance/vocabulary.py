"""The Binance stream vocabulary: one row per stream kind (pure, no trio, no I/O).

A row says everything marketd knows about one kind of stream: how each market spells it
(``<symbol>@<channel>`` suffixes and ``!...`` all-market names), which USD-M route serves it,
whether marketd decodes it (the ``MarketEvent`` field and the topic it lands in), how its
ids are sequenced, which price the alert detector reads, and whether it is an order-book
diff. Configuration, stream handlers, sequencer, books and alerts read this table: adding a
stream kind is a row, a decoder and a ``.proto`` message.

A row with ``message=None`` would be a stream Binance serves that marketd accepts in the
configuration but does not decode (its frames counted as ``unknown``); every row is decoded
today.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

import attrs

from marketd.data.records import Market
from marketd.exchanges.seam import Depth, Sequencing


class Route(enum.StrEnum):
    """Where on a market's WebSocket base a stream is served (a path segment: a ``str``)."""

    NONE = ""  # spot: the unrouted base
    PUBLIC = "/public"  # USD-M: depth and book tickers
    MARKET = "/market"  # USD-M: everything else public


@attrs.frozen
class StreamKind:
    """One kind of stream; ``kind`` is Binance's event type, the record kind and the Kafka
    header ``type`` (for a kind without an event type, the name marketd gives it)."""

    kind: str
    channels: Mapping[Market, frozenset[str]]  # per-symbol suffixes, per market
    all_market: Mapping[Market, frozenset[str]] = attrs.field(factory=dict)
    arrays: frozenset[str] = frozenset()  # the all-market names whose data is a JSON array
    route: Route = Route.MARKET  # on USD-M; spot has one route
    message: str | None = None  # the MarketEvent field it decodes into; None: not decoded
    topic: str | None = None  # the TopicSettings field naming its topic
    sequencing: Sequencing = Sequencing.NONE
    price_field: str | None = None  # the field of ``message`` the detector reads
    depth: Depth = Depth.NONE

    @property
    def decoded(self) -> bool:
        return self.message is not None


def _set(*names: str) -> frozenset[str]:
    return frozenset(names)


_KLINE_INTERVALS = (
    *("1m", "3m", "5m", "15m", "30m"),
    *("1h", "2h", "4h", "6h", "8h", "12h"),
    *("1d", "3d", "1w", "1M"),
)
KLINE_INTERVALS: Mapping[Market, tuple[str, ...]] = {
    Market.SPOT: ("1s", *_KLINE_INTERVALS),
    Market.USDM: _KLINE_INTERVALS,
}
# Update speeds of the depth streams (the empty one is each market's default).
DEPTH_SPEEDS: Mapping[Market, tuple[str, ...]] = {
    Market.SPOT: ("", "@100ms", "@1000ms"),
    Market.USDM: ("", "@100ms", "@250ms", "@500ms"),
}
PARTIAL_DEPTH_LEVELS = (5, 10, 20)

ROWS: tuple[StreamKind, ...] = (
    StreamKind(
        "trade",
        {Market.SPOT: _set("trade")},
        message="trade",
        topic="raw",
        sequencing=Sequencing.CONSECUTIVE,
        price_field="price",
    ),
    StreamKind(
        "aggTrade",
        {Market.SPOT: _set("aggTrade"), Market.USDM: _set("aggTrade")},
        message="agg_trade",
        topic="raw",
        sequencing=Sequencing.CONSECUTIVE,
        price_field="price",
    ),
    StreamKind(
        "depthUpdate",
        {m: frozenset(f"depth{s}" for s in speeds) for m, speeds in DEPTH_SPEEDS.items()},
        route=Route.PUBLIC,
        message="depth_diff",
        topic="depth",
        sequencing=Sequencing.INCREASING,
        depth=Depth.DIFF,
    ),
    # Spot: no event type and no symbol (the stream name's); USD-M: shaped like a diff,
    # e=depthUpdate. Not a diff either way: the raw topic, never the depth topic or books.
    StreamKind(
        "depthPartial",
        {
            m: frozenset(f"depth{n}{s}" for n in PARTIAL_DEPTH_LEVELS for s in speeds)
            for m, speeds in DEPTH_SPEEDS.items()
        },
        route=Route.PUBLIC,
        message="partial_book",
        topic="raw",
        depth=Depth.PARTIAL,
    ),
    StreamKind(
        "bookTicker",
        {Market.SPOT: _set("bookTicker"), Market.USDM: _set("bookTicker")},
        {Market.USDM: _set("!bookTicker")},
        route=Route.PUBLIC,
        message="book_ticker",
        topic="raw",
        sequencing=Sequencing.INCREASING,
    ),
    StreamKind(
        "24hrMiniTicker",
        {Market.SPOT: _set("miniTicker"), Market.USDM: _set("miniTicker")},
        {Market.SPOT: _set("!miniTicker@arr"), Market.USDM: _set("!miniTicker@arr")},
        _set("!miniTicker@arr"),
        message="mini_ticker",
        topic="raw",
        price_field="close_price",
    ),
    StreamKind(
        "24hrTicker",
        {Market.SPOT: _set("ticker"), Market.USDM: _set("ticker")},
        {Market.USDM: _set("!ticker@arr")},
        _set("!ticker@arr"),
        message="ticker",
        topic="raw",
        price_field="last_price",
    ),
    StreamKind(
        "markPriceUpdate",
        {Market.USDM: _set("markPrice", "markPrice@1s")},
        {Market.USDM: _set("!markPrice@arr", "!markPrice@arr@1s")},
        _set("!markPrice@arr", "!markPrice@arr@1s"),
        message="mark_price",
        topic="raw",
        price_field="mark_price",
    ),
    StreamKind(
        "kline",
        {m: frozenset(f"kline_{i}" for i in intervals) for m, intervals in KLINE_INTERVALS.items()},
        message="kline",
        topic="raw",
        price_field="close_price",
    ),
    StreamKind(
        "avgPrice",
        {Market.SPOT: _set("avgPrice")},
        message="avg_price",
        topic="raw",
        price_field="average_price",
    ),
    # Rolling-window tickers share the Ticker message (``window`` tells them apart), so
    # they carry no price_field: the detector maps a message field back to one kind.
    StreamKind("1hTicker", {Market.SPOT: _set("ticker_1h")}, message="ticker", topic="raw"),
    StreamKind("4hTicker", {Market.SPOT: _set("ticker_4h")}, message="ticker", topic="raw"),
    StreamKind("1dTicker", {Market.SPOT: _set("ticker_1d")}, message="ticker", topic="raw"),
    # One liquidation per message, even on the all-market stream (not an array).
    StreamKind(
        "forceOrder",
        {Market.USDM: _set("forceOrder")},
        {Market.USDM: _set("!forceOrder@arr")},
        message="liquidation",
        topic="raw",
        price_field="average_price",
    ),
)

RETIRED_STREAMS: Mapping[Market, Mapping[str, str]] = {
    Market.SPOT: {
        "!ticker@arr": (
            "Binance retired it on spot on 2026-03-26; "
            "use <symbol>@ticker for the symbols you need, or !miniTicker@arr"
        ),
        "!bookTicker": "Binance does not serve it on spot; use <symbol>@bookTicker",
    },
}
"""All-market streams that do not exist (any more) on a market, with the reason."""


BY_KIND: Mapping[str, StreamKind] = {row.kind: row for row in ROWS}
# Per market: channel (or all-market name) → its row.
BY_CHANNEL: Mapping[Market, Mapping[str, StreamKind]] = {
    m: {c: row for row in ROWS for c in row.channels.get(m, ())} for m in Market
}
BY_ALL_MARKET: Mapping[Market, Mapping[str, StreamKind]] = {
    m: {s: row for row in ROWS for s in row.all_market.get(m, ())} for m in Market
}


_UNITS = {"": 0, "ms": 1, "s": 2, "m": 3, "h": 4, "d": 5, "w": 6, "M": 7}
_AMOUNT = re.compile(r"(\d+)(ms|[smhdwM]?)")


def _natural(text: str) -> tuple[int, int, str]:
    """Order ``5 < 10 < 20`` and ``1s < 1m < 15m < 1h < 1d < 1w < 1M``."""
    found = _AMOUNT.search(text)
    if found is None:
        return (0, 0, text)
    return (_UNITS[found.group(2)], int(found.group(1)), text)


def _compact(channels: frozenset[str]) -> str:
    """One kind's channels in one item: ``depth<5|10|20>[@100ms|@1000ms]``,
    ``kline_<1m|…>``, ``markPrice[@1s]``: heads (alternatives after their common prefix)
    and update speeds (``[...]``: optional, the bare name is the default speed)."""
    heads: dict[str, set[str]] = {}
    for c in channels:
        head, at, speed = c.partition("@")
        heads.setdefault(head, set()).add(at + speed)
    speed_sets = {frozenset(s) for s in heads.values()}
    if len(speed_sets) > 1:  # heads that differ in speeds: list them whole
        return ", ".join(sorted(channels, key=_natural))
    (speeds,) = speed_sets
    names = sorted(heads, key=_natural)
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    text = prefix if len(names) == 1 else f"{prefix}<{'|'.join(n[len(prefix) :] for n in names)}>"
    others = sorted((s for s in speeds if s), key=_natural)
    if others:
        text += f"[{'|'.join(others)}]" if "" in speeds else f"<{'|'.join(others)}>"
    return text


def channel_help(market: Market) -> str:
    """The channels of ``market``, one item per kind in the table's order, as one line for
    error messages (see :func:`expand_help`)."""
    return ", ".join(_compact(row.channels[market]) for row in ROWS if row.channels.get(market))


def expand_help(text: str) -> frozenset[str]:
    """The channels a :func:`channel_help` line names (``a<b|c>[d|e]``: ``ab``, ``ac``,
    each bare or with ``d`` or ``e``)."""
    out: set[str] = set()
    for item in text.split(", "):
        found = re.fullmatch(r"([^<\[]*)(?:<([^>]*)>)?(?:\[([^\]]*)\]|<([^>]*)>)?", item)
        if found is None:
            raise ValueError(f"not a channel_help item: {item!r}")
        head, alternatives, optional, required = found.groups()
        heads = [head + a for a in alternatives.split("|")] if alternatives else [head]
        if optional:
            tails = ["", *optional.split("|")]
        else:
            tails = required.split("|") if required else [""]
        out.update(h + t for h in heads for t in tails)
    return frozenset(out)


def channels(market: Market) -> frozenset[str]:
    """Every ``<symbol>@<channel>`` suffix the market serves."""
    return frozenset(BY_CHANNEL[market])


def all_market_streams(market: Market) -> frozenset[str]:
    """Every ``!...`` stream the market serves."""
    return frozenset(BY_ALL_MARKET[market])


def kinds(sequencing: Sequencing) -> frozenset[str]:
    """The decoded kinds whose ids promise ``sequencing``."""
    return frozenset(r.kind for r in ROWS if r.decoded and r.sequencing is sequencing)


def diff_depth_channels(market: Market) -> frozenset[str]:
    """The channels of ``market`` whose events the books apply."""
    return frozenset(c for c, row in BY_CHANNEL[market].items() if row.depth is Depth.DIFF)


def price_fields() -> dict[str, tuple[str, str]]:
    """Kind → (MarketEvent field, price field) for every kind the detector can read."""
    return {
        r.kind: (r.message, r.price_field)
        for r in ROWS
        if r.message is not None and r.price_field is not None
    }


def kind_of(market: Market, stream: str) -> str | None:
    """The kind ``stream`` (``<symbol>@<channel>`` or ``!...``) carries on ``market``."""
    if stream.startswith("!"):
        row = BY_ALL_MARKET[market].get(stream)
    else:
        row = BY_CHANNEL[market].get(stream.partition("@")[2])
    return None if row is None else row.kind


def spellings(market: Market, kind: str) -> list[str]:
    """How to subscribe to ``kind`` on ``market``: its all-market streams, then its
    ``<symbol>@<channel>`` forms, shortest first (empty when the market does not serve it)."""
    row = BY_KIND.get(kind)
    if row is None:
        return []
    return sorted(row.all_market.get(market, ())) + [
        f"<symbol>@{c}"
        for c in sorted(row.channels.get(market, ()), key=lambda c: (len(c), c.swapcase()))
    ]


def route(market: Market, stream: str) -> Route | None:
    """The route serving ``stream`` on ``market`` (None: not a stream the table knows)."""
    if stream.startswith("!"):
        row = BY_ALL_MARKET[market].get(stream)
    else:
        row = BY_CHANNEL[market].get(stream.partition("@")[2])
    if row is None:
        return None
    return Route.NONE if market is Market.SPOT else row.route


@attrs.frozen
class MarketVocabulary:
    """The table as one market's adapter reads it (the seam's
    :class:`~marketd.exchanges.seam.Vocabulary`)."""

    market: Market

    @property
    def retired_streams(self) -> Mapping[str, str]:
        return RETIRED_STREAMS.get(self.market, {})

    def channels(self) -> frozenset[str]:
        return channels(self.market)

    def all_market_streams(self) -> frozenset[str]:
        return all_market_streams(self.market)

    def kinds(self, sequencing: Sequencing) -> frozenset[str]:
        """The decoded kinds served here whose ids promise ``sequencing``."""
        served = {
            r.kind
            for r in (*BY_CHANNEL[self.market].values(), *BY_ALL_MARKET[self.market].values())
        }
        return kinds(sequencing) & served

    def diff_depth_channels(self) -> frozenset[str]:
        return diff_depth_channels(self.market)

    def price_fields(self) -> dict[str, tuple[str, str]]:
        return price_fields()

    def channel_help(self) -> str:
        return channel_help(self.market)

    def kind_of(self, stream: str) -> str | None:
        return kind_of(self.market, stream)

    def spellings(self, kind: str) -> list[str]:
        return spellings(self.market, kind)
