"""Per-symbol sequencing of exchange ids: drop duplicates, find trade gaps (pure).

Trade ids and aggregate trade ids (Binance's ``t`` and ``a``) are consecutive per symbol.
The sequencer remembers the last id published per (market, kind, symbol); a record
with an id at or below it is a duplicate (an overlap after a reconnect or a
make-before-break handover), one above ``last + 1`` opens a gap that the pipeline
backfills from REST.

Depth diffs (``depthUpdate``, seq = final update id ``u``) and book tickers
(``bookTicker``, seq = update id ``u``) increase per symbol but are not consecutive: one
at or below the last published is a duplicate and dropped; a jump is not a gap here (the
books stage resyncs a book on a depth gap itself, and book tickers skip ids by design).

Which kinds are sequenced which way is the exchange's vocabulary table's ``sequencing``
column (:mod:`marketd.exchanges.seam`).

Duplicates are dropped, never reordered: a record is published only when it is newer
than everything published for its key, so downstream ids strictly increase per key.
"""

from __future__ import annotations

import attrs

from marketd.data.records import Market, Record
from marketd.exchanges import adapters
from marketd.exchanges.seam import Sequencing

# Consecutive ids: duplicates dropped, gaps reported.
SEQUENCED_KINDS = frozenset().union(
    *(a.vocabulary.kinds(Sequencing.CONSECUTIVE) for a in adapters())
)
# Increasing ids: duplicates dropped, jumps allowed.
DEDUPLICATED_KINDS = frozenset().union(
    *(a.vocabulary.kinds(Sequencing.INCREASING) for a in adapters())
)

SeqKey = tuple[Market, str, str]


@attrs.frozen
class Gap:
    """Ids ``first..last`` (inclusive) of ``kind`` for ``symbol`` were not received."""

    market: Market
    kind: str
    symbol: str
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@attrs.define
class TradeSequencer:
    """Trade/aggTrade ids: dedupe and gaps; depth and book-ticker update ids: dedupe.

    ``duplicates`` is the total dropped; ``duplicates_by_kind`` splits it by kind.
    """

    last_ids: dict[SeqKey, int] = attrs.field(factory=dict)
    duplicates: int = 0
    duplicates_by_kind: dict[str, int] = attrs.field(factory=dict)
    gaps: int = 0

    def check(self, record: Record) -> bool | Gap:
        """Classify ``record``: ``True`` to publish, ``False`` to drop (duplicate),
        or the :class:`Gap` that must be filled before it is published.

        Records of kinds that are neither sequenced nor deduplicated are always ``True``.
        """
        kind = record.kind
        if kind in SEQUENCED_KINDS:
            key = (record.market, kind, record.symbol)
            last = self.last_ids.get(key)
            if last is None or record.seq == last + 1:
                self.last_ids[key] = record.seq
                return True
            if record.seq <= last:
                self._duplicate(kind)
                return False
            self.gaps += 1
            return Gap(record.market, kind, record.symbol, last + 1, record.seq - 1)
        if kind in DEDUPLICATED_KINDS:
            key = (record.market, kind, record.symbol)
            last = self.last_ids.get(key)
            if last is not None and record.seq <= last:
                self._duplicate(kind)
                return False
            self.last_ids[key] = record.seq
        return True

    def seed(self, last_ids: dict[SeqKey, int]) -> None:
        """Start from ids published before a restart: the next live id above one of them
        opens a gap (backfilled), one at or below it is a duplicate."""
        for key, seq in last_ids.items():
            if seq > self.last_ids.get(key, -1):
                self.last_ids[key] = seq

    def advance(self, record: Record) -> None:
        """Note ``record`` as published (after its gap was filled or abandoned)."""
        self.last_ids[(record.market, record.kind, record.symbol)] = record.seq

    def _duplicate(self, kind: str) -> None:
        self.duplicates += 1
        self.duplicates_by_kind[kind] = self.duplicates_by_kind.get(kind, 0) + 1


class DepthChains:
    """Depth diffs' update-id chains per (market, symbol), to name the diffs that never
    arrived (a disconnect, a frame the exchange dropped): ``check`` answers the missing
    range, if the diff does not follow the last one. Binance's rules: a spot diff follows
    when its first update id ``U`` is at most ``last + 1`` (an overlap after a reconnect is
    no gap); a USD-M diff when its ``pu`` is the last ``u`` (a ``pu`` below it: an overlap).
    The last ``u`` is remembered for each symbol seen; a symbol's first diff follows."""

    def __init__(self) -> None:
        self._last: dict[tuple[Market, str], int] = {}

    def check(
        self, market: Market, symbol: str, first: int, final: int, prev: int | None
    ) -> tuple[int, int] | None:
        """``(last_update_id, first_present)``: the ids after the first and before the
        second never arrived; None if the diff follows. Remembers ``final``."""
        key = (market, symbol)
        last = self._last.get(key)
        self._last[key] = final
        if last is None:
            return None
        if prev is not None:  # USD-M: the previous diff's u
            return (last, prev + 1) if prev > last else None
        return (last, first) if first > last + 1 else None


def missing_ranges(first: int, last: int, present: list[int]) -> list[tuple[int, int]]:
    """The ranges of ``first..last`` (inclusive) not in ``present`` (ids in that range,
    ascending), as inclusive ``(first, last)`` pairs in order."""
    out: list[tuple[int, int]] = []
    expected = first
    for seq in present:
        if seq > expected:
            out.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    if expected <= last:
        out.append((expected, last))
    return out
