"""One symbol's order book as a replay rebuilds it from recorded snapshots and diffs (pure).

The replay is the exchange here, so its book is the one its depth snapshots answer with.
It is built the way Binance documents for a client: a recorded REST snapshot
(``lastUpdateId``) and then the recorded diffs that continue it — consecutive ids on spot
(``U == previous u + 1``; the first applied has ``U <= lastUpdateId + 1 <= u``), chained
ids on USD-M (``pu == previous u``; the first applied has ``U <= lastUpdateId <= u``).
Diffs seen while the book has no snapshot are kept (a bounded buffer), so a snapshot
recorded after them still starts the book. A diff that does not continue the book (the
recording has a hole: marketd was disconnected) makes the book *broken* until the next
recorded snapshot: a broken book is never served.

A recorded snapshot is as deep as marketd asked (``limit``): a side it returned with that many
levels was cut there, and what lies past its worst price is unknown. As marketd's own book
does, such a side ignores diff levels beyond that price, and a depth request deeper than
the levels it still knows is refused (:meth:`ReplayBook.levels` returns ``None``) rather
than answered short — a short side reads as the whole book to a client. A synced book takes
each later recorded snapshot (an audit's or a deepening's, deeper or just fresher) that the
diffs it applied lately carry up to its own update id, unless the snapshot knows less of a
side than the book does: so it learns its region afresh whenever marketd did.

Prices and quantities stay the exchange's strings; levels are sorted only when asked for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import attrs

BUFFERED_DIFFS = 10_000  # diffs kept per symbol while no snapshot has started the book
# Diffs applied lately, kept to carry a later recorded snapshot up to the book (20 s of
# depth@100ms): a snapshot's update id lies a REST round trip behind the diffs around it.
KEPT_DIFFS = 200

Level = Sequence[str]  # [price, quantity] as the exchange prints them


@attrs.frozen
class Diff:
    first_id: int  # U
    last_id: int  # u
    previous_id: int | None  # pu (USD-M), None on spot
    event_ms: int  # E
    transaction_ms: int  # T (USD-M), else E
    bids: Sequence[Level]
    asks: Sequence[Level]


class ReplayBook:
    def __init__(self, *, chained: bool) -> None:
        self.chained = chained
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        # The worst price each side knows when the snapshot cut it (None: known in full).
        self.bid_bound: float | None = None
        self.ask_bound: float | None = None
        self.last_id: int | None = None  # of the last diff applied (or the snapshot)
        self.synced = False
        self.event_ms = self.transaction_ms = 0
        self.breaks = 0  # diffs that did not continue a synced book
        self._fresh = False  # synced from a snapshot, no diff applied since
        self._buffer: deque[Diff] = deque(maxlen=BUFFERED_DIFFS)
        self._applied: deque[Diff] = deque(maxlen=KEPT_DIFFS)

    def snapshot(
        self, last_id: int, bids: Sequence[Level], asks: Sequence[Level], limit: int
    ) -> None:
        """A recorded snapshot (``limit`` levels asked for) starts the book; a synced book
        takes it only as :meth:`_rebase` says."""
        if self.synced:
            self._rebase(last_id, bids, asks, limit)
            return
        self.bids = {p: q for p, q, *_ in bids}
        self.asks = {p: q for p, q, *_ in asks}
        self.bid_bound = min(map(float, self.bids)) if len(bids) >= limit and bids else None
        self.ask_bound = max(map(float, self.asks)) if len(asks) >= limit and asks else None
        self.last_id = last_id
        self.synced = self._fresh = True
        self._applied.clear()
        buffered, self._buffer = self._buffer, deque(maxlen=BUFFERED_DIFFS)
        for diff in buffered:
            self.diff(diff)

    def _rebase(
        self, last_id: int, bids: Sequence[Level], asks: Sequence[Level], limit: int
    ) -> None:
        """Take a snapshot the recent diffs carry up to this book's update id, if it knows
        each side at least as well (a complete side, or as many levels as the book's)."""
        if self.last_id is None or last_id > self.last_id:
            return  # ahead of the diffs: the book carries on as it is
        other = ReplayBook(chained=self.chained)
        other.snapshot(last_id, bids, asks, limit)
        for diff in self._applied:
            other.diff(diff)
        if not other.synced or other.last_id != self.last_id:
            return  # not carried up to the book: the diffs kept start after the snapshot
        for mine, theirs, mine_bound, their_bound in (
            (self.bids, other.bids, self.bid_bound, other.bid_bound),
            (self.asks, other.asks, self.ask_bound, other.ask_bound),
        ):
            if their_bound is not None and (mine_bound is None or len(theirs) < len(mine)):
                return
        self.bids, self.asks = other.bids, other.asks
        self.bid_bound, self.ask_bound = other.bid_bound, other.ask_bound

    def diff(self, diff: Diff) -> None:
        if not self.synced:
            self._buffer.append(diff)
            return
        last = self.last_id
        assert last is not None
        if diff.last_id < last or (diff.last_id == last and not (self.chained and self._fresh)):
            return  # before the snapshot, or a duplicate (a reconnect's overlap)
        if self._fresh:
            bridges = diff.first_id <= (last if self.chained else last + 1) <= diff.last_id
            continues = bridges or (self.chained and diff.previous_id == last)
        elif self.chained:
            continues = diff.previous_id == last
        else:
            continues = diff.first_id == last + 1
        if not continues:
            self.synced = False
            self.breaks += 1
            self._buffer.append(diff)
            self._applied.clear()
            return
        self._fresh = False
        self._applied.append(diff)
        for side, levels, beyond in (
            (self.bids, diff.bids, self._below(self.bid_bound)),
            (self.asks, diff.asks, self._above(self.ask_bound)),
        ):
            for price, quantity, *_ in levels:
                if float(quantity) == 0.0:
                    side.pop(price, None)
                elif price in side or not beyond(float(price)):
                    side[price] = quantity
        self.last_id = diff.last_id
        self.event_ms, self.transaction_ms = diff.event_ms, diff.transaction_ms

    @staticmethod
    def _below(bound: float | None) -> Callable[[float], bool]:
        return (lambda price: False) if bound is None else (lambda price: price < bound)

    @staticmethod
    def _above(bound: float | None) -> Callable[[float], bool]:
        return (lambda price: False) if bound is None else (lambda price: price > bound)

    def levels(self, limit: int) -> tuple[list[list[str]], list[list[str]]] | None:
        """The best ``limit`` bids (highest first) and asks (lowest first), or ``None`` when
        a side cut by its snapshot knows fewer levels than that."""
        if (self.bid_bound is not None and len(self.bids) < limit) or (
            self.ask_bound is not None and len(self.asks) < limit
        ):
            return None
        bids = sorted(self.bids, key=float, reverse=True)[:limit]
        asks = sorted(self.asks, key=float)[:limit]
        return [[p, self.bids[p]] for p in bids], [[p, self.asks[p]] for p in asks]

    def best(self) -> tuple[list[str] | None, list[str] | None]:
        """The best bid and ask level, if any."""
        bid = max(self.bids, key=float, default=None)
        ask = min(self.asks, key=float, default=None)
        return (
            None if bid is None else [bid, self.bids[bid]],
            None if ask is None else [ask, self.asks[ask]],
        )
