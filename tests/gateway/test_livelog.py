"""The shared log of live messages and the clients' queues in it: each queue reads as a
bounded queue of its own would (checked against one, a deque per client), summaries are
read per client, the writer's spans, and the log forgets what every queue has read."""

from __future__ import annotations

import collections
import json

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from marketd.gateway.livelog import ClientQueue, LiveLog, Notice, Queued, Summary


def drain(queue: ClientQueue) -> list[Queued]:
    items = []
    while True:
        try:
            items.append(queue.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return items


def test_a_queue_is_bounded_and_keeps_what_fitted_when_it_overflows() -> None:
    log = LiveLog(3)
    queue = log.open_queue()
    assert log.append(["a", "b"]) == []
    assert log.append(["c", "d"]) == [queue]  # more than 3 behind: overflowed, closed
    assert queue.closed
    assert len(queue) == 3
    assert queue.take(10) == []  # nothing more for the writer to write
    assert queue.receive_nowait() == "a"  # what fitted can still be read, then the end
    assert drain(queue) == ["b", "c"]
    with pytest.raises(trio.EndOfChannel):
        queue.receive_nowait()
    assert log.append(["e"]) == []  # a closed queue is not in the log any more


def test_a_queue_reads_what_was_appended_since_it_opened() -> None:
    log = LiveLog(8)
    log.append(["old"])
    queue = log.open_queue()
    assert len(queue) == 0
    with pytest.raises(trio.WouldBlock):
        queue.receive_nowait()
    log.append(["a", "b", "c"])
    assert queue.take(2) == ["a", "b"]
    assert queue.receive_nowait() == "c"
    assert queue.take(10) == []
    log.append(["e", "f"])
    queue.close()  # the client went: what it held can still be read
    assert queue.take(10) == []
    assert drain(queue) == ["e", "f"]


async def test_a_queue_wakes_its_reader_and_ends_when_closed() -> None:
    log = LiveLog(8)
    queue = log.open_queue()
    got: list[Queued] = []

    async def reader() -> None:
        async for item in queue:
            got.append(item)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.sleep(0.01)
            log.append(["a"])
            await trio.sleep(0.01)
            log.append(["b", "c"])
            await trio.sleep(0.01)
            queue.close()
    assert got == ["a", "b", "c"]


def test_a_summary_is_read_as_what_each_queue_missed() -> None:
    log = LiveLog(8)
    early = log.open_queue(reported=0, since_ms=1_000)
    late = log.open_queue(reported=3, since_ms=1_500)  # 3 were held back before it opened
    log.append(["a", Summary(total=5, since_ms=1_200, limit_per_s=1), "b"])
    early_notice, late_notice = early.take(10)[1], late.take(10)[1]
    assert isinstance(early_notice, Notice)
    assert isinstance(late_notice, Notice)
    assert json.loads(early_notice.text) == {
        "type": "suppressed", "count": 5, "since_ms": 1_200, "limit_per_s": 1,
    }  # fmt: skip
    assert json.loads(late_notice.text) == {
        "type": "suppressed", "count": 2, "since_ms": 1_500, "limit_per_s": 1,
    }  # fmt: skip
    log.append([Summary(total=5, since_ms=2_000, limit_per_s=1)])  # nothing new held back
    assert early.take(10) == []
    assert drain(late) == []


def test_the_writer_takes_spans_shared_by_the_queues_at_one_position() -> None:
    log = LiveLog(8)
    one, two = log.open_queue(), log.open_queue()
    assert one.take_span(10) == (0, 0)  # nothing queued
    log.append(["a", "b", "c"])
    assert one.take_span(2) == (0, 2)
    assert two.take_span(10) == (0, 3)
    assert log.entries(0, 2) == ["a", "b"]
    assert one.take_span(10) == (2, 3)
    log.append([Summary(total=1, since_ms=0, limit_per_s=1), "d"])
    assert one.take_span(10) is None  # read differently by each queue: take() it
    assert len(one) == 2
    assert [type(item) for item in one.take(10)] == [Notice, str]
    two.close()
    assert two.take_span(10) == (3, 3)  # closed: nothing for the writer
    log.append(["e", Summary(total=2, since_ms=0, limit_per_s=1)])
    assert one.take(1) == ["e"]
    assert one.take_span(10) is None  # the summary behind "e" is still to be read


def test_the_log_forgets_what_every_queue_has_read() -> None:
    log = LiveLog(4)
    queue = log.open_queue()
    behind = log.open_queue()  # reads in bursts, within its bound: loses nothing
    read: list[Queued] = []
    for i in range(100):
        log.append([f"m{i}"])
        assert queue.take(10) == [f"m{i}"]
        if i % 3 == 2:
            read += behind.take(10)
        assert len(log) <= 4
    read += behind.take(10)
    assert read == [f"m{i}" for i in range(100)]
    idle = LiveLog(4)
    for i in range(100):  # no queue: nothing kept for long
        idle.append([f"m{i}"])
        assert len(idle) <= 4


class ModelQueue:
    """A client's own bounded deque, as each client had before the shared log."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: collections.deque[Queued] = collections.deque()
        self.closed = False

    def offer(self, messages: list[str]) -> bool:
        room = self.capacity - len(self.items)
        self.items.extend(messages[:room])
        return len(messages) <= room

    def take(self, limit: int) -> list[Queued]:
        if self.closed:
            return []
        return [self.items.popleft() for _ in range(min(limit, len(self.items)))]


# (what, which queue, how many)
ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "take", "receive", "open", "close"]),
        st.integers(0, 3),
        st.integers(1, 5),
    ),
    max_size=80,
)


@given(capacity=st.integers(1, 6), script=ops)
def test_each_queue_reads_as_a_bounded_queue_of_its_own(
    capacity: int, script: list[tuple[str, int, int]]
) -> None:
    log = LiveLog(capacity)
    queues: list[tuple[ClientQueue, ModelQueue]] = []
    serial = 0
    for op, which, n in script:
        if op == "open":
            queues.append((log.open_queue(), ModelQueue(capacity)))
            continue
        if op == "append":
            texts = [f"m{serial + k}" for k in range(n)]
            serial += n
            overflowed = log.append(list(texts))
            expected = [q for q, model in queues if not model.closed and not model.offer(texts)]
            assert set(overflowed) == set(expected)
            for queue, model in queues:
                model.closed = model.closed or queue in expected
        elif queues:
            queue, model = queues[which % len(queues)]
            if op == "take":
                assert queue.take(n) == model.take(n)
            elif op == "receive":
                if model.items:
                    assert queue.receive_nowait() == model.items.popleft()
                else:
                    with pytest.raises(trio.EndOfChannel if model.closed else trio.WouldBlock):
                        queue.receive_nowait()
            else:
                queue.close()
                model.closed = True
        for queue, model in queues:
            assert len(queue) == len(model.items)
            assert queue.closed == model.closed
        assert len(log) <= capacity  # at most what some open queue may still read
