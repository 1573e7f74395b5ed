"""Fill trade-id gaps from the exchange's REST trade history, in order, within the weight budget.

After a reconnect, trades that happened while disconnected are fetched with ``fromId``
(``historicalTrades`` for ``trade``, ``aggTrades`` for ``aggTrade``) and published before
the live trade that revealed the gap, so each symbol's ids stay consecutive in Kafka.

Every request is charged to the market's REST weight budget, shared with the book
snapshots (:class:`~marketd.rest.budget.RestBudgets`), ahead of them: the symbol's live
trades are held until its backfill is done. Each response's used-weight header is taken
in; a 429 or 418 blocks the market for both users, and the backfill waits for the block to
end, up to ``max_wait_s``. Any other 4xx refuses the request itself (a ``fromId`` older than
the history the exchange still holds, a symbol it does not know): asking again gets the same
answer, so it is not retried and the rest of the gap is given up as unfilled.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

import attrs
import structlog
import trio
from prometheus_client.core import CounterMetricFamily, Metric

from marketd import exchanges
from marketd.config.books import BookSettings
from marketd.data.records import Market, Record
from marketd.errors import RestError
from marketd.exchanges.seam import Endpoint, Exchange
from marketd.obs.metrics import counter, seeded
from marketd.pipeline.sequence import Gap
from marketd.rest.budget import BACKFILL, RestBudgets
from marketd.rest.client import OUTCOMES, HttpGet, http_get
from marketd.runtime.backoff import Backoff, BackoffPolicy

log = structlog.get_logger(__name__)


class RestTradeEncoder(Protocol):
    def encode_rest_trades(
        self, market: Market, symbol: str, kind: str, body: bytes, received_ns: int
    ) -> list[Record]: ...


def _default_budgets() -> RestBudgets:
    return RestBudgets.from_settings(BookSettings())


@attrs.frozen
class _Reply:
    """How one request ended: its outcome (``OUTCOMES``), the records of an ``ok``, and
    whether asking again may get another answer."""

    outcome: str
    records: list[Record] | None = None
    retryable: bool = True


def _refused(status: int) -> bool:
    """A 4xx other than the rate limits (429, 418): the request, not the moment, is wrong."""
    return 400 <= status < 500 and status not in (429, 418)


@attrs.define
class Backfiller:
    encoder: RestTradeEncoder
    rest_urls: dict[Market, str]
    max_trades: int = 10_000
    timeout: float = 10.0
    attempts: int = 3
    retry: BackoffPolicy = attrs.field(factory=lambda: BackoffPolicy(initial=0.2, cap=2.0))
    # The REST weight budget, shared with the book snapshots (pass the daemon's one).
    budgets: RestBudgets = attrs.field(factory=_default_budgets)
    # Longest wait for the budget before a gap is given up: a 429's Retry-After or the
    # next wall-clock minute (at most 61 s) is waited out; a 418 ban (2 min or more) is not.
    max_wait_s: float = 65.0
    get: HttpGet = http_get
    # The adapter whose trade history fills a market's gaps (its endpoints and weights).
    adapter: Callable[[Market], Exchange] = exchanges.adapter
    filled: int = 0
    unfilled: int = 0
    requests: int = 0
    last_error: str = ""
    # Why the last gap given up was not filled whole: "no_history" (no endpoint for the
    # kind), "too_many" (beyond max_trades), "budget", "refused" (a 4xx), "failed" (every
    # attempt failed), "not_held" (the exchange answered without those ids).
    last_reason: str = ""
    # (market, status) → requests: ok, 429, 418, http_error, network, bad_body; and
    # budget_timeout: not sent, the budget would not admit it within max_wait_s.
    statuses: Counter[tuple[str, ...]] = attrs.field(factory=Counter)
    budget_wait_s: dict[str, float] = attrs.field(factory=dict)  # market → seconds waited

    async def fill(self, gap: Gap) -> list[Record]:
        """Return the records with ids ``gap.first..gap.last`` that REST still has, in order.

        Gives up after ``attempts`` failed requests, at once when a request is refused (a
        4xx other than 429/418), when the budget stays closed beyond ``max_wait_s``, or
        beyond ``max_trades`` (counted in ``unfilled``): a gap that cannot be filled is
        reported, never hidden.
        """
        endpoint = self.adapter(gap.market).trade_history(gap.kind)
        if endpoint is None:
            self.unfilled += gap.size
            self.last_reason = "no_history"
            return []
        page_limit = endpoint.page
        wanted_last = min(gap.last, gap.first + self.max_trades - 1)
        self.last_reason = ""  # _page says why it gave up
        out: list[Record] = []
        next_id = gap.first
        while next_id <= wanted_last:
            page = await self._page(gap, endpoint, next_id)
            fresh = [r for r in page if next_id <= r.seq <= wanted_last]
            if not fresh:
                break
            fresh.sort(key=lambda r: r.seq)
            out.extend(fresh)
            next_id = fresh[-1].seq + 1
            if len(page) < page_limit:
                break
        self.filled += len(out)
        self.unfilled += gap.size - len(out)
        if not self.last_reason and len(out) < gap.size:
            self.last_reason = "too_many" if next_id > wanted_last else "not_held"
        return out

    async def _page(self, gap: Gap, endpoint: Endpoint, from_id: int) -> list[Record]:
        backoff = Backoff(self.retry)
        params: dict[str, str | int] = {
            "symbol": gap.symbol,
            "fromId": from_id,
            "limit": endpoint.page,
        }
        market = gap.market.value
        for attempt in range(self.attempts):
            if not await self._admit(gap, endpoint.weight):
                self.statuses[(market, "budget_timeout")] += 1
                log.warning(
                    "backfill gave up: the REST weight budget stays closed",
                    market=market,
                    symbol=gap.symbol,
                    kind=gap.kind,
                    wait_s=round(self.budgets.delay(gap.market, 0), 1),
                    max_wait_s=self.max_wait_s,
                )
                self.last_reason = "budget"
                return []
            self.requests += 1
            reply = await self._get(gap, endpoint.path, params)
            self.statuses[(market, reply.outcome)] += 1
            if reply.records is not None:
                return reply.records
            if not reply.retryable:
                log.warning(
                    "backfill refused by the exchange: the rest of the gap is unfilled",
                    market=market,
                    symbol=gap.symbol,
                    kind=gap.kind,
                    first=from_id,
                    last=gap.last,
                    error=self.last_error,
                )
                self.last_reason = "refused"
                return []
            log.warning(
                "backfill request failed",
                symbol=gap.symbol,
                kind=gap.kind,
                attempt=attempt + 1,
                error=self.last_error,
            )
            if reply.outcome not in ("429", "418"):  # those block the budget: waited for above
                await trio.sleep(backoff.next_delay())
        self.last_reason = "failed"
        return []

    async def _admit(self, gap: Gap, weight: int) -> bool:
        """Wait for the budget (ahead of snapshots) and charge one page; False: too long."""
        if self.budgets.delay(gap.market, weight) > self.max_wait_s:
            return False  # a ban or a long block: do not hold the symbol's trades for it
        started = trio.current_time()
        try:
            with trio.move_on_after(self.max_wait_s):
                await self.budgets.acquire(gap.market, weight, user=BACKFILL, urgent=True)
                return True
            return False
        finally:
            waited = trio.current_time() - started
            key = gap.market.value
            self.budget_wait_s[key] = self.budget_wait_s.get(key, 0.0) + waited

    async def _get(self, gap: Gap, path: str, params: dict[str, str | int]) -> _Reply:
        try:
            resp = await self.get(self.rest_urls[gap.market], path, params, time_limit=self.timeout)
        except RestError as exc:
            self.last_error = str(exc)
            return _Reply("network")
        self.budgets.observe(gap.market, resp, user=BACKFILL)
        if resp.status != 200:
            self.last_error = f"HTTP {resp.status}: {resp.body[:200]!r}"
            if resp.status in (429, 418):
                return _Reply(str(resp.status))
            return _Reply("http_error", retryable=not _refused(resp.status))
        try:
            return _Reply(
                "ok",
                self.encoder.encode_rest_trades(
                    gap.market, gap.symbol, gap.kind, resp.body, time.time_ns()
                ),
            )
        except RestError as exc:
            self.last_error = str(exc)
            return _Reply("bad_body")

    def metrics(self) -> Iterable[Metric]:
        """Backfill requests and budget waits (trades filled/unfilled: the normalizer's)."""
        yield counter(
            "marketd_backfill_requests_total",
            "REST trade-history requests for gap backfill, by market and outcome (ok, 429, "
            "418, http_error: any other status, a 4xx not retried; network, bad_body; "
            "budget_timeout: not sent, the weight budget stayed closed too long).",
            ("market", "status"),
            seeded(
                [(m.value, s) for m in self.rest_urls for s in (*OUTCOMES, "budget_timeout")],
                self.statuses,
            ),
        )
        waited = CounterMetricFamily(
            "marketd_backfill_budget_wait_seconds",
            "Seconds backfill requests waited for the REST weight budget, by market.",
            labels=["market"],
        )
        for market in sorted(self.rest_urls, key=lambda m: m.value):
            waited.add_metric([market.value], self.budget_wait_s.get(market.value, 0.0))
        yield waited
