"""Shallow first, deeper later: the sync and deepening limits, what a shallow book knows and
how an audit-like deepening checks and extends it, and the books stage's deepening rounds
(no network: snapshots are handed in as the scheduler would)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from marketd.books.audit import DEEPEN, MISMATCH, OK, Audit
from marketd.books.book import UNBOUNDED, Book
from marketd.books.scheduler import depth_tiers, sync_limit
from marketd.books.service import DEEPEN_RETRY_S, DEEPEN_SETTLE_S, Books
from marketd.books.sync import Reason, SymbolSync
from marketd.config.books import BookSettings
from marketd.config.settings import Settings, Subscription
from marketd.data.events import DepthDiff, DepthSnapshot, Level
from marketd.data.records import Market
from marketd.exchanges import adapter

SPOT, USDM = adapter(Market.SPOT), adapter(Market.USDM)


# -- the limits ----------------------------------------------------------------------------


def test_books_sync_from_the_deepest_snapshot_weighing_what_the_published_levels_weigh() -> None:
    s = BookSettings()  # publish 20 levels, snapshot_limit 1000
    assert (sync_limit(s, SPOT), sync_limit(s, USDM)) == (100, 50)  # weight 5 and 2
    wider = BookSettings(publish_levels=150)  # spot 101-500 weighs 25, USD-M 101-500 10
    assert (sync_limit(wider, SPOT), sync_limit(wider, USDM)) == (500, 500)
    # Explicit: rounded up to the deepest limit of its weight (the same cost, a limit
    # USD-M serves), at least publish_levels, at most what the deep snapshots ask for.
    assert sync_limit(BookSettings(sync_snapshot_limit=10), SPOT) == 100
    assert sync_limit(BookSettings(sync_snapshot_limit=300), SPOT) == 500
    assert sync_limit(BookSettings(sync_snapshot_limit=300), USDM) == 500
    assert sync_limit(BookSettings(sync_snapshot_limit=1000), SPOT) == 1000
    assert sync_limit(BookSettings(sync_snapshot_limit=5000), USDM) == 1000
    assert sync_limit(BookSettings(snapshot_limit=100), USDM) == 50
    assert sync_limit(BookSettings(snapshot_limit=30), SPOT) == 30
    assert sync_limit(BookSettings(snapshot_limit=300, sync_snapshot_limit=200), SPOT) == 300


def test_deepening_steps_are_the_deepest_limit_of_each_weight_step() -> None:
    assert depth_tiers(SPOT, 100, 1000) == (100, 500, 1000)
    assert depth_tiers(USDM, 50, 1000) == (50, 100, 500, 1000)  # limits USD-M serves
    assert depth_tiers(SPOT, 100, 5000) == (100, 500, 1000, 5000)
    assert depth_tiers(SPOT, 20, 300) == (20, 100, 300)
    assert depth_tiers(USDM, 1000, 1000) == (1000,)


def test_the_lanes_sync_shallow_and_deepen_to_the_snapshot_limit() -> None:
    books = Books(Settings())
    spot, usdm = books.scheduler.lanes[Market.SPOT], books.scheduler.lanes[Market.USDM]
    assert (spot.sync_limit, spot.sync_weight, spot.deep_limit, spot.deep_weight) == (
        100, 5, 1000, 50,
    )  # fmt: skip
    assert (usdm.sync_limit, usdm.sync_weight, usdm.deep_limit, usdm.deep_weight) == (
        50, 2, 1000, 20,
    )  # fmt: skip
    assert (spot.tiers, usdm.tiers) == ((100, 500, 1000), (50, 100, 500, 1000))
    sync = books.syncs[(Market.SPOT, "BTCUSDT")]
    assert (sync.snapshot_limit, sync.book.depth, sync.min_levels) == (100, 1000, 20)
    # Full depth from the start: nothing to deepen.
    full = Books(Settings(books=BookSettings(sync_snapshot_limit=1000)))
    assert full.scheduler.lanes[Market.SPOT].tiers == (1000,)


# -- a shallow book ------------------------------------------------------------------------


def levels(prices: list[str], qty: str = "1") -> list[Level]:
    return [(p, qty) for p in prices]


BIDS6 = ["100", "99", "98", "97", "96", "95"]
ASKS6 = ["101", "102", "103", "104", "105", "106"]


def synced(limit: int, *, tiers: tuple[int, ...] = (), min_levels: int = 0) -> SymbolSync:
    """A spot book synced at id 11 from a snapshot of the exchange's 6-level book cut at
    ``limit`` levels."""
    sync = SymbolSync(
        chained=False, depth=1000, snapshot_limit=limit, min_levels=min_levels, tiers=tiers
    )
    sync.on_diff(DepthDiff(11, 11, None, [], []))
    sync.on_snapshot(10, levels(BIDS6[:limit]), levels(ASKS6[:limit]))
    assert sync.synced
    return sync


def test_a_shallow_book_keeps_only_what_its_snapshot_range_can_tell() -> None:
    sync = synced(3)
    book = sync.book
    assert (book.limit, book.known_levels()) == (3, 3)
    assert book.bids.bound != UNBOUNDED
    assert book.asks.bound != UNBOUNDED
    # Inside the range: a new level between known ones, a change, a deletion: all kept.
    sync.on_diff(DepthDiff(12, 12, None, [("99.5", "4"), ("98", "0")], [("102", "7")]))
    # Beyond it (the exchange's 4th level and a new one): unknown territory, ignored.
    sync.on_diff(DepthDiff(13, 13, None, [("97", "9"), ("96.5", "1")], [("104", "2")]))
    assert book.top(10) == (
        [("100", "1"), ("99.5", "4"), ("99", "1")],
        [("101", "1"), ("102", "7"), ("103", "1")],
    )
    assert book.known_levels() == 3
    # A side the snapshot showed in full is complete: no bound, nothing unknown.
    complete = SymbolSync(chained=False, depth=1000, snapshot_limit=100)
    complete.on_diff(DepthDiff(11, 11, None, [], []))
    complete.on_snapshot(10, levels(BIDS6), levels(ASKS6))
    assert complete.book.known_levels() is None


def test_a_book_that_ran_out_of_levels_resyncs_one_step_deeper_other_losses_from_the_base() -> None:
    sync = synced(3, tiers=(3, 5, 8), min_levels=2)
    # Two bids deleted: one known bid left on a bounded side, fewer than 2.
    assert sync.on_diff(DepthDiff(12, 12, None, [("100", "0"), ("99", "0")], []))
    assert sync.resyncs[Reason.SHALLOW.value] == 1
    assert sync.snapshot_limit == 5  # the next step above the 3 levels it had
    sync.on_snapshot(11, levels(BIDS6[2:7]), levels(ASKS6[:5]))
    sync.on_diff(DepthDiff(12, 12, None, [], []))
    assert sync.synced
    assert sync.book.limit == 5
    # A gap: resynced from the base limit again (a mass resync stays cheap).
    assert sync.on_diff(DepthDiff(20, 20, None, [], []))
    assert sync.snapshot_limit == 3
    # A book deepened to the last step that still runs out: resynced at the last step.
    deep = synced(3, tiers=(3, 5, 6), min_levels=2)
    deep.book.limit = 6  # as after a deepening to 6
    assert deep.on_diff(DepthDiff(12, 12, None, [("100", "0"), ("99", "0")], []))
    assert deep.snapshot_limit == 6
    # Discarded by an audit: the base limit.
    audited = synced(3, tiers=(3, 5, 8), min_levels=2)
    audited.snapshot_limit = 5
    assert audited.discard(Reason.AUDIT)
    assert audited.snapshot_limit == 3


def test_a_deepening_compares_only_the_levels_the_shallow_book_knows_then_extends_it() -> None:
    sync = synced(3)
    sync.on_diff(DepthDiff(12, 12, None, [("99.5", "4")], [("102", "7")]))
    audit = Audit(Market.SPOT, "X", sync, limit=6, kind=DEEPEN)
    # The exchange at 12, six levels a side; its levels beyond the book's third differ
    # from what the book saw at sync time (4th bid 97 gone, quantities changed): the
    # book never knew them, so they are not compared.
    bids = [("100", "1"), ("99.5", "4"), ("99", "1"), ("98", "1"), ("96", "3"), ("95", "1")]
    asks = [("101", "1"), ("102", "7"), ("103", "1"), ("104", "5"), ("105", "1"), ("106", "1")]
    result = audit.on_snapshot(12, bids, asks)
    assert result is not None
    assert (result.result, result.kind, result.levels_compared) == (OK, DEEPEN, 7)
    audit.adopt()
    assert (sync.book.limit, sync.book.known_levels()) == (6, 6)
    assert sync.book.top(6) == (bids, asks)
    # Diffs now land in the deeper region.
    sync.on_diff(DepthDiff(13, 13, None, [("96.5", "2")], []))
    assert ("96.5", "2") in sync.book.top(10)[0]


def test_a_deepening_still_catches_a_wrong_level_the_book_knows() -> None:
    sync = synced(3)
    bids = sync.book.bids
    bids.qtys[bids.keys.index(bids.key("99"))] = "5"  # corrupted: the exchange says 1
    audit = Audit(Market.SPOT, "X", sync, limit=6, kind=DEEPEN)
    result = audit.on_snapshot(11, levels(BIDS6), levels(ASKS6))
    assert result is not None
    assert (result.result, result.differing) == (MISMATCH, 1)


# -- the books stage's deepening rounds ----------------------------------------------------


SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]


def shallow_books(**books: object) -> Books:
    """Three spot books synced at id 101 from 100-level snapshots (weight 5), the exchange
    having 1200 levels a side: each knows 100 levels; BBB's bids are then thinned to 30."""
    settings = Settings(
        subscriptions=(
            Subscription(market=Market.SPOT, symbols=tuple(SYMBOLS), channels=("depth@100ms",)),
        ),
        books=BookSettings(**books),  # type: ignore[arg-type]
    )
    b = Books(settings)
    for symbol in SYMBOLS:
        sync = b.syncs[(Market.SPOT, symbol)]
        sync.on_diff(DepthDiff(101, 101, None, [], []))
        b._deliver(Market.SPOT, symbol, snapshot_at(100, 100))
        assert sync.synced
        assert sync.book.limit == 100
    thin = [(p, "0") for p, _ in book_side(1200, bids=True)[:70]]
    b.syncs[(Market.SPOT, "BBBUSDT")].on_diff(DepthDiff(102, 102, None, thin, []))
    return b


def book_side(n: int, *, bids: bool) -> list[Level]:
    return [(str(10_000 - i if bids else 10_001 + i), "1") for i in range(n)]


def snapshot_at(last: int, limit: int, *, thin: int = 0) -> DepthSnapshot:
    return DepthSnapshot(
        last_update_id=last,
        bids=book_side(1200, bids=True)[thin : thin + limit],
        asks=book_side(1200, bids=False)[:limit],
    )


async def test_the_book_knowing_the_fewest_levels_is_deepened_first_one_step_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    books = shallow_books()
    bbb = (Market.SPOT, "BBBUSDT")
    assert books.statistics().shallow == {"spot": 3, "usdm": 0}
    # Just synced: they settle first.
    assert books.deepen_round(0.0) == []
    assert books.deepen_round(DEEPEN_SETTLE_S - 1) == []
    t0 = DEEPEN_SETTLE_S
    # A sync snapshot is queued: deepening waits for it.
    books.scheduler.request(Market.SPOT, "ZZZUSDT")
    assert books.deepen_round(t0) == []
    lane = books.scheduler.lanes[Market.SPOT]
    lane.queue.clear()
    lane.queued.clear()
    assert books.deepen_round(t0) == [bbb]  # 30 known bids: the nearest to running out
    assert books.deepen_to(bbb) == 500  # spot 100 → 500 (weight 25)
    assert lane.low_limits == {("deepen", "BBBUSDT"): 500}
    assert books.deepen_round(t0 + 0.1) == []  # one at a time per market
    books._deliver_audit(Market.SPOT, "BBBUSDT", snapshot_at(102, 500, thin=70))
    assert books.statistics().deepens == {("spot", OK): 1}
    sync = books.syncs[bbb]
    assert sync.synced
    assert sync.book.limit == 500
    assert sync.book.known_levels() == 500
    # Then the others (in subscription order), BBB again only after DEEPEN_RETRY_S.
    started = []
    for t in (t0 + 1, t0 + 2):
        [key] = books.deepen_round(t)
        started.append(key[1])
        books._deliver_audit(*key, snapshot_at(101, 500))
    assert started == ["AAAUSDT", "CCCUSDT"]
    assert books.deepen_round(t0 + 3) == []
    [key] = books.deepen_round(t0 + DEEPEN_RETRY_S + 0.5)  # AAA's turn comes 0.5 s later
    assert key == bbb
    assert books.deepen_to(bbb) == 1000
    books._deliver_audit(Market.SPOT, "BBBUSDT", snapshot_at(102, 1000, thin=70))
    assert books.syncs[bbb].book.limit == 1000
    st = books.statistics()
    assert st.deepens == {("spot", OK): 4}
    assert st.shallow == {"spot": 2, "usdm": 0}
    assert st.audits == {}  # deepenings are counted apart
    metrics = {
        (s.name, tuple(s.labels.values())): s.value for m in books.metrics() for s in m.samples
    }
    assert metrics[("marketd_book_deepens_total", ("spot", OK))] == 4
    assert metrics[("marketd_book_shallow", ("spot",))] == 2


async def test_a_deepening_that_finds_a_wrong_level_resyncs_the_book(
    autojump_clock: trio.testing.MockClock,
) -> None:
    books = shallow_books()
    assert books.deepen_round(0.0) == []
    [key] = books.deepen_round(DEEPEN_SETTLE_S)
    wrong = snapshot_at(102, 500, thin=70)
    bids = [("9929", "2"), *wrong.bids[1:]]  # the best known bid differs
    books._deliver_audit(*key, DepthSnapshot(last_update_id=102, bids=bids, asks=wrong.asks))
    sync = books.syncs[key]
    assert not sync.synced
    assert sync.resyncs["audit"] == 1
    assert sync.snapshot_limit == 100  # resynced shallow, deepened again later
    assert books.statistics().deepens == {("spot", MISMATCH): 1}


async def test_nothing_to_deepen_for_complete_books_full_depth_or_no_budget_share(
    autojump_clock: trio.testing.MockClock,
) -> None:
    books = shallow_books(depth=100)  # the books keep 100 levels: 100-level syncs suffice
    assert books.deepen_round(0.0) == books.deepen_round(DEEPEN_SETTLE_S) == []
    books = shallow_books(deepen_budget_fraction=0.0)
    assert books.scheduler.deepen_blocker(Market.SPOT, 500) == "budget"
    assert books.deepen_round(0.0) == books.deepen_round(DEEPEN_SETTLE_S) == []
    books = Books(Settings())
    sync = books.syncs[(Market.SPOT, "BTCUSDT")]
    sync.on_diff(DepthDiff(101, 101, None, [], []))
    books._deliver(Market.SPOT, "BTCUSDT", snapshot_at(100, 100, thin=1150))  # 50 bids
    assert sync.synced
    assert sync.book.bids.bound == UNBOUNDED
    assert sync.book.known_levels() == 100  # the asks are bounded
    sync.book.asks.bound = UNBOUNDED
    assert books.deepen_round(0.0) == books.deepen_round(DEEPEN_SETTLE_S) == []


@pytest.mark.parametrize("limit", [3, 1000])
def test_book_limit_follows_the_snapshot_and_is_cleared_with_the_book(limit: int) -> None:
    book = Book(10)
    book.load(5, levels(BIDS6), levels(ASKS6), limit)
    assert book.limit == limit
    book.clear()
    assert book.limit == 0
