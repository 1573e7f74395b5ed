"""The books against the fake exchange: true to the exchange through gaps and disconnects,
per-symbol resyncs, and the REST weight budget (as the fake itself counts it)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping

import trio
from harness import book_settings, decode, running_books
from kit.wait import poll_until

from marketd.books.service import KIND, Books
from marketd.config.books import BookSettings
from marketd.data.records import Market, Record
from marketd.fakex import (
    FakeExchange,
    FakeExchangeConfig,
    Fault,
    FaultKind,
    MarketLimits,
    open_fake_exchange,
)
from marketd.fakex.book import OrderBook
from marketd.fakex.journal import copy_book
from marketd.fakex.rest import RestReply

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


Levels = list[tuple[str, str]]


class TrueBooks:
    """The fake's true book at an update id, replayed forward from the fake's journal.

    ``fx.true_book(market, symbol, u)`` replays the whole journal from its base on every
    call: with a snapshot published every 0.02 s per book that made the checking itself
    the test's main CPU cost, growing as the journal grows, and on a loaded machine it
    starved the exchange and the books it checks. Snapshots of a book come with rising
    update ids, so each one here costs only the diffs since the previous one. Every
    ``CROSS_CHECK``-th answer (and any that cannot go forward) comes from ``true_book``.
    """

    CROSS_CHECK = 50

    def __init__(self, fx: FakeExchange) -> None:
        self.fx = fx
        self.state: dict[tuple[Market, str], tuple[OrderBook, int]] = {}  # book, diffs applied
        self.calls = 0
        self.disagreements: list[str] = []

    def at(self, market: Market, symbol: str, update_id: int, depth: int) -> tuple[Levels, Levels]:
        """The best ``depth`` bids and asks right after ``update_id``, as the fake prints."""
        self.calls += 1
        hub = self.fx.hubs[market]
        idx = hub.symbol_index[symbol.lower()]
        journal, fr = hub.model.symbols[idx].journal, hub.frames[idx]
        assert journal is not None
        key = (market, symbol)
        book, applied = self.state.get(key) or (copy_book(journal.base), 0)
        if book.last_update_id > update_id or len(journal.events) >= journal.capacity:
            # Backwards, or the journal folds its oldest diffs (indexes move): no shortcut.
            _, bids, asks = self.fx.true_book(market, symbol, update_id)
            return bids[:depth], asks[:depth]
        for ev in itertools.islice(journal.events, applied, None):
            if ev.last_id > update_id:
                break
            book.apply(ev.bids, ev.asks, ev.last_id)
            applied += 1
        self.state[key] = (book, applied)
        if book.last_update_id != update_id:
            raise LookupError(f"no book state at update id {update_id}")
        _, top_bids, top_asks = book.snapshot(depth)
        fp, fq = fr.fmt_p, fr.fmt_q
        bids = [(fp(p), fq(q)) for p, q in top_bids]
        asks = [(fp(p), fq(q)) for p, q in top_asks]
        if self.calls % self.CROSS_CHECK == 1:
            _, all_bids, all_asks = self.fx.true_book(market, symbol, update_id)
            if (bids, asks) != (all_bids[:depth], all_asks[:depth]):
                self.disagreements.append(f"{market.value}:{symbol}@{update_id}")
        return bids, asks


class Checker:
    """Compares every published snapshot with the fake's true book at its update id."""

    def __init__(self, fx: FakeExchange) -> None:
        self.truth = TrueBooks(fx)
        self.diffs = 0
        self.compared: Counter[tuple[Market, str]] = Counter()
        self.levels = 0
        self.mismatches: list[str] = []

    def __call__(self, batch: list[Record]) -> None:
        for r in batch:
            if r.kind == "depthUpdate":
                self.diffs += 1
            elif r.kind == KIND:
                ev = decode(r)
                snap = ev.book_snapshot
                assert ev.symbol == r.symbol == r.key.decode()
                last = snap.last_update_id
                bids, asks = self.truth.at(r.market, r.symbol, last, snap.depth)
                got_bids = [(lv.price, lv.quantity) for lv in snap.bids]
                got_asks = [(lv.price, lv.quantity) for lv in snap.asks]
                if got_bids != bids or got_asks != asks:
                    self.mismatches.append(f"{r.market.value}:{r.symbol}@{last}")
                self.compared[(r.market, r.symbol)] += 1
                self.levels += len(got_bids) + len(got_asks)


def states(books: Books) -> dict[str, str]:
    return books.statistics().symbols


async def test_published_snapshots_equal_the_true_book_through_gaps_and_disconnects() -> None:
    # Flat out (rate 0): the exchange trades as fast as the books read, not at a fixed
    # 3000 events/s that a loaded machine cannot keep up with: then the books fall behind
    # without bound and a resync (which lasts until they have read up to their snapshot's
    # update id) never ends. Unloaded this is faster than 3000/s; the journal still holds
    # the whole run.
    config = FakeExchangeConfig(symbols=len(SYMBOLS), seed=11, rate=0, book_journal=400_000)
    books_cfg = BookSettings(publish_interval_s=0.02, publish_levels=1000)
    # Generous limits on every wait: on a loaded machine the books still run behind the
    # exchange by what the sockets and channels hold, and a resync lasts until they have
    # read through that up to their snapshot's update id.
    limit_s = 90
    with trio.fail_after(600):
        async with open_fake_exchange(config) as fx:
            settings = book_settings(fx, {Market.SPOT: SYMBOLS, Market.USDM: SYMBOLS}, books_cfg)
            check = Checker(fx)
            async with running_books(settings, check) as books:

                def synced() -> bool:
                    return not books.statistics().not_synced

                def gap_resyncs(market: Market) -> int:
                    return sum(s.resyncs["gap"] for (m, _), s in books.syncs.items() if m is market)

                await poll_until(synced, timeout=limit_s, what="every book synced", interval=0.02)
                faults = [
                    Fault(FaultKind.GAP, Market.SPOT, count=3, symbol="ETHUSDT"),
                    Fault(FaultKind.DROP, Market.USDM),
                    Fault(FaultKind.GAP, Market.USDM, count=1, symbol="BTCUSDT"),
                    Fault(FaultKind.GAP, Market.SPOT, count=2),  # every symbol of a connection
                    Fault(FaultKind.DROP, Market.SPOT),
                    Fault(FaultKind.GAP, Market.USDM, count=5, symbol="BNBUSDT"),
                ]
                for round_ in range(3):
                    for fault in faults:
                        noticed = gap_resyncs(fault.market)
                        fx.inject_fault(fault)
                        await trio.sleep(0.4)
                        # The fault noticed (a drop too loses diffs: a gap) and every book
                        # synced again before the next one. A fixed 0.4 s was not enough
                        # on a loaded machine: the books were still working through the
                        # diffs sent before a gap when the next drop cut it off the wire
                        # unseen, or a gap fell into a resync still under way.
                        await poll_until(
                            lambda m=fault.market, n=noticed: gap_resyncs(m) > n and synced(),
                            timeout=limit_s,
                            what=f"{fault.kind.value} on {fault.market} noticed, all books synced",
                            interval=0.02,
                        )
                    del round_
                await poll_until(
                    lambda: check.diffs >= 30_000,
                    timeout=limit_s,
                    what="30,000 diffs",
                    interval=0.02,
                )
                await poll_until(synced, timeout=limit_s, what="every book synced", interval=0.02)
                # Let every book publish again after its last resync.
                before = dict(check.compared)
                await poll_until(
                    lambda: all(check.compared[k] > before[k] for k in before),
                    timeout=limit_s,
                    what="every book published again",
                    interval=0.02,
                )
                # Enough comparisons to mean something: waited for as counts, not assumed
                # from the time the faults took (a loaded machine publishes fewer snapshots
                # and applies fewer diffs in the same seconds). Every one is still checked.
                await poll_until(
                    lambda: (
                        sum(check.compared.values()) > 500
                        and check.levels > 50_000
                        and books.statistics().diffs_applied > 20_000
                    ),
                    timeout=limit_s,
                    what="500 snapshots compared, 50,000 levels, 20,000 diffs applied",
                    interval=0.02,
                )
                st = books.statistics()
    assert check.mismatches == []
    assert check.truth.disagreements == []  # the forward replay agrees with true_book
    assert set(check.compared) == {(m, s) for m in Market for s in SYMBOLS}
    assert sum(check.compared.values()) > 500
    assert check.levels > 50_000
    assert st.resyncs.get("gap", 0) >= 3 * len(faults), st.resyncs  # every fault noticed
    assert st.diffs_applied > 20_000
    assert st.snapshot_requests.get("ok", 0) >= 6 + 9


async def test_a_gap_in_one_symbol_resyncs_no_other() -> None:
    config = FakeExchangeConfig(symbols=len(SYMBOLS), seed=3, rate=1000)
    books_cfg = BookSettings(publish_interval_s=0.05)
    seen_unsynced: Counter[str] = Counter()
    books_ref: list[Books] = []

    def watch(batch: list[Record]) -> None:
        if books_ref:
            for name, state in states(books_ref[0]).items():
                if state != "synced":
                    seen_unsynced[name] += 1

    with trio.fail_after(40):
        async with open_fake_exchange(config) as fx:
            settings = book_settings(fx, {Market.SPOT: SYMBOLS, Market.USDM: SYMBOLS}, books_cfg)
            async with running_books(settings, watch) as books:
                await poll_until(
                    lambda: not books.statistics().not_synced,
                    timeout=20,
                    what="every book synced",
                    interval=0.02,
                )
                books_ref.append(books)
                fx.inject_fault(Fault(FaultKind.GAP, Market.SPOT, count=1, symbol="ETHUSDT"))
                eth = books.syncs[(Market.SPOT, "ETHUSDT")]
                await poll_until(
                    lambda: eth.resyncs["gap"] == 1,
                    timeout=20,
                    what="ETHUSDT's gap resync",
                    interval=0.02,
                )
                await poll_until(
                    lambda: eth.synced, timeout=20, what="ETHUSDT synced", interval=0.02
                )
                await trio.sleep(0.5)
                others = {k: dict(s.resyncs) for k, s in books.syncs.items() if s is not eth}
    assert set(seen_unsynced) == {"spot:ETHUSDT"}
    assert others == {k: {} for k in others}


async def test_the_rest_weight_budget_is_never_exceeded() -> None:
    """Twelve symbols, a small weight limit, a resync demand far above the budget."""
    limits = MarketLimits(5, rest_weight_per_minute=400)
    config = FakeExchangeConfig(symbols=12, seed=2, rate=2000, spot=limits)
    books_cfg = BookSettings(
        publish_interval_s=0.1,
        snapshot_limit=100,  # weight 5
        spot_weight_limit=400,
        weight_budget_fraction=0.5,  # 200 per minute: 40 snapshots
    )
    burst, every_s = 4, 1.5  # a tenth of the budget (20: 4 snapshots), then 200/60 per second
    with trio.fail_after(60):
        async with open_fake_exchange(config) as fx:
            names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            settings = book_settings(fx, {Market.SPOT: names}, books_cfg)

            async def demand() -> None:
                for i in itertools.count():
                    fx.inject_fault(Fault(FaultKind.GAP, Market.SPOT, symbol=names[i % 12]))
                    await trio.sleep(0.1)

            # Before the budget exists: the elapsed time below is at least its age.
            started = trio.current_time()
            async with running_books(settings, lambda b: None) as books:

                def ok() -> int:
                    return books.scheduler.statistics()[Market.SPOT].requests.get("ok", 0)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(demand)
                    # Wait for a count of snapshots (past the burst), not for a time: a
                    # loaded machine sends fewer in the same seconds.
                    await poll_until(
                        lambda: ok() >= burst + 4,
                        timeout=40,
                        what=f"{burst + 4} snapshots answered",
                        interval=0.02,
                    )
                    lane = books.scheduler.statistics()[Market.SPOT]
                    meter = fx.rest[Market.SPOT].meter
                    st = books.statistics()
                    elapsed = trio.current_time() - started
                    nursery.cancel_scope.cancel()
    assert meter.peak <= 200
    assert meter.rejected == 0
    assert lane.requests.get("429", 0) == 0
    assert lane.weight_used <= 200
    # The budget, not the demand (12 symbols at once, and a gap every 0.1 s), set the pace:
    # at most the burst, then one every 1.5 s of the time that actually passed (plus one
    # for a request granted as the statistics were read).
    assert burst + 4 <= lane.requests["ok"] <= burst + elapsed / every_s + 1, elapsed
    assert lane.queued > 0
    assert st.snapshots_applied == lane.requests["ok"]


def ban_on_first_request(fx: FakeExchange, market: Market, seconds: float) -> None:
    """Ban ``market`` for ``seconds`` from its first REST request on: the books' first
    snapshots meet the ban however long they took to start (a ban set before they start
    may be over before a slow machine sends anything)."""
    api = fx.rest[market]
    orig = api.handle

    def handle(path: str, query: Mapping[str, str], now_ms: int) -> RestReply:
        if api.meter.banned_until == 0:
            api.meter.ban(seconds, now_ms / 1000)
        return orig(path, query, now_ms)

    api.handle = handle  # type: ignore[method-assign]


async def test_a_ban_pauses_the_whole_market_then_books_sync() -> None:
    config = FakeExchangeConfig(symbols=6, seed=4, rate=500)
    books_cfg = BookSettings(publish_interval_s=0.1, max_concurrent_snapshots=2)
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            ban_on_first_request(fx, Market.SPOT, 1.5)
            settings = book_settings(fx, {Market.SPOT: names}, books_cfg)
            async with running_books(settings, lambda b: None) as books:
                await poll_until(
                    lambda: not books.statistics().not_synced,
                    timeout=20,
                    what="every book synced",
                    interval=0.02,
                )
                lane = books.scheduler.statistics()[Market.SPOT]
                banned = fx.rest[Market.SPOT].meter.banned
    # Only the requests already in flight met the ban; then the market waited it out.
    assert 1 <= lane.requests["418"] == banned <= 2
    assert lane.requests["ok"] == 6


async def test_429_blocks_the_market_instead_of_hammering() -> None:
    """The books believe the limit is 6000; the exchange says 60. After the first 429 the
    whole market waits for Retry-After (and the used-weight header)."""
    limits = MarketLimits(5, rest_weight_per_minute=60)
    config = FakeExchangeConfig(symbols=16, seed=9, rate=500, spot=limits)
    books_cfg = BookSettings(publish_interval_s=0.1, snapshot_limit=100, max_concurrent_snapshots=2)
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            settings = book_settings(fx, {Market.SPOT: names}, books_cfg)
            async with running_books(settings, lambda b: None) as books:
                await poll_until(
                    lambda: fx.rest[Market.SPOT].meter.rejected > 0,
                    timeout=20,
                    what="a request rejected by the fake",
                    interval=0.02,
                )
                await trio.sleep(2.0)
                lane = books.scheduler.statistics()[Market.SPOT]
                rejected = fx.rest[Market.SPOT].meter.rejected
    assert 1 <= rejected <= 2
    assert lane.requests["429"] == rejected
    assert lane.blocked_s > 0 or lane.requests["ok"] >= 12
