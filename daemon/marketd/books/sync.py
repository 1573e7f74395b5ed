"""The per-symbol sync state machine: REST snapshot + WebSocket diffs (pure, no trio).

The rules are Binance's (../shared/BINANCE.md, "how to manage a local order book"), in
two forms; the exchange adapter says which one a market's diffs follow
(:meth:`~marketd.exchanges.seam.Exchange.chained_diffs`):

* Buffer the diffs; fetch a snapshot (``lastUpdateId``).
* Consecutive ids (Binance spot): drop diffs with ``u <= lastUpdateId``; the first applied
  must have ``U <= lastUpdateId + 1 <= u``; afterwards ``U > book id + 1`` is a gap.
* Chained ids (``chained=True``, Binance USD-M): drop diffs with ``u < lastUpdateId``; the
  first applied must have ``U <= lastUpdateId <= u`` or ``pu == lastUpdateId``; afterwards
  ``pu`` must equal the previous ``u``.
* A snapshot older than the buffered diffs (the first kept diff does not bridge) is stale:
  fetch another. A gap, or a crossed book (best bid ≥ best ask), loses sync: the book is
  discarded (never repaired) and this symbol alone resyncs. So does a book an audit found
  wrong (:meth:`SymbolSync.discard`, :mod:`marketd.books.audit`).

Once synced, a diff whose ``u`` is not beyond the book's id is a duplicate (a reconnect
overlap) and is dropped: everything in it is already in the book.

The snapshot a book syncs from has ``snapshot_limit`` levels (the books stage passes its
*sync* limit, often shallower than the book's ``depth``: the book then knows that
snapshot's price range only, see :mod:`marketd.books.book`, and is deepened later by an
audit-like check, see :mod:`marketd.books.service`). A book that ran out of levels
(``shallow``) resyncs from one of ``tiers`` deeper than the snapshot it had; after any
other loss, from ``snapshot_limit`` again.

The machine asks for snapshots but never fetches: :meth:`SymbolSync.on_diff` and
:meth:`SymbolSync.on_snapshot` return True when the caller should request one (at most one
request is outstanding per symbol).
"""

from __future__ import annotations

import enum
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence

from marketd.books.book import Book, BookError
from marketd.data.events import DepthDiff, Level


class State(enum.Enum):
    SYNCING = "syncing"  # never synced yet: buffering, waiting for a snapshot
    SYNCED = "synced"  # the book is the exchange's at ``last_update_id``
    RESYNCING = "resyncing"  # lost sync (gap, crossed, bad diff): buffering again


class Reason(enum.Enum):
    """Why a synced book was discarded (or a snapshot refetched)."""

    GAP = "gap"  # a diff does not continue the last one
    CROSSED = "crossed"  # best bid >= best ask after a diff
    INVALID = "invalid"  # a diff level that is not a decimal string
    SHALLOW = "shallow"  # fewer levels known than wanted (the price moved past the snapshot)
    STALE_SNAPSHOT = "stale_snapshot"  # the snapshot is older than the buffered diffs
    AUDIT = "audit"  # an audit found the book differs from a fresh snapshot


class SymbolSync:
    """The book of one market + symbol and where it stands against the exchange."""

    def __init__(
        self,
        *,
        chained: bool,
        depth: int,
        snapshot_limit: int = 1000,
        min_levels: int = 0,
        max_buffered: int = 10_000,
        tiers: Sequence[int] = (),
    ) -> None:
        self.chained = chained
        self.book = Book(depth)
        # The levels of the next snapshot this book syncs from: ``base_limit``, but after
        # it ran out of levels (``shallow``) the next of ``tiers`` (ascending) above those
        # it had — only then: a mass resync (reconnect) stays cheap.
        self.snapshot_limit = self.base_limit = snapshot_limit
        self.tiers = tuple(tiers)
        # Resync when a bounded side knows fewer levels (at most what a snapshot gives).
        self.min_levels = min(min_levels, depth, snapshot_limit)
        self.state = State.SYNCING
        self.max_buffered = max_buffered
        self.buffer: deque[DepthDiff] = deque()
        # A snapshot is loaded but no diff has bridged it yet (still SYNCING/RESYNCING).
        self.loaded = False
        self.pending = False  # a snapshot request is outstanding
        self.applied = 0
        self.buffered = 0
        self.dropped = 0
        self.snapshots = 0
        self.resyncs: Counter[str] = Counter()
        self.event_time_ms = 0  # of the last diff applied
        self.received_ns = 0
        # time.monotonic() when this book last lost sync (0: never lost)
        self.lost_at = 0.0
        # Told when a synced book is lost (reason, its last update id) and when a book
        # syncs (the snapshot's lastUpdateId): the status stream, for the live books.
        self.on_lost: Callable[[str, int], None] | None = None
        self.on_synced: Callable[[int], None] | None = None

    @property
    def synced(self) -> bool:
        return self.state is State.SYNCED

    @property
    def last_update_id(self) -> int:
        return self.book.last_update_id

    # -- diffs ----------------------------------------------------------------------------

    def on_diff(self, diff: DepthDiff) -> bool:
        """Take one diff; return True when a snapshot should be requested now."""
        if self.state is State.SYNCED:
            last = self.book.last_update_id
            if diff.final <= last:
                self.dropped += 1
                return False
            if diff.first > last + 1 if diff.prev is None else diff.prev != last:
                return self._lose(Reason.GAP, diff)
            return self._apply(diff)
        if self.loaded:
            return self._bridge(diff)
        return self._buffer(diff)

    def _apply(self, diff: DepthDiff) -> bool:
        try:
            self.book.apply(diff.final, diff.bids, diff.asks)
        except BookError:
            return self._lose(Reason.INVALID, None)
        self.applied += 1
        self.event_time_ms = diff.event_time_ms
        self.received_ns = diff.received_ns
        if self.book.crossed():
            return self._lose(Reason.CROSSED, None)
        if self.min_levels and self.book.shallow(self.min_levels):
            # Its snapshot was too shallow for how far this price moved: go one step deeper.
            had = self.book.limit
            deepest = self.tiers[-1] if self.tiers else self.snapshot_limit
            self.snapshot_limit = next((t for t in self.tiers if t > had), deepest)
            return self._lose(Reason.SHALLOW, None)
        return False

    def discard(self, reason: Reason) -> bool:
        """Discard a synced book known to be wrong (an audit); True: request a snapshot."""
        if self.state is not State.SYNCED:
            return False
        return self._lose(reason, None)

    def _buffer(self, diff: DepthDiff) -> bool:
        buf = self.buffer
        if buf:
            tail = buf[-1]
            if diff.final <= tail.final:
                self.dropped += 1  # a duplicate of something buffered
                return self._want()
            if not self._continues(tail.final, diff):
                # A gap inside the buffer: what came before it can never be used.
                self.dropped += len(buf)
                buf.clear()
            elif len(buf) >= self.max_buffered:
                buf.popleft()
                self.dropped += 1
        buf.append(diff)
        self.buffered += 1
        return self._want()

    @staticmethod
    def _continues(last: int, diff: DepthDiff) -> bool:
        if diff.prev is None:
            return diff.first <= last + 1
        return diff.prev == last

    def _want(self) -> bool:
        if self.pending:
            return False
        self.pending = True
        return True

    def _lose(self, reason: Reason, diff: DepthDiff | None) -> bool:
        """Discard the synced book; keep ``diff`` (the one past a gap) as the first buffered.

        Only a synced book is lost, and a synced machine has nothing buffered or loaded."""
        if reason is not Reason.SHALLOW:
            self.snapshot_limit = self.base_limit
        self.resyncs[reason.value] += 1
        self.state = State.RESYNCING
        self.lost_at = time.monotonic()
        if self.on_lost is not None:
            self.on_lost(reason.value, self.book.last_update_id)
        self.book.clear()
        if diff is not None:
            self.buffer.append(diff)
            self.buffered += 1
        return self._want()

    # -- snapshots ------------------------------------------------------------------------

    def on_snapshot(
        self, last_update_id: int, bids: Sequence[Level], asks: Sequence[Level]
    ) -> bool:
        """Take a REST snapshot; return True when another snapshot should be requested."""
        self.pending = False
        if self.state is State.SYNCED:
            return False
        try:
            self.book.load(last_update_id, bids, asks, self.snapshot_limit)
        except BookError:
            self.book.clear()
            self.resyncs[Reason.INVALID.value] += 1
            return self._want()
        self.snapshots += 1
        self.loaded = True
        buffered, self.buffer = self.buffer, deque()
        for i, diff in enumerate(buffered):
            if self._bridge(diff):
                # Lost again (stale snapshot, gap, crossed): keep what is still useful.
                rest = list(buffered)[i + 1 :]
                for d in rest:
                    self._buffer(d)
                return True
        return False

    def on_snapshot_failed(self) -> bool:
        """The request failed for good; True: ask again (the caller paces the retry)."""
        self.pending = False
        if self.state is State.SYNCED or self.loaded:
            return False
        return self._want()

    def _bridge(self, diff: DepthDiff) -> bool:
        """A diff after the snapshot was loaded, before one has bridged it."""
        if self.state is State.SYNCED:
            return self.on_diff(diff)
        last = self.book.last_update_id
        if diff.final < last or (diff.final == last and not self.chained):
            self.dropped += 1
            return False
        if self.chained:
            bridges = diff.first <= last <= diff.final or diff.prev == last
        else:
            bridges = diff.first <= last + 1 <= diff.final
        if not bridges:
            # The diffs start after the snapshot: it is too old. Fetch a newer one.
            self.resyncs[Reason.STALE_SNAPSHOT.value] += 1
            self.loaded = False
            self.book.clear()
            self.buffer.append(diff)
            self.buffered += 1
            return self._want()
        self.state = State.SYNCED
        self.loaded = False
        if self.on_synced is not None:
            self.on_synced(last)
        return self._apply(diff)
