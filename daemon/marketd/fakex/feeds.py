"""One feed per subscribed stream of a kind Binance pushes on a clock (pure, no trio).

A feed holds what its stream needs between pushes: a kline's candle, the buckets of an
average or a rolling window, a partial depth's last update id. It reads the symbol's trades
from the trade history, from a cursor, once per push (never on the trade path), and its
true book at the moment of the push. ``fakex.timed`` runs the feeds when they are due.
"""

from __future__ import annotations

from marketd.data.records import Market
from marketd.fakex.candles import KlineBuilder
from marketd.fakex.events import DepthEvent
from marketd.fakex.fanout import Group, send
from marketd.fakex.frames import SymbolFrames
from marketd.fakex.history import RawTrade, TradeHistory
from marketd.fakex.market import SymbolModel
from marketd.fakex.windows import TradeWindow

NEVER = 2**63 - 1
SECOND_MS = 1_000
AVG_PRICE_WINDOW_MS = 5 * 60_000
AVG_PRICE_BUCKET_MS = 1_000
WINDOW_TICKER_MS = {"1h": 3_600_000, "4h": 4 * 3_600_000, "1d": 24 * 3_600_000}
WINDOW_TICKER_BUCKET_MS = 60_000
# Partial depth: the default speed (no suffix) of each market.
DEFAULT_DEPTH_MS = {Market.SPOT: 1_000, Market.USDM: 250}


def kline_cadence_ms(market: Market, interval: str) -> int:
    if market is Market.USDM:
        return 250
    return 1_000 if interval == "1s" else 2_000


def depth_speed_ms(market: Market, channel: str) -> int:
    """``depth5@100ms`` → 100; ``depth20`` → the market's default."""
    speed = channel.partition("@")[2]
    return int(speed.removesuffix("ms")) if speed else DEFAULT_DEPTH_MS[market]


class TimedStream:
    """One subscribed stream of a timed kind: its subscribers, state and next due time."""

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.group: Group = {}
        self.due = 0  # run at the next tick

    def run(self, now_ms: int) -> int:
        """Push what is due; set ``due``; return the frames queued."""
        raise NotImplementedError


def _new_trades(history: TradeHistory, cursor: int) -> list[RawTrade]:
    """The trades from ``cursor`` on (a feed reads each trade once, after the fact)."""
    return history.trades(cursor, history.next_id - cursor) if cursor < history.next_id else []


class KlineFeed(TimedStream):
    def __init__(self, idx: int, model: SymbolModel, frames: SymbolFrames, interval: str,
                 cadence_ms: int, length_ms: int) -> None:  # fmt: skip
        super().__init__(idx)
        self.model, self.frames, self.interval = model, frames, interval
        self.cadence_ms, self.length_ms = cadence_ms, length_ms
        self.builder: KlineBuilder | None = None
        self.cursor = 0
        self.next_push = 0

    def run(self, now_ms: int) -> int:
        history, fr, sent = self.model.history, self.frames, 0
        if self.builder is None:
            # The candle holds every trade of its interval the history still has.
            self.builder = KlineBuilder(
                self.interval, now_ms, self.model.stats.last, self.length_ms
            )
            self.cursor = history.first_id_since(self.builder.candle.open_time)
        builder = self.builder
        trades = _new_trades(history, self.cursor)
        self.cursor = history.next_id
        closed = builder.fold(trades)
        done = builder.roll(now_ms)
        if done is not None:
            closed.append(done)
        for candle in closed:
            sent += send(self.group, fr.kline(candle, self.interval, True, now_ms))
        if now_ms >= self.next_push:
            if builder.changed:
                sent += send(self.group, fr.kline(builder.candle, self.interval, False, now_ms))
                builder.changed = False
            self.next_push = now_ms + self.cadence_ms
        self.due = min(self.next_push, builder.candle.close_time + 1)
        return sent


class AvgPriceFeed(TimedStream):
    def __init__(self, idx: int, model: SymbolModel, frames: SymbolFrames) -> None:
        super().__init__(idx)
        self.model, self.frames = model, frames
        self.window = TradeWindow(AVG_PRICE_WINDOW_MS, AVG_PRICE_BUCKET_MS)
        self.cursor = -1
        self.last: tuple[str, int] = ("", 0)

    def run(self, now_ms: int) -> int:
        history = self.model.history
        if self.cursor < 0:
            self.cursor = history.first_id_since(now_ms - AVG_PRICE_WINDOW_MS - AVG_PRICE_BUCKET_MS)
        for trade in _new_trades(history, self.cursor):
            self.window.add(trade)
        self.cursor = history.next_id
        self.due = now_ms + SECOND_MS
        st = self.window.stats(now_ms)
        if st is None:
            return 0
        last = (self.frames.average(st.quote, st.volume), st.last_time)
        if last == self.last:
            return 0
        self.last = last
        return send(self.group, self.frames.avg_price(*last, now_ms))


class WindowTickerFeed(TimedStream):
    def __init__(self, idx: int, model: SymbolModel, frames: SymbolFrames, window: str) -> None:
        super().__init__(idx)
        self.model, self.frames = model, frames
        self.kind = f"{window}Ticker"
        self.window_ms = WINDOW_TICKER_MS[window]
        self.window = TradeWindow(self.window_ms, WINDOW_TICKER_BUCKET_MS)
        self.cursor = -1
        self.last: object = None

    def run(self, now_ms: int) -> int:
        history = self.model.history
        if self.cursor < 0:
            since = now_ms - self.window_ms - WINDOW_TICKER_BUCKET_MS
            self.cursor = history.first_id_since(since)
        for trade in _new_trades(history, self.cursor):
            self.window.add(trade)
        self.cursor = history.next_id
        self.due = now_ms + SECOND_MS
        st = self.window.stats(now_ms)
        if st is None or st == self.last:
            return 0
        self.last = st
        return send(self.group, self.frames.window_ticker(self.kind, st, now_ms))


class PartialDepthFeed(TimedStream):
    """The top levels of the true book at the stream's speed. On USD-M the hub shows it
    every diff (``saw``) so that ``U`` is the first update id since the previous push."""

    def __init__(self, idx: int, model: SymbolModel, frames: SymbolFrames, channel: str,
                 speed_ms: int) -> None:  # fmt: skip
        super().__init__(idx)
        self.model, self.frames = model, frames
        self.levels = int(channel.removeprefix("depth").partition("@")[0])
        self.speed_ms = speed_ms
        self.prev_id = model.book.last_update_id  # ``pu`` of the first push
        self.first_id = 0  # ``U``: the first update id since the previous push (0: none)
        self.time_ms = 0  # ``T``: the last diff's time

    def saw(self, ev: DepthEvent) -> None:
        if not self.first_id:
            self.first_id = ev.first_id
        self.time_ms = ev.time

    def run(self, now_ms: int) -> int:
        self.due = now_ms + self.speed_ms
        last = self.model.book.last_update_id
        if last == self.prev_id:
            return 0
        first = self.first_id or self.prev_id + 1
        payload = self.frames.partial_depth(
            self.levels, first, last, self.prev_id, self.time_ms or now_ms, now_ms
        )
        self.prev_id, self.first_id = last, 0
        return send(self.group, payload)


class LiquidationFeed(TimedStream):
    """``<symbol>@forceOrder`` or ``!forceOrder@arr``: pushed by the market's liquidation
    round (``TimedFeeds._liquidate``), so both see the same liquidations."""

    def run(self, now_ms: int) -> int:
        self.due = NEVER
        return 0
