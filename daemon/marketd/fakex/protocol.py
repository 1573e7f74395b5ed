"""Binance's WebSocket protocol as the fake exchange serves it: pure, no trio.

* URL paths: ``/spot/ws``, ``/spot/ws/<stream>``, ``/spot/stream?streams=a/b``; futures the
  same under ``/usdm/public/...`` and ``/usdm/market/...`` (an unrouted ``/usdm/ws...`` acts
  as ``/public``, as Binance does since the routed paths became mandatory).
* Stream names: ``<symbol>@<channel>`` (symbol lowercase) or a market-wide ``!...``. Every
  name the Binance vocabulary table knows is accepted, as Binance accepts it; the ones the
  fake does not generate are ``Channel.QUIET``: subscribed, routed, and silent.
* Control messages: ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` and their replies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import attrs
import orjson

from marketd.exchanges.binance import vocabulary
from marketd.pipeline.records import Market


class Channel(enum.Enum):
    TRADE = "trade"
    AGG_TRADE = "aggTrade"
    DEPTH = "depth"
    BOOK_TICKER = "bookTicker"
    MINI_TICKER = "miniTicker"
    TICKER = "ticker"
    MARK_PRICE = "markPrice"  # every 3 s
    MARK_PRICE_1S = "markPrice@1s"
    ALL_MINI_TICKERS = "!miniTicker@arr"
    ALL_TICKERS = "!ticker@arr"
    ALL_BOOK_TICKERS = "!bookTicker"
    ALL_MARK_PRICES = "!markPrice@arr"  # every 3 s
    ALL_MARK_PRICES_1S = "!markPrice@arr@1s"
    # A stream Binance serves that the fake does not generate (klines, liquidations, ...):
    # a subscription is accepted and routed like Binance's, and nothing is ever sent on it.
    QUIET = "quiet"


class Route(enum.Enum):
    SPOT = "spot"  # spot has a single route
    PUBLIC = "public"
    MARKET = "market"


GLOBAL_CHANNELS = frozenset(
    {
        Channel.ALL_MINI_TICKERS,
        Channel.ALL_TICKERS,
        Channel.ALL_BOOK_TICKERS,
        Channel.ALL_MARK_PRICES,
        Channel.ALL_MARK_PRICES_1S,
        Channel.QUIET,
    }
)
PUBLIC_CHANNELS = frozenset({Channel.DEPTH, Channel.BOOK_TICKER, Channel.ALL_BOOK_TICKERS})

_SYMBOL_CHANNELS: dict[Market, dict[str, Channel]] = {
    Market.SPOT: {
        "trade": Channel.TRADE,
        "aggTrade": Channel.AGG_TRADE,
        "depth": Channel.DEPTH,
        "depth@100ms": Channel.DEPTH,
        "depth@1000ms": Channel.DEPTH,
        "bookTicker": Channel.BOOK_TICKER,
        "miniTicker": Channel.MINI_TICKER,
        "ticker": Channel.TICKER,
    },
    Market.USDM: {
        "aggTrade": Channel.AGG_TRADE,
        "depth": Channel.DEPTH,
        "depth@100ms": Channel.DEPTH,
        "depth@250ms": Channel.DEPTH,
        "depth@500ms": Channel.DEPTH,
        "bookTicker": Channel.BOOK_TICKER,
        "miniTicker": Channel.MINI_TICKER,
        "ticker": Channel.TICKER,
        "markPrice": Channel.MARK_PRICE,
        "markPrice@3s": Channel.MARK_PRICE,
        "markPrice@1s": Channel.MARK_PRICE_1S,
    },
}
_GLOBAL_STREAMS: dict[Market, dict[str, Channel]] = {
    Market.SPOT: {"!miniTicker@arr": Channel.ALL_MINI_TICKERS},
    Market.USDM: {
        "!miniTicker@arr": Channel.ALL_MINI_TICKERS,
        "!ticker@arr": Channel.ALL_TICKERS,
        "!bookTicker": Channel.ALL_BOOK_TICKERS,
        "!markPrice@arr": Channel.ALL_MARK_PRICES,
        "!markPrice@arr@3s": Channel.ALL_MARK_PRICES,
        "!markPrice@arr@1s": Channel.ALL_MARK_PRICES_1S,
    },
}


class UnknownStream(ValueError):
    """A stream name this market does not serve."""


class BadPath(ValueError):
    """A WebSocket URL path the fake does not serve (the handshake is rejected with 404)."""


@attrs.frozen
class StreamRef:
    """A parsed stream name. ``symbol`` is the index into the market's symbols, -1 if global."""

    name: str
    channel: Channel
    symbol: int
    route: Route


def route_of(market: Market, channel: Channel) -> Route:
    if market is Market.SPOT:
        return Route.SPOT
    return Route.PUBLIC if channel in PUBLIC_CHANNELS else Route.MARKET


def parse_stream(market: Market, name: str, symbols: Mapping[str, int]) -> StreamRef:
    """Parse ``btcusdt@aggTrade`` / ``!miniTicker@arr``; ``symbols`` maps lowercase name → index."""
    if not isinstance(name, str):
        raise UnknownStream(f"stream name must be a string: {name!r}")
    glob = _GLOBAL_STREAMS[market].get(name)
    if glob is not None:
        return StreamRef(name, glob, -1, route_of(market, glob))
    if name in vocabulary.BY_ALL_MARKET[market]:
        return StreamRef(name, Channel.QUIET, -1, _quiet_route(market, name))
    symbol, sep, rest = name.partition("@")
    channel = _SYMBOL_CHANNELS[market].get(rest)
    if channel is None and rest in vocabulary.BY_CHANNEL[market]:
        channel = Channel.QUIET
    index = symbols.get(symbol)
    if not sep or channel is None or index is None:
        raise UnknownStream(f"unknown stream {name!r}")
    if channel is Channel.QUIET:
        return StreamRef(name, channel, -1, _quiet_route(market, name))
    return StreamRef(name, channel, index, route_of(market, channel))


def _quiet_route(market: Market, name: str) -> Route:
    if market is Market.SPOT:
        return Route.SPOT
    public = vocabulary.route(market, name) is vocabulary.Route.PUBLIC
    return Route.PUBLIC if public else Route.MARKET


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
    elif segs and segs[0] in ("public", "market"):
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
