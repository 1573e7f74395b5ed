"""The Binance sync rules, case by case (pure)."""

from __future__ import annotations

import pytest

from marketd.books.book import Book, BookError, price_key
from marketd.books.sync import Diff, State, SymbolSync

SNAP_BIDS = [("100.00", "1.0"), ("99.50", "2.0")]
SNAP_ASKS = [("100.50", "1.5"), ("101.00", "3.0")]


def synced(*, futures: bool, last: int = 100) -> SymbolSync:
    s = SymbolSync(futures=futures, depth=100, snapshot_limit=1000)
    assert s.on_diff(Diff(last - 5, last - 1, None if not futures else last - 7, [], [])) is True
    s.on_snapshot(last, SNAP_BIDS, SNAP_ASKS)
    assert s.loaded
    assert s.state is State.SYNCING
    return s


def test_prices_sort_numerically_and_exactly() -> None:
    assert price_key("9.5") < price_key("10.00") < price_key("10.000000001")
    assert price_key("0.00000001") == 10**10
    with pytest.raises(BookError):
        price_key("1e5")
    book = Book(depth=10)
    book.load(1, [("9.5", "1"), ("10.00", "2")], [("10.5", "1")], limit=100)
    book.apply(2, [("10", "0.000"), ("9.50000000", "7.25")], [])  # other spellings, same price
    assert book.top(10) == ([("9.5", "7.25")], [("10.5", "1")])


def test_spot_first_diff_must_straddle_the_snapshot_then_chain() -> None:
    s = synced(futures=False)
    s.on_diff(Diff(95, 100, None, [("1.0", "1")], []))  # u <= lastUpdateId: dropped
    assert not s.synced
    s.on_diff(Diff(99, 103, None, [("99.50", "0")], []))  # U <= 101 <= u
    assert s.synced
    assert s.last_update_id == 103
    assert s.book.top(5)[0] == [("100.00", "1.0")]
    s.on_diff(Diff(100, 103, None, [], []))  # duplicate after a reconnect: dropped
    s.on_diff(Diff(104, 104, None, [], [("100.50", "9")]))
    assert s.synced
    assert s.book.top(1)[1] == [("100.50", "9")]
    assert s.on_diff(Diff(106, 107, None, [], [])) is True  # U > id + 1: gap
    assert s.state is State.RESYNCING
    assert s.resyncs == {"gap": 1}
    assert s.book.top(5) == ([], [])


def test_futures_first_diff_may_bridge_by_pu() -> None:
    s = synced(futures=True)
    s.on_diff(Diff(103, 105, 100, [("99.00", "4")], []))  # U > lastUpdateId, pu == it
    assert s.synced
    assert s.last_update_id == 105
    s.on_diff(Diff(109, 110, 105, [], []))  # ids may skip; pu chains
    assert s.synced
    assert s.on_diff(Diff(112, 113, 111, [], [])) is True  # pu != previous u
    assert s.resyncs == {"gap": 1}


def test_futures_first_diff_straddling_the_snapshot() -> None:
    s = synced(futures=True)
    s.on_diff(Diff(90, 99, 88, [], []))  # u < lastUpdateId: dropped
    s.on_diff(Diff(98, 100, 97, [], []))  # U <= lastUpdateId <= u
    assert s.synced


def test_a_snapshot_older_than_the_buffer_is_refetched() -> None:
    s = SymbolSync(futures=False, depth=100)
    s.on_diff(Diff(200, 210, None, [], []))
    assert s.on_snapshot(150, SNAP_BIDS, SNAP_ASKS) is True
    assert s.resyncs == {"stale_snapshot": 1}
    assert not s.loaded
    assert s.on_snapshot(205, SNAP_BIDS, SNAP_ASKS) is False
    assert s.synced
    assert s.last_update_id == 210


def test_a_crossed_book_resyncs_never_repairs() -> None:
    s = synced(futures=False)
    assert s.on_diff(Diff(101, 101, None, [("100.50", "1")], [])) is True
    assert s.state is State.RESYNCING
    assert s.resyncs == {"crossed": 1}
    assert s.book.top(5) == ([], [])


def test_pruned_levels_leave_a_truthful_prefix() -> None:
    s = SymbolSync(futures=False, depth=2, snapshot_limit=1000)
    s.on_diff(Diff(1, 1, None, [], []))
    s.on_snapshot(1, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1")])
    s.on_diff(Diff(2, 2, None, [("9", "0")], []))
    assert s.synced
    s.on_diff(Diff(3, 3, None, [("7", "5")], []))  # beyond the known region: ignored
    assert s.book.top(5)[0] == [("10", "1")]
    s.on_diff(Diff(4, 4, None, [("9.5", "2")], []))
    assert s.book.top(5)[0] == [("10", "1"), ("9.5", "2")]


def test_a_bad_price_resyncs() -> None:
    s = synced(futures=False)
    s.on_diff(Diff(101, 101, None, [], []))
    assert s.on_diff(Diff(102, 102, None, [("abc", "1")], [])) is True
    assert s.resyncs == {"invalid": 1}
