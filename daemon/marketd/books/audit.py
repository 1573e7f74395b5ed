"""Audits of synced books against fresh REST snapshots (pure, no trio).

Now and then (``books.audit_interval_s``, see :mod:`marketd.books.service`) a synced book
is checked against the exchange: a REST snapshot is requested at low priority and an
:class:`Audit` aligns it with the book.

* **Align.** The audit keeps a *shadow*: a :class:`~marketd.books.sync.SymbolSync` of its
  own, fed every live diff of the symbol from when the audit started (before the request
  is sent), then given the snapshot (``lastUpdateId`` L). It follows the very rules of a
  sync (spot: drop ``u <= L``, bridge with ``U <= L+1 <= u``; USD-M: drop ``u < L``, bridge
  with ``U <= L <= u`` or ``pu == L``; then each diff continues the last), so the shadow
  is the exchange's book at each id from L on.
* **Compare** once the shadow and the book stand at the same update id: right away when
  the snapshot is behind the book (the buffered diffs carry the shadow up to it), or when
  the book has caught up with a snapshot that is ahead. The levels compared are those both
  know on each side: from the best to the shallower of the two books' known regions (for
  the shadow, the snapshot's deepest level; see :mod:`marketd.books.book`). Quantities are
  compared as numbers, prices by their exact keys.
* **Verdict.** ``ok``: equal; the book then takes the shadow's sides (equal where both
  know, and as deep as the fresh snapshot beyond: the known region is renewed, so levels
  the book held past the snapshot's depth are dropped). ``mismatch``: the first differing
  levels of each side are reported and the book is discarded and resynced (the service
  does it). ``skipped``: no verdict — the snapshot could not be aligned (older than the
  diffs kept since the request, a gap or a crossed shadow), the book resynced meanwhile,
  the request failed, or no verdict came in time.

**Shallow books, deepening.** A book synced from a shallow snapshot (``books.
sync_snapshot_limit``, e.g. 100 levels) knows only that snapshot's price range; an audit
asks for ``books.snapshot_limit`` levels (``limit``), and the comparison stays within the
shallower of the two regions, so only the levels the shallow book can know are compared:
nothing it never saw counts as a mismatch. An ``ok`` then gives the book the fresh, deeper
region: *deepening* a book is an audit (``kind`` ``deepen``: started by the books stage
for a shallow book, ahead of the periodic audits, one weight step deeper than the
snapshot the book's region comes from) whose verdict ``ok`` leaves the book as deep as
the snapshot.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import attrs

from marketd.books.book import Book, BookError, Side, price_key
from marketd.books.sync import SymbolSync
from marketd.data.events import DepthDiff, Level
from marketd.data.records import Market

OK = "ok"
MISMATCH = "mismatch"
SKIPPED = "skipped"
RESULTS = (OK, MISMATCH, SKIPPED)

# What an audit is for: a periodic check, or deepening a book synced shallow (a check too).
AUDIT = "audit"
DEEPEN = "deepen"

# Why an audit gave no verdict.
UNALIGNED = "unaligned"  # the snapshot did not bridge the diffs (stale, gap, crossed, bad)
BEHIND = "behind"  # the snapshot is older than the diffs kept since the request
RESYNCED = "resynced"  # the book lost sync (or resynced) during the audit
FAILED = "failed"  # the snapshot request failed (network, 429/418, bad body)
TIMEOUT = "timeout"  # no verdict in time (the book did not reach the snapshot's id)

# Differing levels reported per side (best first); ``AuditResult.differing`` counts all.
REPORTED = 3


@attrs.frozen
class LevelDiff:
    """One level where the book and the exchange differ (quantity None: no level there)."""

    side: str  # "bid" or "ask"
    price: str
    ours: str | None
    theirs: str | None


@attrs.frozen
class AuditResult:
    """What one audit found, for the status stream (``Books.on_audit``), logs and tests."""

    market: Market
    symbol: str
    result: str  # ok | mismatch | skipped
    update_id: int  # where book and snapshot were compared (skipped: the book's id then)
    snapshot_update_id: int  # the snapshot's lastUpdateId (0: none arrived)
    levels_compared: int = 0
    differing: int = 0  # levels that differ, in all
    differences: tuple[LevelDiff, ...] = ()  # the first REPORTED of each side, best first
    reason: str = ""  # skipped: why (unaligned, behind, resynced, failed, timeout)
    kind: str = AUDIT  # audit | deepen (an ok deepen left the book as deep as the snapshot)


def _qty_key(quantity: str) -> int | None:
    try:
        return price_key(quantity)
    except BookError:
        return None


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    ka = _qty_key(a)
    return ka is not None and ka == _qty_key(b)


def _known(side: Side, edge: int) -> dict[int, str]:
    """Key → quantity of the levels of ``side`` from its best to ``edge``."""
    i = bisect_left(side.keys, edge)
    return dict(zip(side.keys[i:], side.qtys[i:], strict=True))


def compare(ours: Book, theirs: Book, report: int = REPORTED) -> tuple[int, int, list[LevelDiff]]:
    """``(levels compared, levels differing, the first differences)`` of ``ours`` against
    ``theirs``, over the region of each side both know (best to the shallower bound)."""
    compared = differing = 0
    out: list[LevelDiff] = []
    for name, a, b in (("bid", ours.bids, theirs.bids), ("ask", ours.asks, theirs.asks)):
        edge = max(a.bound, b.bound)  # keys ascend towards the best
        known_a, known_b = _known(a, edge), _known(b, edge)
        keys = sorted(known_a.keys() | known_b.keys(), reverse=True)  # best first
        compared += len(keys)
        reported = 0
        for k in keys:
            qa, qb = known_a.get(k), known_b.get(k)
            if qa is not None and qb is not None and _same(qa, qb):
                continue
            differing += 1
            if reported < report:
                price = a.price(k) if qa is not None else b.price(k)
                out.append(LevelDiff(name, price, qa, qb))
                reported += 1
    return compared, differing, out


class Audit:
    """One audit of one synced book (``live``), from its start to a verdict.

    Feed it every diff the book gets (:meth:`on_diff`, after the book took it) and the
    snapshot (:meth:`on_snapshot`); each returns the :class:`AuditResult` once there is
    one (then the audit is over), else None.
    """

    def __init__(
        self,
        market: Market,
        symbol: str,
        live: SymbolSync,
        *,
        deadline: float = 0.0,
        limit: int | None = None,
        kind: str = AUDIT,
    ) -> None:
        self.market = market
        self.symbol = symbol
        self.live = live
        self.deadline = deadline
        self.kind = kind
        self.shadow = SymbolSync(
            chained=live.chained,
            depth=live.book.depth,
            # The levels the audit's snapshot is asked for (default: the sync snapshot's).
            snapshot_limit=limit or live.snapshot_limit,
            max_buffered=live.max_buffered,
        )
        self.shadow.pending = True  # the shadow never asks for snapshots: it gets one
        self._resyncs = live.resyncs.total()
        self.started_id = live.last_update_id
        self.snapshot_id = 0
        self.done = False

    # -- inputs ---------------------------------------------------------------------------

    def on_diff(self, diff: DepthDiff) -> AuditResult | None:
        if self.done:
            return None
        if not self._live_intact():
            return self.skipped(RESYNCED)
        self.shadow.on_diff(diff)
        return self.check() if self.snapshot_id else None

    def on_snapshot(
        self, last_update_id: int, bids: Sequence[Level], asks: Sequence[Level]
    ) -> AuditResult | None:
        if self.done:
            return None
        self.snapshot_id = last_update_id
        self.shadow.on_snapshot(last_update_id, bids, asks)
        return self.check()

    # -- verdicts -------------------------------------------------------------------------

    def _live_intact(self) -> bool:
        return self.live.synced and self.live.resyncs.total() == self._resyncs

    def check(self) -> AuditResult | None:
        """The verdict, if the shadow and the book stand at one update id now."""
        if not self._live_intact():
            return self.skipped(RESYNCED)
        if not self.snapshot_id:
            return None
        shadow = self.shadow
        if shadow.resyncs or not (shadow.synced or shadow.loaded) or shadow.book.crossed():
            return self.skipped(UNALIGNED)
        ours, theirs = self.live.last_update_id, shadow.last_update_id
        if theirs > ours:
            return None  # the snapshot is ahead: wait for the book to get there
        if theirs < ours:
            # Loaded but not bridged while the book is past it: the diffs that would carry
            # the snapshot up to the book came before the audit started.
            return self.skipped(BEHIND if not shadow.synced else UNALIGNED)
        compared, differing, diffs = compare(self.live.book, shadow.book)
        self.done = True
        return AuditResult(
            self.market,
            self.symbol,
            MISMATCH if differing else OK,
            ours,
            self.snapshot_id,
            compared,
            differing,
            tuple(diffs),
            kind=self.kind,
        )

    def skipped(self, reason: str) -> AuditResult:
        self.done = True
        return AuditResult(
            self.market,
            self.symbol,
            SKIPPED,
            self.live.last_update_id,
            self.snapshot_id,
            reason=reason,
            kind=self.kind,
        )

    def adopt(self) -> None:
        """After an ``ok``: the book takes the shadow's sides (equal where both know, and
        known as deep as the fresh snapshot: a shallow book is deepened)."""
        book, shadow = self.live.book, self.shadow.book
        if shadow.last_update_id == book.last_update_id:
            book.bids, book.asks = shadow.bids, shadow.asks
            book.limit = shadow.limit
