"""The recent history of one symbol's true book, so tests can read it at any update id (pure).

A base copy of the book plus the diffs generated since; beyond ``capacity`` diffs the
oldest is folded into the base. ``book_at(u)`` replays up to the diff whose ``u`` it is.
"""

from __future__ import annotations

from collections import deque

from marketd.fakex.book import OrderBook
from marketd.fakex.events import DepthEvent


def copy_book(book: OrderBook) -> OrderBook:
    out = OrderBook(book.last_update_id)
    out.bids.prices = list(book.bids.prices)
    out.bids.qty = dict(book.bids.qty)
    out.asks.prices = list(book.asks.prices)
    out.asks.qty = dict(book.asks.qty)
    return out


class BookJournal:
    def __init__(self, book: OrderBook, capacity: int) -> None:
        self.base = copy_book(book)
        self.capacity = capacity
        self.events: deque[DepthEvent] = deque()

    def record(self, event: DepthEvent) -> None:
        self.events.append(event)
        if len(self.events) > self.capacity:
            old = self.events.popleft()
            self.base.apply(old.bids, old.asks, old.last_id)

    def first_update_id(self) -> int:
        """The oldest update id :meth:`book_at` can answer."""
        return self.base.last_update_id

    def book_at(self, update_id: int) -> OrderBook:
        """The true book right after the update ``update_id`` (a REST-snapshot id or a ``u``).

        Raises ``LookupError`` for an id older than the journal or never produced.
        """
        if update_id < self.base.last_update_id:
            raise LookupError(f"update id {update_id} is older than the journal")
        book = copy_book(self.base)
        for ev in self.events:
            if ev.last_id > update_id:
                break
            book.apply(ev.bids, ev.asks, ev.last_id)
        if book.last_update_id != update_id:
            raise LookupError(f"no book state at update id {update_id}")
        return book
