"""One side-by-side order book: exact prices and quantities, sorted numerically (pure).

Prices are keyed by an integer: the decimal string scaled by ``10**SCALE`` (exact; no
floats, no Decimal arithmetic on the hot path). Ask keys are stored negated so that, on
both sides, the keys ascend towards the best level: ``keys[-1]`` is the best, ``keys[0]``
the worst, where pruning cuts. A side is two parallel lists, the sorted ``keys`` and their
quantity strings ``qtys``, searched with ``bisect``: at the 20 to 5000 levels a Binance
book has, a list insert (a memmove of a few KiB) beats a tree, and with the best at the end
the inserts and deletions near the top, where most changes are, move only a few slots.
With no dict and no price text, a level costs its key, its quantity string and two list
slots: about 120 bytes (a dict of quantities, one of price strings and a cache of price
strings filled by every snapshot came to 270 to 380).

The exchange's strings are kept byte for byte: the quantity as last set, the price as first
seen. A price is not stored as text: Binance prints all the prices of a symbol with the same
number of decimals (spot 8, ``"27123.45000000"``; USD-M the symbol's precision), so a side
keeps that number (``places``: the best level's in its last snapshot; on a side that never
had one, its first level's) and writes a price back from its key. A price spelled any other
way (other decimals, a leading zero, ``"7."``) is kept as text in ``odd``, by key, while its
level lives. Either way :meth:`Side.top` gives what Binance printed, and so do the
published ``BookSnapshot`` and an audit's reported levels.

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

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import pairwise

from marketd.data.events import Level

# Decimal places of the integer price keys. Binance prints at most 8; 18 leaves room.
SCALE = 18
_PAD = tuple("0" * (SCALE - n) for n in range(SCALE + 1))
# Price strings remembered per side (string → key), to spare parsing the prices diffs
# repeat; the cache starts over beyond this. Small: an entry holds a diff's string too
# (about 110 bytes with its slot), and a snapshot's prices are not cached.
CACHE_LIMIT = 128
# The bound of a side known in full (smaller than every key).
UNBOUNDED = -(1 << 256)


class BookError(ValueError):
    """A price or quantity that is not a non-negative decimal string."""


def price_key(text: str) -> int:
    """``"27123.45"`` → ``27123450000000000000000`` (``text * 10**SCALE``), exactly."""
    whole, _, frac = text.partition(".")
    digits = whole + frac
    if len(frac) > SCALE or not digits.isascii() or not digits.isdigit():
        raise BookError(f"not a decimal price: {text!r}")
    return int(digits + _PAD[len(frac)])


def places_of(text: str) -> int:
    """The decimals a (valid) price is printed with: ``"27123.450"`` → 3, ``"100"`` → 0."""
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


class Side:
    """One side: the sorted ``keys`` (best last), their quantities ``qtys`` (the exchange's
    strings), and the prices' spelling: ``places`` decimals, or the text in ``odd``."""

    __slots__ = ("_cache", "_unit", "bound", "keys", "odd", "places", "qtys", "sign")

    def __init__(self, *, bids: bool) -> None:
        self.sign = 1 if bids else -1
        self.bound = UNBOUNDED  # the worst key known; levels below it are unknown
        self.keys: list[int] = []
        self.qtys: list[str] = []
        # Decimals of the usual spelling (None: no level seen yet); ``_unit`` is
        # ``10**(SCALE - places)``, a key's step at that spelling.
        self.places: int | None = None
        self._unit = 1
        self.odd: dict[int, str] = {}  # key → price text, for levels spelled otherwise
        self._cache: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def key(self, price: str) -> int:
        """The key of ``price`` on this side (negated for asks); BookError if not decimal."""
        cache = self._cache
        k = cache.get(price)
        if k is None:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            k = cache[price] = self.sign * price_key(price)
        return k

    def _set_places(self, places: int) -> None:
        self.places = places
        self._unit = 10 ** (SCALE - places)

    def _usual(self, price: str) -> bool:
        """``price`` (valid) is what :meth:`price` writes back from its key: exactly
        ``places`` decimals, and a whole part without leading zeros."""
        places = self.places
        if places is None:
            self._set_places(places := places_of(price))
        dot = price.find(".")
        if places:
            return 0 < dot == len(price) - places - 1 and (dot == 1 or price[0] != "0")
        return dot < 0 and (len(price) == 1 or price[0] != "0")

    def price(self, k: int) -> str:
        """The exchange's text of the price of level ``k`` (a key of this side)."""
        text = self.odd.get(k)
        if text is not None:
            return text
        places = self.places
        units = str(k * self.sign // self._unit)
        if not places:
            return units
        units = units.rjust(places + 1, "0")
        return f"{units[:-places]}.{units[-places:]}"

    def apply(self, levels: Iterable[Level]) -> None:
        """Set each ``(price, quantity)``; a zero quantity deletes the level."""
        keys, qtys, odd, cache, bound = self.keys, self.qtys, self.odd, self._cache, self.bound
        for price, quantity in levels:
            k = cache.get(price)
            if k is None:
                k = self.key(price)
            n = len(keys)
            i = bisect_left(keys, k)
            if quantity.strip("0."):
                if i < n and keys[i] == k:
                    qtys[i] = quantity
                    continue
                if k < bound:
                    continue  # beyond the known region: cannot be placed truthfully
                keys.insert(i, k)
                qtys.insert(i, quantity)
                if not self._usual(price):
                    odd[k] = price
            elif i < n and keys[i] == k:
                del keys[i], qtys[i]
                if odd:
                    odd.pop(k, None)

    def load(self, levels: Sequence[Level], limit: int) -> None:
        """Replace the side with a snapshot's levels (zero quantities skipped).

        ``limit`` is the number of levels asked for: a side with fewer is complete.
        """
        sign = self.sign
        keys: list[int] = []
        qtys: list[str] = []
        texts: list[str] = []
        for price, quantity in levels:
            if not quantity.strip("0."):
                continue
            _check_quantity(quantity)
            keys.append(sign * price_key(price))
            qtys.append(quantity)
            texts.append(price)
        if any(a <= b for a, b in pairwise(keys)):
            # Not best first (Binance's order) or a price repeated: sort, and keep a
            # repeated price's first spelling and last quantity.
            first: dict[int, str] = {}
            last: dict[int, str] = {}
            for k, quantity, price in zip(keys, qtys, texts, strict=True):
                first.setdefault(k, price)
                last[k] = quantity
            keys = sorted(last, reverse=True)
            qtys = [last[k] for k in keys]
            texts = [first[k] for k in keys]
        if texts:
            self._set_places(places_of(texts[0]))  # the best level's spelling
        usual = self._usual
        self.odd = {k: price for k, price in zip(keys, texts, strict=True) if not usual(price)}
        # Worst first; a copy is exactly as long as needed (an appended list is not).
        self.keys, self.qtys = keys[::-1], qtys[::-1]
        self.bound = self.keys[0] if len(levels) >= limit and keys else UNBOUNDED

    def prune(self, depth: int) -> int:
        """Drop the levels beyond ``depth`` (the worst ones); return how many."""
        keys = self.keys
        extra = len(keys) - depth
        if extra <= 0:
            return 0
        if self.odd:
            odd = self.odd
            for k in keys[:extra]:
                odd.pop(k, None)
        del keys[:extra], self.qtys[:extra]
        self.bound = keys[0] if keys else self.bound
        return extra

    def best_key(self) -> int | None:
        """The best level's price key in natural sign (``None`` when empty)."""
        return self.sign * self.keys[-1] if self.keys else None

    def top(self, n: int) -> list[Level]:
        """Up to ``n`` levels, best first, as the exchange's strings."""
        price, keys, qtys = self.price, self.keys, self.qtys
        start = max(len(keys) - n, 0)
        return [
            (price(k), q)
            for k, q in zip(reversed(keys[start:]), reversed(qtys[start:]), strict=True)
        ]

    def clear(self) -> None:
        self.keys.clear()
        self.qtys.clear()
        self.odd.clear()
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
        return bool(b) and bool(a) and b[-1] >= -a[-1]

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
