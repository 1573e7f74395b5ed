"""Binance's WebSocket protocol as the fake exchange serves it: pure, no trio.

* URL paths: ``/spot/ws``, ``/spot/ws/<stream>``, ``/spot/stream?streams=a/b``; futures the
  same under ``/usdm/public/...`` and ``/usdm/market/...`` (an unrouted ``/usdm/ws...`` acts
  as ``/public``, as Binance does since the routed paths became mandatory).
* Stream names: ``<symbol>@<channel>`` (symbol lowercase) or a market-wide ``!...``: exactly
  the names the Binance vocabulary table gives each market, each generated (``Channel``).
  ``/usdm/private`` is accepted as Binance's user-data route: it carries no market stream.
* Control messages: ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` and their replies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

from marketd.data.records import Market
from marketd.exchanges.binance import vocabulary


class Channel(enum.Enum):
    TRADE = "trade"
    AGG_TRADE = "aggTrade"
    DEPTH = "depth"
    BOOK_TICKER = "bookTicker"
    MINI_TICKER = "miniTicker"
    TICKER = "ticker"
    MARK_PRICE = "markPrice"  # every 3 s
    MARK_PRICE_1S = "markPrice@1s"
    # Pushed on a clock (fakex.timed), one stream per ``StreamRef.variant``.
    KLINE = "kline"
    AVG_PRICE = "avgPrice"
    WINDOW_TICKER = "windowTicker"
    PARTIAL_DEPTH = "partialDepth"
    LIQUIDATION = "forceOrder"
    ALL_MINI_TICKERS = "!miniTicker@arr"
    ALL_TICKERS = "!ticker@arr"
    ALL_BOOK_TICKERS = "!bookTicker"
    ALL_MARK_PRICES = "!markPrice@arr"  # every 3 s
    ALL_MARK_PRICES_1S = "!markPrice@arr@1s"
    ALL_LIQUIDATIONS = "!forceOrder@arr"


class Route(enum.Enum):
    SPOT = "spot"  # spot has a single route
    PUBLIC = "public"
    MARKET = "market"
    PRIVATE = "private"  # user data: no market stream is served there


GLOBAL_CHANNELS = frozenset(
    {
        Channel.ALL_MINI_TICKERS,
        Channel.ALL_TICKERS,
        Channel.ALL_BOOK_TICKERS,
        Channel.ALL_MARK_PRICES,
        Channel.ALL_MARK_PRICES_1S,
        Channel.ALL_LIQUIDATIONS,
    }
)
TIMED_CHANNELS = frozenset(
    {
        Channel.KLINE,
        Channel.AVG_PRICE,
        Channel.WINDOW_TICKER,
        Channel.PARTIAL_DEPTH,
        Channel.LIQUIDATION,
        Channel.ALL_LIQUIDATIONS,
    }
)
PUBLIC_CHANNELS = frozenset(
    {Channel.DEPTH, Channel.PARTIAL_DEPTH, Channel.BOOK_TICKER, Channel.ALL_BOOK_TICKERS}
)

# The vocabulary's kinds as the fake generates them (mark prices: by channel, below).
_CHANNEL_OF_KIND: dict[str, Channel] = {
    "trade": Channel.TRADE,
    "aggTrade": Channel.AGG_TRADE,
    "depthUpdate": Channel.DEPTH,
    "depthPartial": Channel.PARTIAL_DEPTH,
    "bookTicker": Channel.BOOK_TICKER,
    "24hrMiniTicker": Channel.MINI_TICKER,
    "24hrTicker": Channel.TICKER,
    "kline": Channel.KLINE,
    "avgPrice": Channel.AVG_PRICE,
    "1hTicker": Channel.WINDOW_TICKER,
    "4hTicker": Channel.WINDOW_TICKER,
    "1dTicker": Channel.WINDOW_TICKER,
    "forceOrder": Channel.LIQUIDATION,
}
_CHANNEL_OF_NAME: dict[str, Channel] = {
    "markPrice": Channel.MARK_PRICE,
    "markPrice@1s": Channel.MARK_PRICE_1S,
    **{c.value: c for c in GLOBAL_CHANNELS},
}


def _channel(kind: str, name: str) -> Channel | None:
    """The fake's channel for a vocabulary name (None: a kind the fake does not know, so
    a row added to the table fails ``test_the_fake_serves_exactly_the_vocabulary``)."""
    return _CHANNEL_OF_NAME.get(name) or _CHANNEL_OF_KIND.get(kind)


def _known(names: Mapping[str, vocabulary.StreamKind]) -> dict[str, Channel]:
    return {n: c for n, row in names.items() if (c := _channel(row.kind, n)) is not None}


_SYMBOL_CHANNELS: dict[Market, dict[str, Channel]] = {
    m: _known(vocabulary.BY_CHANNEL[m]) for m in Market
}
_GLOBAL_STREAMS: dict[Market, dict[str, Channel]] = {
    m: _known(vocabulary.BY_ALL_MARKET[m]) for m in Market
}


def served(market: Market) -> frozenset[str]:
    """Every channel suffix and ``!...`` name the fake accepts on ``market``."""
    return frozenset(_SYMBOL_CHANNELS[market]) | frozenset(_GLOBAL_STREAMS[market])


class UnknownStream(ValueError):
    """A stream name this market does not serve."""


class BadPath(ValueError):
    """A WebSocket URL path the fake does not serve (the handshake is rejected with 404)."""


@attrs.frozen
class StreamRef:
    """A parsed stream name. ``symbol`` is the index into the market's symbols, -1 if global.

    ``variant`` tells streams of one timed channel apart: the kline interval (``1m``), the
    rolling window (``1h``) or the partial-depth channel (``depth5@100ms``); else empty.
    """

    name: str
    channel: Channel
    symbol: int
    route: Route
    variant: str = ""


def route_of(market: Market, channel: Channel) -> Route:
    if market is Market.SPOT:
        return Route.SPOT
    return Route.PUBLIC if channel in PUBLIC_CHANNELS else Route.MARKET


def _variant(channel: Channel, suffix: str) -> str:
    if channel is Channel.KLINE:
        return suffix.removeprefix("kline_")
    if channel is Channel.WINDOW_TICKER:
        return suffix.removeprefix("ticker_")
    if channel is Channel.PARTIAL_DEPTH:
        return suffix
    return ""


def parse_stream(market: Market, name: str, symbols: Mapping[str, int]) -> StreamRef:
    """Parse ``btcusdt@aggTrade`` / ``!miniTicker@arr``; ``symbols`` maps lowercase name → index."""
    if not isinstance(name, str):
        raise UnknownStream(f"stream name must be a string: {name!r}")
    glob = _GLOBAL_STREAMS[market].get(name)
    if glob is not None:
        return StreamRef(name, glob, -1, route_of(market, glob))
    symbol, sep, rest = name.partition("@")
    channel = _SYMBOL_CHANNELS[market].get(rest)
    index = symbols.get(symbol)
    if not sep or channel is None or index is None:
        raise UnknownStream(f"unknown stream {name!r}")
    return StreamRef(name, channel, index, route_of(market, channel), _variant(channel, rest))


@attrs.frozen
class WsPath:
    market: Market
    route: Route
    combined: bool
    streams: tuple[str, ...]


def parse_ws_path(target: str) -> WsPath:
    """Parse a WebSocket request target such as ``/usdm/market/stream?streams=a/b``."""
    parts = urlsplit(target)
    segs = [s for s in parts.path.split("/") if s]
    if not segs:
        raise BadPath(target)
    try:
        market = Market(segs[0])
    except ValueError:
        raise BadPath(target) from None
    segs = segs[1:]
    if market is Market.SPOT:
        route = Route.SPOT
    elif segs and segs[0] in ("public", "market", "private"):
        route = Route(segs[0])
        segs = segs[1:]
    else:
        route = Route.PUBLIC  # unrouted legacy URL: /public data only
    if segs[:1] == ["ws"]:
        # Raw streams may carry several names: /ws/a/b (an '@' never contains a '/').
        return WsPath(market, route, False, tuple(segs[1:]))
    if segs == ["stream"]:
        query = parse_qs(parts.query)
        names = [n for v in query.get("streams", []) for n in v.split("/") if n]
        return WsPath(market, route, True, tuple(names))
    raise BadPath(target)


# -- control messages ------------------------------------------------------------------------

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS")

RequestId = int | str | None


@attrs.frozen
class ControlRequest:
    method: str
    params: tuple[str, ...]
    id: RequestId


class ControlError(Exception):
    """A control message Binance would answer with ``{"error": {...}, "id": ...}``."""

    def __init__(self, code: int, msg: str, request_id: RequestId = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.request_id = request_id

    def reply(self) -> str:
        return error_reply(self.code, self.msg, self.request_id)


def parse_control(text: str | bytes) -> ControlRequest:
    """Validate one incoming control message; raise ``ControlError`` as Binance would."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ControlError(3, f"Invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ControlError(3, "Invalid JSON: expected an object")
    request_id = msg.get("id")
    if request_id is not None and (
        isinstance(request_id, bool)
        or not isinstance(request_id, int | str)
        or (isinstance(request_id, int) and request_id < 0)
    ):
        raise ControlError(2, "Invalid request: request ID must be an unsigned integer")
    method = msg.get("method")
    if method is None:
        raise ControlError(2, "Invalid request: missing field `method`", request_id)
    if method not in METHODS:
        raise ControlError(
            2,
            f"Invalid request: unknown variant {method!r}, expected one of "
            + ", ".join(f"`{m}`" for m in METHODS),
            request_id,
        )
    params = msg.get("params", [])
    if method == "LIST_SUBSCRIPTIONS":
        params = []
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ControlError(1, "Invalid value type: expected a list of strings", request_id)
    return ControlRequest(method, tuple(params), request_id)


def result_reply(result: list[str] | None, request_id: RequestId) -> str:
    return orjson.dumps({"result": result, "id": request_id}).decode()


def error_reply(code: int, msg: str, request_id: RequestId) -> str:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": request_id}).decode()
