"""The Binance sync rules, case by case (pure)."""

from __future__ import annotations

import pytest

from marketd.books.book import Book, BookError, price_key
from marketd.books.sync import State, SymbolSync
from marketd.data.events import DepthDiff

SNAP_BIDS = [("100.00", "1.0"), ("99.50", "2.0")]
SNAP_ASKS = [("100.50", "1.5"), ("101.00", "3.0")]


def synced(*, futures: bool, last: int = 100) -> SymbolSync:
    s = SymbolSync(chained=futures, depth=100, snapshot_limit=1000)
    assert (
        s.on_diff(DepthDiff(last - 5, last - 1, None if not futures else last - 7, [], [])) is True
    )
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
    s.on_diff(DepthDiff(95, 100, None, [("1.0", "1")], []))  # u <= lastUpdateId: dropped
    assert not s.synced
    s.on_diff(DepthDiff(99, 103, None, [("99.50", "0")], []))  # U <= 101 <= u
    assert s.synced
    assert s.last_update_id == 103
    assert s.book.top(5)[0] == [("100.00", "1.0")]
    s.on_diff(DepthDiff(100, 103, None, [], []))  # duplicate after a reconnect: dropped
    s.on_diff(DepthDiff(104, 104, None, [], [("100.50", "9")]))
    assert s.synced
    assert s.book.top(1)[1] == [("100.50", "9")]
    assert s.on_diff(DepthDiff(106, 107, None, [], [])) is True  # U > id + 1: gap
    assert s.state is State.RESYNCING
    assert s.resyncs == {"gap": 1}
    assert s.book.top(5) == ([], [])


def test_futures_first_diff_may_bridge_by_pu() -> None:
    s = synced(futures=True)
    s.on_diff(DepthDiff(103, 105, 100, [("99.00", "4")], []))  # U > lastUpdateId, pu == it
    assert s.synced
    assert s.last_update_id == 105
    s.on_diff(DepthDiff(109, 110, 105, [], []))  # ids may skip; pu chains
    assert s.synced
    assert s.on_diff(DepthDiff(112, 113, 111, [], [])) is True  # pu != previous u
    assert s.resyncs == {"gap": 1}


def test_futures_first_diff_straddling_the_snapshot() -> None:
    s = synced(futures=True)
    s.on_diff(DepthDiff(90, 99, 88, [], []))  # u < lastUpdateId: dropped
    s.on_diff(DepthDiff(98, 100, 97, [], []))  # U <= lastUpdateId <= u
    assert s.synced


def test_a_snapshot_older_than_the_buffer_is_refetched() -> None:
    s = SymbolSync(chained=False, depth=100)
    s.on_diff(DepthDiff(200, 210, None, [], []))
    assert s.on_snapshot(150, SNAP_BIDS, SNAP_ASKS) is True
    assert s.resyncs == {"stale_snapshot": 1}
    assert not s.loaded
    assert s.on_snapshot(205, SNAP_BIDS, SNAP_ASKS) is False
    assert s.synced
    assert s.last_update_id == 210


def test_a_crossed_book_resyncs_never_repairs() -> None:
    s = synced(futures=False)
    assert s.on_diff(DepthDiff(101, 101, None, [("100.50", "1")], [])) is True
    assert s.state is State.RESYNCING
    assert s.resyncs == {"crossed": 1}
    assert s.book.top(5) == ([], [])


def test_pruned_levels_leave_a_truthful_prefix() -> None:
    s = SymbolSync(chained=False, depth=2, snapshot_limit=1000)
    s.on_diff(DepthDiff(1, 1, None, [], []))
    s.on_snapshot(1, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1")])
    s.on_diff(DepthDiff(2, 2, None, [("9", "0")], []))
    assert s.synced
    s.on_diff(DepthDiff(3, 3, None, [("7", "5")], []))  # beyond the known region: ignored
    assert s.book.top(5)[0] == [("10", "1")]
    s.on_diff(DepthDiff(4, 4, None, [("9.5", "2")], []))
    assert s.book.top(5)[0] == [("10", "1"), ("9.5", "2")]


def test_a_bad_price_resyncs() -> None:
    s = synced(futures=False)
    s.on_diff(DepthDiff(101, 101, None, [], []))
    assert s.on_diff(DepthDiff(102, 102, None, [("abc", "1")], [])) is True
    assert s.resyncs == {"invalid": 1}


def test_a_new_machine_waits_with_nothing_counted() -> None:
    s = SymbolSync(chained=False, depth=5)
    assert (s.state, s.loaded, s.pending, s.synced) == (State.SYNCING, False, False, False)
    assert (s.applied, s.buffered, s.dropped, s.snapshots, s.resyncs) == (0, 0, 0, 0, {})
    assert (s.event_time_ms, s.received_ns) == (0, 0)
    # Documented defaults (BookSettings passes its own; these serve direct users).
    assert (s.snapshot_limit, s.min_levels, s.max_buffered) == (1000, 0, 10_000)
    assert (
        DepthDiff(1, 2, None, [], []).event_time_ms
        == DepthDiff(1, 2, None, [], []).received_ns
        == 0
    )


def test_the_minimum_depth_is_capped_by_the_depth_and_the_snapshot_limit() -> None:
    assert SymbolSync(chained=False, depth=5, snapshot_limit=100, min_levels=20).min_levels == 5
    assert SymbolSync(chained=False, depth=50, snapshot_limit=10, min_levels=20).min_levels == 10
    assert SymbolSync(chained=False, depth=50, snapshot_limit=100, min_levels=20).min_levels == 20


def test_a_synced_book_carries_the_event_time_of_its_last_diff() -> None:
    s = synced(futures=True)
    s.on_diff(DepthDiff(99, 101, 98, [], [], event_time_ms=1_700_000_000_001, received_ns=5))
    assert (s.synced, s.event_time_ms, s.received_ns, s.applied) == (True, 1_700_000_000_001, 5, 1)
    s.on_diff(DepthDiff(102, 104, 101, [("99.9", "1")], [], event_time_ms=1_700_000_000_002))
    assert (s.event_time_ms, s.received_ns, s.applied) == (1_700_000_000_002, 0, 2)
    dropped = s.dropped
    s.on_diff(DepthDiff(100, 104, 101, [], [], event_time_ms=9))  # a duplicate: not applied
    assert (s.event_time_ms, s.applied, s.dropped) == (1_700_000_000_002, 2, dropped + 1)


@pytest.mark.parametrize("futures", [False, True])
def test_a_repeated_last_diff_after_a_reconnect_is_dropped_not_a_gap(futures: bool) -> None:
    s = synced(futures=futures)
    s.on_diff(DepthDiff(99, 103, 98 if futures else None, [], []))
    assert s.synced
    dropped = s.dropped
    # The reconnect overlap ends exactly at the book's id: everything in it is known.
    assert s.on_diff(DepthDiff(99, 103, 98 if futures else None, [("1", "1")], [])) is False
    assert s.on_diff(DepthDiff(97, 102, 96 if futures else None, [], [])) is False
    assert s.synced
    assert s.dropped == dropped + 2
    assert s.resyncs == {}
    assert s.book.top(5)[0] == [("100.00", "1.0"), ("99.50", "2.0")]


def test_the_diff_past_a_gap_is_kept_for_the_next_snapshot() -> None:
    s = synced(futures=False)
    s.on_diff(DepthDiff(99, 103, None, [], []))
    assert (
        s.on_diff(DepthDiff(106, 107, None, [("99.00", "7")], [])) is True
    )  # gap: 104-105 missing
    assert (s.state, s.pending, s.buffered) == (State.RESYNCING, True, 2)
    # A snapshot at 105 is bridged by the kept diff 106-107 without waiting for another.
    assert s.on_snapshot(105, SNAP_BIDS, SNAP_ASKS) is False
    assert s.synced
    assert s.last_update_id == 107
    assert s.book.top(5)[0] == [("100.00", "1.0"), ("99.50", "2.0"), ("99.00", "7")]
    s.on_diff(DepthDiff(109, 109, None, [], []))
    s.on_diff(DepthDiff(111, 111, None, [], []))  # a second gap (never in sync in between)
    assert s.resyncs == {"gap": 2}


def test_consecutive_spot_diffs_buffer_and_a_snapshot_amid_them_syncs() -> None:
    """Real REST latency: the snapshot is older than the newest buffered diff."""
    s = SymbolSync(chained=False, depth=100)
    asks = [("101.00", "1")]
    assert s.on_diff(DepthDiff(11, 20, None, [("100.00", "1")], asks)) is True
    for first in range(21, 61, 10):  # 21-30, 31-40, ... each continues the last
        assert s.on_diff(DepthDiff(first, first + 9, None, [("100.00", str(first))], asks)) is False
    assert (s.buffered, s.dropped) == (5, 0)
    assert s.on_snapshot(35, [("99.00", "1")], asks) is False  # taken inside 31-40
    assert s.synced
    assert s.last_update_id == 60
    assert s.book.top(5)[0] == [("100.00", "51"), ("99.00", "1")]
    assert (s.applied, s.dropped, s.snapshots) == (3, 2, 1)  # 11-20, 21-30: older


def test_futures_diffs_chain_by_pu_in_the_buffer() -> None:
    s = SymbolSync(chained=True, depth=100)
    s.on_diff(DepthDiff(10, 12, 9, [], []))
    s.on_diff(DepthDiff(15, 18, 12, [("1.5", "1")], []))  # ids skip; pu chains
    s.on_diff(DepthDiff(19, 20, 18, [("1.6", "1")], []))
    assert (s.buffered, s.dropped) == (3, 0)
    assert s.on_snapshot(16, [("1.0", "1")], [("2.0", "1")]) is False
    assert s.synced
    assert s.book.top(5)[0] == [("1.6", "1"), ("1.5", "1"), ("1.0", "1")]


def test_a_gap_inside_the_buffer_drops_what_came_before_it() -> None:
    s = SymbolSync(chained=False, depth=100)
    s.on_diff(DepthDiff(1, 5, None, [], []))
    s.on_diff(DepthDiff(3, 4, None, [], []))  # older than the buffer's end: a duplicate
    s.on_diff(DepthDiff(6, 9, None, [], []))
    assert s.on_diff(DepthDiff(11, 15, None, [], [])) is False  # 10 missing; request pending
    assert (s.buffered, s.dropped, len(s.buffer)) == (3, 3, 1)
    s.on_diff(DepthDiff(14, 15, None, [], []))  # ends where the buffer ends: a duplicate
    s.on_diff(DepthDiff(13, 14, None, [], []))
    assert (s.buffered, s.dropped, len(s.buffer)) == (3, 5, 1)
    # Snapshots older than the surviving diffs are stale and asked again; the diff that
    # showed it is kept, as the buffer's last.
    assert s.on_snapshot(9, SNAP_BIDS, SNAP_ASKS) is True
    assert s.on_snapshot(8, SNAP_BIDS, SNAP_ASKS) is True
    assert (s.resyncs, s.snapshots, s.buffered, len(s.buffer)) == ({"stale_snapshot": 2}, 2, 5, 1)
    assert s.on_snapshot(12, SNAP_BIDS, SNAP_ASKS) is False
    assert (s.synced, s.last_update_id, s.snapshots) == (True, 15, 3)


def test_the_buffer_is_capped_dropping_the_oldest() -> None:
    s = SymbolSync(chained=False, depth=100, max_buffered=3)
    for i in range(1, 8):
        s.on_diff(DepthDiff(i, i, None, [("1", str(i))], []))
    assert [d.final for d in s.buffer] == [5, 6, 7]
    assert (s.buffered, s.dropped) == (7, 4)
    assert s.on_snapshot(5, [], []) is False
    assert s.synced
    assert s.book.top(1)[0] == [("1", "7")]


def test_a_failed_snapshot_is_asked_for_again() -> None:
    s = SymbolSync(chained=False, depth=100)
    assert s.on_diff(DepthDiff(1, 1, None, [], [])) is True
    assert s.on_diff(DepthDiff(2, 2, None, [], [])) is False  # one request at a time
    assert s.on_snapshot_failed() is True
    assert s.pending
    assert s.on_snapshot_failed() is True  # and again, as often as it fails
    assert s.on_snapshot(1, SNAP_BIDS, SNAP_ASKS) is False
    assert s.synced
    assert s.on_snapshot_failed() is False  # a late failure once synced: nothing to do
    assert not s.pending


def test_a_failed_request_while_a_snapshot_is_loaded_waits_for_its_bridge() -> None:
    s = synced(futures=False)  # loaded at 100, no bridging diff yet
    assert s.on_snapshot_failed() is False
    assert (s.pending, s.loaded) == (False, True)
    s.on_diff(DepthDiff(101, 101, None, [], []))
    assert s.synced


def test_a_snapshot_for_a_synced_book_is_ignored() -> None:
    s = synced(futures=False)
    s.on_diff(DepthDiff(99, 103, None, [], []))
    assert s.on_snapshot(200, [("1", "1")], [("2", "1")]) is False
    assert (s.synced, s.last_update_id, s.snapshots, s.pending) == (True, 103, 1, False)
    assert s.book.top(1)[0] == [("100.00", "1.0")]


def test_an_invalid_snapshot_is_asked_for_again() -> None:
    s = SymbolSync(chained=False, depth=100)
    s.on_diff(DepthDiff(1, 1, None, [], []))
    assert s.on_snapshot(1, [("1", "x")], []) is True
    assert (s.resyncs, s.snapshots, s.loaded, s.pending) == ({"invalid": 1}, 0, False, True)
    assert s.on_snapshot(1, [], [("1.5.", "1")]) is True
    assert s.resyncs == {"invalid": 2}
    assert s.book.top(5) == ([], [])
    assert s.on_snapshot(0, SNAP_BIDS, SNAP_ASKS) is False  # the kept diff 1 bridges it
    assert (s.synced, s.snapshots, s.last_update_id) == (True, 1, 1)


def test_a_book_thinner_than_the_minimum_resyncs() -> None:
    s = SymbolSync(chained=False, depth=10, snapshot_limit=2, min_levels=2)
    s.on_diff(DepthDiff(1, 1, None, [], []))
    s.on_snapshot(1, SNAP_BIDS, SNAP_ASKS)  # two levels a side: both cut at the limit
    s.on_diff(DepthDiff(2, 2, None, [("99.80", "1")], []))
    assert s.synced
    s.on_diff(DepthDiff(3, 3, None, [("100.00", "0")], []))  # bids: 99.80, 99.50 — still 2
    assert s.synced
    assert s.on_diff(DepthDiff(4, 4, None, [("99.80", "0")], [])) is True  # 1 bid known
    assert (s.state, s.resyncs) == (State.RESYNCING, {"shallow": 1})
    assert s.book.top(5) == ([], [])
    # Without a minimum the same book stays synced.
    lax = SymbolSync(chained=False, depth=10, snapshot_limit=2)
    lax.on_diff(DepthDiff(1, 1, None, [], []))
    lax.on_snapshot(1, SNAP_BIDS, SNAP_ASKS)
    for i, bid in ((2, "100.00"), (3, "99.50")):
        lax.on_diff(DepthDiff(i, i, None, [(bid, "0")], []))
    assert lax.synced
    assert lax.book.top(5) == ([], SNAP_ASKS)


def test_a_crossing_diff_while_bridging_keeps_the_later_buffer() -> None:
    s = SymbolSync(chained=False, depth=100)
    s.on_diff(DepthDiff(1, 1, None, [], []))
    s.on_diff(DepthDiff(2, 2, None, [("200", "1")], []))  # crosses the snapshot's asks
    s.on_diff(DepthDiff(3, 3, None, [], []))
    s.on_diff(DepthDiff(4, 4, None, [], []))
    assert s.on_snapshot(1, SNAP_BIDS, SNAP_ASKS) is True
    assert s.resyncs == {"crossed": 1}
    assert [d.final for d in s.buffer] == [3, 4]
    assert s.on_snapshot(3, SNAP_BIDS, SNAP_ASKS) is False
    assert (s.synced, s.last_update_id) == (True, 4)


def test_spot_bridging_drops_the_diff_ending_at_the_snapshot_futures_applies_it() -> None:
    spot = synced(futures=False)  # snapshot 100
    dropped = spot.dropped
    spot.on_diff(DepthDiff(98, 100, None, [("99.50", "0")], []))
    assert (spot.synced, spot.dropped) == (False, dropped + 1)
    fut = synced(futures=True)
    fut.on_diff(DepthDiff(98, 100, 97, [("99.50", "0")], []))  # U <= 100 <= u
    assert fut.synced
    assert fut.book.top(5)[0] == [("100.00", "1.0")]
