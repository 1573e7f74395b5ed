"""The kinds Binance pushes on a clock rather than per event (pure, no trio, no wall clock).

Klines, the average price, rolling-window tickers, partial book depth and liquidations are
made only while somebody subscribes: a feed (``fakex.feeds``) per subscribed stream holds
its state, built from the symbol's trade history and its true book. ``tick(now_ms)`` runs
the feeds that are due; with none it is one comparison.

Cadences are Binance's: klines every 1 s (``1s``) or 2 s on spot and 250 ms on USD-M, with
the closed candle (``x: true``) pushed at the interval's end; average price, rolling
tickers and liquidations every second; partial depth at its stream's speed. A feed pushes
only what changed since its previous push (a new candle is always pushed once).
"""

from __future__ import annotations

from marketd.data.records import Market
from marketd.fakex.events import DepthEvent
from marketd.fakex.fanout import Subscriber, join, leave, send
from marketd.fakex.feeds import (
    NEVER,
    SECOND_MS,
    AvgPriceFeed,
    KlineFeed,
    LiquidationFeed,
    PartialDepthFeed,
    TimedStream,
    WindowTickerFeed,
    depth_speed_ms,
    kline_cadence_ms,
)
from marketd.fakex.frames import SymbolFrames
from marketd.fakex.liquidations import LiquidationMaker
from marketd.fakex.market import MarketModel
from marketd.fakex.protocol import Channel, StreamRef

__all__ = ["NEVER", "TimedFeeds"]

Key = tuple[Channel, str, int]


class TimedFeeds:
    """Every timed feed of one market."""

    def __init__(self, model: MarketModel, frames: list[SymbolFrames], kline_ms: int = 0) -> None:
        self.model = model
        self.market = model.market
        self.frames = frames
        self.kline_ms = kline_ms
        self.feeds: dict[Key, TimedStream] = {}
        n = len(model.symbols)
        # Per symbol, the USD-M partial-depth feeds that must see each diff (None: none).
        self.depth_watchers: list[list[PartialDepthFeed] | None] = [None] * n
        self._liquidators: dict[int, LiquidationMaker] = {}
        self._liquidation_feeds = 0
        self._liquidation_due = 0
        self.next_due = NEVER

    def __len__(self) -> int:
        return sum(len(subs) for f in self.feeds.values() for subs in f.group.values())

    def _make(self, ref: StreamRef) -> TimedStream:
        idx, variant, c = ref.symbol, ref.variant, ref.channel
        if c is Channel.LIQUIDATION or c is Channel.ALL_LIQUIDATIONS:
            return LiquidationFeed(idx)
        model, fr = self.model.symbols[idx], self.frames[idx]
        if c is Channel.KLINE:
            cadence = kline_cadence_ms(self.market, variant)
            return KlineFeed(idx, model, fr, variant, cadence, self.kline_ms)
        if c is Channel.AVG_PRICE:
            return AvgPriceFeed(idx, model, fr)
        if c is Channel.WINDOW_TICKER:
            return WindowTickerFeed(idx, model, fr, variant)
        if c is Channel.PARTIAL_DEPTH:
            feed = PartialDepthFeed(idx, model, fr, variant, depth_speed_ms(self.market, variant))
            if self.market is Market.USDM:
                watchers = self.depth_watchers[idx]
                if watchers is None:
                    watchers = self.depth_watchers[idx] = []
                watchers.append(feed)
            return feed
        raise ValueError(f"{c} is not a timed channel")

    def add(self, sub: Subscriber, ref: StreamRef, prefix: str | None) -> None:
        key = (ref.channel, ref.variant, ref.symbol)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = self._make(ref)
            if isinstance(feed, LiquidationFeed):
                self._liquidation_feeds += 1
            self.next_due = 0
        join(feed.group, sub, prefix)

    def remove(self, sub: Subscriber, ref: StreamRef, prefix: str | None) -> None:
        key = (ref.channel, ref.variant, ref.symbol)
        feed = self.feeds.get(key)
        if feed is None:
            return
        leave(feed.group, sub, prefix)
        if feed.group:
            return
        del self.feeds[key]
        if isinstance(feed, LiquidationFeed):
            self._liquidation_feeds -= 1
        watchers = self.depth_watchers[feed.idx] if feed.idx >= 0 else None
        if watchers is not None and feed in watchers:
            watchers.remove(feed)
            if not watchers:
                self.depth_watchers[feed.idx] = None

    def tick(self, now_ms: int, frames_sent: list[int]) -> int:
        """Run the due feeds; count per-symbol frames into ``frames_sent``; return the
        all-market frames."""
        if now_ms < self.next_due:
            return 0
        global_sent = 0
        next_due = NEVER
        for feed in list(self.feeds.values()):
            if feed.due <= now_ms:
                sent = feed.run(now_ms)
                if feed.idx >= 0:
                    frames_sent[feed.idx] += sent
                else:
                    global_sent += sent
            next_due = min(next_due, feed.due)
        if self._liquidation_feeds:
            if now_ms >= self._liquidation_due:
                global_sent += self._liquidate(now_ms, frames_sent)
                self._liquidation_due = now_ms + SECOND_MS
            next_due = min(next_due, self._liquidation_due)
        self.next_due = next_due
        return global_sent

    def _liquidate(self, now_ms: int, frames_sent: list[int]) -> int:
        """At most one liquidation per watched symbol this second; ``!forceOrder@arr``
        carries each alone in its frame, as Binance does."""
        everyone = self.feeds.get((Channel.ALL_LIQUIDATIONS, "", -1))
        global_sent = 0
        for idx, model in enumerate(self.model.symbols):
            own = self.feeds.get((Channel.LIQUIDATION, "", idx))
            if own is None and everyone is None:
                continue
            maker = self._liquidators.get(idx)
            if maker is None:
                maker = self._liquidators[idx] = LiquidationMaker(
                    self.model.seed, self.market.value, model.spec.symbol
                )
            bid, _, ask, _ = model.top()
            liq = maker.next(bid, ask, model.max_lot, now_ms)
            if liq is None:
                continue
            payload = self.frames[idx].force_order(liq, now_ms)
            if own is not None:
                frames_sent[idx] += send(own.group, payload)
            if everyone is not None:
                global_sent += send(everyone.group, payload)
        return global_sent

    def saw_diff(self, idx: int, ev: DepthEvent) -> None:
        for feed in self.depth_watchers[idx] or ():
            feed.saw(ev)
