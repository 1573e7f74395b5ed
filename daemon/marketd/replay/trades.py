"""The trades a replay holds for one symbol and kind, and what REST derives from them (pure).

Trades come from the recorded ``trade`` / ``aggTrade`` frames the replay has sent, and from
the recorded REST trade pages marketd fetched to fill gaps (those are known from the
moment they are read ahead, and served once the clock reaches each trade's time, so a
client that meets the same gap gets the same trades). Ids are kept sorted; the oldest are
forgotten beyond ``capacity``.

A ``fromId`` the replay cannot serve whole is refused (:class:`Unavailable`), never
answered by starting later: older than the oldest trade held, or an id the recording does
not have (marketd could not fill that gap either). An answer stops before the first id the
recording lacks, and before the first trade the clock has not reached.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

DEFAULT_CAPACITY = 200_000
_ZERO = Decimal(0)


class Unavailable(Exception):
    """A range of trades the recording cannot serve (the message says why)."""


class Trade(NamedTuple):
    id: int  # trade id, or aggregate id
    time_ms: int
    price: str
    quantity: str
    buyer_maker: bool
    first_id: int  # aggregates: the raw trade ids it spans; raw trades: its own id
    last_id: int


def plain(value: Decimal) -> str:
    """A decimal without exponent notation (``0E-8`` prints ``0.00000000``)."""
    return format(value, "f")


def quote(value: Decimal) -> str:
    """A quote amount (price times quantity) as Binance prints it: 8 decimals."""
    return format(round(value, 8), "f")


class HeldTrades:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._ids: list[int] = []
        self._trades: dict[int, Trade] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, trade: Trade) -> None:
        ids = self._ids
        if trade.id in self._trades:
            return
        self._trades[trade.id] = trade
        if not ids or trade.id > ids[-1]:
            ids.append(trade.id)
        else:
            bisect.insort(ids, trade.id)  # a recorded REST page filling a gap
        if len(ids) > self.capacity + self.capacity // 4:
            for old in ids[: len(ids) - self.capacity]:
                del self._trades[old]
            del ids[: len(ids) - self.capacity]

    def last(self, now_ms: int) -> Trade | None:
        for trade in self._backwards(now_ms):
            return trade
        return None

    def from_id(self, from_id: int, limit: int, now_ms: int) -> list[Trade]:
        ids = self._ids
        if not ids:
            return []
        if from_id < ids[0]:
            raise Unavailable(
                f"fromId {from_id} is older than the oldest trade this replay holds ({ids[0]})"
            )
        at = bisect.bisect_left(ids, from_id)
        if at == len(ids):
            return []
        if ids[at] != from_id:
            raise Unavailable(f"trade {from_id} is not in the recording (nor in its backfill)")
        out: list[Trade] = []
        expected = from_id
        for trade_id in ids[at : at + limit]:
            trade = self._trades[trade_id]
            if trade_id != expected or trade.time_ms > now_ms:
                break
            out.append(trade)
            expected += 1
        return out

    def recent(self, limit: int, now_ms: int) -> list[Trade]:
        out: list[Trade] = []
        for trade in self._backwards(now_ms):
            out.append(trade)
            if len(out) >= limit:
                break
        out.reverse()
        return out

    def in_time(self, start_ms: int, end_ms: int, limit: int, now_ms: int) -> list[Trade]:
        end_ms = min(end_ms, now_ms)
        return list(itertools.islice(self._by_time(start_ms, end_ms), limit))

    def _by_time(self, start_ms: int, end_ms: int) -> Iterator[Trade]:
        for trade_id in self._ids:
            trade = self._trades[trade_id]
            if start_ms <= trade.time_ms <= end_ms:
                yield trade

    def _backwards(self, now_ms: int) -> Iterator[Trade]:
        for trade_id in reversed(self._ids):
            trade = self._trades[trade_id]
            if trade.time_ms <= now_ms:
                yield trade

    # -- derived: klines and 24 h statistics -------------------------------------------------

    def klines(
        self, interval_ms: int, start_ms: int | None, end_ms: int | None, limit: int, now_ms: int
    ) -> list[list[Any]]:
        """Binance kline rows built from the trades held (the newest ``limit`` candles
        without a start; the last one may still be open)."""
        hi = now_ms if end_ms is None else min(end_ms, now_ms)
        lo = start_ms if start_ms is not None else hi - interval_ms * limit
        candles: dict[int, list[Any]] = {}
        for t in self._by_time(lo - lo % interval_ms, hi):
            open_ms = t.time_ms - t.time_ms % interval_ms
            if open_ms < (start_ms if start_ms is not None else 0):
                continue
            price, qty = Decimal(t.price), Decimal(t.quantity)
            c = candles.get(open_ms)
            if c is None:
                close_ms = open_ms + interval_ms - 1
                c = [
                    open_ms,
                    t.price,
                    price,
                    price,
                    t.price,
                    _ZERO,
                    close_ms,
                    _ZERO,
                    0,
                    _ZERO,
                    _ZERO,
                ]
                candles[open_ms] = c
            c[2], c[3], c[4] = max(c[2], price), min(c[3], price), t.price
            c[5] += qty
            c[7] += price * qty
            c[8] += 1 + t.last_id - t.first_id
            if not t.buyer_maker:
                c[9] += qty
                c[10] += price * qty
        rows = [candles[k] for k in sorted(candles)]
        rows = rows[:limit] if start_ms is not None else rows[-limit:]
        return [
            [
                r[0],
                r[1],
                plain(r[2]),
                plain(r[3]),
                r[4],
                plain(r[5]),
                r[6],
                quote(r[7]),
                r[8],
                plain(r[9]),
                quote(r[10]),
                "0",
            ]
            for r in rows
        ]

    def day(self, now_ms: int) -> dict[str, Any] | None:
        """Rolling 24 h statistics over the trades held (None: no trade yet)."""
        lo = now_ms - 86_400_000
        first: Trade | None = None
        last: Trade | None = None
        high = low = None
        volume = quoted = _ZERO
        count = 0
        for t in self._by_time(lo, now_ms):
            price, qty = Decimal(t.price), Decimal(t.quantity)
            first = first or t
            last = t
            high = price if high is None else max(high, price)
            low = price if low is None else min(low, price)
            volume += qty
            quoted += price * qty
            count += 1 + t.last_id - t.first_id
        quote_text = quote(quoted)
        if first is None or last is None or high is None or low is None:
            return None
        open_price, last_price = Decimal(first.price), Decimal(last.price)
        change = last_price - open_price
        return {
            "priceChange": plain(change),
            "priceChangePercent": plain(round(change * 100 / open_price, 3)),
            "weightedAvgPrice": plain(round(quoted / volume, 8)) if volume else last.price,
            "lastPrice": last.price,
            "lastQty": last.quantity,
            "openPrice": first.price,
            "highPrice": plain(high),
            "lowPrice": plain(low),
            "volume": plain(volume),
            "quoteVolume": quote_text,
            "openTime": lo,
            "closeTime": now_ms,
            "firstId": first.first_id,
            "lastId": last.last_id,
            "count": count,
        }
