"""One side-by-side order book: exact prices and quantities, sorted numerically (pure).

Prices are keyed by an integer: the decimal string scaled by ``10**SCALE`` (exact; no
floats, no Decimal arithmetic on the hot path). Bid keys are stored negated so that, on
both sides, ``keys[0]`` is the best level and pruning cuts the tail. Each side is a dict
key → quantity string plus a sorted ``list`` of keys (``bisect``): at the 20 to 5000 levels a
Binance book has, a list insert (a memmove of a few KiB) beats a tree.

The exchange's strings are kept byte for byte: the price as first seen, the quantity as last
set; a published level is exactly what Binance printed.

**Known region.** A REST snapshot holds at most ``limit`` levels per side, and pruning drops
the worst ones, so the book does not know what lies beyond its worst level. Each side keeps
that ``bound``: a diff level beyond it is ignored rather than inserted (it would leave a
hole of unknown levels in front of it). So a side is always exactly the exchange's side cut
at ``bound`` — a prefix, never a book with holes — and only shrinks when levels inside are
deleted; :meth:`Book.shallow` tells when it got thinner than wanted (time to resync).
A side the snapshot returned in full (fewer levels than ``limit``) is unbounded.

**Deep levels: never stale.** Binance sends a level's changes whatever its depth, but a
book only learns the levels a snapshot showed it; so a level enters a side only inside the
known region, and the region never grows after a snapshot: pruning (more than ``depth``
levels) moves the bound in, deletions inside it leave it where it is. The books stage
keeps at most ``min(books.depth, snapshot limit)`` levels a side (``depth`` here), so every
level a book holds is one a fresh snapshot of the same limit shows too: an audit
(:mod:`marketd.books.audit`) can verify all of it, and after a clean audit the book takes
the audit's fresh region (levels it held past the snapshot's deepest price are dropped).
A published ``BookSnapshot`` is the top ``publish_levels`` of this region: a prefix of the
exchange's book at its ``last_update_id``, no holes, nothing past the known region; a
bounded side that knows fewer than ``publish_levels`` levels resyncs (``shallow``).

**Shallow books.** The region is as deep as the snapshot it came from (``Book.limit``, the
levels asked for): a book synced from a 100-level snapshot knows the exchange's book to
its 100th level at that time, and diffs only change levels inside that price range, so
its top ``publish_levels`` stay exact while the region holds that many. Deepening does not
extend the region with diffs (nothing tells what lies past it): a deeper snapshot, aligned
at the book's update id and checked against it, replaces the region
(:meth:`marketd.books.audit.Audit.adopt`).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence

from marketd.data.events import Level

# Decimal places of the integer price keys. Binance prints at most 8; 18 leaves room.
SCALE = 18
_PAD = tuple("0" * (SCALE - n) for n in range(SCALE + 1))
# Price strings remembered per side (string → key); the cache starts over beyond this.
CACHE_LIMIT = 16_384
# The bound of a side known in full (larger than every key).
UNBOUNDED = 1 << 256


class BookError(ValueError):
    """A price or quantity that is not a non-negative decimal string."""


def price_key(text: str) -> int:
    """``"27123.45"`` → ``27123450000000000000000`` (``text * 10**SCALE``), exactly."""
    whole, _, frac = text.partition(".")
    digits = whole + frac
    if len(frac) > SCALE or not digits.isascii() or not digits.isdigit():
        raise BookError(f"not a decimal price: {text!r}")
    return int(digits + _PAD[len(frac)])


class Side:
    """One side: ``qty[key]``, ``text[key]`` (the price string) and the sorted ``keys``."""

    __slots__ = ("_cache", "bound", "keys", "qty", "sign", "text")

    def __init__(self, *, bids: bool) -> None:
        self.sign = -1 if bids else 1
        self.bound = UNBOUNDED  # the worst key known; levels beyond are unknown
        self.qty: dict[int, str] = {}
        self.text: dict[int, str] = {}
        self.keys: list[int] = []
        self._cache: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def key(self, price: str) -> int:
        cache = self._cache
        k = cache.get(price)
        if k is None:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            k = cache[price] = self.sign * price_key(price)
        return k

    def apply(self, levels: Iterable[Level]) -> None:
        """Set each ``(price, quantity)``; a zero quantity deletes the level."""
        qty, text, keys, cache, bound = self.qty, self.text, self.keys, self._cache, self.bound
        for price, quantity in levels:
            k = cache.get(price)
            if k is None:
                k = self.key(price)
            if quantity.strip("0."):
                if k not in qty:
                    if k > bound:
                        continue  # beyond the known region: cannot be placed truthfully
                    insort(keys, k)
                    text[k] = price
                qty[k] = quantity
            elif k in qty:
                del qty[k]
                del text[k]
                del keys[bisect_left(keys, k)]

    def load(self, levels: Sequence[Level], limit: int) -> None:
        """Replace the side with a snapshot's levels (zero quantities skipped).

        ``limit`` is the number of levels asked for: a side with fewer is complete.
        """
        self.qty.clear()
        self.text.clear()
        for price, quantity in levels:
            if not quantity.strip("0."):
                continue
            _check_quantity(quantity)
            k = self.key(price)
            self.qty[k] = quantity
            self.text.setdefault(k, price)
        self.keys[:] = sorted(self.qty)
        self.bound = self.keys[-1] if len(levels) >= limit and self.keys else UNBOUNDED

    def prune(self, depth: int) -> int:
        """Drop the levels beyond ``depth`` (the worst ones); return how many."""
        keys = self.keys
        extra = len(keys) - depth
        if extra <= 0:
            return 0
        qty, text = self.qty, self.text
        for k in keys[depth:]:
            del qty[k]
            del text[k]
        del keys[depth:]
        self.bound = keys[-1] if keys else self.bound
        return extra

    def best_key(self) -> int | None:
        """The best level's price key in natural sign (``None`` when empty)."""
        return self.sign * self.keys[0] if self.keys else None

    def top(self, n: int) -> list[Level]:
        """Up to ``n`` levels, best first, as the exchange's strings."""
        text, qty = self.text, self.qty
        return [(text[k], qty[k]) for k in self.keys[:n]]

    def clear(self) -> None:
        self.qty.clear()
        self.text.clear()
        self.keys.clear()
        self.bound = UNBOUNDED


def _check_quantity(quantity: str) -> None:
    whole, _, frac = quantity.partition(".")
    digits = whole + frac
    if not digits.isascii() or not digits.isdigit():
        raise BookError(f"not a decimal quantity: {quantity!r}")


class Book:
    """Bids, asks and the update id they include; at most ``depth`` levels per side."""

    __slots__ = ("asks", "bids", "depth", "last_update_id", "limit", "pruned")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids = Side(bids=True)
        self.asks = Side(bids=False)
        self.last_update_id = 0
        self.limit = 0  # levels asked for by the snapshot the known region comes from
        self.pruned = 0

    def load(
        self, last_update_id: int, bids: Sequence[Level], asks: Sequence[Level], limit: int
    ) -> None:
        """Replace the contents with a REST snapshot asked for with ``limit`` levels."""
        self.bids.load(bids, limit)
        self.asks.load(asks, limit)
        self.last_update_id = last_update_id
        self.limit = limit
        self.pruned += self.bids.prune(self.depth) + self.asks.prune(self.depth)

    def apply(self, final_update_id: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply one diff's levels (no sequence check: see :mod:`marketd.books.sync`)."""
        self.bids.apply(bids)
        self.asks.apply(asks)
        self.last_update_id = final_update_id
        depth = self.depth
        if len(self.bids.keys) > depth or len(self.asks.keys) > depth:
            self.pruned += self.bids.prune(depth) + self.asks.prune(depth)

    def crossed(self) -> bool:
        """Best bid ≥ best ask: the book cannot be the exchange's."""
        b, a = self.bids.keys, self.asks.keys
        return bool(b) and bool(a) and -b[0] >= a[0]

    def shallow(self, levels: int) -> bool:
        """A bounded side knows fewer than ``levels`` levels: resync to see deeper again."""
        b, a = self.bids, self.asks
        return (len(b.keys) < levels and b.bound != UNBOUNDED) or (
            len(a.keys) < levels and a.bound != UNBOUNDED
        )

    def known_levels(self) -> int | None:
        """The levels known on the thinner bounded side (None: both sides are complete)."""
        sides = [len(s.keys) for s in (self.bids, self.asks) if s.bound != UNBOUNDED]
        return min(sides) if sides else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)``, best first, up to ``n`` levels each."""
        return self.bids.top(n), self.asks.top(n)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = 0
        self.limit = 0
