"""Per-instrument price paths for the report's charts, in bounded memory (pure).

A backtest learns which instruments alerted only at the end, so it keeps a coarse path of
every instrument it sees: event time is cut into buckets of ``bucket_ms`` and each
bucket keeps its lowest and highest price (in time order), so a spike shorter than a
bucket still shows. An instrument costs at most two points per bucket; a chart of the
whole run has about ``span / bucket_ms`` buckets (see :func:`bucket_ms_for`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from marketd.data.events import Tick

CHART_BUCKETS: Final = 300
"""Buckets over the span of a run: at most twice as many points per instrument."""

Point = tuple[int, str]  # (event time ms, price text)


def bucket_ms_for(first_ns: int | None, last_ns: int | None, buckets: int = CHART_BUCKETS) -> int:
    """The bucket width that cuts ``first_ns .. last_ns`` into about ``buckets`` (at least
    one second: finer is not worth the memory)."""
    if first_ns is None or last_ns is None or last_ns <= first_ns:
        return 1000
    span_ms = (last_ns - first_ns) // 1_000_000
    return max(1000, -(-span_ms // buckets))


class _Bucket:
    """The current bucket of one instrument, and its finished points."""

    __slots__ = ("high", "high_at", "index", "low", "low_at", "points")

    def __init__(self, index: int, time_ms: int, price: str, value: float) -> None:
        self.points: list[Point] = []
        self.index = index
        self.low = self.high = value
        self.low_at = self.high_at = (time_ms, price)

    def current(self) -> tuple[Point, ...]:
        """The points of the current bucket: its low and high, in time order."""
        low, high = self.low_at, self.high_at
        if low == high:
            return (low,)
        return (low, high) if low[0] <= high[0] else (high, low)

    def path(self) -> tuple[Point, ...]:
        return (*self.points, *self.current())


class PricePaths:
    """The coarse price path of each instrument (see the module documentation)."""

    def __init__(self, bucket_ms: int) -> None:
        if bucket_ms < 1:
            raise ValueError(f"bucket_ms must be >= 1, got {bucket_ms}")
        self.bucket_ms = bucket_ms
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def add(self, ticks: Sequence[Tick]) -> None:
        """Note the price of each tick (liquidations are not prices of the instrument);
        ticks older than an instrument's current bucket only widen that bucket."""
        # A hot path (every tick): the bucket's fields are handled inline.
        buckets = self._buckets
        width = self.bucket_ms
        for t in ticks:
            if t.side:
                continue
            price = t.price
            try:
                value = float(price)
            except ValueError:
                continue  # the detector counts it as invalid
            if not value > 0.0:
                continue  # likewise
            key = (t.market, t.symbol)
            b = buckets.get(key)
            time_ms = t.time_ms
            if b is None:
                buckets[key] = _Bucket(time_ms // width, time_ms, price, value)
            elif time_ms // width > b.index:
                b.points += b.current()
                b.index = time_ms // width
                b.low = b.high = value
                b.low_at = b.high_at = (time_ms, price)
            elif value < b.low:
                b.low = value
                b.low_at = (time_ms, price)
            elif value > b.high:
                b.high = value
                b.high_at = (time_ms, price)

    def paths(
        self, instruments: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Point, ...]]:
        """The paths of ``instruments`` (market, symbol), oldest point first; an
        instrument never seen has an empty path."""
        out: dict[tuple[str, str], tuple[Point, ...]] = {}
        for key in instruments:
            b = self._buckets.get(key)
            out[key] = () if b is None else b.path()
        return out
