"""The books stage: keeps a local order book per depth-subscribed symbol, publishes snapshots.

    normalizer ──list[Record]──► Books ──list[Record]──► sink

Every batch passes through unchanged (the depth topic keeps carrying the sequenced diffs);
``depthUpdate`` records are also applied to their symbol's :class:`SymbolSync`. Snapshots
come from the :class:`SnapshotScheduler` (REST, within the weight budget it shares with
the trade backfiller; its metrics are :meth:`RestBudgets.metrics`). Every
``publish_interval_s`` the stage adds one batch of ``BookSnapshot`` records (orderbook
topic, keyed by symbol) for the books that are synced and changed since their last
snapshot — never for a book that is not synced.

Books keep at most ``min(depth, snapshot limit)`` levels a side: every level kept is one a
snapshot shows (see :mod:`marketd.books.book`, "Deep levels").

**Shallow first, then deepening.** A book (re)syncs from a shallow snapshot (the lane's
``sync_limit``: by default spot 100 levels for weight 5, USD-M 50 for weight 2, against 50
and 20 at 1000 levels), so a full market is synced, and ready, in a minute or two instead
of a quarter of an hour. Such a book knows the levels of that snapshot's price range only
(:mod:`marketd.books.book`, "Known region"); its published top ``publish_levels`` are
exact, and it resyncs (``shallow``) if the price moves so far that fewer remain — from a
snapshot one weight step deeper than the one it had (spot 100 → 500 → 1000, USD-M 50 →
100 → 500 → 1000: the books that move fast pay for depth; any other loss resyncs from
``sync_limit``, so a mass resync stays cheap).

Every ``DEEPEN_POLL_S`` each market with no audit under way picks the synced shallow book
that knows the fewest levels (the nearest to a ``shallow`` resync; then the order of the
subscriptions) and, unless the lane is busy or the budget tight
(:meth:`SnapshotScheduler.deepen_blocker`: a sync snapshot queued or waiting for the
budget, a backfill waiting, over ``books.deepen_budget_fraction`` of the budget in use),
deepens it one weight step (:meth:`Books.deepen_to`; up to ``snapshot_limit``): an
:class:`~marketd.books.audit.Audit` of kind ``deepen``, which compares the levels both
know and, if they agree, gives the book the snapshot's deeper region (a mismatch resyncs
it, as an audit's does). The book stays synced and published throughout. A book is
deepened once it has stayed synced for ``DEEPEN_SETTLE_S``, then at most once per
``DEEPEN_RETRY_S`` (one without a verdict holds the others back for no longer). Counted in
``marketd_book_deepens_total{market,result}``; the books still shallow in
``marketd_book_shallow{market}``; the weight is the ``deepen`` user's.

**Audits.** Every ``audit_interval_s`` each market picks its next synced book (round robin)
and, unless the lane is busy or the budget tight (:meth:`SnapshotScheduler.audit_blocker`:
the round is then ``deferred``), requests an audit snapshot (``snapshot_limit`` levels) at
the lowest priority; the :class:`~marketd.books.audit.Audit` aligns it with the book and
compares them. At most one audit or deepening per market is under way. A mismatch discards
the book and resyncs it (reason ``audit``). Each verdict is counted
(``marketd_book_audits_total{market,result}``), logged and handed to ``on_audit`` (an
:class:`~marketd.books.audit.AuditResult`, with ``kind`` ``audit`` or ``deepen``: the
deepenings' verdicts too); the weight is the ``audit`` user's of
``marketd_rest_weight_requested_total``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

import attrs
import structlog
import trio
from google.protobuf.message import DecodeError
from prometheus_client.core import Metric

from marketd import exchanges
from marketd.books.audit import (
    AUDIT,
    DEEPEN,
    FAILED,
    MISMATCH,
    OK,
    RESULTS,
    TIMEOUT,
    Audit,
    AuditResult,
)
from marketd.books.scheduler import SnapshotScheduler
from marketd.books.sync import Reason, State, SymbolSync
from marketd.config.settings import Settings
from marketd.data.events import DepthDiff, DepthSnapshot
from marketd.data.records import Market, Record, events_of, record_headers
from marketd.exchanges.seam import Exchange
from marketd.obs.metrics import counter, gauge, seeded
from marketd.rest.budget import RestBudgets
from marketd.rest.client import OUTCOMES, HttpGet, http_get
from marketd.status import StatusStream
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent

log = structlog.get_logger(__name__)

KIND = "bookSnapshot"
HEADERS = {m: record_headers(m, KIND) for m in Market}
_PB_MARKET = {Market.SPOT: MARKET_SPOT, Market.USDM: MARKET_USDM}
_parse = MarketEvent.FromString

Key = tuple[Market, str]
# Seconds an audit may take beyond the REST timeout (the book reaching the snapshot's id).
AUDIT_GRACE_S = 20.0
# Seconds between deepening rounds (each starts at most one per market).
DEEPEN_POLL_S = 0.25
# Seconds between two deepenings of one book (one without a verdict holds no other back).
DEEPEN_RETRY_S = 30.0
# Seconds a book stays synced before it is deepened: a book just synced knows its whole
# snapshot range, and deepening one that loses sync again soon would be wasted.
DEEPEN_SETTLE_S = 30.0


@attrs.frozen
class BookStatistics:
    symbols: dict[str, str]  # "spot:BTCUSDT" → syncing | synced | resyncing
    states: dict[tuple[str, str], int]  # (market, state) → books
    resyncs: dict[str, int]  # reason → count (gap, crossed, invalid, shallow, stale_snapshot)
    snapshot_requests: dict[str, int]  # status → count (ok, 429, 418, http_error, ...)
    weight_used: dict[str, int]  # market → REST weight counted against the budget now (shared)
    weight_budget: dict[str, int]  # market → the budget (shared with the backfill)
    snapshots_applied: int
    snapshots_published: int
    diffs_applied: int
    diffs_buffered: int
    diffs_dropped: int  # duplicates, older than the snapshot, cut by a gap or the buffer cap
    diffs_invalid: int  # records whose value did not decode
    audits: dict[tuple[str, str], int] = attrs.field(factory=dict)  # (market, result) → n
    audits_deferred: dict[str, int] = attrs.field(factory=dict)  # market → rounds passed up
    audit_weight: dict[str, int] = attrs.field(factory=dict)  # market → weight requested
    deepens: dict[tuple[str, str], int] = attrs.field(factory=dict)  # (market, result) → n
    deepen_weight: dict[str, int] = attrs.field(factory=dict)  # market → weight requested
    shallow: dict[str, int] = attrs.field(factory=dict)  # market → synced books to deepen

    @property
    def not_synced(self) -> list[str]:
        return sorted(k for k, s in self.symbols.items() if s != State.SYNCED.value)


@attrs.frozen
class UnsyncedBook:
    """A book that is not synced, as the status page lists it."""

    market: Market
    symbol: str
    state: State  # SYNCING (never synced yet) or RESYNCING (lost sync)
    resyncs: int  # times this book was discarded or its snapshot refetched
    synced_until_ns: int  # wall-clock receipt of the last diff it applied; 0: never synced


def book_symbols(
    settings: Settings, adapter: Callable[[Market], Exchange] = exchanges.adapter
) -> list[Key]:
    """(market, symbol) of every subscribed depth-diff stream: a depth-diff channel of a
    subscription's symbols, or a ``<symbol>@<channel>`` in its ``streams``."""
    out: list[Key] = []
    for sub in settings.subscriptions:
        diffs = adapter(sub.market).vocabulary.diff_depth_channels()
        if diffs.intersection(sub.channels):
            out.extend((sub.market, s) for s in sub.symbols)
        for stream in sub.streams:
            symbol, _, channel = stream.partition("@")
            if channel in diffs:
                out.append((sub.market, symbol.upper()))
    return list(dict.fromkeys(out))


class Books:
    def __init__(
        self,
        settings: Settings,
        *,
        wall: Callable[[], float] = time.time,
        get: HttpGet = http_get,
        budgets: RestBudgets | None = None,
        adapter: Callable[[Market], Exchange] = exchanges.adapter,
        on_audit: Callable[[AuditResult], None] | None = None,
        status: StatusStream | None = None,
    ) -> None:
        self.adapter = adapter
        # Where book resyncs, syncs and audit mismatches are reported.
        self.status = status
        self.settings = settings.books
        # Called with every audit's result (the status stream); may be set later.
        self.on_audit = on_audit
        self.audits: dict[Key, Audit] = {}  # under way
        self.audit_counts: Counter[tuple[str, str]] = Counter()  # (market, result)
        self.audits_deferred: Counter[str] = Counter()  # market
        self._audit_next: dict[Market, int] = {}  # round-robin position per market
        self.deepen_counts: Counter[tuple[str, str]] = Counter()  # (market, result)
        self._deepen_after: dict[Key, float] = {}  # no deepening of a book before
        self._deepen_seen: dict[Key, int] = {}  # the book's snapshot count when first seen
        self.topic = settings.kafka.topics.orderbook
        self.scheduler = SnapshotScheduler(
            settings.books,
            settings.binance.rest_urls(),
            self._deliver,
            audited=self._deliver_audit,
            timeout=settings.binance.rest_timeout_s,
            wall=wall,
            get=get,
            budgets=budgets,
            adapter=adapter,
            sync_limit_of=self._sync_limit_of,
        )
        self.syncs: dict[Key, SymbolSync] = {}
        for key in book_symbols(settings, adapter):
            self._add(key)
        self._published: dict[Key, int] = {}
        self.snapshots_published = 0
        self.invalid = 0

    def _add(self, key: Key) -> SymbolSync:
        lane = self.scheduler.lanes[key[0]]
        sync = self.syncs[key] = SymbolSync(
            chained=self.adapter(key[0]).chained_diffs,
            # Never more levels than a snapshot shows: all of the book can be audited.
            depth=min(self.settings.depth, lane.deep_limit),
            # Synced shallow (cheap), deepened later.
            snapshot_limit=lane.sync_limit,
            min_levels=self.settings.publish_levels,
            max_buffered=self.settings.max_buffered_diffs,
            tiers=lane.tiers,
        )
        if (status := self.status) is not None:
            market, symbol = key
            sync.on_lost = lambda reason, last: status.book_resync(market, symbol, reason, last)
            sync.on_synced = lambda snapshot: status.book_synced(market, symbol, snapshot)
        return sync

    def _sync_limit_of(self, market: Market, symbol: str) -> int:
        """The levels of the next sync snapshot of a book (deeper once it ran out of them).
        It cannot change while the snapshot is under way (only a synced book goes
        ``shallow``), so the delivered snapshot is loaded with the limit it was asked for."""
        sync = self.syncs.get((market, symbol))
        return self.scheduler.lanes[market].sync_limit if sync is None else sync.snapshot_limit

    # -- statistics, metrics, readiness ---------------------------------------------------

    def statistics(self) -> BookStatistics:
        states: Counter[tuple[str, str]] = Counter()
        resyncs: Counter[str] = Counter()
        symbols: dict[str, str] = {}
        applied = buffered = dropped = snapshots = 0
        for (market, symbol), s in self.syncs.items():
            states[(market.value, s.state.value)] += 1
            symbols[f"{market.value}:{symbol}"] = s.state.value
            resyncs.update(s.resyncs)
            applied += s.applied
            buffered += s.buffered
            dropped += s.dropped
            snapshots += s.snapshots
        lanes = self.scheduler.statistics()
        requests: Counter[str] = Counter()
        for lane in lanes.values():
            requests.update(lane.requests)
        shallow: Counter[str] = Counter()
        for market, _ in self._shallow_books():
            shallow[market.value] += 1
        return BookStatistics(
            symbols=symbols,
            states=dict(states),
            resyncs=dict(resyncs),
            snapshot_requests=dict(requests),
            weight_used={m.value: st.weight_used for m, st in lanes.items()},
            weight_budget={m.value: st.budget for m, st in lanes.items()},
            snapshots_applied=snapshots,
            snapshots_published=self.snapshots_published,
            diffs_applied=applied,
            diffs_buffered=buffered,
            diffs_dropped=dropped,
            diffs_invalid=self.invalid,
            audits=dict(self.audit_counts),
            audits_deferred=dict(self.audits_deferred),
            audit_weight={m.value: st.audit_weight for m, st in lanes.items()},
            deepens=dict(self.deepen_counts),
            deepen_weight={m.value: st.deepen_weight for m, st in lanes.items()},
            shallow={m.value: shallow[m.value] for m in lanes},
        )

    def out_of_sync(self, limit: int) -> list[UnsyncedBook]:
        """Up to ``limit`` books that are not synced, worst first: longest without a synced
        book (never synced before lost sync), then most resyncs."""
        books = [
            UnsyncedBook(market, symbol, s.state, s.resyncs.total(), s.received_ns)
            for (market, symbol), s in self.syncs.items()
            if s.state is not State.SYNCED
        ]
        books.sort(key=lambda b: (b.synced_until_ns, -b.resyncs, b.market.value, b.symbol))
        return books[:limit]

    def readiness(
        self, grace_s: float = 0.0, now: float | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Ready when every book is synced, or resyncing for less than ``grace_s`` after it
        lost sync (``now``: ``time.monotonic()``); the detail lists the books that are not
        synced and, of those, the ones resyncing within the grace."""
        now = time.monotonic() if now is None else now
        not_synced: list[str] = []
        in_grace: list[str] = []
        for (market, symbol), s in self.syncs.items():
            if s.state is State.SYNCED:
                continue
            name = f"{market.value}:{symbol}"
            not_synced.append(name)
            if s.state is State.RESYNCING and now - s.lost_at < grace_s:
                in_grace.append(name)
        not_synced.sort()
        in_grace.sort()
        ready = len(in_grace) == len(not_synced)
        return ready, {"books_not_synced": not_synced, "books_resyncing_in_grace": in_grace}

    def metrics(self) -> Iterable[Metric]:
        st = self.statistics()
        states: dict[tuple[str, ...], float] = {
            (m.value, s.value): 0.0 for m in Market for s in State
        }
        for key, n in st.states.items():
            states[key] = float(n)
        yield gauge(
            "marketd_book_state",
            "Order books by market and sync state (syncing, synced, resyncing).",
            ("market", "state"),
            states,
        )
        yield counter(
            "marketd_book_resyncs_total",
            "Books discarded and resynced (gap, crossed, invalid, shallow) or snapshots "
            "refetched (stale_snapshot).",
            ("reason",),
            seeded([(r.value,) for r in Reason], {(r,): n for r, n in st.resyncs.items()}),
        )
        yield counter(
            "marketd_book_snapshot_requests_total",
            "REST depth snapshot requests by outcome (ok, 429, 418, http_error, network, "
            "bad_body).",
            ("status",),
            seeded([(s,) for s in OUTCOMES], {(s,): n for s, n in st.snapshot_requests.items()}),
        )
        yield counter(
            "marketd_book_diffs_total",
            "Depth diffs seen by the books, by outcome (applied, buffered, dropped, invalid).",
            ("outcome",),
            {
                ("applied",): st.diffs_applied,
                ("buffered",): st.diffs_buffered,
                ("dropped",): st.diffs_dropped,
                ("invalid",): st.diffs_invalid,
            },
        )
        yield counter(
            "marketd_book_snapshots_published_total",
            "BookSnapshot records published to the orderbook topic.",
            (),
            {(): st.snapshots_published},
        )
        yield counter(
            "marketd_book_audits_total",
            "Book audits against a fresh REST snapshot, by market and result (ok, mismatch: "
            "the book resynced, skipped: no verdict).",
            ("market", "result"),
            seeded(
                [(m.value, r) for m in Market for r in RESULTS],
                {(m, r): n for (m, r), n in st.audits.items()},
            ),
        )
        yield counter(
            "marketd_book_deepens_total",
            "Shallow books deepened one weight step (a deeper snapshot checked against the "
            "book), by market and result (ok: deepened, mismatch: the book resynced, "
            "skipped: no verdict).",
            ("market", "result"),
            seeded(
                [(m.value, r) for m in Market for r in RESULTS],
                {(m, r): n for (m, r), n in st.deepens.items()},
            ),
        )
        yield gauge(
            "marketd_book_shallow",
            "Synced books known to fewer levels than books.snapshot_limit (synced from a "
            "shallower snapshot), waiting to be deepened, by market.",
            ("market",),
            {(m.value,): float(st.shallow.get(m.value, 0)) for m in Market},
        )
        yield counter(
            "marketd_book_audits_deferred_total",
            "Audit rounds passed up because sync snapshots were under way or the REST "
            "budget was tight, by market.",
            ("market",),
            seeded([(m.value,) for m in Market], {(m,): n for m, n in st.audits_deferred.items()}),
        )

    # -- the stage ------------------------------------------------------------------------

    async def serve(
        self,
        records_in: trio.abc.ReceiveChannel[list[Record]],
        records_out: trio.abc.SendChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Pass batches on, keep the books, publish snapshots; until ``records_in`` ends."""
        interval = self.settings.publish_interval_s
        async with records_in, records_out, trio.open_nursery() as nursery:
            await nursery.start(self.scheduler.serve)
            if self.settings.audit_interval_s > 0:
                nursery.start_soon(self._audit_loop)
            if self.settings.deepen_budget_fraction > 0 and any(
                lane.sync_limit < lane.deep_limit for lane in self.scheduler.lanes.values()
            ):
                nursery.start_soon(self._deepen_loop)
            task_status.started()
            deadline = trio.current_time() + interval
            while True:
                batch: list[Record] | None = None
                with trio.move_on_at(deadline):
                    try:
                        batch = await records_in.receive()
                    except trio.EndOfChannel:
                        break
                if batch is not None:
                    self.take(batch)
                    await records_out.send(batch)
                now = trio.current_time()
                if now >= deadline:
                    deadline = max(deadline + interval, now + interval / 2)
                    snapshots = self.snapshot_records()
                    if snapshots:
                        await records_out.send(snapshots)
            nursery.cancel_scope.cancel()

    def take(self, batch: list[Record]) -> None:
        """Apply the ``depthUpdate`` records of ``batch`` to their books. A batch from the
        normalizer carries the decoded diffs beside the records (:class:`RecordBatch`);
        a record without one is decoded from its Protobuf value."""
        syncs = self.syncs
        request = self.scheduler.request
        audits = self.audits
        events = events_of(batch)
        for r, diff in zip(batch, events or repeat(None, len(batch)), strict=True):
            if r.kind != "depthUpdate":
                continue
            key = (r.market, r.symbol)
            sync = syncs.get(key)
            if sync is None:
                sync = self._add(key)
            if type(diff) is not DepthDiff and (diff := self._parse_diff(r)) is None:
                continue
            if sync.on_diff(diff):
                request(*key)
            if audits and (audit := audits.get(key)) is not None:
                self._audit_done(audit, audit.on_diff(diff))

    def _parse_diff(self, r: Record) -> DepthDiff | None:
        try:
            ev = _parse(r.value)
        except DecodeError:
            self.invalid += 1
            return None
        d = ev.depth_diff
        return DepthDiff(
            d.first_update_id,
            d.final_update_id,
            d.prev_final_update_id if d.HasField("prev_final_update_id") else None,
            [(lv.price, lv.quantity) for lv in d.bids],
            [(lv.price, lv.quantity) for lv in d.asks],
            ev.event_time_ms,
            r.received_ns,
        )

    def _deliver(self, market: Market, symbol: str, snapshot: DepthSnapshot | None) -> bool:
        sync = self.syncs.get((market, symbol))
        if sync is None:
            return False
        if snapshot is None:
            return sync.on_snapshot_failed()
        was = sync.state
        again = sync.on_snapshot(snapshot.last_update_id, snapshot.bids, snapshot.asks)
        if sync.state is not was:
            log.info(
                "book synced" if sync.synced else "book state",
                market=market.value,
                symbol=symbol,
                state=sync.state.value,
                last_update_id=sync.last_update_id,
            )
        return again

    # -- audits ---------------------------------------------------------------------------

    async def _audit_loop(self) -> None:
        interval = self.settings.audit_interval_s
        while True:
            await trio.sleep(interval)
            self.audit_round(trio.current_time())

    def _expire_audits(self, now: float) -> None:
        for audit in list(self.audits.values()):
            if now >= audit.deadline:
                self._audit_done(audit, audit.skipped(TIMEOUT))

    def _start_audit(self, key: Key, now: float, kind: str, limit: int | None = None) -> None:
        market, symbol = key
        deadline = now + self.scheduler.timeout + AUDIT_GRACE_S
        limit = limit or self.scheduler.lanes[market].deep_limit
        audit = Audit(market, symbol, self.syncs[key], deadline=deadline, limit=limit, kind=kind)
        self.audits[key] = audit
        self.scheduler.request_audit(market, symbol, user=kind, limit=limit)

    def audit_round(self, now: float) -> list[Key]:
        """Expire overdue audits; start one per market where none is under way, unless
        the lane is busy or the budget tight. Return the books whose audit started."""
        self._expire_audits(now)
        started: list[Key] = []
        busy = {market for market, _ in self.audits}
        for market in dict.fromkeys(market for market, _ in self.syncs):
            if market in busy:
                continue
            if self.scheduler.audit_blocker(market) is not None:
                self.audits_deferred[market.value] += 1
                continue
            key = self._next_synced(market)
            if key is None:
                continue
            self._start_audit(key, now, AUDIT)
            started.append(key)
        return started

    # -- deepening ------------------------------------------------------------------------

    async def _deepen_loop(self) -> None:
        while True:
            await trio.sleep(DEEPEN_POLL_S)
            self.deepen_round(trio.current_time())

    def _shallow_books(self) -> Iterable[Key]:
        """The synced books that a deeper snapshot would tell more: known only to a
        shallower snapshot than the lane's deep limit (and the book's depth), with a
        bounded side (a side the snapshot showed in full is complete already)."""
        lanes = self.scheduler.lanes
        for key, sync in self.syncs.items():
            book = sync.book
            if (
                sync.synced
                and book.limit < min(lanes[key[0]].deep_limit, book.depth)
                and book.known_levels() is not None
            ):
                yield key

    def deepen_to(self, key: Key) -> int:
        """The levels a deepening of book ``key`` asks for: the next weight step above the
        snapshot its region comes from (spot 100 → 500 → 1000, USD-M 50 → 100 → 500 →
        1000), so the leftover budget protects as many books as it can first."""
        lane = self.scheduler.lanes[key[0]]
        had = self.syncs[key].book.limit
        return next((t for t in lane.tiers if t > had), lane.deep_limit)

    def deepen_round(self, now: float) -> list[Key]:
        """Expire overdue audits; in each market with none under way, deepen the shallow
        book knowing the fewest levels by one weight step, unless the lane is busy or the
        budget tight. Return the books whose deepening started."""
        self._expire_audits(now)
        busy = {market for market, _ in self.audits}
        best: dict[Market, tuple[int, int, Key]] = {}
        for order, key in enumerate(self._shallow_books()):
            market = key[0]
            synced = self.syncs[key].snapshots  # a new sync: a new count
            if self._deepen_seen.get(key) != synced:
                self._deepen_seen[key] = synced
                after = self._deepen_after.get(key, 0.0)
                self._deepen_after[key] = max(after, now + DEEPEN_SETTLE_S)
            if market in busy or self._deepen_after.get(key, 0.0) > now:
                continue
            known = self.syncs[key].book.known_levels() or 0
            if market not in best or (known, order) < best[market][:2]:
                best[market] = (known, order, key)
        started: list[Key] = []
        for market, (_, _, key) in best.items():
            limit = self.deepen_to(key)
            if self.scheduler.deepen_blocker(market, limit) is not None:
                continue
            self._start_audit(key, now, DEEPEN, limit)
            # Should this one give no verdict, the others go first for a while.
            self._deepen_after[key] = now + DEEPEN_RETRY_S
            started.append(key)
        return started

    def _next_synced(self, market: Market) -> Key | None:
        keys = [k for k in self.syncs if k[0] is market]
        start = self._audit_next.get(market, 0)
        for i in range(len(keys)):
            key = keys[(start + i) % len(keys)]
            if self.syncs[key].synced:
                self._audit_next[market] = (start + i + 1) % len(keys)
                return key
        return None

    def _deliver_audit(self, market: Market, symbol: str, snapshot: DepthSnapshot | None) -> None:
        audit = self.audits.get((market, symbol))
        if audit is None:
            return  # over already (the book resynced, or it timed out)
        if snapshot is None:
            self._audit_done(audit, audit.skipped(FAILED))
            return
        result = audit.on_snapshot(snapshot.last_update_id, snapshot.bids, snapshot.asks)
        self._audit_done(audit, result)

    def _audit_done(self, audit: Audit, result: AuditResult | None) -> None:
        if result is None:
            return
        market, symbol = key = (audit.market, audit.symbol)
        if self.audits.get(key) is audit:
            del self.audits[key]
        self.scheduler.cancel_audit(market, symbol)
        counts = self.deepen_counts if result.kind == DEEPEN else self.audit_counts
        counts[(market.value, result.result)] += 1
        fields = {
            "kind": result.kind,
            "market": market.value,
            "symbol": symbol,
            "update_id": result.update_id,
            "snapshot_update_id": result.snapshot_update_id,
            "levels_compared": result.levels_compared,
        }
        if result.result == MISMATCH:
            first = [
                {"side": d.side, "price": d.price, "ours": d.ours, "theirs": d.theirs}
                for d in result.differences
            ]
            log.warning("book audit: mismatch, resyncing", differing=result.differing,
                        first=first, **fields)  # fmt: skip
            if self.status is not None:
                self.status.book_mismatch(
                    market, symbol, result.update_id,
                    [(d.side, d.price, d.ours or "", d.theirs or "") for d in result.differences],
                )  # fmt: skip
            if audit.live.discard(Reason.AUDIT):
                self.scheduler.request(market, symbol)
        elif result.result == OK:
            audit.adopt()
            log.debug("book audit: ok", levels=audit.live.book.limit, **fields)
        else:
            log.info("book audit: skipped", reason=result.reason, **fields)
        if self.on_audit is not None:
            try:
                self.on_audit(result)
            except Exception:
                log.exception("book audit callback failed", market=market.value, symbol=symbol)

    def snapshot_records(self) -> list[Record]:
        """One ``BookSnapshot`` record per synced book that changed since its last one."""
        out: list[Record] = []
        levels = self.settings.publish_levels
        published = self._published
        # The record is timed from now, when the snapshot is taken (receipt → ack of the
        # orderbook topic measures marketd, not how long the book stayed unchanged); the
        # value keeps the receipt time of the last diff in it.
        taken_ns = time.time_ns()
        for key, sync in self.syncs.items():
            if not sync.synced:
                continue
            last = sync.last_update_id
            if published.get(key) == last:
                continue
            published[key] = last
            market, symbol = key
            # A message per record, not one reused: upb (protobuf's C core, 7.36 here) puts
            # every field set and level added in the message's arena, freed only with the
            # message, so a reused message grew by each snapshot written into it (~3 KB).
            ev = MarketEvent(
                market=_PB_MARKET[market],
                symbol=symbol,
                event_time_ms=sync.event_time_ms,
                received_ns=sync.received_ns or taken_ns,
            )
            snap = ev.book_snapshot
            snap.last_update_id = last
            snap.depth = levels
            bids, asks = sync.book.top(levels)
            for side, side_levels in ((snap.bids, bids), (snap.asks, asks)):
                add = side.add
                for price, quantity in side_levels:
                    level = add()
                    level.price = price
                    level.quantity = quantity
            out.append(
                Record(
                    self.topic, symbol.encode(), ev.SerializeToString(), HEADERS[market],
                    taken_ns,
                    market, KIND, symbol, last,
                )
            )  # fmt: skip
        self.snapshots_published += len(out)
        return out
