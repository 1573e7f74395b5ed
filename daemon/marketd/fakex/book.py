"""The fake exchange's order book for one symbol: integer ticks and lots, no trio.

Prices are integers on the symbol's tick grid and quantities integers in lots, so every
decimal string the exchange prints is exact. Both sides keep their prices sorted ascending:
the best bid is ``bids[-1]``, the best ask ``asks[0]``.
"""

from __future__ import annotations

import bisect


class Side:
    """One side of the book: sorted prices plus the quantity at each price."""

    __slots__ = ("is_bid", "prices", "qty")

    def __init__(self, *, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[int] = []
        self.qty: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.prices)

    def best(self) -> int:
        return self.prices[-1] if self.is_bid else self.prices[0]

    def nth_from_best(self, n: int) -> int:
        """The price of the ``n``-th level counted from the best (0 is the best)."""
        return self.prices[-1 - n] if self.is_bid else self.prices[n]

    def worst(self) -> int:
        return self.prices[0] if self.is_bid else self.prices[-1]

    def set(self, price: int, qty: int) -> None:
        """Set a level; ``qty == 0`` deletes it."""
        if qty <= 0:
            if price in self.qty:
                del self.qty[price]
                del self.prices[bisect.bisect_left(self.prices, price)]
            return
        if price not in self.qty:
            bisect.insort(self.prices, price)
        self.qty[price] = qty

    def top(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` levels from the best outwards."""
        prices = self.prices[::-1][:limit] if self.is_bid else self.prices[:limit]
        qty = self.qty
        return [(p, qty[p]) for p in prices]


class OrderBook:
    """Bids and asks of one symbol, plus the id of the last update applied."""

    __slots__ = ("asks", "bids", "last_update_id")

    def __init__(self, last_update_id: int) -> None:
        self.bids = Side(is_bid=True)
        self.asks = Side(is_bid=False)
        self.last_update_id = last_update_id

    def best_bid(self) -> tuple[int, int]:
        p = self.bids.best()
        return p, self.bids.qty[p]

    def best_ask(self) -> tuple[int, int]:
        p = self.asks.best()
        return p, self.asks.qty[p]

    def snapshot(self, limit: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """``(lastUpdateId, bids best-first, asks best-first)`` as a REST snapshot shows it."""
        return self.last_update_id, self.bids.top(limit), self.asks.top(limit)

    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], u: int) -> None:
        """Apply one depth diff the way a client does (used by tests on a copy)."""
        for p, q in bids:
            self.bids.set(p, q)
        for p, q in asks:
            self.asks.set(p, q)
        self.last_update_id = u
