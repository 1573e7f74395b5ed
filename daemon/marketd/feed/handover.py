"""The overlap of a make-before-break handover between two connections (pure, no trio).

When a connection is replaced on purpose (rotation, ``serverShutdown``) the successor is
opened and subscribed while the predecessor still delivers. Both carry the same streams,
so for a while they carry the same events. The feed forwards every frame of the old
connection first and holds the successor's frames until the old one is closed; this
class watches both sides to decide two things:

* **proof of overlap** — a frame the old connection delivered that the successor also
  delivered after it was fully subscribed. The exchange sends each connection its events
  in one order, so once that happens every event the old connection still owed has
  either arrived or is also on the successor: the old one can be closed without a loss.
* **the duplicate prefix** — at promotion, the successor's held frames that repeat the
  old connection's last frames, in order and byte for byte, are dropped. This removes
  overlap duplicates of every kind (tickers too), not only the sequenced ones that
  :class:`~marketd.pipeline.sequence.TradeSequencer` deduplicates downstream. When frames are not
  identical across connections nothing is dropped here and the sequencer does the work.
"""

from __future__ import annotations

import collections


class Overlap:
    """What the old and the new connection delivered since the successor was opened.

    Memory is bounded by ``capacity`` frames per side; beyond that the old side stops
    recording (no prefix is dropped then) and the new side stops adding proof candidates.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._old_tail: collections.deque[str] = collections.deque()
        self._old_seen: set[str] = set()
        self._old_overflow = False
        self._new_seen: set[str] = set()
        self.proven = False

    def on_old(self, frame: str) -> None:
        """The old connection handed on ``frame`` (in its order)."""
        if self._old_overflow:
            return
        if len(self._old_tail) >= self.capacity:
            self._old_overflow = True
            self._old_tail.clear()
            return
        self._old_tail.append(frame)
        self._old_seen.add(frame)
        if not self.proven and frame in self._new_seen:
            self.proven = True

    def on_new(self, frame: str) -> None:
        """The successor received ``frame`` after its subscription was complete."""
        if not self.proven and frame in self._old_seen:
            self.proven = True
        if len(self._new_seen) < self.capacity:
            self._new_seen.add(frame)

    def duplicate_prefix(self, held: list[str]) -> int:
        """How many leading frames of ``held`` repeat the old connection's last frames.

        The answer is the smallest ``n`` such that ``held[:n]`` equals the last ``n``
        frames of the old connection (0 when there is none): when a frame occurs twice,
        keeping a possible duplicate is preferred to dropping a possible event.
        """
        tail = self._old_tail
        if self._old_overflow or not tail or not held:
            return 0
        last = tail[-1]
        limit = min(len(held), len(tail))
        for i in range(limit):
            if held[i] != last:
                continue
            n = i + 1
            if all(held[j] == tail[len(tail) - n + j] for j in range(i)):
                return n
        return 0
