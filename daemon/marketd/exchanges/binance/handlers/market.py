"""One market's handlers, built from the vocabulary table, and the stream name → handler
cache the codec reads per frame."""

from __future__ import annotations

from collections.abc import Iterable

from marketd.data.records import Market
from marketd.exchanges.binance import vocabulary
from marketd.exchanges.binance.handlers.common import (
    ArrayHandler,
    EventHandler,
    Handler,
    KindHandler,
)
from marketd.exchanges.binance.handlers.depth import (
    DepthDiffs,
    SpotPartialDepth,
    UsdmPartialDepth,
)
from marketd.exchanges.binance.handlers.futures import ForceOrders, MarkPrices
from marketd.exchanges.binance.handlers.klines import Klines
from marketd.exchanges.binance.handlers.tickers import (
    AvgPrices,
    BookTickers,
    MiniTickers,
    Tickers,
    WindowTickers,
)
from marketd.exchanges.binance.handlers.trades import AggTrades, Trades
from marketd.exchanges.binance.vocabulary import StreamKind
from marketd.exchanges.seam import Topics

# The class decoding each kind, one event per payload. Partial depth is apart: its
# handlers are bound per channel (the level count is in the channel's name).
_KINDS: dict[str, type[EventHandler]] = {
    "trade": Trades,
    "aggTrade": AggTrades,
    "depthUpdate": DepthDiffs,
    "bookTicker": BookTickers,
    "24hrMiniTicker": MiniTickers,
    "24hrTicker": Tickers,
    "markPriceUpdate": MarkPrices,
    "kline": Klines,
    "avgPrice": AvgPrices,
    "1hTicker": WindowTickers,
    "4hTicker": WindowTickers,
    "1dTicker": WindowTickers,
    "forceOrder": ForceOrders,
}
_PARTIAL = "depthPartial"
# The kinds a detector can watch (the vocabulary's price column).
_PRICED = frozenset(vocabulary.price_fields())


# Distinct stream names remembered per market; beyond this the cache starts over, so a
# peer sending endless made-up stream names cannot grow memory.
MAX_CACHED_STREAMS = 8192


class MarketHandlers:
    """The handlers of one market, and the stream name → handler cache.

    The streams are the decoded rows of the vocabulary table
    (:mod:`marketd.exchanges.binance.vocabulary`); anything else is unknown.
    """

    def __init__(self, market: Market, topics: Topics) -> None:
        self.market = market
        self.raw_topic = topics.raw
        self.depth_topic = topics.depth
        self.handlers: dict[str, Handler | None] = {}
        # Price kinds whose ticks the detector reads (watch_prices); empty: no ticks made.
        self.watched: frozenset[str] = frozenset()
        topic_of: dict[str | None, str] = {"raw": topics.raw, "depth": topics.depth}
        by_channel = vocabulary.BY_CHANNEL[market]
        by_all_market = vocabulary.BY_ALL_MARKET[market]
        served: dict[str, StreamKind] = {
            row.kind: row
            for row in (*by_channel.values(), *by_all_market.values())
            if row.decoded and row.kind != _PARTIAL
        }
        # One handler per kind served here, owning that kind's reused message.
        self.kinds: dict[str, EventHandler] = {
            kind: _KINDS[kind](market, kind, topic_of[row.topic]) for kind, row in served.items()
        }
        # ``<symbol>@<channel>`` streams, by channel.
        self.channels: dict[str, Handler] = {
            c: self.kinds[row.kind].handle
            for c, row in by_channel.items()
            if row.decoded and row.kind != _PARTIAL
        }
        # Partial depth: on spot the symbol is only in the stream's name (the payload has
        # none), so the channel's handler refuses every payload and resolve() binds each
        # stream's symbol, once per stream.
        partial_channels = [
            c for c, row in by_channel.items() if row.decoded and row.kind == _PARTIAL
        ]
        partial_topic = topic_of[vocabulary.BY_KIND[_PARTIAL].topic]
        partial: SpotPartialDepth | UsdmPartialDepth
        self._symbol_bound: dict[str, SpotPartialDepth] = {}
        if market is Market.SPOT:
            partial = SpotPartialDepth(market, _PARTIAL, partial_topic)
            self._symbol_bound = dict.fromkeys(partial_channels, partial)
        else:
            partial = UsdmPartialDepth(market, _PARTIAL, partial_topic)
        for c in partial_channels:
            self.channels[c] = partial.for_channel(c)
        # Every handler owning a reused message (renew_messages).
        self.owners: list[KindHandler] = [*self.kinds.values(), partial]
        # All-market streams (``!...``), by full name.
        self.all_market: dict[str, Handler] = {
            s: self._all_market_handler(s, row) for s, row in by_all_market.items() if row.decoded
        }

    def _all_market_handler(self, stream: str, row: StreamKind) -> Handler:
        handler = self.kinds[row.kind]
        if stream not in row.arrays:
            return handler.handle
        if not isinstance(handler, ArrayHandler):
            raise TypeError(f"{stream} sends an array of {row.kind}, which has no array handler")
        return handler.handle_array

    def renew_messages(self) -> None:
        """Replace every handler's reused message (see :class:`KindHandler`)."""
        for owner in self.owners:
            owner.renew()

    def resolve(self, stream: str) -> Handler | None:
        """The handler for ``stream`` (None: not supported), remembered for next time."""
        if stream.startswith("!"):
            handler = self.all_market.get(stream)
        else:
            symbol, _, channel = stream.partition("@")
            handler = self.channels.get(channel) if symbol else None
            partial = self._symbol_bound.get(channel)
            if handler is not None and partial is not None:
                handler = partial.for_stream(symbol, channel)
        if len(self.handlers) >= MAX_CACHED_STREAMS:
            self.handlers.clear()
        self.handlers[stream] = handler
        return handler

    def watch_prices(self, kinds: Iterable[str]) -> None:
        """Make a :class:`Tick` beside every record of ``kinds`` (price kinds of the
        vocabulary table) from now on."""
        kinds = frozenset(kinds)
        if unpriced := sorted(k for k in kinds if k not in _PRICED):
            raise ValueError(f"no price in event kinds {unpriced}")
        self.watched = kinds
        # Each handler reads its own flag per frame: cheaper than a set lookup.
        for kind, handler in self.kinds.items():
            handler.tick = kind in kinds
