"""Bounded history of one symbol's trades, for REST ``aggTrades`` / ``historicalTrades``.

Raw trade ids are consecutive, so a trade is found by ``id - base``; columns are
``array('q')`` (8 bytes a value) rather than a tuple per trade, which keeps 100k trades
for a thousand symbols affordable. An aggregate trade is a run of raw trades at one price,
one taker side and one time; only the first raw id of each is stored.

Reading from an id older than the oldest held starts at the oldest held: the fake's own
timed feeds read on from a cursor that trimming may have passed. REST must not do that to
a client (``rest.py`` refuses such a ``fromId``), so it checks ``base_id`` /
``agg_base_id`` first.
"""

from __future__ import annotations

import bisect
from array import array

import msgspec


class RawTrade(msgspec.Struct, frozen=True, gc=False):
    id: int
    price: int
    qty: int
    time: int
    buyer_maker: bool


class AggTrade(msgspec.Struct, frozen=True, gc=False):
    id: int
    price: int
    qty: int
    first_id: int
    last_id: int
    time: int
    buyer_maker: bool


class TradeHistory:
    """The last ``capacity`` raw trades (and the aggregates made of them) of one symbol."""

    def __init__(self, first_trade_id: int, first_agg_id: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be at least 1")
        self.capacity = capacity
        self.base_id = first_trade_id  # raw id of self._price[0]
        self.next_id = first_trade_id
        self.agg_base_id = first_agg_id  # agg id of self._agg_first[0]
        self.next_agg_id = first_agg_id
        self._price = array("q")
        self._qty = array("q")
        self._time = array("q")
        self._maker = bytearray()
        self._agg_first = array("q")

    def add(self, price: int, qtys: list[int], time: int, buyer_maker: bool) -> tuple[int, int]:
        """Record one aggregate made of ``len(qtys)`` raw trades; return ``(agg_id, first_id)``."""
        agg_id, first_id = self.next_agg_id, self.next_id
        n = len(qtys)
        self._agg_first.append(first_id)
        self._price.extend([price] * n)
        self._qty.extend(qtys)
        self._time.extend([time] * n)
        self._maker.extend(b"\x01" * n if buyer_maker else b"\x00" * n)
        self.next_id += n
        self.next_agg_id += 1
        if len(self._price) > 2 * self.capacity:
            self._trim()
        return agg_id, first_id

    def _trim(self) -> None:
        drop = len(self._price) - self.capacity
        new_base = self.base_id + drop
        # Keep only aggregates whose first raw trade is still held.
        i = 0
        first = self._agg_first
        while i < len(first) and first[i] < new_base:
            i += 1
        # The aggregate that straddles the cut loses its head: start the raw columns at it.
        del self._price[:drop]
        del self._qty[:drop]
        del self._time[:drop]
        del self._maker[:drop]
        del first[:i]
        self.base_id = new_base
        self.agg_base_id += i

    @property
    def first_id(self) -> int | None:
        """The oldest raw trade id still held (``None`` before the first trade)."""
        return self.base_id if self.next_id > self.base_id else None

    @property
    def first_agg_id(self) -> int | None:
        return self.agg_base_id if self.next_agg_id > self.agg_base_id else None

    def trades(self, from_id: int | None, limit: int) -> list[RawTrade]:
        """Raw trades from ``from_id`` (the oldest held if older), or the newest ``limit``."""
        if from_id is None:
            start = max(self.base_id, self.next_id - limit)
        else:
            start = max(self.base_id, from_id)
        end = min(self.next_id, start + limit)
        out: list[RawTrade] = []
        for tid in range(start, end):
            i = tid - self.base_id
            out.append(
                RawTrade(tid, self._price[i], self._qty[i], self._time[i], bool(self._maker[i]))
            )
        return out

    def aggs(self, from_id: int | None, limit: int) -> list[AggTrade]:
        """Aggregate trades from ``from_id`` (the oldest held if older), or the newest ``limit``."""
        if from_id is None:
            start = max(self.agg_base_id, self.next_agg_id - limit)
        else:
            start = max(self.agg_base_id, from_id)
        end = min(self.next_agg_id, start + limit)
        out: list[AggTrade] = []
        first = self._agg_first
        n_aggs = len(first)
        for aid in range(start, end):
            k = aid - self.agg_base_id
            f = first[k]
            last = (first[k + 1] if k + 1 < n_aggs else self.next_id) - 1
            i = f - self.base_id
            qty = sum(self._qty[i : last - self.base_id + 1])
            out.append(
                AggTrade(aid, self._price[i], qty, f, last, self._time[i], bool(self._maker[i]))
            )
        return out

    def first_id_since(self, time_ms: int) -> int:
        """The first raw trade id still held with ``time >= time_ms`` (``next_id``: none).

        A binary search: trade times follow ids (each is its step's wall-clock reading; a
        clock stepping back only blurs the edge)."""
        return self.base_id + bisect.bisect_left(self._time, time_ms)

    def aggs_in_time(self, start_ms: int, end_ms: int, limit: int) -> list[AggTrade]:
        """Aggregates with ``start_ms <= T <= end_ms`` (linear scan; tests and backfill only)."""
        out: list[AggTrade] = []
        for agg in self.aggs(self.agg_base_id, self.next_agg_id - self.agg_base_id):
            if agg.time > end_ms or len(out) >= limit:
                break
            if agg.time >= start_ms:
                out.append(agg)
        return out
