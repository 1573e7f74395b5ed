"""Property tests: the sync state machine against a simple reference exchange."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from refbook import TrueBook, TrueDiff, event_time_ms, history

from marketd.books.book import UNBOUNDED
from marketd.books.sync import State, SymbolSync


@st.composite
def scenarios(
    draw: st.DrawFn, *, cross: bool = False
) -> tuple[bool, list[TrueBook], list[TrueDiff]]:
    futures = draw(st.booleans())
    bid_prices = st.integers(100, 140)
    ask_prices = st.integers(130 if cross else 141, 180)
    quantity = st.integers(0, 4)
    level = st.one_of(
        st.tuples(st.just(True), bid_prices, quantity),
        st.tuples(st.just(False), ask_prices, quantity),
    )
    n = draw(st.integers(1, 60))
    changes = draw(st.lists(st.lists(level, min_size=0, max_size=5), min_size=n, max_size=n))
    skips = draw(st.lists(st.integers(0, 3 if futures else 0), min_size=n, max_size=n))
    start = TrueBook(last_update_id=draw(st.integers(1, 10**12)))
    for is_bid, p, q in draw(st.lists(level, max_size=30)):
        if q:
            (start.bids if is_bid else start.asks)[p] = q
    if not cross and start.crossed():  # pragma: no cover - the grids do not overlap
        start = TrueBook(last_update_id=start.last_update_id)
    books, diffs = history(start, changes, skips)
    return futures, books, diffs


def book_at(books: list[TrueBook], update_id: int) -> TrueBook:
    ids = [b.last_update_id for b in books]
    i = bisect_left(ids, update_id)
    assert i < len(ids), "the sync claims an id the exchange never had"
    assert ids[i] == update_id, "the sync claims an id the exchange never had"
    return books[i]


def assert_true_prefix(sync: SymbolSync, books: list[TrueBook]) -> None:
    """A synced book is the exchange's book at its id, cut at each side's known bound."""
    if sync.state is not State.SYNCED:
        return
    truth = book_at(books, sync.last_update_id)
    assert not truth.crossed()
    bids, asks = sync.book.top(10**6)
    true_bids, true_asks = truth.levels()
    assert bids == true_bids[: len(bids)]
    assert asks == true_asks[: len(asks)]
    if sync.book.bids.bound == UNBOUNDED:
        assert len(bids) == len(true_bids)
    if sync.book.asks.bound == UNBOUNDED:
        assert len(asks) == len(true_asks)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), scenario=scenarios(), cross=st.booleans())
def test_a_synced_book_always_equals_the_exchange(
    data: st.DataObject, scenario: tuple[bool, list[TrueBook], list[TrueDiff]], cross: bool
) -> None:
    """Diffs arrive with gaps, duplicates and replays; snapshots come from any moment
    near the stream (stale or ahead). Whenever the machine says synced, the book is true."""
    futures, books, diffs = scenario
    depth = data.draw(st.sampled_from([2, 5, 1000]), label="depth")
    limit = data.draw(st.sampled_from([3, 1000]), label="snapshot limit")
    sync = SymbolSync(chained=futures, depth=depth, snapshot_limit=limit, min_levels=0)
    position = 0  # diffs[:position] have been sent (in some form)
    ever_synced = False
    while position < len(diffs):
        action = data.draw(
            st.sampled_from(["diff"] * 6 + ["gap", "duplicate", "snapshot"]), label="action"
        )
        if action == "gap":
            position += 1
            continue
        if action == "duplicate" and position > 0:
            back = data.draw(st.integers(1, min(3, position)), label="back")
            sync.on_diff(diffs[position - back].as_diff(futures=futures))
        elif action == "snapshot" and sync.pending:
            k = data.draw(
                st.integers(max(0, position - 3), min(len(books) - 1, position + 2)), label="k"
            )
            bids, asks = books[k].levels(limit)
            sync.on_snapshot(books[k].last_update_id, bids, asks)
        else:
            sync.on_diff(diffs[position].as_diff(futures=futures))
            position += 1
        assert_true_prefix(sync, books)
        ever_synced |= sync.synced
    event(f"ever synced: {ever_synced}")


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_without_faults_one_snapshot_syncs(
    scenario: tuple[bool, list[TrueBook], list[TrueDiff]], data: st.DataObject
) -> None:
    """Diffs in order, the snapshot taken after the first one was buffered: synced for good
    once a diff bridges it, and the book then follows every diff exactly."""
    futures, books, diffs = scenario
    sync = SymbolSync(chained=futures, depth=1000, snapshot_limit=1000)
    assert sync.on_diff(diffs[0].as_diff(futures=futures)) is True
    k = data.draw(st.integers(0, len(diffs) - 1), label="snapshot after diff")
    asked_again = False
    for i, diff in enumerate(diffs):
        if i:
            asked_again |= sync.on_diff(diff.as_diff(futures=futures))
        if i == k:
            bids, asks = books[k + 1].levels(1000)
            asked_again |= sync.on_snapshot(books[k + 1].last_update_id, bids, asks)
        assert_true_prefix(sync, books)
    assert not asked_again
    assert sync.resyncs == {}
    if k + 1 < len(diffs):
        assert sync.synced
        assert sync.last_update_id == diffs[-1].final


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(cross=True))
def test_a_crossed_book_is_never_synced(
    scenario: tuple[bool, list[TrueBook], list[TrueDiff]],
) -> None:
    futures, books, diffs = scenario
    sync = SymbolSync(chained=futures, depth=1000, snapshot_limit=1000)
    for i, diff in enumerate(diffs):
        if sync.on_diff(diff.as_diff(futures=futures)) or (sync.pending and i % 5 == 0):
            bids, asks = books[i + 1].levels(1000)
            sync.on_snapshot(books[i + 1].last_update_id, bids, asks)
        if sync.synced:
            assert not sync.book.crossed()
            assert_true_prefix(sync, books)


# --- liveness: every book does get synced -------------------------------------------------


@st.composite
def lives(draw: st.DrawFn) -> tuple[bool, int, list[TrueBook], list[TrueDiff]]:
    """A history with a faulty first part (deletions, so books can get thin) and a calm
    tail of 40 diffs that only add or change levels (no gap, deletion or crossing)."""
    futures = draw(st.booleans())
    faulty = draw(st.integers(0, 40))
    bid, ask = st.integers(100, 140), st.integers(141, 180)

    def changes(quantity: st.SearchStrategy[int], n: int) -> list[list[tuple[bool, int, int]]]:
        level = st.one_of(
            st.tuples(st.just(True), bid, quantity), st.tuples(st.just(False), ask, quantity)
        )
        return draw(st.lists(st.lists(level, max_size=4), min_size=n, max_size=n))

    plan = changes(st.integers(0, 4), faulty) + changes(st.integers(1, 4), 40)
    skips = draw(st.lists(st.integers(0, 3 if futures else 0), min_size=80, max_size=80))
    start = TrueBook(last_update_id=draw(st.integers(1, 10**9)))
    for p in draw(st.lists(bid, min_size=3, max_size=12)):
        start.bids[p] = 1
    for p in draw(st.lists(ask, min_size=3, max_size=12)):
        start.asks[p] = 1
    books, diffs = history(start, plan, skips)
    return futures, faulty, books, diffs


def assert_healthy(sync: SymbolSync, books: list[TrueBook]) -> None:
    """What must hold at every step: a true book, never deeper than its depth, never
    thinner than its minimum where bounded, stamped with its last diff's times."""
    assert_true_prefix(sync, books)
    bids, asks = sync.book.bids, sync.book.asks
    assert len(bids) <= sync.book.depth
    assert len(asks) <= sync.book.depth
    if sync.synced:
        assert sync.event_time_ms == event_time_ms(sync.last_update_id)
        assert sync.received_ns == sync.last_update_id * 1000
        for side in (bids, asks):
            if side.bound != UNBOUNDED:
                assert len(side) >= sync.min_levels


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(life=lives(), data=st.data())
def test_every_book_gets_synced_through_late_failed_stale_and_shallow_snapshots(
    life: tuple[bool, int, list[TrueBook], list[TrueDiff]], data: st.DataObject
) -> None:
    """A snapshot answers a request some diffs later (REST latency), taken at any moment
    from the request to a little ahead of the WebSocket; in the faulty part it may also
    fail, or be older than the request (stale), and diffs go missing or repeat. Each
    request is answered, a failure is always asked again, and once the faults stop the
    book syncs and follows every diff to the end."""
    futures, faulty, books, diffs = life
    sync = SymbolSync(
        chained=futures,
        depth=data.draw(st.sampled_from([2, 5, 1000]), label="depth"),
        snapshot_limit=data.draw(st.sampled_from([3, 5, 1000]), label="snapshot limit"),
        min_levels=data.draw(st.sampled_from([0, 2, 3]), label="min levels"),
    )
    request: tuple[int, int] | None = None  # (diffs delivered when asked, answer after)
    outcomes = st.sampled_from(["ok", "ok", "fail", "stale"])

    def ask(delivered: int) -> tuple[int, int]:
        assert request is None, "a second request while one is outstanding"
        return delivered, delivered + data.draw(st.integers(0, 4), label="latency")

    for i, diff in enumerate(diffs):
        calm = i >= faulty
        action = "diff" if calm else data.draw(st.sampled_from(["diff"] * 4 + ["gap", "dup"]))
        if action == "gap":
            continue
        if action == "dup" and i and sync.on_diff(diffs[i - 1].as_diff(futures=futures)):
            request = ask(i)
        if sync.on_diff(diff.as_diff(futures=futures)):
            request = ask(i + 1)
        assert_healthy(sync, books)
        assert sync.pending == (request is not None)
        if request is None or i + 1 < request[1]:
            continue
        asked_at, request = request[0], None
        outcome = "ok" if calm else data.draw(outcomes, label="outcome")
        if outcome == "fail":
            assert sync.on_snapshot_failed() is True
            request = ask(i + 1)
            continue
        if outcome == "stale":
            k = data.draw(st.integers(0, asked_at), label="stale snapshot")
        else:
            k = data.draw(st.integers(asked_at, min(i + 3, len(diffs) - 5)), label="snapshot")
        bids, asks = books[k].levels(sync.snapshot_limit)
        if sync.on_snapshot(books[k].last_update_id, bids, asks):
            request = ask(i + 1)
        assert_healthy(sync, books)
        assert sync.pending == (request is not None)
    assert sync.synced
    assert sync.last_update_id == diffs[-1].final
    for reason in sync.resyncs:
        event(f"resynced: {reason}")
