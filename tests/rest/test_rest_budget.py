"""The REST weight budget shared by the book snapshots and the trade backfill (fake clock).

Trio's autojump clock stands in for time (``wall`` follows it), and a stub REST API for
Binance: every figure below is exact, nothing waits for real.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import prometheus_client
import pytest
import trio
import trio.testing
from kit.wait import poll_until

from marketd.app import Daemon
from marketd.books.scheduler import SnapshotScheduler
from marketd.config.books import BookSettings
from marketd.config.settings import HttpSettings, Settings, TopicSettings
from marketd.data.events import DepthSnapshot
from marketd.data.records import Market, Record
from marketd.exchanges.binance.endpoints import trades_weight
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.sequence import Gap
from marketd.rest.budget import BACKFILL, SNAPSHOTS, RestBudgets
from marketd.rest.client import RestResponse
from marketd.rest.weight import DEFAULT_BAN_S, MINUTE_MARGIN_S

WALL0 = 1_800_000_000.0  # a minute boundary
URLS = {Market.SPOT: "http://spot.test", Market.USDM: "http://usdm.test"}


def wall() -> float:
    return WALL0 + trio.current_time()


def budgets(spot: int = 600, usdm: int = 600) -> RestBudgets:
    return RestBudgets({Market.SPOT: spot, Market.USDM: usdm}, wall=wall)


def response(status: int, **headers: str) -> RestResponse:
    return RestResponse(status, {k.replace("_", "-"): v for k, v in headers.items()}, b"{}")


# -- the limiter alone ---------------------------------------------------------------------


def test_trade_history_weights() -> None:
    assert trades_weight(Market.SPOT, "aggTrade") == 4
    assert trades_weight(Market.SPOT, "trade") == 25
    assert trades_weight(Market.USDM, "aggTrade") == 20
    assert trades_weight(Market.USDM, "trade") == 20


def test_from_settings_takes_the_books_fraction_even_with_books_disabled() -> None:
    b = RestBudgets.from_settings(BookSettings(enabled=False, weight_budget_fraction=0.25))
    st = b.statistics()
    assert (st[Market.SPOT].budget, st[Market.USDM].budget) == (1500, 600)


async def test_two_users_together_are_paced_and_stay_within_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1300 weight asked for at once against 600 a minute (burst 60, 10 per second)."""
    b = budgets()
    sent: list[tuple[float, int]] = []

    async def user(name: str, weight: int, count: int, urgent: bool) -> None:
        for _ in range(count):
            await b.acquire(Market.SPOT, weight, user=name, urgent=urgent)
            sent.append((trio.current_time(), weight))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(user, BACKFILL, 25, 40, True)
        nursery.start_soon(user, SNAPSHOTS, 5, 60, False)
    assert b.requested(Market.SPOT, BACKFILL) == 1000
    assert b.requested(Market.SPOT, SNAPSHOTS) == 300
    peak = max(sum(w for t2, w in sent if t - 60 < t2 <= t) for t, _ in sent)
    assert peak <= 600  # any sliding minute
    for i, (t0, _) in enumerate(sent):  # the token bucket: a burst, then 10 per second
        total = 0
        for t1, w in sent[i:]:
            total += w
            assert total <= 60 + (t1 - t0) * 10 + 1e-6
    assert sent[-1][0] > 120  # 1300 weight: more than two minutes
    assert b.statistics()[Market.USDM].weight_requested == {}  # markets are separate


async def test_an_urgent_request_goes_before_those_already_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = budgets()
    await b.acquire(Market.SPOT, 60, user=SNAPSHOTS)  # the burst is spent
    order: list[tuple[str, float]] = []

    async def go(name: str, weight: int, urgent: bool) -> None:
        await b.acquire(Market.SPOT, weight, user=name, urgent=urgent)
        order.append((name, trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(go, "snapshot 1", 5, False)  # would go at 0.5 s
        await trio.sleep(0.1)
        nursery.start_soon(go, "backfill", 25, True)  # 25 tokens: 2.5 s
        await trio.sleep(0.1)
        assert b.statistics()[Market.SPOT].urgent_waiting == 1
        nursery.start_soon(go, "snapshot 2", 5, False)
    # The snapshots' own order is not kept (the scheduler sends one at a time anyway).
    assert order[0][0] == "backfill"
    assert [t for _, t in order] == pytest.approx([2.5, 3.0, 3.5])
    assert b.statistics()[Market.SPOT].urgent_waiting == 0


async def test_a_cancelled_wait_charges_nothing(autojump_clock: trio.testing.MockClock) -> None:
    b = budgets()
    await b.acquire(Market.SPOT, 60, user=SNAPSHOTS)
    with trio.move_on_after(1):
        await b.acquire(Market.SPOT, 25, user=BACKFILL, urgent=True)
    assert b.requested(Market.SPOT, BACKFILL) == 0
    assert b.statistics()[Market.SPOT].urgent_waiting == 0
    await b.acquire(Market.SPOT, 5, user=SNAPSHOTS)  # not held back by a gone backfill
    assert trio.current_time() == pytest.approx(1.0)


async def test_429_or_418_to_one_user_blocks_every_user_of_that_market(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = budgets()
    assert b.observe(Market.SPOT, response(429, retry_after="7"), user=BACKFILL) == 7
    assert b.statistics()[Market.SPOT].blocked_s == 7
    await b.acquire(Market.USDM, 20, user=BACKFILL, urgent=True)  # the other market: open
    assert trio.current_time() == 0
    await b.acquire(Market.SPOT, 5, user=SNAPSHOTS)
    assert trio.current_time() == pytest.approx(7)
    # A 418 without Retry-After: Binance's shortest ban.
    assert b.observe(Market.USDM, response(418), user=SNAPSHOTS) == DEFAULT_BAN_S
    assert b.delay(Market.USDM, 20) == pytest.approx(DEFAULT_BAN_S)
    assert b.observe(Market.USDM, response(200), user=SNAPSHOTS) == 0


async def test_the_servers_count_holds_both_users_to_the_next_minute(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = budgets()
    await trio.sleep(10)  # 10 s into a wall-clock minute
    b.observe(Market.SPOT, response(200, x_mbx_used_weight_1m="590"), user=SNAPSHOTS)
    await b.acquire(Market.SPOT, 10, user=BACKFILL, urgent=True)  # 600: still within
    assert trio.current_time() == 10
    await b.acquire(Market.SPOT, 25, user=BACKFILL, urgent=True)
    assert trio.current_time() == pytest.approx(60 + MINUTE_MARGIN_S)


# -- the backfiller and the snapshot scheduler on one budget, against a stub REST API ------

LAST_ID = 50_000


class StubRest:
    """Binance's trade history (ids up to ``LAST_ID``) and depth, with forced errors."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.forced: list[RestResponse] = []
        self.used = 0

    async def get(
        self, base_url: str, path: str, params: Mapping[str, Any], *, time_limit: float
    ) -> RestResponse:
        self.calls.append((trio.current_time(), path, dict(params)))
        await trio.sleep(0.01)
        if self.forced:
            return self.forced.pop(0)
        self.used += 1
        headers = {"x-mbx-used-weight-1m": str(self.used)}
        if path.endswith("/depth"):
            body = {"lastUpdateId": 7, "bids": [["1.0", "2"]], "asks": [["1.1", "3"]]}
            return RestResponse(200, headers, orjson.dumps(body))
        first, limit = int(params["fromId"]), int(params["limit"])
        ids = range(first, min(first + limit, LAST_ID + 1))
        if path.endswith("/aggTrades"):
            rows: list[dict[str, Any]] = [
                {"a": i, "p": "1.5", "q": "2", "f": 3 * i, "l": 3 * i + 2, "T": i, "m": True}
                for i in ids
            ]
        else:
            rows = [
                {"id": i, "price": "1.5", "qty": "2", "time": i, "isBuyerMaker": False} for i in ids
            ]
        return RestResponse(200, headers, orjson.dumps(rows))

    def paths(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for _, path, _ in self.calls]


def backfiller(stub: StubRest, b: RestBudgets, **kw: Any) -> Backfiller:
    return Backfiller(Codecs(TopicSettings()), dict(URLS), budgets=b, get=stub.get, **kw)


def scheduler(
    stub: StubRest, b: RestBudgets, delivered: list[tuple[str, float]]
) -> SnapshotScheduler:
    def deliver(market: Market, symbol: str, snap: DepthSnapshot | None) -> bool:
        delivered.append((symbol, trio.current_time()))
        return False

    settings = BookSettings(snapshot_limit=100)
    return SnapshotScheduler(settings, dict(URLS), deliver, get=stub.get, budgets=b)


def ids(records: list[Record]) -> list[int]:
    return [r.seq for r in records]


@pytest.mark.parametrize(
    ("market", "kind", "page", "weight"),
    [
        (Market.SPOT, "aggTrade", 1000, 4),
        (Market.SPOT, "trade", 1000, 25),
        (Market.USDM, "aggTrade", 1000, 20),
        (Market.USDM, "trade", 500, 20),
    ],
)
async def test_backfill_charges_each_page_its_weight_and_reads_the_header(
    autojump_clock: trio.testing.MockClock, market: Market, kind: str, page: int, weight: int
) -> None:
    stub, b = StubRest(), budgets(spot=6000, usdm=6000)
    bf = backfiller(stub, b)
    got = await bf.fill(Gap(market, kind, "BTCUSDT", 1001, 3500))
    assert ids(got) == list(range(1001, 3501))
    pages = -(-2500 // page)
    assert [p["fromId"] for _, _, p in stub.calls] == [1001 + page * i for i in range(pages)]
    assert {p["limit"] for _, _, p in stub.calls} == {page}
    assert b.requested(market, BACKFILL) == pages * weight
    assert b.budget(market).server_used == pages  # the used-weight header of each reply
    assert (bf.filled, bf.unfilled, bf.requests) == (2500, 0, pages)
    assert bf.statuses == {(market.value, "ok"): pages}


async def test_a_429_met_by_the_backfill_holds_the_snapshots_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stub, b = StubRest(), budgets()
    stub.forced.append(response(429, retry_after="5"))
    delivered: list[tuple[str, float]] = []
    sched = scheduler(stub, b, delivered)
    bf = backfiller(stub, b)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        got: list[Record] = []

        async def fill() -> None:
            got.extend(await bf.fill(Gap(Market.SPOT, "trade", "BTCUSDT", 100, 199)))

        nursery.start_soon(fill)
        await trio.sleep(1)  # the 429 came back at once: the market is blocked
        sched.request(Market.SPOT, "ETHUSDT")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert stub.paths() == ["historicalTrades", "historicalTrades", "depth"]
    times = [t for t, _, _ in stub.calls]
    assert times[0] == 0
    assert times[1] == pytest.approx(5.01)  # the retry, when the block ended ...
    assert times[2] >= times[1]  # ... before the snapshot asked for meanwhile
    assert ids(got) == list(range(100, 200))
    assert bf.statuses == {("spot", "429"): 1, ("spot", "ok"): 1}
    assert delivered == [("ETHUSDT", pytest.approx(times[2] + 0.01))]


async def test_a_ban_met_by_the_snapshots_holds_the_backfill_or_gives_it_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stub, b = StubRest(), budgets()
    delivered: list[tuple[str, float]] = []
    sched = scheduler(stub, b, delivered)
    bf = backfiller(stub, b, max_wait_s=30)
    gap = Gap(Market.USDM, "aggTrade", "BTCUSDT", 10, 19)
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.serve)
        stub.forced.append(response(418, retry_after="3"))
        sched.request(Market.USDM, "ETHUSDT")
        await trio.sleep(0.5)
        assert ids(await bf.fill(gap)) == list(range(10, 20))  # waited for the ban to end
        assert trio.current_time() == pytest.approx(3.02)  # the 418 came at 0.01
        # A ban longer than max_wait_s: give the gap up at once, counted, nothing sent.
        b.observe(Market.USDM, response(418, retry_after="300"), user=SNAPSHOTS)
        sent = len(stub.calls)
        assert await bf.fill(gap) == []
        assert trio.current_time() == pytest.approx(3.02)
        assert len(stub.calls) == sent
        # The snapshot's retry went out at 3.01 too; let it land before stopping.
        await poll_until(
            lambda: delivered, timeout=1, what="the snapshot's retry delivered", interval=0.005
        )
        nursery.cancel_scope.cancel()
    assert bf.unfilled == 10
    assert bf.statuses == {("usdm", "ok"): 1, ("usdm", "budget_timeout"): 1}
    assert [(t, path.rsplit("/", 1)[1]) for t, path, _ in stub.calls] == [
        (0, "depth"),  # 418
        (pytest.approx(3.01), "aggTrades"),  # the backfill first, once the ban is over
        (pytest.approx(3.01), "depth"),  # then the snapshot's retry
    ]
    assert delivered == [("ETHUSDT", pytest.approx(3.02))]
    assert bf.budget_wait_s["usdm"] == pytest.approx(2.51)  # from 0.5 s to the ban's end


# -- the daemon's metrics ------------------------------------------------------------------


def samples(registry: prometheus_client.CollectorRegistry) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


@pytest.mark.parametrize("books", [True, False])
async def test_the_daemon_exports_the_shared_budget_with_or_without_books(books: bool) -> None:
    settings = Settings(books=BookSettings(enabled=books), http=HttpSettings(listen="127.0.0.1:0"))
    registry = prometheus_client.CollectorRegistry()
    daemon = Daemon(settings, registry=registry)
    try:
        backfill = daemon.normalizer.backfiller
        assert backfill is not None
        assert backfill.budgets is daemon.rest_budgets
        if daemon.books is not None:
            assert daemon.books.scheduler.budgets is daemon.rest_budgets
        got = samples(registry)
        text = prometheus_client.generate_latest(registry).decode()
    finally:
        daemon.close()
    assert got["marketd_rest_weight_budget{market=spot}"] == 3000
    assert got["marketd_rest_weight_budget{market=usdm}"] == 1200
    assert got["marketd_rest_weight_used{market=spot}"] == 0
    assert got["marketd_rest_blocked_seconds{market=usdm}"] == 0
    assert got["marketd_rest_weight_requested_total{market=spot,user=backfill}"] == 0
    assert got["marketd_backfill_requests_total{market=usdm,status=ok}"] == 0
    assert got["marketd_backfill_budget_wait_seconds_total{market=spot}"] == 0
    # Families with no sample yet are still declared: the exposition lists their names.
    for family in (
        "marketd_rest_weight_requested_total",
        "marketd_backfill_requests_total",
        "marketd_backfill_budget_wait_seconds_total",
        "marketd_trades_backfilled_total",
    ):
        assert f"# TYPE {family} counter" in text, family
    assert text.count("# HELP marketd_rest_weight_used ") == 1  # one family, not per user


async def test_acquire_under_the_fake_clock_never_spins_on_a_rounding_residue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At 1000 s a budget of 7 a minute left a wait of 1.6e-14 s after the first refill,
    below the clock's resolution there: ``acquire`` slept it, time did not move, and it
    spun forever. A guard turns such a spin into a failure instead of a hang."""
    b = RestBudgets({Market.SPOT: 7, Market.USDM: 7}, wall=wall)
    weight_budget = b.budget(Market.SPOT)
    delay = weight_budget.delay
    calls = 0

    def guarded(weight: int, now: float, wall_s: float) -> float:
        nonlocal calls
        calls += 1
        assert calls < 100, "acquire spins"
        return delay(weight, now, wall_s)

    weight_budget.delay = guarded  # type: ignore[method-assign]
    await trio.sleep(1000)
    for _ in range(3):
        await b.acquire(Market.SPOT, 1, user=SNAPSHOTS)
    assert trio.current_time() == pytest.approx(1000 + 2 * 60 / 7, abs=0.01)
    assert calls < 10
