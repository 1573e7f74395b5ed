"""Audit snapshots take the REST budget last: after sync snapshots and the backfill, never
beyond the budget, and not at all while it is tight (fake clock, stub REST)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import trio
import trio.testing

from marketd.books.scheduler import SnapshotScheduler
from marketd.config.books import BookSettings
from marketd.data.events import DepthSnapshot
from marketd.data.records import Market
from marketd.rest.budget import AUDIT, BACKFILL, SNAPSHOTS, RestBudgets
from marketd.rest.client import RestResponse

WALL0 = 1_800_000_000.0
URLS = {Market.SPOT: "http://spot.test", Market.USDM: "http://usdm.test"}
WEIGHT = 5  # spot depth, limit 100


def wall() -> float:
    return WALL0 + trio.current_time()


class Stub:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self.forced: list[RestResponse] = []

    async def get(
        self, base_url: str, path: str, params: Mapping[str, Any], *, time_limit: float
    ) -> RestResponse:
        self.calls.append((trio.current_time(), str(params["symbol"])))
        await trio.sleep(0.01)
        if self.forced:
            return self.forced.pop(0)
        body = {"lastUpdateId": 7, "bids": [["1.0", "2"]], "asks": [["1.1", "3"]]}
        return RestResponse(200, {}, orjson.dumps(body))

    def symbols(self) -> list[str]:
        return [s for _, s in self.calls]


def setup(
    budget: int,
) -> tuple[Stub, RestBudgets, SnapshotScheduler, list[str], list[tuple[str, bool]]]:
    stub = Stub()
    budgets = RestBudgets({Market.SPOT: budget, Market.USDM: budget}, wall=wall)
    delivered: list[str] = []
    audited: list[tuple[str, bool]] = []

    def deliver(market: Market, symbol: str, snap: DepthSnapshot | None) -> bool:
        delivered.append(symbol)
        return False

    def on_audit(market: Market, symbol: str, snap: DepthSnapshot | None) -> None:
        audited.append((symbol, snap is not None))

    sched = SnapshotScheduler(
        BookSettings(snapshot_limit=100),
        dict(URLS),
        deliver,
        audited=on_audit,
        get=stub.get,
        budgets=budgets,
    )
    return stub, budgets, sched, delivered, audited


async def test_an_audit_gives_way_to_sync_snapshots_asked_for_while_it_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 60 a minute: a burst of 6 (one request), then 1 a second.
    stub, budgets, sched, delivered, audited = setup(60)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        sched.request(Market.SPOT, "AAA")
        sched.request_audit(Market.SPOT, "CCC")
        await trio.sleep(1)
        sched.request(Market.SPOT, "BBB")  # the audit is still waiting for the budget
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert stub.symbols() == ["AAA", "BBB", "CCC"]
    times = [t for t, _ in stub.calls]
    assert times[1] < times[2]
    assert delivered == ["AAA", "BBB"]
    assert audited == [("CCC", True)]
    assert budgets.requested(Market.SPOT, AUDIT) == WEIGHT  # the cancelled wait cost nothing
    assert budgets.requested(Market.SPOT, SNAPSHOTS) == 2 * WEIGHT
    lane = sched.statistics()[Market.SPOT]
    assert (lane.requests, lane.audit_requests, lane.audit_weight) == ({"ok": 2}, {"ok": 1}, 5)


async def test_an_audit_waits_for_the_backfill(autojump_clock: trio.testing.MockClock) -> None:
    stub, budgets, sched, _, audited = setup(60)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        await budgets.acquire(Market.SPOT, 6, user=BACKFILL)  # the burst is spent

        async def backfill() -> None:
            await budgets.acquire(Market.SPOT, 20, user=BACKFILL, urgent=True)
            order.append("backfill")

        nursery.start_soon(backfill)
        await trio.sleep(0.001)
        sched.request_audit(Market.SPOT, "CCC")
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert audited == [("CCC", True)]
    assert order == ["backfill"]
    assert budgets.requested(Market.SPOT, AUDIT) == WEIGHT
    # The backfill went first (at 6 s: the burst of 6 refilled at 1 a second) although
    # the audit's 5 would have fitted at 5 s; then the audit's 5 more seconds.
    assert stub.calls[0][0] >= 11.0


async def test_no_audit_starts_while_the_lane_is_busy_or_the_budget_tight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, budgets, sched, _, _ = setup(600)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        assert sched.audit_blocker(Market.SPOT) is None
        sched.request(Market.SPOT, "AAA")
        assert sched.audit_blocker(Market.SPOT) == "busy"  # queued
        await trio.sleep(0.005)
        assert sched.audit_blocker(Market.SPOT) == "busy"  # in flight
        await trio.sleep(1)
        assert sched.audit_blocker(Market.SPOT) is None
        # Others' requests, charged as the budget charges them (no waiting here).
        budget = budgets.budget(Market.SPOT)
        budget.charge(58, trio.current_time())  # the burst (60) is spent
        assert sched.audit_blocker(Market.SPOT) == "budget"  # the pacing would hold it
        await trio.sleep(30)
        assert sched.audit_blocker(Market.SPOT) is None
        budget.charge(300, trio.current_time())
        await trio.sleep(40)  # the pacing bucket refilled; 300 in the last minute:
        assert sched.audit_blocker(Market.SPOT) == "budget"  # over half of the budget
        await trio.sleep(30)
        assert sched.audit_blocker(Market.SPOT) is None
        sched.request_audit(Market.SPOT, "CCC")
        assert sched.audit_blocker(Market.SPOT) == "busy"  # one audit at a time
        assert sched.audit_blocker(Market.USDM) is None  # the other market is free
        nursery.cancel_scope.cancel()


async def test_a_cancelled_audit_is_never_sent_and_a_failed_one_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stub, budgets, sched, _, audited = setup(60)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        await budgets.acquire(Market.SPOT, 6, user=BACKFILL)  # the audit must wait
        sched.request_audit(Market.SPOT, "CCC")
        await trio.sleep(1)
        sched.cancel_audit(Market.SPOT, "CCC")
        await trio.sleep(30)
        assert stub.calls == []
        assert budgets.requested(Market.SPOT, AUDIT) == 0
        stub.forced.append(RestResponse(429, {"retry-after": "30"}, b"{}"))
        sched.request_audit(Market.SPOT, "DDD")
        await trio.sleep(5)
        assert audited == [("DDD", False)]
        assert sched.audit_blocker(Market.SPOT) == "budget"  # the 429 blocks the market
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert stub.symbols() == ["DDD"]
    assert sched.statistics()[Market.SPOT].audit_requests == {"429": 1}
