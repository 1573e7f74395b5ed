"""Rolling-window trade statistics (average price, rolling tickers): pure, no trio, no clock.

Trades are summed into fixed buckets; a window is the buckets that start at or after
``now - window`` rounded down to a bucket, so it is up to one bucket wider than asked. That
is Binance's own rule for its rolling windows (the open time starts on a minute, up to
59,999 ms early); the fake uses one-second buckets for the 5-minute average price.
"""

from __future__ import annotations

from collections import deque

import attrs

from marketd.fakex.history import RawTrade


class _Bucket:
    __slots__ = (
        "close",
        "count",
        "first_id",
        "high",
        "last_id",
        "last_time",
        "low",
        "open",
        "quote",
        "start",
        "volume",
    )

    def __init__(self, start: int, trade: RawTrade) -> None:
        self.start = start
        self.first_id = trade.id
        self.open = self.high = self.low = trade.price
        self.count = self.volume = self.quote = 0
        self.add(trade)

    def add(self, trade: RawTrade) -> None:
        price = trade.price
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.last_id = trade.id
        self.last_time = trade.time
        self.count += 1
        self.volume += trade.qty
        self.quote += price * trade.qty


@attrs.frozen
class WindowStats:
    """A window's trades: prices in ticks, ``volume`` in lots, ``quote`` in ticks*lots."""

    open_time: int
    first_id: int
    last_id: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote: int
    count: int
    last_time: int


def window_start(now_ms: int, window_ms: int, bucket_ms: int) -> int:
    """The open time of the window ending at ``now_ms``."""
    start = now_ms - window_ms
    return start - start % bucket_ms


class TradeWindow:
    """The trades of the last ``window_ms`` (plus up to one bucket), fed in id order."""

    def __init__(self, window_ms: int, bucket_ms: int) -> None:
        self.window_ms = window_ms
        self.bucket_ms = bucket_ms
        self._buckets: deque[_Bucket] = deque()

    def add(self, trade: RawTrade) -> None:
        start = trade.time - trade.time % self.bucket_ms
        buckets = self._buckets
        # A time before the last bucket (the wall clock stepped back) joins that bucket.
        if buckets and buckets[-1].start >= start:
            buckets[-1].add(trade)
        else:
            buckets.append(_Bucket(start, trade))

    def stats(self, now_ms: int) -> WindowStats | None:
        """The window ending at ``now_ms`` (older buckets are dropped); None: no trade."""
        start = window_start(now_ms, self.window_ms, self.bucket_ms)
        buckets = self._buckets
        while buckets and buckets[0].start < start:
            buckets.popleft()
        if not buckets:
            return None
        first, last = buckets[0], buckets[-1]
        return WindowStats(
            start,
            first.first_id,
            last.last_id,
            first.open,
            max(b.high for b in buckets),
            min(b.low for b in buckets),
            last.close,
            sum(b.volume for b in buckets),
            sum(b.quote for b in buckets),
            sum(b.count for b in buckets),
            last.last_time,
        )
