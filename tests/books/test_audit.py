"""Book audits: aligning a fresh snapshot with a synced book, and comparing them (pure)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refbook import TrueBook, TrueDiff, fmt_price, fmt_qty, history

from marketd.books.audit import (
    BEHIND,
    MISMATCH,
    OK,
    RESYNCED,
    SKIPPED,
    UNALIGNED,
    Audit,
    AuditResult,
    LevelDiff,
    compare,
)
from marketd.books.book import Book
from marketd.books.service import Books
from marketd.books.sync import State, SymbolSync
from marketd.config.books import BookSettings
from marketd.config.settings import Settings
from marketd.data.events import DepthDiff
from marketd.data.records import Market

START = TrueBook(
    bids={10000: 1, 9990: 2, 9980: 3, 9970: 4},
    asks={10010: 1, 10020: 2, 10030: 3, 10040: 4},
    last_update_id=1000,
)
# Ten diffs near the best (no crossing): level changes, a deletion, a new level.
CHANGES: list[list[tuple[bool, int, int]]] = [
    [(True, 10000, 5)],
    [(False, 10010, 0), (False, 10015, 7)],
    [(True, 9990, 0)],
    [(True, 10005, 2), (False, 10020, 9)],
    [],
    [(False, 10030, 1)],
    [(True, 9980, 8), (True, 9975, 1)],
    [(False, 10015, 3)],
    [(True, 10005, 0)],
    [(False, 10012, 6)],
]


def scenario(*, futures: bool) -> tuple[list[TrueBook], list[TrueDiff]]:
    skips = [0, 2, 1, 0, 3, 1, 0, 2, 0, 1] if futures else [0] * len(CHANGES)
    return history(START, CHANGES, skips)


def live_book(
    futures: bool,
    books: list[TrueBook],
    diffs: list[TrueDiff],
    upto: int,
    limit: int | None = None,
) -> SymbolSync:
    """A book synced from the snapshot ``books[0]``, then following diffs up to ``upto``;
    snapshots of ``limit`` levels (None: 1000), kept as the books stage keeps them."""
    sync = SymbolSync(chained=futures, depth=limit or 1000, snapshot_limit=limit or 1000)
    sync.on_diff(diffs[0].as_diff(futures=futures))
    sync.on_snapshot(books[0].last_update_id, *books[0].levels(limit))
    for d in diffs[1:upto]:
        sync.on_diff(d.as_diff(futures=futures))
    assert sync.synced
    assert sync.last_update_id == books[upto].last_update_id
    return sync


def feed(
    audit: Audit, sync: SymbolSync, diffs: list[TrueDiff], futures: bool
) -> AuditResult | None:
    """The books stage's order: the book takes each diff, then the audit."""
    result = None
    for d in diffs:
        diff = d.as_diff(futures=futures)
        sync.on_diff(diff)
        result = audit.on_diff(diff) or result
    return result


def snapshot(
    book: TrueBook, limit: int | None = None
) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]]]:
    bids, asks = book.levels(limit)
    return book.last_update_id, bids, asks


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_a_snapshot_behind_the_book_is_carried_up_to_it_and_agrees(futures: bool) -> None:
    books, diffs = scenario(futures=futures)
    sync = live_book(futures, books, diffs, 3)
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    # The request is out; the book goes on to 8; the snapshot was taken at 5.
    assert feed(audit, sync, diffs[3:8], futures) is None
    result = audit.on_snapshot(*snapshot(books[5]))
    assert result is not None
    assert result.result == OK
    assert result.update_id == books[8].last_update_id == sync.last_update_id
    assert result.snapshot_update_id == books[5].last_update_id
    assert result.levels_compared == len(books[8].bids) + len(books[8].asks)
    assert (result.differing, result.differences) == (0, ())
    assert audit.on_diff(diffs[8].as_diff(futures=futures)) is None  # over


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_a_snapshot_ahead_of_the_book_waits_for_the_book(futures: bool) -> None:
    books, diffs = scenario(futures=futures)
    sync = live_book(futures, books, diffs, 3)
    audit = Audit(Market.USDM, "BTCUSDT", sync)
    assert feed(audit, sync, diffs[3:4], futures) is None
    # Taken at 7: the book is at 4.
    assert audit.on_snapshot(*snapshot(books[7])) is None
    assert feed(audit, sync, diffs[4:6], futures) is None
    result = feed(audit, sync, diffs[6:7], futures)
    assert result is not None
    assert (result.result, result.update_id) == (OK, books[7].last_update_id)


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_a_snapshot_at_the_books_id_is_compared_at_once(futures: bool) -> None:
    books, diffs = scenario(futures=futures)
    sync = live_book(futures, books, diffs, 6)
    audit = Audit(Market.SPOT, "ETHUSDT", sync)
    result = audit.on_snapshot(*snapshot(books[6]))
    assert result is not None
    assert (result.result, result.update_id) == (OK, books[6].last_update_id)


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_a_wrong_level_is_a_mismatch_with_the_first_differing_levels(futures: bool) -> None:
    books, diffs = scenario(futures=futures)
    sync = live_book(futures, books, diffs, 4)
    # What a corrupted diff leaves: a wrong quantity, a level the exchange does not have.
    sync.book.bids.apply([("99.80", "9.000"), ("99.72", "1.000")])
    sync.book.asks.apply([("100.40", "0")])  # a level the book lost
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    assert feed(audit, sync, diffs[4:6], futures) is None
    result = audit.on_snapshot(*snapshot(books[5]))
    assert result is not None
    assert result.result == MISMATCH
    assert result.update_id == books[6].last_update_id
    assert result.differing == 3
    assert result.differences == (
        LevelDiff("bid", "99.80", "9.000", "3.000"),
        LevelDiff("bid", "99.72", "1.000", None),
        LevelDiff("ask", "100.40", None, "4.000"),
    )


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_a_snapshot_older_than_the_audit_gives_no_verdict(futures: bool) -> None:
    books, diffs = scenario(futures=futures)
    # Nothing buffered since the audit started: the diffs after the snapshot came before.
    sync = live_book(futures, books, diffs, 6)
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    result = audit.on_snapshot(*snapshot(books[3]))
    assert result is not None
    assert (result.result, result.reason) == (SKIPPED, BEHIND)
    # With diffs buffered that start after it: stale, it cannot be aligned.
    sync = live_book(futures, books, diffs, 6)
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    assert feed(audit, sync, diffs[6:9], futures) is None
    result = audit.on_snapshot(*snapshot(books[3]))
    assert result is not None
    assert (result.result, result.reason) == (SKIPPED, UNALIGNED)


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_a_gap_in_the_audits_diffs_gives_no_verdict(futures: bool) -> None:
    books, diffs = scenario(futures=futures)
    sync = live_book(futures, books, diffs, 3)
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    # The book lost sync on a gap: the audit ends there.
    result = feed(audit, sync, [diffs[3], diffs[5]], futures)
    assert sync.state is State.RESYNCING
    assert result is not None
    assert (result.result, result.reason) == (SKIPPED, RESYNCED)


@pytest.mark.parametrize("at", [4, 3], ids=["at the book", "behind, diffs to apply"])
def test_a_crossed_snapshot_is_no_verdict(at: int) -> None:
    """Not the exchange's book at any id: no verdict, and the book is left alone."""
    books, diffs = scenario(futures=False)
    sync = live_book(False, books, diffs, 3)
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    assert feed(audit, sync, diffs[3:4], False) is None
    last, bids, asks = snapshot(books[at])
    result = audit.on_snapshot(last, [("200.00", "1.000"), *bids], asks)
    assert result is not None
    assert (result.result, result.reason) == (SKIPPED, UNALIGNED)
    assert sync.synced


def test_levels_beyond_the_snapshots_depth_are_not_compared() -> None:
    """A snapshot of 3 levels a side knows nothing past its third price: a book that knows
    more (and differs there) still agrees; inside, any difference counts."""
    ours, theirs = Book(depth=1000), Book(depth=1000)
    bids = [(fmt_price(p), fmt_qty(q)) for p, q in ((10000, 1), (9990, 2), (9980, 3), (9970, 4))]
    asks = [(fmt_price(p), fmt_qty(q)) for p, q in ((10010, 1), (10020, 2), (10030, 3))]
    ours.load(7, [*bids[:3], ("99.60", "5.000")], asks, limit=1000)  # 99.60: not 99.70
    theirs.load(7, bids[:3], asks, limit=3)  # both sides end at their third level
    assert compare(ours, theirs) == (6, 0, [])
    # The snapshot's side holds fewer than its limit: it is complete, every level counts.
    theirs.load(7, bids, asks, limit=5)
    compared, differing, first = compare(ours, theirs)
    assert (compared, differing) == (8, 2)
    assert first == [
        LevelDiff("bid", "99.70", None, "4.000"),
        LevelDiff("bid", "99.60", "5.000", None),
    ]
    # A deeper bound of ours does not widen the region either: the shallower one counts.
    ours.load(7, bids[:2], asks, limit=2)
    theirs.load(7, [*bids[:2], ("99.85", "1.000")], asks, limit=1000)  # 99.85 is past ours
    assert compare(ours, theirs)[:2] == (2 + 3, 0)


def test_quantities_are_compared_as_numbers() -> None:
    ours, theirs = Book(depth=10), Book(depth=10)
    ours.load(1, [("1.00", "2.50000000")], [("1.01", "3")], limit=10)
    theirs.load(1, [("1.0", "2.5")], [("1.010", "3.000")], limit=10)
    assert compare(ours, theirs) == (2, 0, [])


BIDS = [("100.00", "1"), ("99.00", "1"), ("98.00", "1")]
ASKS = [("101.00", "1"), ("102.00", "1"), ("103.00", "1")]


def thinned() -> SymbolSync:
    """Three levels a side kept; then the best bid goes: the book knows bids 99..98."""
    sync = SymbolSync(chained=False, depth=3, snapshot_limit=3)
    sync.on_diff(DepthDiff(11, 11, None, [], []))
    sync.on_snapshot(10, BIDS, ASKS)
    sync.on_diff(DepthDiff(12, 12, None, [("100.00", "0")], []))
    assert sync.synced
    assert sync.book.top(5) == (BIDS[1:], ASKS)
    return sync


def test_after_an_ok_the_book_takes_the_fresh_region() -> None:
    """The book's region shrank (99..98); the fresh snapshot reaches 97: after an ok the
    book knows what the snapshot knows, and nothing past it."""
    sync = thinned()
    audit = Audit(Market.SPOT, "X", sync)
    deeper = [("99.00", "1"), ("98.00", "1"), ("97.00", "4")]
    result = audit.on_snapshot(12, deeper, ASKS)
    assert result is not None
    assert (result.result, result.levels_compared) == (OK, 2 + 3)
    audit.adopt()
    assert sync.book.top(5) == (deeper, ASKS)
    assert sync.book.bids.bound == sync.book.bids.key("97.00")
    sync.on_diff(DepthDiff(13, 13, None, [("96.00", "1")], []))  # past 97: still unknown
    assert sync.book.top(5) == (deeper, ASKS)


def test_a_level_missing_inside_the_region_is_a_mismatch() -> None:
    sync = thinned()
    audit = Audit(Market.SPOT, "X", sync)
    result = audit.on_snapshot(12, [("99.00", "1"), ("98.50", "2"), ("98.00", "1")], ASKS)
    assert result is not None
    assert result.result == MISMATCH
    assert result.differences == (LevelDiff("bid", "98.50", None, "2"),)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    futures=st.booleans(),
    start=st.integers(1, 9),
    data=st.data(),
)
def test_a_true_book_is_never_found_wrong(futures: bool, start: int, data: st.DataObject) -> None:
    """Whatever snapshot comes back (behind, at, ahead of the book, cut at any limit), an
    audit of a true book never says mismatch, and says ok when it can align."""
    books, diffs = scenario(futures=futures)
    limit = data.draw(st.sampled_from([1, 2, 3, None]), label="limit")
    sync = live_book(futures, books, diffs, start, limit)
    audit = Audit(Market.SPOT, "BTCUSDT", sync)
    ahead = data.draw(st.integers(0, len(diffs) - start), label="diffs before the snapshot")
    result = feed(audit, sync, diffs[start : start + ahead], futures)
    assert result is None
    at = data.draw(st.integers(max(0, start - 2), len(books) - 1), label="snapshot at")
    result = audit.on_snapshot(*snapshot(books[at], limit))
    if result is None:
        result = feed(audit, sync, diffs[start + ahead :], futures)
    if at >= start:  # taken after the audit started: it aligns
        assert result is not None
        assert result.result == OK, result
    else:
        assert result is None or result.result != MISMATCH, result


def test_levels_beyond_the_kept_depth_are_not_compared() -> None:
    """A book keeping 2 levels a side is audited on those 2: the snapshot's deeper levels
    (which the book pruned) are neither compared nor kept after the audit."""
    sync = SymbolSync(chained=False, depth=2, snapshot_limit=1000)
    sync.on_diff(DepthDiff(11, 11, None, [], []))
    sync.on_snapshot(10, [*BIDS, ("97.00", "1")], ASKS)
    assert sync.book.top(5) == (BIDS[:2], ASKS[:2])
    audit = Audit(Market.SPOT, "X", sync)
    fresh = [*BIDS[:2], ("98.00", "5"), ("96.00", "1")]  # deeper levels changed meanwhile
    result = audit.on_snapshot(11, fresh, [*ASKS[:2], ("102.50", "1")])
    assert result is not None
    assert (result.result, result.levels_compared) == (OK, 4)
    audit.adopt()
    assert sync.book.top(5) == (BIDS[:2], ASKS[:2])


def test_the_books_stage_keeps_no_more_levels_than_a_snapshot_shows() -> None:
    books = Books(Settings(books=BookSettings(depth=500, snapshot_limit=100)))
    assert {s.book.depth for s in books.syncs.values()} == {100}
    books = Books(Settings(books=BookSettings(depth=50, snapshot_limit=100)))
    assert {s.book.depth for s in books.syncs.values()} == {50}
