"""A side writes its prices back from their keys: always the exchange's text (pure)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketd.books.audit import LevelDiff, compare
from marketd.books.book import CACHE_LIMIT, UNBOUNDED, Book, Side, price_key

Level = tuple[str, str]


@pytest.mark.parametrize("bids", [True, False])
@pytest.mark.parametrize(
    "prices",
    [
        ["27123.45000000", "27123.44000000", "27123.00000000", "27120.10000000"],  # spot
        ["0.00001234", "0.00001233", "0.00000001", "0.10000000"],  # spot, under 1
        ["100", "99", "10", "1", "0"],  # whole prices, no dot
        ["27123.4", "27123.0", "27122.9", "0.1"],  # USD-M with one decimal
        ["1.000000000000000001", "1.000000000000000000"],  # SCALE's last place
    ],
)
def test_prices_come_back_as_printed_after_every_operation(bids: bool, prices: list[str]) -> None:
    side = Side(bids=bids)
    levels = [(p, str(i + 1)) for i, p in enumerate(prices)]
    side.load(levels, limit=100)
    assert sorted(side.top(100)) == sorted(levels)
    assert side.odd == {}  # one spelling: no text kept at all
    side.apply([(prices[0], "0"), (prices[0], "7")])  # deleted, set again: written back
    side.apply([(prices[1], "8")])  # an update
    side.prune(3)
    expected = dict(levels)
    expected.update({prices[0]: "7", prices[1]: "8"})
    kept = side.top(100)
    assert len(kept) == min(3, len(prices))
    assert all(expected[p] == q for p, q in kept)
    side.clear()
    side.apply([(prices[-1], "9")])  # cleared: the side still knows its spelling
    assert side.top(10) == [(prices[-1], "9")]


def test_a_spelling_other_than_the_sides_is_kept_while_its_level_lives() -> None:
    side = Side(bids=False)
    side.load([("27123.45000000", "1"), ("27123.46000000", "2")], limit=100)
    odd = ["27123.5", "027123.47000000", "27123.480000000", "27124.", ".5"]
    side.apply([(p, "3") for p in odd])
    assert side.top(10) == [
        (".5", "3"),
        ("27123.45000000", "1"),
        ("27123.46000000", "2"),
        ("027123.47000000", "3"),
        ("27123.480000000", "3"),
        ("27123.5", "3"),
        ("27124.", "3"),
    ]
    # Another spelling of a level's price updates it; the level keeps its first spelling.
    side.apply([("27123.50000000", "4"), ("27123.4500", "5")])
    assert side.top(10)[1] == ("27123.45000000", "5")
    assert side.top(10)[-2] == ("27123.5", "4")
    # Deleted (in any spelling) and pruned levels take their text with them.
    side.apply([("27123.50000000", "0"), ("0.5", "0"), ("27123.47", "0")])
    side.prune(3)
    assert side.top(10) == [("27123.45000000", "5"), ("27123.46000000", "2"), (
        "27123.480000000", "3")]  # fmt: skip
    assert set(side.odd) == {side.key("27123.48")}
    side.apply([("27123.48", "0")])
    assert side.odd == {}
    # Set again in the usual spelling: written back from the key now.
    side.apply([("27123.48000000", "6")])
    assert side.top(10)[-1] == ("27123.48000000", "6")
    assert side.odd == {}


def test_the_spelling_comes_from_the_best_level_of_each_snapshot() -> None:
    book = Book(depth=10)
    # Prices printed with 2 decimals, except the best bid (the symbol changed precision?).
    book.load(1, [("10.5", "1"), ("10.40", "1"), ("10.30", "1")], [("10.60", "1")], limit=100)
    assert book.top(10) == (
        [("10.5", "1"), ("10.40", "1"), ("10.30", "1")],
        [("10.60", "1")],
    )
    assert sorted(book.bids.odd.values()) == ["10.30", "10.40"]  # not the best's spelling
    book.load(2, [("10.4", "1"), ("10.3", "2")], [("10.6", "1")], limit=100)
    book.apply(3, [("10.2", "3"), ("10.10", "4")], [("10.70", "2")])
    assert book.top(10) == (
        [("10.4", "1"), ("10.3", "2"), ("10.2", "3"), ("10.10", "4")],
        [("10.6", "1"), ("10.70", "2")],
    )


def test_a_side_that_never_had_a_snapshot_takes_its_first_levels_spelling() -> None:
    side = Side(bids=True)
    side.apply([("5.00", "0"), ("5.000", "1"), ("6.0", "1"), ("4.000", "1")])
    assert side.places == 3
    assert side.top(10) == [("6.0", "1"), ("5.000", "1"), ("4.000", "1")]
    assert set(side.odd) == {side.key("6")}


def test_audit_differences_name_the_prices_as_printed() -> None:
    ours, theirs = Book(depth=10), Book(depth=10)
    ours.load(1, [("99.80000000", "1"), ("99.7", "2")], [("100.10000000", "1")], limit=100)
    theirs.load(1, [("99.80000000", "1"), ("99.60000000", "2")], [("100.1", "3")], limit=100)
    _, differing, diffs = compare(ours, theirs)
    assert differing == 3
    assert diffs == [
        LevelDiff("bid", "99.7", "2", None),
        LevelDiff("bid", "99.60000000", None, "2"),
        LevelDiff("ask", "100.10000000", "1", "3"),
    ]


def test_snapshots_do_not_fill_the_price_cache_and_diffs_keep_it_small() -> None:
    """Memory: a 1000-level snapshot's prices are not cached, and the cache of diffs'
    prices stays under CACHE_LIMIT however many prices go by."""
    side = Side(bids=False)
    side.load([(f"{100 + i}.00000000", "1") for i in range(1000)], limit=1000)
    assert len(side._cache) == 0
    for i in range(5 * CACHE_LIMIT):
        side.apply([(f"{100 + i % 1000}.00000000", "2")])
        assert len(side._cache) <= CACHE_LIMIT
    assert side.top(1) == [("100.00000000", "2")]


# -- against a reference side, for any spelling ----------------------------------------


@attrs.define
class RefSide:
    """What a side must show: price → (first spelling, quantity), cut at ``bound``."""

    bids: bool
    levels: dict[int, Level] = attrs.field(factory=dict)  # natural price key → level
    bound: int | None = None  # the worst price known (None: the side is known in full)

    def _rank(self, k: int) -> int:
        return k if self.bids else -k  # larger is better

    def load(self, levels: list[Level], limit: int) -> None:
        self.levels = {}
        for price, qty in levels:
            if qty.strip("0."):
                k = price_key(price)
                first = self.levels.get(k, (price, qty))[0]
                self.levels[k] = (first, qty)
        full = len(levels) >= limit and self.levels
        self.bound = min(self.levels, key=self._rank) if full else None

    def apply(self, levels: list[Level]) -> None:
        for price, qty in levels:
            k = price_key(price)
            if not qty.strip("0."):
                self.levels.pop(k, None)
            elif k in self.levels:
                self.levels[k] = (self.levels[k][0], qty)
            elif self.bound is None or self._rank(k) >= self._rank(self.bound):
                self.levels[k] = (price, qty)

    def prune(self, depth: int) -> None:
        best = sorted(self.levels, key=self._rank, reverse=True)
        if len(best) > depth:
            self.levels = {k: self.levels[k] for k in best[:depth]}
            self.bound = best[depth - 1]

    def top(self) -> list[Level]:
        return [self.levels[k] for k in sorted(self.levels, key=self._rank, reverse=True)]


@st.composite
def spelled(draw: st.DrawFn, places: int, base: int) -> str:
    """A price of the grid, mostly in the usual spelling (``places`` decimals)."""
    units = base * 10**places + draw(st.integers(0, 30))
    whole, frac = divmod(units, 10**places)
    usual = f"{whole}.{frac:0{places}d}" if places else str(whole)
    other = ["0" + usual, usual + "0" if places else usual + "."]
    if places:  # fewer decimals: "27123.5", "27123." and "27123" for "27123.50"
        other += [usual.rstrip("0"), usual.rstrip("0").rstrip(".")]
    return draw(st.sampled_from([usual] * 4 + other))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bids=st.booleans())
def test_a_side_shows_what_the_exchange_printed_whatever_the_spellings(
    data: st.DataObject, bids: bool
) -> None:
    places = data.draw(st.sampled_from([0, 1, 2, 8]), label="places")
    base = data.draw(st.sampled_from([0, 1, 27123]), label="base")
    price = spelled(places, base)
    qty = st.sampled_from(["1", "2.50", "0.00100000", "10", "0", "0.000"])
    levels = st.lists(st.tuples(price, qty), max_size=12)
    side, ref = Side(bids=bids), RefSide(bids)
    ops = data.draw(st.lists(st.sampled_from(["load", "apply", "apply", "prune", "clear"])))
    for op in ops:
        if op == "load":
            snapshot = data.draw(levels, label="snapshot")
            limit = data.draw(st.integers(1, 12), label="limit")
            side.load(snapshot, limit)
            ref.load(snapshot, limit)
        elif op == "apply":
            diff = data.draw(levels, label="diff")
            side.apply(diff)
            ref.apply(diff)
        elif op == "prune":
            depth = data.draw(st.integers(1, 8), label="depth")
            side.prune(depth)
            ref.prune(depth)
        else:
            side.clear()
            ref = RefSide(bids)
        assert side.top(100) == ref.top()
        assert set(side.odd) <= set(side.keys)  # no text outlives its level
        bound = UNBOUNDED if ref.bound is None else side.sign * ref.bound
        assert side.bound == bound
