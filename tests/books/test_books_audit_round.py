"""The books stage's audit rounds: which book, when, what a verdict does (no network:
snapshots are handed in as the scheduler would)."""

from __future__ import annotations

import trio
import trio.testing

from marketd.books.audit import MISMATCH, OK, SKIPPED, TIMEOUT, AuditResult, LevelDiff
from marketd.books.service import Books
from marketd.books.sync import Reason
from marketd.config.settings import Settings
from marketd.data.events import DepthDiff, DepthSnapshot
from marketd.data.records import Market

SNAPSHOT = DepthSnapshot(
    last_update_id=100,
    bids=[("100.00", "1.0"), ("99.50", "2.0")],
    asks=[("100.50", "1.5"), ("101.00", "2.5")],
)
SPOT = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]  # the default subscription


def synced_books() -> tuple[Books, list[AuditResult]]:
    results: list[AuditResult] = []
    books = Books(Settings(), on_audit=results.append)
    for symbol in SPOT:
        sync = books.syncs[(Market.SPOT, symbol)]
        sync.on_diff(DepthDiff(101, 101, None, [], []))
        books._deliver(Market.SPOT, symbol, SNAPSHOT)
        assert sync.synced
    return books, results


def snapshot_at(last: int) -> DepthSnapshot:
    return DepthSnapshot(last_update_id=last, bids=SNAPSHOT.bids, asks=SNAPSHOT.asks)


def diff(books: Books, symbol: str, first: int, bids: list[tuple[str, str]]) -> None:
    """What ``take`` does with one depth diff of ``symbol``."""
    key = (Market.SPOT, symbol)
    d = DepthDiff(first, first, None, bids, [])
    if books.syncs[key].on_diff(d):
        books.scheduler.request(*key)
    if (audit := books.audits.get(key)) is not None:
        books._audit_done(audit, audit.on_diff(d))


async def test_rounds_audit_the_synced_books_in_turn_one_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    books, results = synced_books()
    assert books.syncs[(Market.SPOT, "ETHUSDT")].discard(Reason.GAP)  # passed over
    assert books.audit_round(0.0) == [(Market.SPOT, "BTCUSDT")]
    assert books.audit_round(1.0) == []  # one audit per market at a time
    books._deliver_audit(Market.SPOT, "BTCUSDT", snapshot_at(101))
    assert [r.result for r in results] == [OK]
    # A sync snapshot is queued (ETHUSDT's resync): the lane is busy, the round deferred.
    books.scheduler.request(Market.SPOT, "ETHUSDT")
    assert books.audit_round(2.0) == []
    assert books.audits_deferred == {"spot": 1}
    books.scheduler.lanes[Market.SPOT].queue.clear()
    books.scheduler.lanes[Market.SPOT].queued.clear()
    started = []
    for t in range(3, 7):
        [key] = books.audit_round(float(t))
        started.append(key[1])
        books._deliver_audit(*key, snapshot_at(101))
    assert started == ["BNBUSDT", "SOLUSDT", "XRPUSDT", "BTCUSDT"]
    assert books.statistics().audits == {("spot", OK): 5}


async def test_a_mismatch_resyncs_the_book_and_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    books, results = synced_books()
    [key] = books.audit_round(0.0)
    assert key == (Market.SPOT, "BTCUSDT")
    diff(books, "BTCUSDT", 102, [("99.50", "2.5")])  # the book and the audit take it
    # The exchange's snapshot at 101 says 99.50 is 3.0: 102 sets it to 2.5 on both.
    theirs = DepthSnapshot(101, [("100.00", "1.0"), ("99.50", "3.0")], SNAPSHOT.asks)
    books._deliver_audit(Market.SPOT, "BTCUSDT", theirs)
    assert [r.result for r in results] == [OK]
    # Now a book that is wrong: the snapshot has a level the book does not.
    [key] = books.audit_round(1.0)
    assert key == (Market.SPOT, "ETHUSDT")
    theirs = DepthSnapshot(101, [*SNAPSHOT.bids, ("99.40", "1.0")], SNAPSHOT.asks)
    books._deliver_audit(Market.SPOT, "ETHUSDT", theirs)
    found = results[-1]
    assert (found.result, found.symbol, found.update_id) == (MISMATCH, "ETHUSDT", 101)
    assert found.differences == (LevelDiff("bid", "99.40", None, "1.0"),)
    eth = books.syncs[key]
    assert not eth.synced
    assert eth.resyncs == {"audit": 1}
    assert "ETHUSDT" in books.scheduler.lanes[Market.SPOT].queued  # its resync snapshot
    st = books.statistics()
    assert st.audits == {("spot", OK): 1, ("spot", MISMATCH): 1}
    assert st.resyncs == {"audit": 1}


async def test_an_audit_with_no_verdict_in_time_is_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    books, results = synced_books()
    [key] = books.audit_round(0.0)
    books._deliver_audit(*key, snapshot_at(105))  # ahead: the book must reach 105 first
    assert results == []
    assert books.audit_round(10.0) == []  # still under way
    assert books.audit_round(31.0) == [(Market.SPOT, "ETHUSDT")]
    assert [(r.result, r.reason, r.symbol) for r in results] == [(SKIPPED, TIMEOUT, "BTCUSDT")]
    assert books.syncs[key].synced  # no verdict: the book stays
