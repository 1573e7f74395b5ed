"""Turn Kafka's per-record settlements back into the spool's ack cursor.

Kafka settles records out of order (a failed record is retried while later ones are
acknowledged), but the spool's cursor is a prefix: :class:`AckWindow` remembers the
records handed to the publisher, in spool order, and answers with the position up to
which every one has settled. Records are matched by identity (``id``): each read from
the spool is a fresh object, kept alive here until it settles.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from marketd.data.records import Record
from marketd.spool.model import Position


class AckWindow:
    def __init__(self) -> None:
        self._order: collections.deque[tuple[Position, Record]] = collections.deque()
        self._pending: set[int] = set()

    def __len__(self) -> int:
        return len(self._order)

    def sent(self, items: list[tuple[Position, Record]]) -> list[Record]:
        """Remember records read from the spool (in order); return them for the publisher."""
        self._order.extend(items)
        records = [record for _, record in items]
        self._pending.update(map(id, records))
        return records

    def settled(self, records: Iterable[Record]) -> Position | None:
        """Records Kafka acknowledged (or dropped for good): the position to ack in the
        spool if the settled prefix grew, else ``None``."""
        self._pending.difference_update(map(id, records))
        order, pending = self._order, self._pending
        last: Position | None = None
        while order and id(order[0][1]) not in pending:
            last = order.popleft()[0]
        return last
