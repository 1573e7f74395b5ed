"""Per-symbol trade id sequencing: drop duplicates, find gaps (pure).

Binance trade ids (``t``) and aggregate trade ids (``a``) are consecutive per symbol.
The sequencer remembers the last id published per (market, kind, symbol); a record
with an id at or below it is a duplicate (an overlap after a reconnect), one above
``last + 1`` opens a gap that the pipeline backfills from REST.
"""

from __future__ import annotations

import attrs

from marketd.records import Market, Record

SEQUENCED_KINDS = frozenset({"trade", "aggTrade"})

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
    last_ids: dict[SeqKey, int] = attrs.field(factory=dict)
    duplicates: int = 0
    gaps: int = 0

    def check(self, record: Record) -> bool | Gap:
        """Classify ``record``: ``True`` to publish, ``False`` to drop (duplicate),
        or the :class:`Gap` that must be filled before it is published.

        Records of kinds that are not sequenced are always ``True``.
        """
        if record.kind not in SEQUENCED_KINDS:
            return True
        key = (record.market, record.kind, record.symbol)
        last = self.last_ids.get(key)
        if last is None or record.seq == last + 1:
            self.last_ids[key] = record.seq
            return True
        if record.seq <= last:
            self.duplicates += 1
            return False
        self.gaps += 1
        return Gap(record.market, record.kind, record.symbol, last + 1, record.seq - 1)

    def advance(self, record: Record) -> None:
        """Note ``record`` as published (after its gap was filled or abandoned)."""
        self.last_ids[(record.market, record.kind, record.symbol)] = record.seq
