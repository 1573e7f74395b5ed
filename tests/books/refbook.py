"""A reference for the book tests: a true exchange history over a small price grid (pure).

Prices are integer cents printed with 2 decimals, quantities integers printed with 3, so
the reference works on ints and compares with the sync's exact strings.
"""

from __future__ import annotations

import attrs

from marketd.data.events import DepthDiff

Level = tuple[str, str]


def fmt_price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def fmt_qty(units: int) -> str:
    return f"{units}.000"


@attrs.define
class TrueBook:
    """The exchange's book: price (cents) → quantity (units), per side."""

    bids: dict[int, int] = attrs.field(factory=dict)
    asks: dict[int, int] = attrs.field(factory=dict)
    last_update_id: int = 0

    def copy(self) -> TrueBook:
        return TrueBook(dict(self.bids), dict(self.asks), self.last_update_id)

    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], u: int) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        self.last_update_id = u

    def levels(self, limit: int | None = None) -> tuple[list[Level], list[Level]]:
        """Best first, as strings (a REST snapshot with ``limit``)."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return (
            [(fmt_price(p), fmt_qty(q)) for p, q in bids],
            [(fmt_price(p), fmt_qty(q)) for p, q in asks],
        )

    def crossed(self) -> bool:
        return bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)


def event_time_ms(final: int) -> int:
    """The event time the reference gives the diff ending at ``final`` (one per id)."""
    return 1_600_000_000_000 + final


@attrs.frozen
class TrueDiff:
    first: int
    final: int
    prev: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]

    def as_diff(self, *, futures: bool) -> DepthDiff:
        return DepthDiff(
            self.first,
            self.final,
            self.prev if futures else None,
            [(fmt_price(p), fmt_qty(q)) for p, q in self.bids],
            [(fmt_price(p), fmt_qty(q)) for p, q in self.asks],
            event_time_ms=event_time_ms(self.final),
            received_ns=self.final * 1000,
        )


def history(
    start: TrueBook, changes: list[list[tuple[bool, int, int]]], skips: list[int]
) -> tuple[list[TrueBook], list[TrueDiff]]:
    """Apply each change list as one diff; ``skips[i]`` ids are skipped before diff ``i``
    (futures ids are not contiguous). Return the book after each diff (index 0: start)."""
    books = [start.copy()]
    diffs: list[TrueDiff] = []
    book = start.copy()
    for i, change in enumerate(changes):
        bids = [(p, q) for is_bid, p, q in change if is_bid]
        asks = [(p, q) for is_bid, p, q in change if not is_bid]
        first = book.last_update_id + 1 + skips[i]
        final = first + max(0, len(change) - 1)
        diffs.append(TrueDiff(first, final, book.last_update_id, bids, asks))
        book.apply(bids, asks, final)
        books.append(book.copy())
    return books, diffs
