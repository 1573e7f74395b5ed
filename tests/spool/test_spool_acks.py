"""The ack window: which spool position Kafka's settlements allow to ack.

A reference model (the window as a deque of every record and a set of the pending ones,
one Python step per record) is checked against :class:`AckWindow` on random runs of
sends and settlements: in order (the publisher's common case), out of order, partial,
repeated, with strangers (records the window never held) mixed in.
"""

from __future__ import annotations

import collections
import random

import pytest

from marketd.data.records import Market, Record
from marketd.spool.acks import AckWindow
from marketd.spool.model import Position


class ReferenceWindow:
    def __init__(self) -> None:
        self.order: collections.deque[tuple[Position, Record]] = collections.deque()
        self.pending: set[int] = set()

    def sent(self, items: list[tuple[Position, Record]]) -> list[Record]:
        self.order.extend(items)
        records = [r for _, r in items]
        self.pending.update(map(id, records))
        return records

    def settled(self, records: list[Record]) -> Position | None:
        self.pending.difference_update(map(id, records))
        last = None
        while self.order and id(self.order[0][1]) not in self.pending:
            last = self.order.popleft()[0]
        return last

    def __len__(self) -> int:
        return len(self.order)


def make(seq: int) -> tuple[Position, Record]:
    record = Record("t", b"k", b"v", (), seq, Market.SPOT, "trade", "BTCUSDT", seq)
    return Position(seq, 1, 16 + 100 * seq), record


def test_in_order_settlements_move_the_head() -> None:
    window = AckWindow()
    items = [make(s) for s in range(1, 11)]
    records = window.sent(items[:6]) + window.sent(items[6:])
    assert records == [r for _, r in items]
    assert window.settled(records[:4]) == items[3][0]  # inside the first run
    assert window.settled(records[4:8]) == items[7][0]  # across the two runs
    assert len(window) == 2
    assert window.settled([]) is None
    assert window.settled(records[8:]) == items[9][0]
    assert len(window) == 0
    assert window.settled(records[:2]) is None  # already settled: nothing moves


def test_out_of_order_settlements_wait_for_the_head() -> None:
    window = AckWindow()
    items = [make(s) for s in range(1, 7)]
    records = window.sent(items)
    assert window.settled([records[2], records[1]]) is None
    assert len(window) == 6
    assert window.settled([records[0]]) == items[2][0]
    assert window.settled(records[4:]) is None
    assert window.settled([records[3]]) == items[5][0]
    assert len(window) == 0


def test_strangers_never_settle_a_record_of_the_window() -> None:
    window = AckWindow()
    items = [make(s) for s in range(1, 4)]
    records = window.sent(items)
    strangers = [make(s)[1] for s in range(1, 4)]  # equal values, other objects
    assert window.settled(strangers) is None
    assert window.settled([records[0], *strangers]) == items[0][0]
    assert window.settled(records[1:]) == items[2][0]


@pytest.mark.parametrize("seed", range(40))
def test_it_answers_as_the_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    ours, reference = AckWindow(), ReferenceWindow()
    seq = 0
    unsettled: list[Record] = []  # sent, in order, not settled yet
    settled: list[Record] = []
    for _ in range(200):
        if rng.random() < 0.3 or not unsettled:
            items = [make(seq + i) for i in range(1, rng.randint(1, 30))]
            seq += len(items)
            assert ours.sent(items) == reference.sent(items)
            unsettled.extend(r for _, r in items)
            continue
        kind = rng.random()
        n = rng.randint(1, min(len(unsettled), 40))
        if kind < 0.5:  # the head, in order (the publisher's chunks)
            chosen = unsettled[:n]
        elif kind < 0.7:  # the head, in partition order (shuffled)
            chosen = rng.sample(unsettled[:n], n)
        else:  # anywhere, some twice, with strangers
            chosen = rng.sample(unsettled, n)
            chosen += rng.sample(chosen, rng.randint(0, len(chosen)))
            chosen += [make(-1)[1] for _ in range(rng.randint(0, 2))]
            chosen += rng.sample(settled, min(len(settled), rng.randint(0, 2)))  # again
            rng.shuffle(chosen)
        done = {id(r) for r in chosen}
        settled.extend(r for r in unsettled if id(r) in done)
        unsettled = [r for r in unsettled if id(r) not in done]
        assert ours.settled(chosen) == reference.settled(chosen)
        assert len(ours) == len(reference)


def test_a_record_sent_twice_settles_once_per_copy_without_stalling() -> None:
    window = AckWindow()
    (pa, a), (pb, b), (pa2, _) = make(1), make(2), make(3)
    window.sent([(pa, a), (pb, b), (pa2, a)])  # the same object twice (a stage re-sent it)
    assert window.settled([a]) == pa
    assert window.settled([b]) in (pb, pa2)
    window.settled([a])
    assert len(window) == 0
