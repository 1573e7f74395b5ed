"""Fetches REST depth snapshots for the books, within each API's weight budget (trio).

One lane per market (spot and USD-M have separate IP limits): a FIFO of symbols waiting
for a snapshot (each at most once) and a cap on requests in flight. The weight budget is the
market's in :class:`~marketd.rest.budget.RestBudgets`, shared with the trade backfiller,
which goes first (a waiting backfill holds snapshots back). A 429 or 418 (to either user)
blocks the whole market for its ``Retry-After``; a snapshot that met one goes back to the
head of the queue. A network error or another status retries that symbol alone after a
capped, jittered backoff. Snapshots go to ``deliver``, which answers whether another one is
needed (a stale snapshot).

**Two depths.** A book (re)syncs from a *sync snapshot* of ``Lane.sync_limit`` levels
(:func:`sync_limit`: ``books.sync_snapshot_limit``, by default the deepest limit that
weighs what ``publish_levels`` weighs: spot 100 levels for weight 5, USD-M 50 for 2),
so that every book of a full market is synced within the first minute or two; audits ask
for ``Lane.deep_limit`` (``books.snapshot_limit``: spot 50, USD-M 20 at 1000 levels), a
deepening for the next of ``Lane.tiers`` (:func:`depth_tiers`: the deepest limit of each
weight step, spot 100 → 500 → 1000, USD-M 50 → 100 → 500 → 1000) up to it. A book that
ran out of levels (``shallow``: the price moved past its snapshot's range) resyncs from
the step above the snapshot it had (the books stage tells each symbol's limit,
``sync_limit_of``): the books that move fast pay for depth, the others stay cheap.

**Low priority: deepening, then audits.** :meth:`SnapshotScheduler.request_audit` queues
a snapshot for the books stage's :mod:`marketd.books.audit` (``user`` ``deepen``: a
shallow book to be deepened by one weight step; ``audit``: a periodic check at
``deep_limit``). They are sent only when no sync snapshot is queued (one that arrives
while such a request waits for the budget takes its place; the wait charges nothing) and
no backfill waits (the budget's ``urgent`` requests go first); deepening goes before
audits. Their weight is charged to their user. :meth:`SnapshotScheduler.deepen_blocker`
and :meth:`audit_blocker` tell the caller to hold back when the lane is busy (a sync
snapshot queued or waiting for the budget; for audits also one in flight; another
low-priority request under way) or the budget tight: over ``books.deepen_budget_fraction``
(deepening) or ``AUDIT_BUDGET_SHARE`` (audits) of it in use, blocked, or the pacing bucket
short. So deepening spends only what the sync snapshots and the backfill leave, and never
more than its share of the window: the rest stays free for resyncs and backfill bursts.
A failed low-priority request is not retried (``audited`` gets None).
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
from marketd.rest.budget import AUDIT, DEEPEN, SNAPSHOTS, RestBudgets
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
# The low-priority users, first first.
LOW_USERS = (DEEPEN, AUDIT)


def _step_top(exchange: Exchange, low: int, high: int) -> int:
    """The deepest limit in ``[low, high]`` that weighs what ``low`` weighs (weights grow
    with the limit in steps: the last limit of ``low``'s step, or ``high``)."""
    weight = exchange.depth_snapshot(low).weight
    lo, hi = low, high
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if exchange.depth_snapshot(mid).weight <= weight:
            lo = mid
        else:
            hi = mid - 1
    return lo


def sync_limit(settings: BookSettings, exchange: Exchange) -> int:
    """The levels of the snapshot a book (re)syncs from: the deepest limit weighing what
    ``sync_snapshot_limit`` (0: ``publish_levels``) weighs — the same weight, more levels,
    and a limit USD-M serves — at least ``publish_levels``, at most the deep limit
    (``snapshot_limit``, as the market serves it)."""
    deep = exchange.depth_snapshot(settings.snapshot_limit).page
    low = min(max(settings.sync_snapshot_limit, settings.publish_levels), deep)
    return _step_top(exchange, low, deep)


def depth_tiers(exchange: Exchange, low: int, high: int) -> tuple[int, ...]:
    """``low``, then the deepest limit of each heavier weight step up to ``high``: the sync
    limits a book goes through as it runs out of levels (spot 100, 500, 1000; USD-M 50,
    100, 500, 1000: limits USD-M serves)."""
    tiers = [low]
    while tiers[-1] < high:
        tiers.append(_step_top(exchange, tiers[-1] + 1, high))
    return tuple(tiers)


@attrs.define(eq=False)
class Lane:
    market: Market
    base_url: str
    path: str
    sync_limit: int  # levels of the snapshots books (re)sync from ...
    sync_weight: int  # ... and their weight
    deep_limit: int  # levels of the deepening and audit snapshots ...
    deep_weight: int  # ... and their weight
    budget: WeightBudget  # shared: see RestBudgets
    slots: trio.Semaphore
    # The sync limits from ``sync_limit`` to ``deep_limit`` (see :func:`depth_tiers`).
    tiers: tuple[int, ...] = ()
    queue: deque[str] = attrs.field(factory=deque)
    queued: set[str] = attrs.field(factory=set)  # in ``queue`` or ``sending``
    sending: str | None = None  # taken from the queue, waiting for the budget
    wake: trio.Event = attrs.field(factory=trio.Event)
    in_flight: int = 0
    statuses: Counter[str] = attrs.field(factory=Counter)
    failures: Counter[str] = attrs.field(factory=Counter)  # per symbol, for backoff
    # Symbols waiting for a low-priority (deep) snapshot, by user: deepen, audit.
    low: dict[str, deque[str]] = attrs.field(factory=lambda: {u: deque() for u in LOW_USERS})
    low_limits: dict[tuple[str, str], int] = attrs.field(factory=dict)  # (user, symbol) → levels
    low_wait: trio.CancelScope | None = None  # a low-priority request waiting for the budget
    low_waiting: tuple[str, str] | None = None  # ... (user, symbol)
    low_in_flight: int = 0
    low_statuses: dict[str, Counter[str]] = attrs.field(
        factory=lambda: {u: Counter() for u in LOW_USERS}
    )

    @property
    def limit(self) -> int:
        """The levels of the ``snapshot_limit`` snapshots, as the market serves them."""
        return self.deep_limit

    @property
    def weight(self) -> int:
        """The weight of a ``snapshot_limit`` snapshot."""
        return self.deep_weight

    def low_head(self) -> tuple[str, str] | None:
        """The next low-priority request: (user, symbol)."""
        for user in LOW_USERS:
            if self.low[user]:
                return user, self.low[user][0]
        return None


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
    deepen_requests: dict[str, int] = attrs.field(factory=dict)  # deepening, by status
    deepen_weight: int = 0  # requested by the deepening snapshots, since start
    sync_limit: int = 0  # levels of the sync snapshots
    deep_limit: int = 0  # levels of the deepening and audit snapshots


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
        sync_limit_of: Callable[[Market, str], int] | None = None,
    ) -> None:
        self.adapter = adapter
        # The levels of a symbol's next sync snapshot (default: the lane's sync limit).
        self.sync_limit_of = sync_limit_of
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
            exchange = adapter(market)
            deep = exchange.depth_snapshot(settings.snapshot_limit)
            shallow = exchange.depth_snapshot(sync_limit(settings, exchange))
            self.lanes[market] = Lane(
                tiers=depth_tiers(exchange, shallow.page, deep.page),
                market=market,
                base_url=url,
                path=deep.path,
                sync_limit=shallow.page,
                sync_weight=shallow.weight,
                deep_limit=deep.page,
                deep_weight=deep.weight,
                budget=self.budgets.budget(market),
                slots=trio.Semaphore(settings.max_concurrent_snapshots),
            )

    def request(self, market: Market, symbol: str) -> None:
        """Queue ``symbol`` for a sync snapshot (no-op when it is already queued)."""
        lane = self.lanes[market]
        if symbol in lane.queued:
            return
        lane.queued.add(symbol)
        lane.queue.append(symbol)
        lane.wake.set()
        if lane.low_wait is not None:
            lane.low_wait.cancel()  # the sync snapshot goes first

    # -- deepening and audits -------------------------------------------------------------

    def _low_blocker(
        self, market: Market, share: float, limit: int | None, *, strict: bool
    ) -> str | None:
        lane = self.lanes[market]
        weight = lane.deep_weight
        if limit is not None:
            weight = self.adapter(market).depth_snapshot(limit).weight
        if lane.queued or (strict and lane.in_flight):
            return "busy"
        if lane.low_head() is not None or lane.low_in_flight:
            return "busy"
        st = self.budgets.statistics()[market]
        if st.blocked_s > 0 or st.urgent_waiting:
            return "budget"
        if st.weight_used + weight > st.budget * share:
            return "budget"
        if self.budgets.delay(market, weight) > 0:
            return "budget"
        return None

    def audit_blocker(self, market: Market) -> str | None:
        """Why an audit of ``market`` should not start now (None: it may).

        ``busy``: sync snapshots are queued or in flight, or a deepening or an audit is;
        ``budget``: the market is blocked, a backfill waits, over ``AUDIT_BUDGET_SHARE`` of
        the budget is in use, or the pacing would hold the request back."""
        return self._low_blocker(market, AUDIT_BUDGET_SHARE, None, strict=True)

    def deepen_blocker(self, market: Market, limit: int | None = None) -> str | None:
        """Why a book of ``market`` should not be deepened now with a snapshot of ``limit``
        levels (default ``deep_limit``); None: it may. As :meth:`audit_blocker`, with
        ``books.deepen_budget_fraction`` of the budget, and sync snapshots in flight (their
        weight charged already) do not hold it back: only those still waiting do."""
        return self._low_blocker(market, self.settings.deepen_budget_fraction, limit, strict=False)

    def request_audit(
        self, market: Market, symbol: str, *, user: str = AUDIT, limit: int | None = None
    ) -> None:
        """Queue a snapshot of ``symbol`` of ``limit`` levels (default ``deep_limit``) for an
        audit (``user`` ``audit``) or to deepen its book (``deepen``): sent after every sync
        snapshot, deepening first."""
        lane = self.lanes[market]
        waiting = lane.low[user]
        if symbol not in waiting:
            waiting.append(symbol)
            lane.low_limits[(user, symbol)] = limit or lane.deep_limit
            lane.wake.set()

    def cancel_audit(self, market: Market, symbol: str) -> None:
        """Forget a queued audit or deepening request of ``symbol`` (no-op once sent)."""
        lane = self.lanes[market]
        for user, waiting in lane.low.items():
            if symbol in waiting:
                waiting.remove(symbol)
                lane.low_limits.pop((user, symbol), None)
                if lane.low_waiting == (user, symbol) and lane.low_wait is not None:
                    lane.low_wait.cancel()

    def statistics(self) -> dict[Market, LaneStatistics]:
        try:
            now = _now()
        except RuntimeError:  # outside trio.run (a test, a bench): nothing expires
            now = float("-inf")
        wall = self.budgets.wall()
        return {
            m: LaneStatistics(
                queued=len(lane.queued),
                in_flight=lane.in_flight,
                weight_used=lane.budget.used(now, wall),
                weight_requested=self.budgets.requested(m, SNAPSHOTS),
                budget=lane.budget.budget,
                blocked_s=0.0 if now < 0 else max(0.0, lane.budget.blocked_until - now),
                requests=dict(lane.statuses),
                audit_requests=dict(lane.low_statuses[AUDIT]),
                audit_weight=self.budgets.requested(m, AUDIT),
                deepen_requests=dict(lane.low_statuses[DEEPEN]),
                deepen_weight=self.budgets.requested(m, DEEPEN),
                sync_limit=lane.sync_limit,
                deep_limit=lane.deep_limit,
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
            while not lane.queue and lane.low_head() is None:
                lane.wake = trio.Event()
                await lane.wake.wait()
            await lane.slots.acquire()
            low: tuple[str, str, int] | None = None
            try:
                if lane.queue:
                    symbol, limit = await self._acquire_sync(lane)
                elif (low := await self._acquire_low(lane)) is None:
                    lane.slots.release()  # a sync snapshot came, or the request was cancelled
                    continue
            except BaseException:
                lane.slots.release()
                raise
            if low is None:
                lane.in_flight += 1
                nursery.start_soon(self._fetch, lane, symbol, limit, nursery)
            else:
                user, symbol, limit = low
                lane.low[user].remove(symbol)
                lane.low_limits.pop((user, symbol), None)
                lane.low_in_flight += 1
                nursery.start_soon(self._fetch_audit, lane, symbol, user, limit)

    async def _acquire_sync(self, lane: Lane) -> tuple[str, int]:
        """Take the next symbol, wait for the budget for its sync snapshot (its own limit:
        see ``sync_limit_of``) and charge it; (symbol, limit)."""
        symbol = lane.sending = lane.queue.popleft()  # still in ``queued``: not asked twice
        try:
            limit = lane.sync_limit
            if self.sync_limit_of is not None:
                limit = self.sync_limit_of(lane.market, symbol)
            endpoint = self.adapter(lane.market).depth_snapshot(limit)
            await self.budgets.acquire(lane.market, endpoint.weight, user=SNAPSHOTS)
        except BaseException:
            lane.queue.appendleft(symbol)
            raise
        finally:
            lane.sending = None
        lane.queued.discard(symbol)
        return symbol, endpoint.page

    async def _acquire_low(self, lane: Lane) -> tuple[str, str, int] | None:
        """Wait for the budget for the next low-priority request and charge it to its user;
        (user, symbol, limit), or None when cancelled (nothing charged) or no longer wanted."""
        head = lane.low_head()
        if head is None:
            return None
        user, symbol = head
        endpoint = self.adapter(lane.market).depth_snapshot(
            lane.low_limits.get(head, lane.deep_limit)
        )
        with trio.CancelScope() as scope:
            lane.low_wait, lane.low_waiting = scope, head
            try:
                await self.budgets.acquire(lane.market, endpoint.weight, user=user)
            finally:
                lane.low_wait = lane.low_waiting = None
        if scope.cancelled_caught or lane.queue or symbol not in lane.low[user]:
            return None
        return user, symbol, endpoint.page

    async def _fetch_audit(self, lane: Lane, symbol: str, user: str, limit: int) -> None:
        with span(f"book.{user}", market=lane.market.value, symbol=symbol) as sp:
            try:
                status, snapshot = await self._get(lane, symbol, limit, user=user)
            finally:
                lane.low_in_flight -= 1
                lane.slots.release()
            sp.set_attribute("status", status)
        lane.low_statuses[user][status] += 1
        if self.audited is not None:
            self.audited(lane.market, symbol, snapshot)

    async def _fetch(self, lane: Lane, symbol: str, limit: int, nursery: trio.Nursery) -> None:
        with span("book.resync", market=lane.market.value, symbol=symbol) as sp:
            try:
                status, snapshot = await self._get(lane, symbol, limit)
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
        self, lane: Lane, symbol: str, limit: int, *, user: str = SNAPSHOTS
    ) -> tuple[str, DepthSnapshot | None]:
        params: dict[str, str | int] = {"symbol": symbol, "limit": limit}
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
