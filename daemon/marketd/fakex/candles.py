"""Kline candles made of the fake's own trades (pure: no trio, no clock).

A candle covers ``open_time .. close_time`` inclusive (``close_time`` is the next open minus
one ms, as Binance prints ``T``). Intervals are aligned in UTC: seconds to days from the
epoch (``3d`` too: Binance does not document its own anchor), weeks from Monday 00:00,
months from the 1st. A test may give every interval one short length (``length_ms``) so
that candles close without waiting real minutes; the payload still names the interval.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from marketd.fakex.history import RawTrade

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
FIXED_INTERVAL_MS: dict[str, int] = {
    "1s": SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
# 1970-01-01 was a Thursday: Binance's weeks start on Mondays, the first one 4 days later.
_WEEK_ANCHOR_MS = 4 * DAY_MS


def _month_start_ms(year: int, month: int) -> int:
    start = datetime.datetime(year, month, 1, tzinfo=datetime.UTC)
    return int(start.timestamp()) * SECOND_MS


def candle_span(interval: str, t_ms: int, length_ms: int = 0) -> tuple[int, int]:
    """``(open_time, close_time)`` of the ``interval`` candle holding ``t_ms``."""
    if length_ms > 0:
        start = t_ms - t_ms % length_ms
        return start, start + length_ms - 1
    if interval == "1M":
        day = datetime.datetime.fromtimestamp(t_ms // SECOND_MS, tz=datetime.UTC)
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        return _month_start_ms(day.year, day.month), _month_start_ms(year, month) - 1
    length = FIXED_INTERVAL_MS[interval]
    anchor = _WEEK_ANCHOR_MS if interval == "1w" else 0
    start = (t_ms - anchor) // length * length + anchor
    return start, start + length - 1


class Candle:
    """One candle's statistics; prices in ticks, quantities in lots, quote in ticks*lots."""

    __slots__ = (
        "close",
        "close_time",
        "count",
        "first_id",
        "high",
        "last_id",
        "low",
        "open",
        "open_time",
        "quote",
        "taker_quote",
        "taker_volume",
        "volume",
    )

    def __init__(self, open_time: int, close_time: int, price: int) -> None:
        self.open_time = open_time
        self.close_time = close_time
        # Binance opens a candle at the previous close, with no trade yet (ids -1).
        self.open = self.high = self.low = self.close = price
        self.first_id = self.last_id = -1
        self.count = self.volume = self.quote = self.taker_volume = self.taker_quote = 0

    def add(self, trade: RawTrade) -> None:
        price, qty = trade.price, trade.qty
        if self.count == 0:
            self.first_id = trade.id
            self.open = self.high = self.low = price
        elif price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.last_id = trade.id
        self.count += 1
        self.volume += qty
        self.quote += price * qty
        if not trade.buyer_maker:  # the buyer took: taker-buy volume
            self.taker_volume += qty
            self.taker_quote += price * qty


class KlineBuilder:
    """The current candle of one symbol and interval, fed with trades in id order."""

    def __init__(self, interval: str, now_ms: int, price: int, length_ms: int = 0) -> None:
        self.interval = interval
        self.length_ms = length_ms
        self.candle = Candle(*candle_span(interval, now_ms, length_ms), price)
        self.changed = True  # since the candle was last pushed

    def _open_at(self, t_ms: int) -> Candle:
        done = self.candle
        self.candle = Candle(*candle_span(self.interval, t_ms, self.length_ms), done.close)
        self.changed = True
        return done

    def fold(self, trades: Iterable[RawTrade]) -> list[Candle]:
        """Add ``trades``; return the candles they closed (a trade past the candle's end)."""
        closed: list[Candle] = []
        for trade in trades:
            if trade.time > self.candle.close_time:
                closed.append(self._open_at(trade.time))
            # A trade stamped before the candle (the wall clock stepped back) still belongs
            # to the current one: no trade id may go missing from the candles.
            self.candle.add(trade)
            self.changed = True
        return closed

    def roll(self, now_ms: int) -> Candle | None:
        """Close the candle if ``now_ms`` is past its end (intervals with no trade at all
        in between are skipped); return the closed candle."""
        if now_ms <= self.candle.close_time:
            return None
        return self._open_at(now_ms)
