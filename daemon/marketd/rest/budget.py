"""One REST weight budget per exchange API, shared by every REST user of marketd (trio).

The exchange counts request weight per IP and API (Binance: spot, USD-M), so the book snapshot
scheduler and the trade backfiller spend from one allowance: one
:class:`~marketd.rest.weight.WeightBudget` per market, held here. Who goes first: the
backfill (``urgent``), then the snapshots books sync from, then the snapshots that deepen
shallow books, then audits (the scheduler orders the last three; see
:mod:`marketd.books.scheduler`).

* :meth:`RestBudgets.acquire` waits until the budget admits a request, then charges it.
  An ``urgent`` request (backfill: a symbol's live trades wait for it) goes first: while one
  waits, no other request of that market starts. Neither ever exceeds the budget.
* :meth:`RestBudgets.observe` feeds each response's used-weight header (the adapter's
  :attr:`~marketd.exchanges.seam.Exchange.used_weight_header`) to the budget;
  a 429 or 418 blocks the whole market, for every user, until its ``Retry-After``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import attrs
import structlog
import trio
from prometheus_client.core import Metric

from marketd.config.books import BookSettings
from marketd.data.records import Market
from marketd.exchanges import adapter
from marketd.obs.metrics import counter, gauge
from marketd.rest.client import RestResponse
from marketd.rest.weight import DEFAULT_BAN_S, DEFAULT_RETRY_AFTER_S, WeightBudget, retry_after

log = structlog.get_logger(__name__)

# The users of the budget, as they appear in metric labels.
SNAPSHOTS = "snapshots"  # the snapshots books (re)sync from
BACKFILL = "backfill"
DEEPEN = "deepen"  # deeper snapshots for books synced shallow (see marketd.books.scheduler)
AUDIT = "audit"  # book audits: the lowest priority
USERS = (SNAPSHOTS, BACKFILL, DEEPEN, AUDIT)


@attrs.define(eq=False)
class _Lane:
    budget: WeightBudget
    urgent: int = 0  # urgent requests waiting
    calm: trio.Event = attrs.field(factory=trio.Event)  # set when none is waiting
    requested: Counter[str] = attrs.field(factory=Counter)  # weight charged, by user


@attrs.frozen
class BudgetStatistics:
    weight_used: int  # counted against the budget right now (last 60 s / this minute)
    budget: int
    blocked_s: float  # seconds until a 429/418 block ends (0: not blocked)
    urgent_waiting: int  # urgent requests (backfill) waiting for the budget
    weight_requested: dict[str, int]  # by user, since start


class RestBudgets:
    """Market → :class:`WeightBudget`, shared by the snapshot scheduler and the backfiller."""

    def __init__(
        self,
        budgets: Mapping[Market, int],
        *,
        wall: Callable[[], float] = time.time,
        used_weight_header: str | None = None,
    ) -> None:
        self.wall = wall
        # Where each market's exchange reports the weight this IP used in the current
        # minute (``used_weight_header`` overrides them all).
        self.used_weight_headers = {
            m: used_weight_header or adapter(m).used_weight_header for m in budgets
        }
        self._lanes = {m: _Lane(WeightBudget(b)) for m, b in budgets.items()}
        for lane in self._lanes.values():
            lane.calm.set()

    @classmethod
    def from_settings(
        cls, settings: BookSettings, *, wall: Callable[[], float] = time.time
    ) -> RestBudgets:
        """``weight_budget_fraction`` of each market's limit (used even with books disabled)."""
        limits = {
            Market.SPOT: settings.spot_weight_limit,
            Market.USDM: settings.futures_weight_limit,
        }
        fraction = settings.weight_budget_fraction
        return cls({m: int(limit * fraction) for m, limit in limits.items()}, wall=wall)

    def budget(self, market: Market) -> WeightBudget:
        return self._lanes[market].budget

    def requested(self, market: Market, user: str) -> int:
        """Weight charged for ``user`` in ``market`` since start."""
        return self._lanes[market].requested[user]

    def delay(self, market: Market, weight: int) -> float:
        """Seconds before a request of ``weight`` could start, were nothing else waiting."""
        return self._lanes[market].budget.delay(weight, trio.current_time(), self.wall())

    async def acquire(
        self, market: Market, weight: int, *, user: str, urgent: bool = False
    ) -> None:
        """Wait until the budget admits ``weight``, then charge it (send the request now).

        Cancelling the wait charges nothing.
        """
        lane = self._lanes[market]
        if urgent:
            if not lane.urgent:
                lane.calm = trio.Event()
            lane.urgent += 1
        try:
            # A loop, not one wait: the budget moves with time, responses and other users.
            while True:
                if not urgent and lane.urgent:
                    await lane.calm.wait()
                    continue
                delay = lane.budget.delay(weight, trio.current_time(), self.wall())
                if delay <= 0:
                    break
                await trio.sleep(delay)
            lane.budget.charge(weight, trio.current_time())
            lane.requested[user] += weight
        finally:
            if urgent:
                lane.urgent -= 1
                if not lane.urgent:
                    lane.calm.set()

    def observe(self, market: Market, response: RestResponse, *, user: str) -> float:
        """Take in a response: its used-weight header; on 429/418 block ``market`` for every
        user. Return the seconds blocked (0 for any other status)."""
        budget = self._lanes[market].budget
        used = response.header_int(self.used_weight_headers[market])
        budget.observe(used, self.wall())
        status = response.status
        if status not in (429, 418):
            return 0.0
        default = DEFAULT_RETRY_AFTER_S if status == 429 else DEFAULT_BAN_S
        seconds = retry_after(response.headers.get("retry-after"), default)
        budget.block(seconds, trio.current_time())
        log.warning(
            "REST weight limit hit (429): market paused"
            if status == 429
            else "REST banned (418): market paused",
            market=market.value,
            user=user,
            retry_after_s=seconds,
            used_weight=used,
        )
        return seconds

    def statistics(self) -> dict[Market, BudgetStatistics]:
        try:
            now = trio.current_time()
        except RuntimeError:  # outside trio.run (a test, a bench): nothing expires
            now = float("-inf")
        wall = self.wall()
        return {
            m: BudgetStatistics(
                weight_used=lane.budget.used(now, wall),
                budget=lane.budget.budget,
                blocked_s=0.0 if now < 0 else max(0.0, lane.budget.blocked_until - now),
                urgent_waiting=lane.urgent,
                weight_requested=dict(lane.requested),
            )
            for m, lane in self._lanes.items()
        }

    def metrics(self) -> Iterable[Metric]:
        st = self.statistics()
        yield gauge(
            "marketd_rest_weight_used",
            "REST request weight counted against the budget (last 60 s, or the server's "
            "count this minute), by market; book snapshots and trade backfill together.",
            ("market",),
            {(m.value,): float(s.weight_used) for m, s in st.items()},
        )
        yield gauge(
            "marketd_rest_weight_budget",
            "REST request weight per minute marketd may use (book snapshots and trade "
            "backfill together), by market.",
            ("market",),
            {(m.value,): float(s.budget) for m, s in st.items()},
        )
        yield counter(
            "marketd_rest_weight_requested_total",
            "REST request weight spent, by market and user (snapshots, backfill, deepen, audit).",
            ("market", "user"),
            {(m.value, u): s.weight_requested.get(u, 0) for m, s in st.items() for u in USERS},
        )
        yield gauge(
            "marketd_rest_blocked_seconds",
            "Seconds until a 429 (Retry-After) or 418 (ban) block of the market ends.",
            ("market",),
            {(m.value,): s.blocked_s for m, s in st.items()},
        )
