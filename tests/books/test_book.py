"""One order book: exact prices, the known region, the depth limit (pure)."""

from __future__ import annotations

import pytest

from marketd.books.book import UNBOUNDED, Book, BookError, Side, price_key


def test_price_keys_are_exact_and_refuse_what_is_not_a_plain_decimal() -> None:
    assert price_key("27123.45") == 2712345 * 10**16
    assert price_key("0.000000000000000001") == 1  # all 18 places kept
    assert price_key("7") == price_key("7.") == price_key("7.000") == 7 * 10**18
    arabic_one = "\u0661"  # a digit to str.isdigit, not to Binance
    too_fine = "0." + "0" * 18 + "1"
    for bad in ("1e5", "", ".", "-1", "+1", "1.2.3", " 1", "1,5", arabic_one, too_fine):
        with pytest.raises(BookError, match="not a decimal price"):
            price_key(bad)


def test_zero_quantities_in_any_spelling_delete() -> None:
    side = Side(bids=False)
    side.apply([(p, "1") for p in ("1", "2", "3", "4", "5", "6")])
    side.apply([("1", "0"), ("2", "0.0"), ("3", "0.00000000"), ("4", "00.")])
    assert side.top(10) == [("5", "1"), ("6", "1")]
    side.apply([("5", "0.00000001"), ("6", "10.0")])  # small, not zero
    assert side.top(10) == [("5", "0.00000001"), ("6", "10.0")]


def test_a_diff_sets_updates_and_deletes_levels_keeping_the_exchange_text() -> None:
    side = Side(bids=True)
    side.apply([("100.10", "1"), ("100.2", "2"), ("99", "3")])
    assert side.top(10) == [("100.2", "2"), ("100.10", "1"), ("99", "3")]
    # Another spelling of a known price updates it; the first spelling stays.
    side.apply([("100.100", "5.5"), ("99.0", "0.000")])
    assert side.top(10) == [("100.2", "2"), ("100.10", "5.5")]
    side.apply([("50", "0")])  # deleting an absent level changes nothing
    assert side.top(10) == [("100.2", "2"), ("100.10", "5.5")]
    assert side.best_key() == price_key("100.2")
    asks = Side(bids=False)
    assert asks.best_key() is None
    asks.apply([("101", "1"), ("100.5", "1")])
    assert asks.top(1) == [("100.5", "1")]
    assert asks.best_key() == price_key("100.5")


def test_a_snapshot_skips_zero_levels_and_refuses_bad_quantities() -> None:
    book = Book(depth=10)
    book.load(7, [("10", "0.000"), ("9", "1"), ("8", "0")], [("11", "2")], limit=100)
    assert book.top(10) == ([("9", "1")], [("11", "2")])
    assert book.last_update_id == 7
    # A price repeated in a snapshot: its first spelling, its last quantity.
    book.load(8, [("9.0", "1"), ("9", "4")], [], limit=100)
    assert book.top(10) == ([("9.0", "4")], [])
    for bad in ("1e3", "-1", "abc", "1.2.3", "X", "X0", ".X."):
        with pytest.raises(BookError, match="not a decimal quantity"):
            Book(depth=10).load(1, [("10", bad)], [], limit=100)


def test_a_complete_snapshot_side_takes_new_worse_levels() -> None:
    """Fewer levels than asked for: the exchange has no more, so the side is known in
    full and a new worse level from a diff belongs in it."""
    book = Book(depth=10)
    book.load(1, [("10", "1"), ("9", "1")], [("11", "1")], limit=3)
    assert book.bids.bound == book.asks.bound == UNBOUNDED
    book.apply(2, [("5", "2")], [("20", "2")])
    assert book.top(10) == ([("10", "1"), ("9", "1"), ("5", "2")], [("11", "1"), ("20", "2")])


def test_a_cut_snapshot_side_ignores_levels_beyond_its_worst() -> None:
    book = Book(depth=10)
    book.load(1, [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], limit=2)
    assert book.bids.bound == book.bids.key("9")
    assert book.asks.bound == book.asks.key("12")
    book.apply(2, [("8", "1"), ("9.5", "3")], [("13", "1"), ("12", "4")])
    # 8 and 13 lie beyond what the snapshot showed: unknown territory, ignored.
    assert book.top(10) == ([("10", "1"), ("9.5", "3"), ("9", "1")], [("11", "1"), ("12", "4")])
    # The worst known level deleted and set again: it is inside the known region.
    book.apply(3, [("9", "0")], [("12", "0")])
    book.apply(4, [("9", "2")], [("12.0", "5")])
    assert book.top(10) == ([("10", "1"), ("9.5", "3"), ("9", "2")], [("11", "1"), ("12.0", "5")])


def test_a_complete_side_exactly_as_deep_as_the_limit_stays_complete() -> None:
    book = Book(depth=2)
    book.load(1, [("10", "1"), ("9", "1")], [], limit=100)  # complete, nothing pruned
    assert (book.bids.bound, book.pruned) == (UNBOUNDED, 0)
    book.apply(2, [("10", "0")], [])
    book.apply(3, [("8", "1")], [])  # a new level below 9: the side is known in full
    assert book.top(10)[0] == [("9", "1"), ("8", "1")]


def test_the_depth_limit_holds_after_a_snapshot_and_after_every_diff() -> None:
    book = Book(depth=2)
    book.load(1, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1")], limit=100)
    assert book.top(10) == ([("10", "1"), ("9", "1")], [("11", "1")])
    assert book.pruned == 1
    # Pruning cut the side: 8.5 is now beyond the known region.
    book.apply(2, [("8.5", "1")], [])
    assert book.top(10)[0] == [("10", "1"), ("9", "1")]
    book.apply(3, [("10.5", "1")], [("10.8", "1"), ("10.9", "1")])
    assert book.top(10) == ([("10.5", "1"), ("10", "1")], [("10.8", "1"), ("10.9", "1")])
    assert book.pruned == 3  # 9 and 11
    book.apply(4, [], [("10.7", "1")])  # only the asks grow past the limit
    assert book.top(10) == ([("10.5", "1"), ("10", "1")], [("10.7", "1"), ("10.8", "1")])
    assert book.pruned == 4
    assert book.last_update_id == 4


def test_crossed_means_best_bid_at_or_above_best_ask() -> None:
    book = Book(depth=10)
    book.load(1, [("10", "1")], [], limit=100)
    assert not book.crossed()  # one side empty
    book.apply(2, [], [("10.01", "1")])
    assert not book.crossed()
    book.apply(3, [], [("10", "1")])
    assert book.crossed()  # equal prices cross
    book.apply(4, [("10", "0")], [])
    book.apply(5, [("9.99", "1")], [("9.98", "1")])
    assert book.crossed()


def test_shallow_only_counts_bounded_sides() -> None:
    book = Book(depth=10)
    book.load(1, [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1"), ("13", "1")], limit=3)
    # bids: complete (2 of 3 asked), asks: cut at 13.
    assert not book.shallow(3)
    book.apply(2, [], [("11", "0")])
    assert book.shallow(3)
    assert not book.shallow(2)
    book.apply(3, [("10", "0"), ("9", "0")], [])
    assert not book.shallow(2)  # an empty complete side is the truth, not too shallow


def test_pruned_levels_are_counted_over_both_sides_and_every_snapshot() -> None:
    book = Book(depth=1)
    assert (book.last_update_id, book.pruned) == (0, 0)
    book.load(1, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1"), ("12", "1")], limit=100)
    assert book.pruned == 3
    book.load(2, [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], limit=100)
    assert book.pruned == 5
    assert book.top(10) == ([("10", "1")], [("11", "1")])


def test_clear_forgets_everything_including_the_known_region() -> None:
    book = Book(depth=10)
    book.load(9, [("10", "1")], [("11", "1")], limit=1)
    book.clear()
    assert book.top(10) == ([], [])
    assert book.last_update_id == 0
    assert book.bids.bound == book.asks.bound == UNBOUNDED
    assert len(book.bids) == len(book.asks) == 0
