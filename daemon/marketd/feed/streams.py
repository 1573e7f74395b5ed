"""Which WebSocket connections to open and what to subscribe on each (pure, no I/O).

From ``Settings.subscriptions`` this module builds stream names, groups them by the route
the exchange serves them on (:meth:`~marketd.exchanges.seam.Exchange.ws_route`; Binance
USD-M: ``/public`` for depth and book ticker, ``/market`` for everything else), splits them
into connections of at most ``max_streams_per_connection`` streams, builds each
connection's URL and, where the combined-stream URL would be too long, plans the
``SUBSCRIBE`` messages at a pace that respects the per-connection incoming-message limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import attrs

from marketd.config.settings import ExchangeSettings, Subscription
from marketd.data.records import Market
from marketd.exchanges import adapter

# Beyond this length a combined-stream URL is not used: the connection opens
# ``/stream`` bare and subscribes with SUBSCRIBE messages instead.
MAX_URL_LENGTH = 2000
# Streams per SUBSCRIBE message (Binance documents no limit; this keeps frames small).
MAX_STREAMS_PER_SUBSCRIBE = 200
# Incoming messages per second kept free of SUBSCRIBEs for pongs (which count too).
PONG_RESERVE_PER_SECOND = 1.0


@attrs.frozen
class SubscribeMessage:
    """One planned ``SUBSCRIBE`` request, sent ``at_s`` seconds after the connection opens."""

    id: int
    params: tuple[str, ...]
    at_s: float


@attrs.frozen
class ConnectionPlan:
    """One WebSocket connection: its stable id, market, route, base URL and streams."""

    connection_id: str
    market: Market
    route: str  # the path segment on the base URL ("" on an unrouted market)
    base_url: str
    streams: tuple[str, ...]
    max_url_length: int = MAX_URL_LENGTH

    @property
    def stream_path_url(self) -> str:
        """The connection's URL with no streams in it (Binance: ``<base>[/route]/stream``)."""
        return adapter(self.market).stream_url(self.base_url, self.route, ())

    @property
    def combined_url(self) -> str:
        """The URL that subscribes every stream at connect (may be arbitrarily long;
        Binance: ``<base>[/route]/stream?streams=a/b/c``)."""
        return adapter(self.market).stream_url(self.base_url, self.route, self.streams)

    @property
    def subscribe_in_url(self) -> bool:
        """True when the streams fit in the URL; False → connect bare and SUBSCRIBE."""
        return len(self.combined_url) <= self.max_url_length

    @property
    def url(self) -> str:
        """The URL to connect to."""
        return self.combined_url if self.subscribe_in_url else self.stream_path_url

    def subscribe_messages(self, messages_per_second: float) -> tuple[SubscribeMessage, ...]:
        """The SUBSCRIBE messages this connection needs (none when the URL carries them)."""
        if self.subscribe_in_url:
            return ()
        return plan_subscribe_messages(self.streams, messages_per_second)


def stream_names(subscriptions: Iterable[Subscription]) -> dict[Market, tuple[str, ...]]:
    """Stream names per market, deduplicated, in configuration order.

    ``<symbol lower>@<channel>`` for every (symbol, channel) pair (symbol-major), then the raw
    ``streams`` as given. Channel names keep their case (``aggTrade``, ``bookTicker``).
    """
    names: dict[Market, dict[str, None]] = {}
    for sub in subscriptions:
        ordered = names.setdefault(sub.market, {})
        for symbol in sub.symbols:
            for channel in sub.channels:
                ordered.setdefault(f"{symbol.strip().lower()}@{channel.strip()}", None)
        for stream in sub.streams:
            ordered.setdefault(stream.strip(), None)
    return {market: tuple(ordered) for market, ordered in names.items() if ordered}


def route_for(market: Market, stream: str) -> str:
    """The route serving ``stream`` on ``market``, as the exchange says."""
    return adapter(market).ws_route(stream)


def _chunks(items: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def plan_connections(
    subscriptions: Iterable[Subscription],
    settings: ExchangeSettings,
    *,
    max_url_length: int = MAX_URL_LENGTH,
) -> tuple[ConnectionPlan, ...]:
    """Split every market's streams by route into connections of bounded size.

    Connection ids are stable for a given configuration: ``spot-0``, ``spot-1``, ...,
    ``usdm-public-0``, ``usdm-market-0``, ...
    """
    limit = settings.max_streams_per_connection
    if limit < 1:
        raise ValueError("max_streams_per_connection must be at least 1")
    plans: list[ConnectionPlan] = []
    for market, names in stream_names(subscriptions).items():
        by_route: dict[str, list[str]] = {}
        for name in names:
            by_route.setdefault(route_for(market, name), []).append(name)
        for route, routed in by_route.items():
            prefix = f"{market.value}-{route.strip('/')}" if route else market.value
            for index, chunk in enumerate(_chunks(routed, limit)):
                plans.append(
                    ConnectionPlan(
                        connection_id=f"{prefix}-{index}",
                        market=market,
                        route=route,
                        base_url=settings.ws_url(market),
                        streams=chunk,
                        max_url_length=max_url_length,
                    )
                )
    return tuple(plans)


def subscribes_per_second(messages_per_second: float) -> int:
    """Whole SUBSCRIBEs per second that, with a pong, stay within the budget (at least 1)."""
    return max(1, math.floor(messages_per_second - PONG_RESERVE_PER_SECOND))


def subscribe_interval(messages_per_second: float) -> float:
    """Seconds between SUBSCRIBEs so that they plus pongs stay within the budget."""
    return 1.0 / subscribes_per_second(messages_per_second)


def plan_subscribe_messages(
    streams: Sequence[str],
    messages_per_second: float,
    *,
    first_id: int = 1,
    max_streams_per_message: int = MAX_STREAMS_PER_SUBSCRIBE,
) -> tuple[SubscribeMessage, ...]:
    """SUBSCRIBE messages for ``streams``, ids consecutive from ``first_id``.

    Message ``i`` is due ``i * subscribe_interval(rate)`` seconds after the connection
    opened, so that any one-second window holds at most ``floor(rate - 1)`` SUBSCRIBEs
    (at least one), leaving room for a pong within the budget ``messages_per_second``
    (configured below the exchange's limit: 4 of 5 on spot, 8 of 10 on futures).
    """
    if max_streams_per_message < 1:
        raise ValueError("max_streams_per_message must be at least 1")
    interval = subscribe_interval(messages_per_second)
    return tuple(
        SubscribeMessage(id=first_id + i, params=chunk, at_s=i * interval)
        for i, chunk in enumerate(_chunks(streams, max_streams_per_message))
    )
