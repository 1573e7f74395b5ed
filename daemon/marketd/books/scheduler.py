"""Fetches REST depth snapshots for the books, within each API's weight budget (trio).

One lane per market (spot and USD-M have separate IP limits): a FIFO of symbols waiting
for a snapshot (each at most once) and a cap on requests in flight. The weight budget is the
market's in :class:`~marketd.rest.budget.RestBudgets`, shared with the trade backfiller,
which goes first (a waiting backfill holds snapshots back). A 429 or 418 (to either user)
blocks the whole market for its ``Retry-After``; a snapshot that met one goes back to the
head of the queue. A network error or another status retries that symbol alone after a
capped, jittered backoff. Snapshots go to ``deliver``, which answers whether another one is
needed (a stale snapshot).

Audit snapshots (:mod:`marketd.books.audit`) come last: :meth:`SnapshotScheduler.
request_audit` queues one, which is sent only when no sync snapshot is queued (one that
arrives while an audit waits for the budget takes its place; the wait charges nothing) and
no backfill waits (the budget's ``urgent`` requests go first); their weight is charged to
the ``audit`` user. :meth:`SnapshotScheduler.audit_blocker` tells the caller to pass a round
up when the lane is busy or the budget tight (over ``AUDIT_BUDGET_SHARE`` of it in use,
blocked, or the pacing bucket short). A failed audit request is not retried: the audit is
skipped (``audited`` gets None).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping

import attrs
import structlog
import trio

from marketd import exchanges
from marketd.config.books import BookSettings
from marketd.data.events import DepthSnapshot
from marketd.data.records import Market
from marketd.errors import RestError
from marketd.exchanges.seam import Exchange
from marketd.obs.telemetry import span
from marketd.rest.budget import AUDIT, SNAPSHOTS, RestBudgets
from marketd.rest.client import HttpGet, http_get
from marketd.rest.weight import WeightBudget
from marketd.runtime.backoff import BackoffPolicy

log = structlog.get_logger(__name__)


# deliver(market, symbol, snapshot or None if it failed) → True: request another one.
Deliver = Callable[[Market, str, DepthSnapshot | None], bool]
# audited(market, symbol, snapshot or None if the request failed): an audit's snapshot.
Audited = Callable[[Market, str, DepthSnapshot | None], None]

# Audits start only while less than this share of the market's budget is in use.
AUDIT_BUDGET_SHARE = 0.5


@attrs.define(eq=False)
class Lane:
    market: Market
    base_url: str
    path: str
    limit: int
    weight: int
    budget: WeightBudget  # shared: see RestBudgets
    slots: trio.Semaphore
    queue: deque[str] = attrs.field(factory=deque)
    queued: set[str] = attrs.field(factory=set)
    wake: trio.Event = attrs.field(factory=trio.Event)
    in_flight: int = 0
    statuses: Counter[str] = attrs.field(factory=Counter)
    failures: Counter[str] = attrs.field(factory=Counter)  # per symbol, for backoff
    audits: deque[str] = attrs.field(factory=deque)  # symbols waiting for an audit snapshot
    audit_wait: trio.CancelScope | None = None  # an audit waiting for the budget
    audits_in_flight: int = 0
    audit_statuses: Counter[str] = attrs.field(factory=Counter)


@attrs.frozen
class LaneStatistics:
    queued: int
    in_flight: int
    weight_used: int  # counted against the budget right now (all users of the market)
    weight_requested: int  # by the snapshots, since start
    budget: int
    blocked_s: float  # seconds until a 429/418 block ends (0: not blocked)
    requests: dict[str, int]  # by status: ok, 429, 418, http_error, network, bad_body
    audit_requests: dict[str, int]  # audit snapshots, by status (not in ``requests``)
    audit_weight: int  # requested by the audit snapshots, since start


class SnapshotScheduler:
    def __init__(
        self,
        settings: BookSettings,
        rest_urls: Mapping[Market, str],
        deliver: Deliver,
        *,
        audited: Audited | None = None,
        timeout: float = 10.0,
        wall: Callable[[], float] = time.time,
        get: HttpGet = http_get,
        retry: BackoffPolicy | None = None,
        budgets: RestBudgets | None = None,
        adapter: Callable[[Market], Exchange] = exchanges.adapter,
    ) -> None:
        self.adapter = adapter
        self.settings = settings
        self.budgets = budgets or RestBudgets.from_settings(settings, wall=wall)
        self.deliver = deliver
        self.audited = audited
        self.timeout = timeout
        self.wall = wall
        self.get = get
        self.retry = retry or BackoffPolicy(initial=1.0, cap=30.0)
        self.lanes: dict[Market, Lane] = {}
        for market, url in rest_urls.items():
            endpoint = adapter(market).depth_snapshot(settings.snapshot_limit)
            self.lanes[market] = Lane(
                market=market,
                base_url=url,
                path=endpoint.path,
                limit=endpoint.page,
                weight=endpoint.weight,
                budget=self.budgets.budget(market),
                slots=trio.Semaphore(settings.max_concurrent_snapshots),
            )

    def request(self, market: Market, symbol: str) -> None:
        """Queue ``symbol`` for a snapshot (no-op when it is already queued)."""
        lane = self.lanes[market]
        if symbol in lane.queued:
            return
        lane.queued.add(symbol)
        lane.queue.append(symbol)
        lane.wake.set()
        if lane.audit_wait is not None:
            lane.audit_wait.cancel()  # the sync snapshot goes first

    # -- audits ---------------------------------------------------------------------------

    def audit_blocker(self, market: Market) -> str | None:
        """Why an audit of ``market`` should not start now (None: it may).

        ``busy``: sync snapshots are queued or in flight, or an audit is; ``budget``: the
        market is blocked, a backfill waits, over ``AUDIT_BUDGET_SHARE`` of the budget is
        in use, or the pacing would hold the request back."""
        lane = self.lanes[market]
        if lane.queue or lane.in_flight or lane.audits or lane.audits_in_flight:
            return "busy"
        st = self.budgets.statistics()[market]
        if st.blocked_s > 0 or st.urgent_waiting:
            return "budget"
        if st.weight_used + lane.weight > st.budget * AUDIT_BUDGET_SHARE:
            return "budget"
        if self.budgets.delay(market, lane.weight) > 0:
            return "budget"
        return None

    def request_audit(self, market: Market, symbol: str) -> None:
        """Queue an audit snapshot of ``symbol`` (sent after every sync snapshot)."""
        lane = self.lanes[market]
        if symbol not in lane.audits:
            lane.audits.append(symbol)
            lane.wake.set()

    def cancel_audit(self, market: Market, symbol: str) -> None:
        """Forget a queued audit request of ``symbol`` (no-op once sent)."""
        lane = self.lanes[market]
        if symbol in lane.audits:
            lane.audits.remove(symbol)
            if not lane.audits and lane.audit_wait is not None:
                lane.audit_wait.cancel()

    def statistics(self) -> dict[Market, LaneStatistics]:
        try:
            now = _now()
        except RuntimeError:  # outside trio.run (a test, a bench): nothing expires
            now = float("-inf")
        wall = self.budgets.wall()
        return {
            m: LaneStatistics(
                queued=len(lane.queue),
                in_flight=lane.in_flight,
                weight_used=lane.budget.used(now, wall),
                weight_requested=self.budgets.requested(m, SNAPSHOTS),
                budget=lane.budget.budget,
                blocked_s=0.0 if now < 0 else max(0.0, lane.budget.blocked_until - now),
                requests=dict(lane.statuses),
                audit_requests=dict(lane.audit_statuses),
                audit_weight=self.budgets.requested(m, AUDIT),
            )
            for m, lane in self.lanes.items()
        }

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for lane in self.lanes.values():
                nursery.start_soon(self._run_lane, lane, nursery)
            task_status.started()

    async def _run_lane(self, lane: Lane, nursery: trio.Nursery) -> None:
        while True:
            while not lane.queue and not lane.audits:
                lane.wake = trio.Event()
                await lane.wake.wait()
            await lane.slots.acquire()
            try:
                if lane.queue:
                    await self.budgets.acquire(lane.market, lane.weight, user=SNAPSHOTS)
                elif not await self._acquire_audit(lane):
                    lane.slots.release()  # a sync snapshot came, or the audit was cancelled
                    continue
            except BaseException:
                lane.slots.release()
                raise
            if lane.queue:
                symbol = lane.queue.popleft()
                lane.queued.discard(symbol)
                lane.in_flight += 1
                nursery.start_soon(self._fetch, lane, symbol, nursery)
            else:
                symbol = lane.audits.popleft()
                lane.audits_in_flight += 1
                nursery.start_soon(self._fetch_audit, lane, symbol)

    async def _acquire_audit(self, lane: Lane) -> bool:
        """Wait for the budget for an audit; False when cancelled (nothing charged)."""
        with trio.CancelScope() as scope:
            lane.audit_wait = scope
            try:
                await self.budgets.acquire(lane.market, lane.weight, user=AUDIT)
            finally:
                lane.audit_wait = None
        return not scope.cancelled_caught and bool(lane.audits) and not lane.queue

    async def _fetch_audit(self, lane: Lane, symbol: str) -> None:
        with span("book.audit", market=lane.market.value, symbol=symbol) as sp:
            try:
                status, snapshot = await self._get(lane, symbol, user=AUDIT)
            finally:
                lane.audits_in_flight -= 1
                lane.slots.release()
            sp.set_attribute("status", status)
        lane.audit_statuses[status] += 1
        if self.audited is not None:
            self.audited(lane.market, symbol, snapshot)

    async def _fetch(self, lane: Lane, symbol: str, nursery: trio.Nursery) -> None:
        with span("book.resync", market=lane.market.value, symbol=symbol) as sp:
            try:
                status, snapshot = await self._get(lane, symbol)
            finally:
                lane.in_flight -= 1
                lane.slots.release()
            sp.set_attribute("status", status)
        lane.statuses[status] += 1
        if status in ("429", "418"):
            # The lane is blocked; this symbol goes first once it opens again.
            if symbol not in lane.queued:
                lane.queued.add(symbol)
                lane.queue.appendleft(symbol)
                lane.wake.set()  # the lane may be idle, waiting for a queued symbol
            return
        if snapshot is not None:
            lane.failures.pop(symbol, None)
        if self.deliver(lane.market, symbol, snapshot):
            if snapshot is not None:
                self.request(lane.market, symbol)
            else:
                delay = self.retry.delay(lane.failures[symbol])
                lane.failures[symbol] += 1
                nursery.start_soon(self._request_later, lane.market, symbol, delay)

    async def _request_later(self, market: Market, symbol: str, delay: float) -> None:
        await trio.sleep(delay)
        self.request(market, symbol)

    async def _get(
        self, lane: Lane, symbol: str, *, user: str = SNAPSHOTS
    ) -> tuple[str, DepthSnapshot | None]:
        params: dict[str, str | int] = {"symbol": symbol, "limit": lane.limit}
        try:
            resp = await self.get(lane.base_url, lane.path, params, time_limit=self.timeout)
        except RestError as exc:
            log.warning("book snapshot request failed", symbol=symbol, error=str(exc))
            return "network", None
        self.budgets.observe(lane.market, resp, user=user)
        if resp.status == 200:
            try:
                return "ok", self.adapter(lane.market).decode_depth_snapshot(resp.body)
            except ValueError as exc:  # msgspec.DecodeError: not the exchange's snapshot
                log.warning("book snapshot unreadable", symbol=symbol, error=str(exc))
                return "bad_body", None
        if resp.status in (429, 418):  # the market is blocked (observe)
            return str(resp.status), None
        log.warning(
            "book snapshot request failed",
            symbol=symbol,
            status=resp.status,
            body=resp.body[:200].decode(errors="replace"),
        )
        return "http_error", None


def _now() -> float:
    return trio.current_time()
