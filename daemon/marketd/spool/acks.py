"""Turn Kafka's per-record settlements back into the spool's ack cursor.

Kafka settles records out of order (a failed record is retried while later ones are
acknowledged), but the spool's cursor is a prefix: :class:`AckWindow` remembers the
records handed to the publisher, in spool order, and answers with the position up to
which every one has settled. Records are matched by identity (``id``): each read from
the spool is a fresh object, kept alive here until it settles.

The window is kept as runs, one per :meth:`AckWindow.sent` (a spool read). Normally a
settlement is the next records of the window in order (the publisher settles a chunk at a
time, in the order it took them): that is checked by comparing their ids with the head of
the window (C-level list comparisons) and the head moves past them, with no per-record
Python step and no hashing. Anything else (out of order, a failure's retries, records the
window does not hold) goes the general way: the window's records that settled ahead of
the head are remembered (``_early``) until the head reaches them.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Iterable

from marketd.data.records import Record
from marketd.spool.model import Position

_POSITION = operator.itemgetter(0)
_RECORD = operator.itemgetter(1)


class _Run:
    """Records sent together (kept alive: their ids stay theirs), their positions and
    ids, in spool order; ``done`` of them (a prefix) have settled."""

    __slots__ = ("done", "ids", "positions", "records")

    def __init__(self, records: list[Record], positions: list[Position]) -> None:
        self.records = records
        self.positions = positions
        self.ids = list(map(id, records))
        self.done = 0


class AckWindow:
    def __init__(self) -> None:
        self._runs: collections.deque[_Run] = collections.deque()
        # Ids of records in the window that settled while one before them had not.
        self._early: set[int] = set()
        self._size = 0  # records in the window (sent, not in the settled prefix)

    def __len__(self) -> int:
        return self._size

    def sent(self, items: list[tuple[Position, Record]]) -> list[Record]:
        """Remember records read from the spool (in order); return them for the publisher."""
        if not items:
            return []
        records = list(map(_RECORD, items))
        self._runs.append(_Run(records, list(map(_POSITION, items))))
        self._size += len(records)
        return records

    def settled(self, records: Iterable[Record]) -> Position | None:
        """Records Kafka acknowledged (or dropped for good): the position to ack in the
        spool if the settled prefix grew, else ``None``."""
        ids = list(map(id, records))
        if not ids or not self._runs:
            return None
        if not self._early and (last := self._take_head(ids)) is not None:
            return last
        return self._settle_any(ids)

    def _take_head(self, ids: list[int]) -> Position | None:
        """If ``ids`` are the window's next records, in order: move past them and return
        the last one's position; else None (and nothing changed)."""
        n, at = len(ids), 0
        for run in self._runs:  # check
            start = run.done
            take = min(len(run.ids) - start, n - at)
            if run.ids[start : start + take] != ids[at : at + take]:
                return None
            at += take
            if at == n:
                break
        else:
            return None  # more ids than the window holds
        runs, left = self._runs, n  # move
        self._size -= n
        while True:
            run = runs[0]
            rest = len(run.ids) - run.done
            if left < rest:
                run.done += left
                return run.positions[run.done - 1]
            runs.popleft()
            left -= rest
            if not left:
                return run.positions[-1]

    def _settle_any(self, ids: list[int]) -> Position | None:
        """The general case: note what settled, move the head past the records that now
        lead it, then forget the ids the window no longer holds (the caller keeps the
        records alive during the call, so a stranger's id cannot match one held here)."""
        early, runs = self._early, self._runs
        early.update(ids)
        last: Position | None = None
        while runs:
            run = runs[0]
            start = run.done
            rest = run.ids[start:]
            try:
                k = operator.indexOf(map(early.__contains__, rest), False)
            except ValueError:  # all of the run's rest settled: it leaves the window
                k = len(rest)
            if not k:
                break
            self._size -= k
            if k == len(rest):
                last = run.positions[-1]
                runs.popleft()
                continue
            run.done = start + k
            last = run.positions[run.done - 1]
            break
        if early:  # an id stays while a record of the window has it (one sent twice)
            early.intersection_update([i for run in runs for i in run.ids[run.done :]])
        return last
