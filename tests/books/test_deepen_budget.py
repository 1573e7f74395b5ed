"""Deepening within the REST weight budget (fake clock, a simulated exchange): a full market
syncs shallow within the first minute's budget, deepening takes what is left afterwards,
one weight step at a time, never before a sync snapshot or a backfill, never beyond its
share of the budget, and the budget is never exceeded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing

from marketd.books.scheduler import SnapshotScheduler
from marketd.books.service import Books
from marketd.config.books import BookSettings
from marketd.config.settings import Settings, Subscription
from marketd.data.events import DepthDiff, DepthSnapshot
from marketd.data.records import Market
from marketd.exchanges import adapter
from marketd.rest.budget import AUDIT, BACKFILL, DEEPEN, SNAPSHOTS, RestBudgets
from marketd.rest.client import RestResponse
from marketd.rest.weight import MIN_DELAY_S

WALL0 = 1_800_000_000.0  # a minute boundary
URLS = {Market.SPOT: "http://spot.test", Market.USDM: "http://usdm.test"}
LEVELS = 1200  # a side, in the simulated exchange's books: deeper than any snapshot
Key = tuple[Market, str]


def wall() -> float:
    return WALL0 + trio.current_time()


def side(bids: bool, limit: int) -> bytes:
    return orjson.dumps([[str(10_000 - i if bids else 10_001 + i), "1"] for i in range(limit)])


_BODIES: dict[int, bytes] = {}


def levels_json(limit: int) -> bytes:
    """``"bids":[...],"asks":[...]`` of a static book cut at ``limit`` (cached)."""
    if limit not in _BODIES:
        _BODIES[limit] = b'"bids":' + side(True, limit) + b',"asks":' + side(False, limit)
    return _BODIES[limit]


@attrs.frozen
class Call:
    time: float
    market: Market
    symbol: str
    limit: int
    weight: int


class SimExchange:
    """Static books, update ids that move on: every snapshot served is followed 50 ms later
    by a diff of that symbol (as its live stream would), which bridges a sync snapshot."""

    def __init__(self) -> None:
        # The books stage asks the settings' URLs (Binance's: never reached).
        self.market_of = {url: m for m, url in Settings().binance.rest_urls().items()}
        self.ids: dict[Key, int] = {}
        self.calls: list[Call] = []
        self.books: Books | None = None
        self.nursery: trio.Nursery | None = None

    def diff(self, key: Key) -> DepthDiff:
        last = self.ids.get(key, 1000)
        self.ids[key] = last + 1
        return DepthDiff(last + 1, last + 1, last if key[0] is Market.USDM else None, [], [])

    def stream(self, key: Key) -> None:
        """One diff of ``key`` reaches the books (what ``Books.take`` does with it)."""
        books = self.books
        assert books is not None
        d = self.diff(key)
        if books.syncs[key].on_diff(d):
            books.scheduler.request(*key)
        if (audit := books.audits.get(key)) is not None:
            books._audit_done(audit, audit.on_diff(d))

    async def get(
        self, base_url: str, path: str, params: Mapping[str, Any], *, time_limit: float
    ) -> RestResponse:
        market = self.market_of[base_url]
        symbol, limit = str(params["symbol"]), int(params["limit"])
        weight = adapter(market).depth_snapshot(limit).weight
        self.calls.append(Call(trio.current_time(), market, symbol, limit, weight))
        await trio.sleep(0.01)
        key = (market, symbol)
        body = b'{"lastUpdateId":%d,%s}' % (self.ids.get(key, 1000), levels_json(limit))
        assert self.nursery is not None
        self.nursery.start_soon(self._later, key)
        return RestResponse(200, {}, body)

    async def _later(self, key: Key) -> None:
        await trio.sleep(0.05)
        self.stream(key)

    def peak(self, market: Market) -> int:
        """The most weight sent in any 60 s window."""
        calls = [c for c in self.calls if c.market is market]
        return max(
            (sum(c.weight for c in calls if t.time - 60 < c.time <= t.time) for t in calls),
            default=0,
        )


def settings_for(spot: int, usdm: int, **books: Any) -> Settings:
    subs = []
    if spot:
        names = tuple(f"S{i:04d}USDT" for i in range(spot))
        subs.append(Subscription(market=Market.SPOT, symbols=names, channels=("depth@100ms",)))
    if usdm:
        names = tuple(f"F{i:04d}USDT" for i in range(usdm))
        subs.append(Subscription(market=Market.USDM, symbols=names, channels=("depth@100ms",)))
    return Settings(subscriptions=tuple(subs), books=BookSettings(**books))


def all_synced(books: Books, market: Market) -> bool:
    return all(s.synced for (m, _), s in books.syncs.items() if m is market)


async def test_a_full_market_syncs_within_the_first_minute_then_deepens_step_by_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """300 spot + 500 USD-M books: 1,500 and 1,000 weight of shallow snapshots (100 levels
    for 5, 50 for 2) where 1000-level ones would need 15,000 and 10,000 (5 and 8 minutes of
    the budget); then deepening in what the budget has left."""
    sim = SimExchange()
    books = Books(settings_for(300, 500, audit_interval_s=0), wall=wall, get=sim.get)
    sim.books = books
    synced_at: dict[Market, float] = {}
    async with trio.open_nursery() as nursery:
        sim.nursery = nursery
        await nursery.start(books.scheduler.serve)
        nursery.start_soon(books._deepen_loop)
        for key in books.syncs:
            sim.stream(key)  # each stream's first diff: the book wants a snapshot
        while trio.current_time() < 240:
            await trio.sleep(0.5)
            for m in Market:
                if m not in synced_at and all_synced(books, m):
                    synced_at[m] = trio.current_time()
        st = books.statistics()
        budgets = books.scheduler.budgets
        nursery.cancel_scope.cancel()
    # Every book synced within the first minute: the pacing (a burst of a tenth of the
    # budget, then budget/60 a second) lets 1,500 through in 24 s and 1,000 in 44 s.
    assert synced_at[Market.SPOT] < 30
    assert synced_at[Market.USDM] < 50
    for market, limit, weight, count in ((Market.SPOT, 100, 5, 300), (Market.USDM, 50, 2, 500)):
        calls = [c for c in sim.calls if c.market is market]
        syncs = calls[:count]
        assert {(c.limit, c.weight) for c in syncs} == {(limit, weight)}
        assert len({c.symbol for c in syncs}) == count  # one each: none wasted
        assert budgets.requested(market, SNAPSHOTS) == count * weight
        # Deepening only once every sync snapshot was sent, within the budget ever after.
        deepens = calls[count:]
        assert deepens
        assert deepens[0].time >= syncs[-1].time
        assert sim.peak(market) <= budgets.budget(market).budget
        assert budgets.requested(market, DEEPEN) == sum(c.weight for c in deepens)
        assert budgets.requested(market, AUDIT) == 0
    # One weight step at a time: spot 100 → 500, USD-M 50 → 100 first.
    spot_deep = [c.limit for c in sim.calls if c.market is Market.SPOT][300:]
    usdm_deep = [c.limit for c in sim.calls if c.market is Market.USDM][500:]
    assert set(spot_deep) == {500}
    assert set(usdm_deep[:400]) == {100}
    # Half of the budget (the default share) for 3 minutes or so: spot 1,500 a minute at
    # 25 a book, USD-M 600 a minute at 5 (then 10 at 500 levels).
    assert 150 <= len(spot_deep) <= 270
    assert len(usdm_deep) >= 300
    assert st.deepens[("spot", "ok")] == len(spot_deep)
    assert st.shallow["spot"] == 300  # still short of 1000 levels
    assert all(s.synced for s in books.syncs.values())  # deepening never unsynced a book


async def test_deepening_keeps_to_its_share_and_the_backfill_never_waits_for_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """20 spot books, a budget of 600 a minute (burst 60, 10 a second), a backfill page of
    25 every 20 s: the books are deepened to 1000 levels (100 → 500 → 1000: 75 weight each)
    with at most half of the budget, and the backfill waits at most for its own tokens."""
    sim = SimExchange()
    settings = settings_for(20, 0, audit_interval_s=0, spot_weight_limit=1200)
    books = Books(settings, wall=wall, get=sim.get)
    sim.books = books
    budgets = books.scheduler.budgets
    waits: list[float] = []
    deep_at: float | None = None

    async def backfill() -> None:
        await trio.sleep(30)
        while True:
            asked = trio.current_time()
            await budgets.acquire(Market.SPOT, 25, user=BACKFILL, urgent=True)
            sim.calls.append(Call(trio.current_time(), Market.SPOT, "backfill", 0, 25))
            waits.append(trio.current_time() - asked)
            await trio.sleep(20)

    async with trio.open_nursery() as nursery:
        sim.nursery = nursery
        await nursery.start(books.scheduler.serve)
        nursery.start_soon(books._deepen_loop)
        nursery.start_soon(backfill)
        for key in books.syncs:
            sim.stream(key)
        while trio.current_time() < 1200:
            await trio.sleep(1)
            if deep_at is None and all(s.book.limit == 1000 for s in books.syncs.values()):
                deep_at = trio.current_time()
        st = books.statistics()
        nursery.cancel_scope.cancel()
    assert deep_at is not None
    assert deep_at < 900, deep_at
    assert st.deepens == {("spot", "ok"): 40}  # two steps a book
    assert budgets.requested(Market.SPOT, DEEPEN) == 20 * 75
    assert all(s.synced for s in books.syncs.values())
    assert sim.peak(Market.SPOT) <= 600
    # Each deepening started with at most half of the budget in use, itself included
    # (the share is checked when a deepening starts: a backfill page may come in between,
    # at the same instant of the fake clock, and go first).
    calls = sim.calls
    for c in calls:
        if c.limit in (500, 1000):
            before = sum(o.weight for o in calls if c.time - 60 < o.time < c.time)
            assert before + c.weight <= 300 + 25, (c, before)
    # The backfill went first: never a wait for the window, only for its own 25 tokens
    # (2.5 s at 10 a second) at worst.
    assert len(waits) > 30
    assert max(waits) <= 2.5 + MIN_DELAY_S


# -- the scheduler's order: sync snapshots, backfill, deepening, audits -----------------


class Stub:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str, int]] = []

    async def get(
        self, base_url: str, path: str, params: Mapping[str, Any], *, time_limit: float
    ) -> RestResponse:
        self.calls.append((trio.current_time(), str(params["symbol"]), int(params["limit"])))
        await trio.sleep(0.01)
        body = {"lastUpdateId": 7, "bids": [["1.0", "2"]], "asks": [["1.1", "3"]]}
        return RestResponse(200, {}, orjson.dumps(body))


def scheduler(
    budget: int,
) -> tuple[Stub, RestBudgets, SnapshotScheduler, list[str], list[str]]:
    stub = Stub()
    budgets = RestBudgets({Market.SPOT: budget, Market.USDM: budget}, wall=wall)
    delivered: list[str] = []
    audited: list[str] = []

    def deliver(market: Market, symbol: str, snap: DepthSnapshot | None) -> bool:
        delivered.append(symbol)
        return False

    def on_audit(market: Market, symbol: str, snap: DepthSnapshot | None) -> None:
        audited.append(symbol)

    sched = SnapshotScheduler(
        BookSettings(),  # spot: sync 100 levels (5), deepen to 500 (25) and 1000 (50)
        dict(URLS),
        deliver,
        audited=on_audit,
        get=stub.get,
        budgets=budgets,
    )
    return stub, budgets, sched, delivered, audited


async def test_deepening_goes_before_audits_and_after_sync_snapshots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 600 a minute: a burst of 60, then 10 a second.
    stub, budgets, sched, delivered, audited = scheduler(600)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        await budgets.acquire(Market.SPOT, 60, user=BACKFILL)  # the burst is spent
        sched.request_audit(Market.SPOT, "AUD")
        sched.request_audit(Market.SPOT, "DEE", user=DEEPEN, limit=500)
        await trio.sleep(1)
        sched.request(Market.SPOT, "SYN")  # while the deepening waits for the budget
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert [(s, n) for _, s, n in stub.calls] == [("SYN", 100), ("DEE", 500), ("AUD", 1000)]
    assert delivered == ["SYN"]
    assert audited == ["DEE", "AUD"]
    # The wait the sync snapshot cut short cost nothing.
    assert budgets.requested(Market.SPOT, DEEPEN) == 25
    assert budgets.requested(Market.SPOT, AUDIT) == 50
    lane = sched.statistics()[Market.SPOT]
    assert (lane.deepen_requests, lane.deepen_weight) == ({"ok": 1}, 25)
    assert (lane.audit_requests, lane.audit_weight) == ({"ok": 1}, 50)
    assert (lane.sync_limit, lane.deep_limit) == (100, 1000)


async def test_a_waiting_backfill_holds_deepening_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stub, budgets, sched, _, audited = scheduler(600)
    order: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        await budgets.acquire(Market.SPOT, 60, user=BACKFILL)  # the burst is spent

        async def backfill() -> None:
            await budgets.acquire(Market.SPOT, 40, user=BACKFILL, urgent=True)
            order.append(("backfill", trio.current_time()))

        nursery.start_soon(backfill)
        await trio.sleep(0.001)
        assert sched.deepen_blocker(Market.SPOT, 500) == "budget"  # a backfill waits
        sched.request_audit(Market.SPOT, "DEE", user=DEEPEN, limit=500)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    # The deepening's 25 tokens would have been there at 2.5 s; the backfill's 40 at 4 s
    # went first, then the deepening's 25 (2.5 s more).
    assert order == [("backfill", pytest.approx(4.0, abs=0.01))]
    assert stub.calls[0][0] == pytest.approx(6.5, abs=0.01)
    assert audited == ["DEE"]


async def test_deepening_waits_for_queued_sync_snapshots_not_for_those_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, budgets, sched, _, _ = scheduler(6000)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        assert sched.deepen_blocker(Market.SPOT, 500) is None
        sched.request(Market.SPOT, "SYN")
        assert sched.deepen_blocker(Market.SPOT, 500) == "busy"  # queued
        await trio.sleep(0.005)
        lane = sched.lanes[Market.SPOT]
        assert lane.in_flight == 1
        assert sched.deepen_blocker(Market.SPOT, 500) is None  # in flight: charged already
        assert sched.audit_blocker(Market.SPOT) == "busy"  # audits are stricter
        # Over the share (half of 6000): 2,985 in use (with the sync snapshot's 5), 25
        # more would pass 3,000.
        budgets.budget(Market.SPOT).charge(2980, trio.current_time())
        await trio.sleep(30)  # the tokens back; both charges still in the window
        assert sched.deepen_blocker(Market.SPOT, 500) == "budget"
        assert sched.deepen_blocker(Market.SPOT, 20) is None  # 5 more fits
        nursery.cancel_scope.cancel()
